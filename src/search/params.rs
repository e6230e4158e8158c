//! `datastore_search` parameters: CKAN 2.12's navl schema (`datastore_search_schema`) applied to
//! the request dict, giving a typed request or every schema error at once (sorted by key, HTTP
//! 409). Checks that need the table's columns live in `plan.rs`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::catalog::RequestedId;
use crate::config::Settings;
use crate::error::ApiError;
use crate::pyjson;
use crate::python::{self, IntError, PyInt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordsFormat {
    Objects,
    Lists,
    Csv,
    Tsv,
}

impl RecordsFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            RecordsFormat::Objects => "objects",
            RecordsFormat::Lists => "lists",
            RecordsFormat::Csv => "csv",
            RecordsFormat::Tsv => "tsv",
        }
    }
}

/// A validated `datastore_search` request. Values keep the form CKAN echoes them in.
#[derive(Debug, Clone)]
pub struct SearchParams {
    /// As sent: a resource id or an alias (resolved by the catalog).
    pub resource_id: RequestedId,
    /// A string or an object (`unicode_or_json_validator`).
    pub q: Option<Value>,
    pub plain: Option<bool>,
    /// The decoded JSON value of `filters`.
    pub filters: Option<Value>,
    pub language: Option<String>,
    pub limit: i64,
    /// `Some(Null)` when the caller sent an empty string: CKAN echoes `null` and its SQL fails.
    pub offset: Option<Value>,
    /// A string or a list (`list_of_strings_or_string`), as sent.
    pub fields: Option<Value>,
    /// A string or a list, as sent (and as echoed).
    pub sort: Option<Value>,
    pub distinct: Option<bool>,
    pub include_total: bool,
    /// `total_estimation_threshold`, kept only when the server honours it (CKAN ≤ 2.11
    /// behaviour, `honour_total_estimation`); CKAN 2.12 ignores it.
    pub total_estimation_threshold: Option<i64>,
    pub records_format: RecordsFormat,
    pub include_next_page: bool,
    pub full_text: Option<String>,
    /// Keys the schema does not know, in request order (CKAN's `__extras`).
    pub extras: Vec<String>,
    /// `id` was sent but empty (`""`, `0`, …): CKAN's auth check then fails to look the
    /// resource up.
    pub empty_id: bool,
}

const KNOWN_KEYS: &[&str] = &[
    "resource_id",
    "id",
    "q",
    "plain",
    "filters",
    "language",
    "limit",
    "offset",
    "fields",
    "sort",
    "distinct",
    "include_total",
    "total_estimation_threshold",
    "records_format",
    "include_next_page",
    "full_text",
];

/// Outcome of CKAN's `int_validator`.
pub enum IntRule {
    /// The Python int, exact whatever its size.
    Int(PyInt),
    /// `None` / whitespace-only strings become Python `None`.
    Nothing,
    Invalid,
}

/// CKAN's `int_validator`: `None` and blank strings (`not value.strip()`) give `None`; a
/// number whose `divmod(value, 1)` leaves no fraction gives `int(whole)` (exact: `1e30` is
/// 10**30; `inf` and `nan` leave a `nan` fraction and are invalid); a string gives Python's
/// `int(value)`; anything else "Invalid integer".
pub fn int_rule(v: &Value) -> IntRule {
    let int = match v {
        Value::Null => return IntRule::Nothing,
        Value::String(s) if python::strip(s).is_empty() => return IntRule::Nothing,
        // A float: `divmod(value, 1)`, then `int(whole)` when no fraction is left.
        Value::Number(n) if !python::is_integer_text(&n.to_string()) => {
            match n.to_string().parse::<f64>() {
                Ok(f) if f.fract() == 0.0 => PyInt::from_float(f),
                _ => return IntRule::Invalid,
            }
        }
        // `int(whole)` of a bool or an int; `int(value)` of a string.
        Value::Bool(_) | Value::Number(_) | Value::String(_) => python::int_of(v),
        Value::Array(_) | Value::Object(_) => return IntRule::Invalid,
    };
    int.map(IntRule::Int).unwrap_or(IntRule::Invalid)
}

/// CKAN's `boolean_validator`: never an error.
pub fn bool_rule(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => {
            let t = n.to_string();
            python::is_integer_text(&t)
                && !t.trim_start_matches('-').trim_start_matches('0').is_empty()
        }
        Value::String(s) => matches!(s.to_lowercase().as_str(), "true" | "yes" | "t" | "y" | "1"),
        _ => false,
    }
}

/// CKAN's `unicode_safe`: strings kept, `null` → `""`, anything else its JSON text.
pub fn unicode_safe(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => pyjson::to_string(&sort_keys(other)),
    }
}

fn sort_keys(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let sorted: BTreeMap<&String, Value> =
                m.iter().map(|(k, v)| (k, sort_keys(v))).collect();
            Value::Object(sorted.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(a) => Value::Array(a.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// navl's `default(x)` applies to missing, `null` and `""`.
fn is_defaulted(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null)) || v == Some(&Value::String(String::new()))
}

/// `json_validator` failed: "Cannot parse JSON".
#[derive(Debug)]
pub struct CannotParseJson;

/// `json_validator`: objects and arrays as they are, strings parsed as JSON, anything else an
/// error.
pub fn json_rule(v: &Value) -> Result<Value, CannotParseJson> {
    match v {
        Value::Object(_) | Value::Array(_) => Ok(v.clone()),
        Value::String(s) => serde_json::from_str(s).map_err(|_| CannotParseJson),
        _ => Err(CannotParseJson),
    }
}

/// `list_of_strings_or_string`.
fn list_rule(v: &Value) -> Result<(), String> {
    match v {
        Value::String(_) => Ok(()),
        Value::Array(items) => {
            for item in items {
                if !(item.is_string() || item.is_array()) {
                    return Err(format!(
                        "Neither a string nor a list: {}",
                        python::str_of(item)
                    ));
                }
            }
            Ok(())
        }
        _ => Err("Not a list".into()),
    }
}

/// Resolves `id` over `resource_id` exactly as navl's `rename('id', 'resource_id')` does:
/// only a truthy `id` replaces `resource_id`.
pub fn take_resource_id(data: &Map<String, Value>) -> Option<&Value> {
    match data.get("id") {
        Some(v) if python::truthy(v) => Some(v),
        _ => data.get("resource_id"),
    }
}

/// `not_missing, not_empty, unicode_safe` on the resource id.
pub fn resource_id_rule(data: &Map<String, Value>) -> Result<String, &'static str> {
    match take_resource_id(data) {
        None => Err("Missing value"),
        Some(v) => {
            let valid_falsy = matches!(v, Value::Bool(false))
                || matches!(v, Value::Number(n) if n.as_f64() == Some(0.0));
            if !valid_falsy && !python::truthy(v) {
                Err("Missing value")
            } else {
                Ok(unicode_safe(v))
            }
        }
    }
}

impl SearchParams {
    pub fn parse(data: &Map<String, Value>, settings: &Settings) -> Result<SearchParams, ApiError> {
        let mut errors: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let one = |m: &str| vec![Value::String(m.to_string())];
        let present = |k: &str| data.get(k).filter(|v| !v.is_null());

        let resource_id = resource_id_rule(data).unwrap_or_else(|e| {
            errors.insert("resource_id".into(), one(e));
            String::new()
        });

        let q = present("q").map(|v| match json_rule(v) {
            Ok(obj @ Value::Object(_)) => obj,
            _ => Value::String(python::str_of(v)),
        });
        let plain = present("plain").map(bool_rule);
        let filters = match present("filters") {
            None => None,
            Some(v) => match json_rule(v) {
                Ok(decoded) => Some(decoded),
                Err(CannotParseJson) => {
                    errors.insert("filters".into(), one("Cannot parse JSON"));
                    None
                }
            },
        };
        let language = present("language").map(unicode_safe);

        let limit = if is_defaulted(data.get("limit")) {
            settings.rows_default
        } else {
            // navl runs every validator and collects each message: natural_number_validator,
            // then limit_to_configured_maximum's own int() conversion.
            let v = &data["limit"];
            let mut messages = Vec::new();
            let mut value = None;
            match int_rule(v) {
                IntRule::Int(n) if n.is_negative() => messages.push("Must be a natural number"),
                IntRule::Int(n) => value = Some(n),
                IntRule::Invalid => messages.push("Invalid integer"),
                // `None < 0` raises a TypeError inside CKAN's validator.
                IntRule::Nothing => return Err(ApiError::CkanCrash("whitespace limit".into())),
            }
            // `convert_int`: `int(value)`, catching only ValueError.
            match python::int_of(v) {
                Ok(n) => value = value.or(Some(n)),
                Err(IntError::Value) => messages.push("Please enter an integer value"),
                Err(IntError::Type) => {
                    return Err(ApiError::CkanCrash("limit is not a number".into()))
                }
                Err(IntError::Overflow) => {
                    return Err(ApiError::CkanCrash("limit is an infinite float".into()))
                }
            }
            if !messages.is_empty() {
                errors.insert(
                    "limit".into(),
                    messages
                        .iter()
                        .map(|m| Value::String(m.to_string()))
                        .collect(),
                );
            }
            // `min(value, rows_max)`; a negative value is an error reported above.
            value
                .map_or(0, |n| n.saturating_i64())
                .min(settings.rows_max)
        };
        let offset = match present("offset") {
            None => None,
            Some(v) => match int_rule(v) {
                IntRule::Int(n) => Some(n.to_json()),
                IntRule::Nothing => Some(Value::Null),
                IntRule::Invalid => {
                    errors.insert("offset".into(), one("Invalid integer"));
                    None
                }
            },
        };
        let mut list_param = |key: &str| match present(key) {
            None => None,
            Some(v) => match list_rule(v) {
                Ok(()) => Some(v.clone()),
                Err(e) => {
                    errors.insert(key.into(), one(&e));
                    None
                }
            },
        };
        let fields = list_param("fields");
        let sort = list_param("sort");
        let distinct = present("distinct").map(bool_rule);
        let total_estimation_threshold = if settings.honour_total_estimation {
            match data.get("total_estimation_threshold") {
                None | Some(Value::Null) => None,
                Some(v) => match int_rule(v) {
                    IntRule::Int(n) => Some(n.saturating_i64()),
                    IntRule::Nothing => None,
                    IntRule::Invalid => {
                        errors.insert("total_estimation_threshold".into(), one("Invalid integer"));
                        None
                    }
                },
            }
        } else {
            None
        };
        let include_total = if is_defaulted(data.get("include_total")) {
            true
        } else {
            bool_rule(&data["include_total"])
        };
        let records_format = if is_defaulted(data.get("records_format")) {
            RecordsFormat::Objects
        } else {
            match data["records_format"].as_str() {
                Some("objects") => RecordsFormat::Objects,
                Some("lists") => RecordsFormat::Lists,
                Some("csv") => RecordsFormat::Csv,
                Some("tsv") => RecordsFormat::Tsv,
                _ => {
                    errors.insert(
                        "records_format".into(),
                        one("Value must be one of ['objects', 'lists', 'csv', 'tsv']"),
                    );
                    RecordsFormat::Objects
                }
            }
        };
        let include_next_page = if is_defaulted(data.get("include_next_page")) {
            false
        } else {
            bool_rule(&data["include_next_page"])
        };
        let full_text = present("full_text").map(unicode_safe);
        let extras = data
            .keys()
            .filter(|k| !KNOWN_KEYS.contains(&k.as_str()))
            .cloned()
            .collect();

        let empty_id = matches!(data.get("id"), Some(v) if !v.is_null() && !python::truthy(v));
        if !errors.is_empty() {
            let mut m = Map::new();
            for (k, msgs) in errors {
                m.insert(k, Value::Array(msgs));
            }
            return Err(ApiError::Validation(m));
        }
        Ok(SearchParams {
            resource_id: RequestedId(resource_id),
            q,
            plain,
            filters,
            language,
            limit,
            offset,
            fields,
            sort,
            distinct,
            include_total,
            total_estimation_threshold,
            records_format,
            include_next_page,
            full_text,
            extras,
            empty_id,
        })
    }

    /// The text of a string `q` (CKAN treats `""` as no search).
    pub fn q_text(&self) -> Option<&str> {
        match &self.q {
            Some(Value::String(s)) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// The per-column `q` object, when it is one and not empty.
    pub fn q_columns(&self) -> Option<&Map<String, Value>> {
        match &self.q {
            Some(Value::Object(m)) if !m.is_empty() => Some(m),
            _ => None,
        }
    }

    pub fn full_text(&self) -> Option<&str> {
        self.full_text.as_deref().filter(|s| !s.is_empty())
    }
}

/// `helpers.get_list`: a string is split on commas and each piece trimmed (empty pieces kept,
/// `""` gives no pieces); a list is used as it is. With `strip_quotes`, a piece whose first and
/// last characters are equal also loses surrounding whitespace and double quotes.
pub fn get_list(v: &Value, strip_quotes: bool) -> Vec<Value> {
    let items: Vec<Value> = match v {
        Value::String(s) if s.is_empty() => Vec::new(),
        Value::String(s) => s
            .split(',')
            .map(|p| Value::String(python::strip(p).to_string()))
            .collect(),
        Value::Array(a) => a.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    if !strip_quotes {
        return items;
    }
    items
        .into_iter()
        .map(|item| match item {
            Value::String(s) if !s.is_empty() && s.chars().next() == s.chars().last() => {
                Value::String(python::strip(&s).trim_matches('"').to_string())
            }
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SearchParams, ApiError> {
        let Value::Object(m) = v else { unreachable!() };
        SearchParams::parse(&m, &Settings::with_read_url("postgresql://x@localhost/db"))
    }

    #[test]
    fn all_schema_errors_at_once_sorted() {
        let Err(ApiError::Validation(m)) =
            parse(json!({"resource_id": "x", "limit": -1, "offset": "x", "records_format": "xml"}))
        else {
            panic!()
        };
        let keys: Vec<&String> = m.keys().collect();
        assert_eq!(keys, ["limit", "offset", "records_format"]);
        assert_eq!(m["limit"], json!(["Must be a natural number"]));
    }

    #[test]
    fn conversions_follow_ckan() {
        let p = parse(
            json!({"id": "a", "resource_id": "b", "limit": 99999, "q": "{\"name\": \"x\"}",
                             "include_total": "nope", "offset": " "}),
        )
        .unwrap();
        assert_eq!(p.resource_id, "a");
        assert_eq!(p.limit, 32000);
        assert_eq!(p.q, Some(json!({"name": "x"})));
        assert!(!p.include_total);
        assert_eq!(p.offset, Some(Value::Null));
        let p = parse(json!({"resource_id": 123, "limit": "5_0", "q": ["kiwi"]})).unwrap();
        assert_eq!(p.resource_id, "123");
        assert_eq!(p.limit, 50);
        assert_eq!(p.q, Some(json!("['kiwi']")));
    }

    #[test]
    fn integers_are_pythons() {
        // Digits of any script, any size: `min(int(limit), rows_max)`; the offset echoed exactly.
        let p = parse(json!({"resource_id": "x", "limit": "\u{663}", "offset": " 1_0 "})).unwrap();
        assert_eq!((p.limit, p.offset), (3, Some(json!(10))));
        let big = "99999999999999999999999999999999999999999";
        let p = parse(json!({"resource_id": "x", "limit": big, "offset": big})).unwrap();
        assert_eq!(p.limit, 32000);
        assert_eq!(pyjson::to_string(p.offset.as_ref().unwrap()), big);
        let p = parse(json!({"resource_id": "x", "limit": 1e30, "offset": 1e20})).unwrap();
        assert_eq!(p.limit, 32000);
        assert_eq!(p.offset, Some(json!(100000000000000000000u128)));
        // `int('_5')` and `int('5_')` raise ValueError in both validators.
        for bad in ["_5", "5_", "5__0", "5\u{1c}"] {
            let Err(ApiError::Validation(m)) = parse(json!({"resource_id": "x", "limit": bad}))
            else {
                panic!("{bad:?}")
            };
            assert_eq!(
                m["limit"],
                json!(["Invalid integer", "Please enter an integer value"]),
                "{bad:?}"
            );
        }
        // `'\x1c'.strip()` is empty: `None < 0` crashes CKAN's validator; `int(inf)` overflows.
        for crash in [json!("\u{1c}"), serde_json::from_str("1e400").unwrap()] {
            let got = parse(json!({"resource_id": "x", "limit": crash}));
            assert!(matches!(got, Err(ApiError::CkanCrash(_))), "{got:?}");
        }
    }

    #[test]
    fn get_list_strips_like_ckan() {
        assert_eq!(
            get_list(&json!(" id , \"name\" ,"), true),
            vec![json!("id"), json!("name"), json!("")]
        );
        assert_eq!(get_list(&json!(["name "]), true), vec![json!("name ")]);
    }
}
