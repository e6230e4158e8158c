//! JSON text exactly as CKAN's Python writes it.
//!
//! CKAN serialises every API response with `simplejson.dumps` defaults: `", "` and `": "`
//! separators, `ensure_ascii` (every character outside printable ASCII becomes `\uXXXX`, lowercase
//! hex, surrogate pairs above the BMP), integers as Python ints and floats in Python's `repr`.
//! Everything we echo back (parameters, field lists, errors) goes through this module so the
//! envelope is byte-identical; record bytes produced by PostgreSQL are spliced in elsewhere,
//! untouched. `str()`/`repr()` of values and numbers are in [`crate::python`].

use serde_json::Value;

use crate::python::number_str;

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
        Value::Number(n) => out.extend_from_slice(number_str(n).as_bytes()),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
}
