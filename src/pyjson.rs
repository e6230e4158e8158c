//! JSON text exactly as CKAN's Python writes it.
//!
//! CKAN serialises every API response with `simplejson.dumps` defaults: `", "` and `": "`
//! separators, `ensure_ascii` (every character outside printable ASCII becomes `\uXXXX`, lowercase
//! hex, surrogate pairs above the BMP), integers as Python ints and floats in Python's `repr`.
//! Everything we echo back (parameters, field lists, errors) goes through this module so the
//! envelope is byte-identical; record bytes produced by PostgreSQL are spliced in elsewhere,
//! untouched.

use serde_json::{Number, Value};

/// How Python's JSON encoder is configured: CKAN's API responses use simplejson's defaults
/// (`", "`, `": "`, `ensure_ascii`); its JSON dump writer uses `separators=(',', ':')` and
/// `ensure_ascii=False`.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub item_sep: &'static [u8],
    pub key_sep: &'static [u8],
    pub ensure_ascii: bool,
}

/// simplejson's defaults, as in every action response.
pub const API: Style = Style {
    item_sep: b", ",
    key_sep: b": ",
    ensure_ascii: true,
};

/// `dumps(v, ensure_ascii=False, separators=(',', ':'))`, as in the JSON dump.
pub const COMPACT: Style = Style {
    item_sep: b",",
    key_sep: b":",
    ensure_ascii: false,
};

/// Appends `value` to `out` as simplejson would print it.
pub fn write_value(out: &mut Vec<u8>, value: &Value) {
    write_styled(out, value, API);
}

/// Appends `value` to `out` in the given style.
pub fn write_styled(out: &mut Vec<u8>, value: &Value, style: Style) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => out.extend_from_slice(python_number_str(n).as_bytes()),
        Value::String(s) => write_string(out, s, style.ensure_ascii),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(style.item_sep);
                }
                write_styled(out, item, style);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            out.push(b'{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(style.item_sep);
                }
                write_string(out, k, style.ensure_ascii);
                out.extend_from_slice(style.key_sep);
                write_styled(out, v, style);
            }
            out.push(b'}');
        }
    }
}

/// Serialises a value to a Python-style JSON string.
pub fn to_string(value: &Value) -> String {
    let mut out = Vec::new();
    write_value(&mut out, value);
    String::from_utf8(out).expect("pyjson writes ASCII only")
}

/// Appends a JSON string literal with `ensure_ascii` escaping.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_string(out, s, true);
}

/// A JSON string as simplejson escapes it: `"`, `\\` and control characters always; with
/// `ensure_ascii` also everything outside printable ASCII (`\uXXXX`, surrogate pairs).
fn write_string(out: &mut Vec<u8>, s: &str, ensure_ascii: bool) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let push_u = |out: &mut Vec<u8>, unit: u16| {
        out.extend_from_slice(b"\\u");
        for shift in [12, 8, 4, 0] {
            out.push(HEX[((unit >> shift) & 0xf) as usize]);
        }
    };
    out.push(b'"');
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\u{08}' => out.extend_from_slice(b"\\b"),
            '\u{0c}' => out.extend_from_slice(b"\\f"),
            ' '..='~' => out.push(ch as u8),
            c if !ensure_ascii && c as u32 >= 0x20 => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            _ => {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    push_u(out, *unit);
                }
            }
        }
    }
    out.push(b'"');
}

/// True when a JSON number's text has no fraction or exponent (Python decodes it as an int).
pub fn is_integer_text(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

/// Python's `repr(float)`: the shortest round-trip digits, fixed notation for exponents in
/// [-4, 16), scientific (`1e+16`, `1.5e-05`) otherwise, always a `.0` on whole fixed values.
pub fn python_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.into();
    }
    // Rust's `{:e}` gives the shortest round-trip digits in scientific form: "-1.2345e-7".
    let sci = format!("{:e}", f);
    let (mantissa, exp) = sci.split_once('e').expect("scientific format");
    let exp: i32 = exp.parse().expect("exponent");
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut s = String::new();
    if negative {
        s.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp < 0 {
            s.push_str("0.");
            for _ in 0..(-exp - 1) {
                s.push('0');
            }
            s.push_str(&digits);
        } else {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                s.push_str(&digits);
                for _ in digits.len()..int_len {
                    s.push('0');
                }
                s.push_str(".0");
            } else {
                s.push_str(&digits[..int_len]);
                s.push('.');
                s.push_str(&digits[int_len..]);
            }
        }
    } else {
        s.push_str(&digits[..1]);
        if digits.len() > 1 {
            s.push('.');
            s.push_str(&digits[1..]);
        }
        s.push('e');
        s.push(if exp < 0 { '-' } else { '+' });
        s.push_str(&format!("{:02}", exp.abs()));
    }
    s
}

/// Python's `repr()` of a decoded JSON value, as CKAN's error messages print it
/// (`{'a': 1}`, `[1, 'x']`, `True`, `None`).
pub fn python_repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => python_number_str(n),
        Value::String(s) => python_str_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(python_repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", python_str_repr(k), python_repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// Python's `str()` of a decoded JSON value (`str(True)` is `True`, a string is itself).
pub fn python_str(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

/// `str()` of a JSON number after Python decoded it.
pub fn python_number_str(n: &Number) -> String {
    let text = n.to_string();
    if is_integer_text(&text) {
        if text == "-0" {
            "0".into()
        } else {
            text
        }
    } else {
        python_float_repr(text.parse().unwrap_or(f64::NAN))
    }
}

/// Python's `repr(str)`: single quotes unless the text holds a `'` and no `"`.
pub fn python_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_follow_python_repr() {
        for (f, want) in [
            (1.5, "1.5"),
            (1.0, "1.0"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (-0.962334, "-0.962334"),
            (100.0, "100.0"),
            (1e22, "1e+22"),
        ] {
            assert_eq!(python_float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn strings_are_ascii_escaped() {
        let v = json!({"q": "café 🎉\u{7f}\"\\/\n"});
        assert_eq!(
            to_string(&v),
            r#"{"q": "caf\u00e9 \ud83c\udf89\u007f\"\\/\n"}"#
        );
    }

    #[test]
    fn numbers_keep_python_semantics() {
        let v: Value =
            serde_json::from_str(r#"[1, 2.50, 1E2, 12345678901234567890123, -0]"#).unwrap();
        assert_eq!(to_string(&v), "[1, 2.5, 100.0, 12345678901234567890123, 0]");
    }

    #[test]
    fn repr_matches_python() {
        let v: Value = serde_json::from_str(r#"{"a": [1, "x", true, null, "it's"]}"#).unwrap();
        assert_eq!(python_repr(&v), r#"{'a': [1, 'x', True, None, "it's"]}"#);
    }
}
