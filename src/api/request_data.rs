//! The action's parameter dict, extracted from the HTTP request exactly as CKAN's
//! `ckan/views/api.py::_get_request_data` does for side-effect-free actions: a non-empty POST
//! form first, then the query string (for POST too), then a JSON body.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::python;

/// What the request carried.
pub struct RequestData {
    pub data: Map<String, Value>,
    /// The request named a JSONP `callback` (removed from `data`); CKAN then runs the action as
    /// the anonymous user.
    pub had_callback: bool,
}

/// Failures of extraction that are not CKAN's 400 "Bad request" string.
#[derive(Debug)]
pub enum ExtractError {
    Api(ApiError),
    /// Werkzeug's 415 for a body that is neither a form nor JSON-typed.
    UnsupportedMediaType,
}

impl From<ApiError> for ExtractError {
    fn from(e: ApiError) -> Self {
        ExtractError::Api(e)
    }
}

/// Werkzeug's `MultiDict` flattened by CKAN's `mixed()`: one value → a string, several → a list.
fn mixed(pairs: Vec<(String, String)>) -> Map<String, Value> {
    let mut out: Map<String, Value> = Map::new();
    for (k, v) in pairs {
        match out.get_mut(&k) {
            None => {
                out.insert(k, Value::String(v));
            }
            Some(Value::Array(list)) => list.push(Value::String(v)),
            Some(existing) => {
                let first = existing.take();
                *existing = Value::Array(vec![first, Value::String(v)]);
            }
        }
    }
    out
}

fn parse_pairs(text: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(text)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn bad_json(detail: &str) -> ApiError {
    ApiError::BadRequest(format!(
        "JSON Error: Error decoding JSON data. Error: {detail} JSON data extracted from the request: {{}}"
    ))
}

fn not_a_dict(v: &Value) -> ApiError {
    ApiError::BadRequest(format!(
        "JSON Error: Request data JSON decoded to {} but it needs to be a dictionary.",
        python::repr(v)
    ))
}

/// Python's `JSONDecodeError` repr for text serde_json rejected: the same message and position
/// for the common mistakes (serde's line/column are 1-based like Python's; at end of input
/// Python points one past the last character).
fn python_decode_error(text: &str, err: &serde_json::Error) -> String {
    let msg = err.to_string();
    let eof = err.classify() == serde_json::error::Category::Eof;
    let what = if msg.starts_with("trailing characters") {
        "Extra data"
    } else if msg.starts_with("key must be a string") || msg.starts_with("trailing comma") {
        "Expecting property name enclosed in double quotes"
    } else if msg.starts_with("expected `:`") {
        "Expecting ':' delimiter"
    } else if msg.starts_with("expected `,` or `}`") || msg.starts_with("expected `,` or `]`") {
        "Expecting ',' delimiter"
    } else if eof && msg.starts_with("EOF while parsing an object") {
        if text.trim_end().ends_with('{') || text.trim_end().ends_with(',') {
            "Expecting property name enclosed in double quotes"
        } else if text.trim_end().ends_with(':') {
            "Expecting value"
        } else {
            "Expecting ',' delimiter"
        }
    } else {
        "Expecting value"
    };
    let (line, col) = if eof {
        let chars: Vec<char> = text.chars().collect();
        let line = chars.iter().filter(|c| **c == '\n').count() + 1;
        let last_nl = chars
            .iter()
            .rposition(|c| *c == '\n')
            .map(|p| p + 1)
            .unwrap_or(0);
        (line, chars.len() - last_nl + 1)
    } else {
        (err.line().max(1), err.column().max(1))
    };
    let offset: usize = text
        .split('\n')
        .take(line - 1)
        .map(|l| l.chars().count() + 1)
        .sum::<usize>()
        + col
        - 1;
    format!("JSONDecodeError('{what}: line {line} column {col} (char {offset})')")
}

/// Extracts the parameter dict. `method_is_post` covers POST and PUT.
pub fn extract(
    method_is_post: bool,
    query: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<RequestData, ExtractError> {
    let mime = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let is_form = mime == "application/x-www-form-urlencoded";
    let form = if method_is_post && is_form {
        parse_pairs(body)
    } else {
        Vec::new()
    };

    let mut data = if !form.is_empty() {
        if form.len() == 1 && (form[0].1.is_empty() || form[0].1 == "1") {
            let key = &form[0].0;
            match serde_json::from_str::<Value>(key) {
                Ok(Value::Object(m)) => m,
                Ok(other) => return Err(not_a_dict(&other).into()),
                Err(e) => return Err(bad_json(&python_decode_error(key, &e)).into()),
            }
        } else {
            mixed(form)
        }
    } else if !query.is_empty() && !parse_pairs(query.as_bytes()).is_empty() {
        mixed(parse_pairs(query.as_bytes()))
    } else if !body.is_empty() && !is_form && mime != "multipart/form-data" {
        let is_json = mime == "application/json"
            || (mime.starts_with("application/") && mime.ends_with("+json"));
        if !is_json {
            return Err(ExtractError::UnsupportedMediaType);
        }
        let parsed = std::str::from_utf8(body)
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        match parsed {
            Some(Value::Object(m)) => m,
            Some(other) => return Err(not_a_dict(&other).into()),
            None => return Err(bad_json("<BadRequest '400: Bad Request'>").into()),
        }
    } else {
        Map::new()
    };
    let had_callback = data.shift_remove("callback").is_some();
    Ok(RequestData { data, had_callback })
}

/// The JSONP callback of a GET request (CKAN wraps only GET responses with status 200).
pub fn jsonp_callback(query: &str) -> Option<String> {
    // Werkzeug's `request.args[...]` is the first value.
    parse_pairs(query.as_bytes())
        .into_iter()
        .find(|(k, _)| k == "callback")
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(post: bool, q: &str, ct: Option<&str>, body: &str) -> Map<String, Value> {
        match extract(post, q, ct, body.as_bytes()) {
            Ok(r) => r.data,
            Err(e) => panic!("{e:?}"),
        }
    }

    #[test]
    fn query_string_values_are_strings_and_repeats_lists() {
        let d = ok(false, "fields=id&fields=name&limit=5", None, "");
        assert_eq!(
            Value::Object(d),
            json!({"fields": ["id", "name"], "limit": "5"})
        );
    }

    #[test]
    fn query_string_beats_json_body() {
        let d = ok(
            true,
            "resource_id=x",
            Some("application/json"),
            r#"{"resource_id": "y"}"#,
        );
        assert_eq!(d["resource_id"], json!("x"));
    }

    #[test]
    fn curl_d_json_as_form_field_name() {
        let d = ok(
            true,
            "",
            Some("application/x-www-form-urlencoded"),
            r#"{"resource_id": "abc", "limit": 1}"#,
        );
        assert_eq!(d["limit"], json!(1));
    }

    #[test]
    fn bad_bodies() {
        let Err(ExtractError::Api(ApiError::BadRequest(m))) =
            extract(true, "", Some("application/json"), b"[1, 2]")
        else {
            panic!()
        };
        assert_eq!(
            m,
            "JSON Error: Request data JSON decoded to [1, 2] but it needs to be a dictionary."
        );
        let Err(ExtractError::Api(ApiError::BadRequest(m))) =
            extract(true, "", Some("application/json"), b"{nope")
        else {
            panic!()
        };
        assert!(m.contains("<BadRequest '400: Bad Request'>"));
        assert!(matches!(
            extract(true, "", Some("text/plain"), b"{}"),
            Err(ExtractError::UnsupportedMediaType)
        ));
    }
}
