//! `datastore_search_sql` records as CKAN renders them: psycopg2 turns each value into a Python
//! object, CKAN's `convert` adjusts a few, and simplejson writes the dict (docs/ckan-spec/ckan-datastore.md §7).
//! We get PostgreSQL's text output of every column and write, per column type, the bytes that
//! chain produces.

use crate::pyjson;

/// How one column's text becomes JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// int2/int4/int8/oid: the digits.
    Int,
    /// float4/float8: Python's `repr` of the double.
    Float,
    /// numeric: Python's Decimal, written by simplejson as its exact text.
    Numeric,
    Bool,
    /// CKAN's `nested` composite (how `datastore_create` stores `json` fields): its `json`
    /// member decoded and re-encoded (Python floats, `", "` separators, `\uXXXX`). Plain
    /// json/jsonb columns stay strings: CKAN registers psycopg2's json caster as identity.
    Nested,
    /// `datetime.isoformat()`.
    Timestamp,
    TimestampTz,
    /// `str(time)`.
    Time,
    TimeTz,
    /// `str(timedelta)`.
    Interval,
    /// A one-dimensional array of the element kind.
    Array(Box<Kind>),
    /// bytea: simplejson cannot encode Python's memoryview → CKAN fails (500).
    Unrenderable,
    /// Everything else (text, varchar, date, uuid, tsvector, …): a string of PostgreSQL's text.
    Text,
}

impl Kind {
    /// By PostgreSQL type name (`pg_type.typname`).
    pub fn of(typname: &str) -> Kind {
        if let Some(elem) = typname.strip_prefix('_') {
            return Kind::Array(Box::new(Kind::of(elem)));
        }
        match typname {
            "int2" | "int4" | "int8" | "oid" => Kind::Int,
            "float4" | "float8" => Kind::Float,
            "numeric" => Kind::Numeric,
            "bool" => Kind::Bool,
            "nested" => Kind::Nested,
            "timestamp" => Kind::Timestamp,
            "timestamptz" => Kind::TimestampTz,
            "time" => Kind::Time,
            "timetz" => Kind::TimeTz,
            "interval" => Kind::Interval,
            "bytea" => Kind::Unrenderable,
            _ => Kind::Text,
        }
    }
}

/// A value CKAN cannot serialize (it answers 500).
#[derive(Debug)]
pub struct Unrenderable(pub String);

/// Appends the JSON for PostgreSQL's text `text` (None: NULL) of a `kind` column.
pub fn write(out: &mut Vec<u8>, kind: &Kind, text: Option<&str>) -> Result<(), Unrenderable> {
    let Some(t) = text else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    match kind {
        Kind::Int => out.extend_from_slice(t.as_bytes()),
        Kind::Numeric => out.extend_from_slice(t.as_bytes()),
        Kind::Float => {
            let f: f64 = t
                .parse()
                .map_err(|_| Unrenderable(format!("float {t:?}")))?;
            if !f.is_finite() {
                // Python's json refuses NaN/Infinity under CKAN's settings: a 500.
                return Err(Unrenderable(format!("float {t}")));
            }
            out.extend_from_slice(crate::python::float_repr(f).as_bytes());
        }
        Kind::Bool => out.extend_from_slice(if t == "t" { b"true" } else { b"false" }),
        Kind::Nested => {
            let members =
                parse_composite(t).ok_or_else(|| Unrenderable(format!("nested {t:?}")))?;
            match members.first() {
                Some(Some(json)) => {
                    let v: serde_json::Value = serde_json::from_str(json)
                        .map_err(|e| Unrenderable(format!("nested json: {e}")))?;
                    pyjson::write_value(out, &v);
                }
                _ => out.extend_from_slice(b"null"),
            }
        }
        Kind::Timestamp => pyjson::write_str(out, &iso_timestamp(t)),
        Kind::TimestampTz => pyjson::write_str(out, &iso_timestamp(t)),
        Kind::Time | Kind::TimeTz => pyjson::write_str(out, &iso_time(t)),
        Kind::Interval => pyjson::write_str(out, &timedelta_str(t)),
        Kind::Array(elem) => {
            let items = parse_array(t).ok_or_else(|| Unrenderable(format!("array {t:?}")))?;
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                write(out, elem, item.as_deref())?;
            }
            out.push(b']');
        }
        Kind::Unrenderable => return Err(Unrenderable("bytea".into())),
        Kind::Text => pyjson::write_str(out, t),
    }
    Ok(())
}

/// `2024-01-02 13:00:00.5+00` → `2024-01-02T13:00:00.500000+00:00` (Python's isoformat: the
/// fraction only when non-zero, as 6 digits; the offset as ±HH:MM).
fn iso_timestamp(t: &str) -> String {
    match t.split_once(' ') {
        Some((date, time)) => format!("{date}T{}", iso_time(time)),
        None => t.to_string(),
    }
}

/// `13:00:00.5+05:30` → `13:00:00.500000+05:30`; `+00` → `+00:00`.
fn iso_time(t: &str) -> String {
    let (clock, offset) = match t.find(['+', '-']) {
        Some(i) => (&t[..i], Some(&t[i..])),
        None => (t, None),
    };
    let mut s = match clock.split_once('.') {
        Some((hms, frac)) => format!("{hms}.{frac:0<6}"),
        None => clock.to_string(),
    };
    if let Some(off) = offset {
        s.push_str(off);
        if off.len() == 3 {
            s.push_str(":00");
        }
    }
    s
}

/// psycopg2's interval → `timedelta` (a month is 30 days, a year 365) → `str()`:
/// `[-]D day[s], H:MM:SS[.ffffff]`.
fn timedelta_str(t: &str) -> String {
    let mut days: i64 = 0;
    let mut micros: i64 = 0;
    let mut tokens = t.split_whitespace().peekable();
    while let Some(tok) = tokens.next() {
        if tok.contains(':') {
            let neg = tok.starts_with('-');
            let body = tok.trim_start_matches(['-', '+']);
            let mut parts = body.split(':');
            let h: i64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let m: i64 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let sec = parts.next().unwrap_or("0");
            let (s, frac) = sec.split_once('.').unwrap_or((sec, ""));
            let s: i64 = s.parse().unwrap_or(0);
            let f: i64 = format!("{frac:0<6}")[..6].parse().unwrap_or(0);
            let total = ((h * 60 + m) * 60 + s) * 1_000_000 + f;
            micros += if neg { -total } else { total };
            continue;
        }
        let Ok(n) = tok.parse::<i64>() else { continue };
        let unit = tokens.next().unwrap_or("");
        match unit.trim_end_matches('s') {
            "year" => days += n * 365,
            "mon" => days += n * 30,
            "day" => days += n,
            _ => {}
        }
    }
    // timedelta normalizes to days + 0 <= seconds < 86400.
    let total = days * 86_400_000_000 + micros;
    let d = total.div_euclid(86_400_000_000);
    let rest = total.rem_euclid(86_400_000_000);
    let (secs, us) = (rest / 1_000_000, rest % 1_000_000);
    let clock = format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    let clock = if us != 0 {
        format!("{clock}.{us:06}")
    } else {
        clock
    };
    if d == 0 {
        clock
    } else {
        format!("{d} day{}, {clock}", if d.abs() == 1 { "" } else { "s" })
    }
}

/// A composite value's text (`("{""n"": 1}","")`) → its members (None: NULL).
fn parse_composite(t: &str) -> Option<Vec<Option<String>>> {
    let inner = t.strip_prefix('(')?.strip_suffix(')')?;
    let mut members = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let mut quoted_any = false;
        while let Some(&c) = chars.peek() {
            match c {
                ',' => break,
                '"' => {
                    quoted_any = true;
                    chars.next();
                    loop {
                        match chars.next()? {
                            '"' if chars.peek() == Some(&'"') => {
                                chars.next();
                                item.push('"');
                            }
                            '"' => break,
                            '\\' => item.push(chars.next()?),
                            c => item.push(c),
                        }
                    }
                }
                '\\' => {
                    chars.next();
                    item.push(chars.next()?);
                }
                c => {
                    item.push(c);
                    chars.next();
                }
            }
        }
        // An empty unquoted member is NULL.
        members.push((quoted_any || !item.is_empty()).then_some(item));
        match chars.next() {
            None => return Some(members),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// A one-dimensional PostgreSQL array literal (`{a,"b c",NULL}`) → its items (None: NULL).
fn parse_array(t: &str) -> Option<Vec<Option<String>>> {
    let inner = t.strip_prefix('{')?.strip_suffix('}')?;
    let mut items = Vec::new();
    if inner.is_empty() {
        return Some(items);
    }
    let mut chars = inner.chars().peekable();
    loop {
        let mut item = String::new();
        let quoted = chars.peek() == Some(&'"');
        if quoted {
            chars.next();
            loop {
                match chars.next()? {
                    '\\' => item.push(chars.next()?),
                    '"' => break,
                    c => item.push(c),
                }
            }
            items.push(Some(item));
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                if c == '{' {
                    // Multi-dimensional arrays are not rendered here.
                    return None;
                }
                item.push(c);
                chars.next();
            }
            items.push((item != "NULL").then_some(item));
        }
        match chars.next() {
            None => return Some(items),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(typname: &str, t: Option<&str>) -> String {
        let mut out = Vec::new();
        write(&mut out, &Kind::of(typname), t).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn renders_like_psycopg2_and_simplejson() {
        assert_eq!(r("int4", Some("7")), "7");
        assert_eq!(r("numeric", Some("1.50")), "1.50");
        assert_eq!(r("float8", Some("1e+15")), "1000000000000000.0");
        assert_eq!(r("float8", Some("0.1")), "0.1");
        assert_eq!(r("bool", Some("t")), "true");
        assert_eq!(r("text", None), "null");
        assert_eq!(r("text", Some("é\"")), "\"\\u00e9\\\"\"");
        assert_eq!(
            r("nested", Some(r#"("{""n"":1.50,""t"":[""a""]}","")"#)),
            r#"{"n": 1.5, "t": ["a"]}"#
        );
        assert_eq!(r("nested", Some("(,)")), "null");
        assert_eq!(r("json", Some(r#"{"n": 1.50}"#)), r#""{\"n\": 1.50}""#);
        assert_eq!(
            r("timestamp", Some("2024-01-02 13:00:00")),
            "\"2024-01-02T13:00:00\""
        );
        assert_eq!(
            r("timestamp", Some("2024-01-02 13:00:00.5")),
            "\"2024-01-02T13:00:00.500000\""
        );
        assert_eq!(
            r("timestamptz", Some("2026-11-25 03:23:49+00")),
            "\"2026-11-25T03:23:49+00:00\""
        );
        assert_eq!(r("date", Some("2025-06-21")), "\"2025-06-21\"");
        assert_eq!(r("interval", Some("1 day 02:00:00")), "\"1 day, 2:00:00\"");
        assert_eq!(r("interval", Some("3 mons")), "\"90 days, 0:00:00\"");
        assert_eq!(r("interval", Some("-01:00:00")), "\"-1 day, 23:00:00\"");
        assert_eq!(
            r("_text", Some(r#"{a,"b c",NULL}"#)),
            r#"["a", "b c", null]"#
        );
        assert_eq!(r("_int4", Some("{1,2}")), "[1, 2]");
        let mut out = Vec::new();
        assert!(write(&mut out, &Kind::of("float8"), Some("NaN")).is_err());
    }
}
