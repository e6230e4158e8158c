//! `bool()`, `str()` and `repr()` of the values Python's `json.loads` produces.

use serde_json::{Number, Value};

/// `isinstance(json.loads(text), int)` for a JSON number's text: no fraction, no exponent.
pub fn is_integer_text(text: &str) -> bool {
    !text.contains(['.', 'e', 'E'])
}

/// `bool(v)`: `None`, `False`, zero (`0`, `0.0`, `-0.0`, `1e-400` which decodes to `0.0`),
/// `''`, `[]` and `{}` are false; everything else true (`1e400` decodes to `inf`, true; so is an
/// int of any size).
pub fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => {
            let text = n.to_string();
            if is_integer_text(&text) {
                text.bytes().any(|b| matches!(b, b'1'..=b'9'))
            } else {
                text.parse::<f64>() != Ok(0.0)
            }
        }
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `repr(f)` of a float: the shortest round-trip digits, fixed notation for exponents in
/// [-4, 16), scientific (`1e+16`, `1.5e-05`) otherwise, always a `.0` on whole fixed values.
/// Non-finite values are spelt as Python's JSON encoders write them (`NaN`, `Infinity`,
/// `-Infinity`), not as `repr()` does (`nan`, `inf`).
pub fn float_repr(f: f64) -> String {
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

/// `str(json.loads(text))` of a JSON number: an int's digits (`-0` is `0`), a float's
/// [`float_repr`] (`1E2` is `100.0`).
pub fn number_str(n: &Number) -> String {
    let text = n.to_string();
    if is_integer_text(&text) {
        if text == "-0" {
            "0".into()
        } else {
            text
        }
    } else {
        float_repr(text.parse().unwrap_or(f64::NAN))
    }
}

/// `repr(s)` of a str: single quotes unless the text holds a `'` and no `"`; backslash, the
/// quote in use, `\n`, `\r`, `\t` escaped, other ASCII control characters and DEL as `\xNN`.
/// Other characters are written as they are (Python also escapes the non-printable ones outside
/// ASCII, such as U+0080..U+00A0 or U+200B, which this does not).
pub fn str_repr(s: &str) -> String {
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

/// `repr(v)` of a decoded JSON value, as CKAN's error messages print it (`{'a': 1}`,
/// `[1, 'x']`, `True`, `None`).
pub fn repr(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => number_str(n),
        Value::String(s) => str_repr(s),
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(repr).collect();
            format!("[{}]", inner.join(", "))
        }
        Value::Object(map) => {
            let inner: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", str_repr(k), repr(v)))
                .collect();
            format!("{{{}}}", inner.join(", "))
        }
    }
}

/// `str(v)` of a decoded JSON value: a str is itself, anything else its [`repr`] (`str(True)` is
/// `True`, `str(None)` is `None`).
pub fn str_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_follow_python_repr() {
        // python3 -c "print([repr(f) for f in CASES])"
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
            (-0.0, "-0.0"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (9999999999999998.0, "9999999999999998.0"),
        ] {
            assert_eq!(float_repr(f), want, "{f}");
        }
    }

    #[test]
    fn truthiness_matches_cpython() {
        // python3 -c "import json; print([bool(json.loads(t)) for t in CASES])"
        let big = format!("1{}", "0".repeat(400));
        for (text, want) in [
            ("null", false),
            ("true", true),
            ("false", false),
            ("0", false),
            ("-0", false),
            ("1", true),
            ("-1", true),
            ("0.0", false),
            ("-0.0", false),
            ("0e5", false),
            ("0.000", false),
            ("1e-400", false),
            ("-1e-400", false),
            ("1e400", true),
            ("-1e400", true),
            ("0.1", true),
            ("1e-300", true),
            (r#""000""#, true),
            ("100000000000000000000000000000000000000000", true),
            (&big, true),
            (r#""""#, false),
            (r#""0""#, true),
            (r#""False""#, true),
            (r#"" ""#, true),
            ("[]", false),
            ("[0]", true),
            ("[[]]", true),
            ("{}", false),
            (r#"{"a": null}"#, true),
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(truthy(&v), want, "{text}");
        }
    }

    #[test]
    fn str_and_repr_match_cpython() {
        // python3 -c "import json; print([(str(v), repr(v)) for v in map(json.loads, CASES)])"
        for (text, s, r) in [
            ("null", "None", "None"),
            ("true", "True", "True"),
            ("false", "False", "False"),
            ("-0", "0", "0"),
            (
                "12345678901234567890123",
                "12345678901234567890123",
                "12345678901234567890123",
            ),
            ("2.50", "2.5", "2.5"),
            ("1E2", "100.0", "100.0"),
            ("-0.0", "-0.0", "-0.0"),
            ("1e16", "1e+16", "1e+16"),
            (r#""it's""#, "it's", r#""it's""#),
            (r#""say \"hi\"""#, r#"say "hi""#, r#"'say "hi"'"#),
            (
                r#""both ' and \"""#,
                r#"both ' and ""#,
                r#"'both \' and "'"#,
            ),
            (r#""a\\b""#, r"a\b", r"'a\\b'"),
            (r#""\n\t\r""#, "\n\t\r", r"'\n\t\r'"),
            (
                r#""\u0000\u001f\u007f""#,
                "\u{0}\u{1f}\u{7f}",
                r"'\x00\x1f\x7f'",
            ),
            (r#""é🎉""#, "é🎉", "'é🎉'"),
            (
                r#"{"a": [1, "x", true, null, "it's"]}"#,
                r#"{'a': [1, 'x', True, None, "it's"]}"#,
                r#"{'a': [1, 'x', True, None, "it's"]}"#,
            ),
            ("[]", "[]", "[]"),
            ("{}", "{}", "{}"),
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            assert_eq!(str_of(&v), s, "str({text})");
            assert_eq!(repr(&v), r, "repr({text})");
        }
        assert_eq!(str_repr("x"), "'x'");
        assert_eq!(number_str(&serde_json::from_str("7").unwrap()), "7");
        assert!(is_integer_text("-12") && !is_integer_text("1e2") && !is_integer_text("1.0"));
        assert_eq!(str_of(&json!("plain")), "plain");
    }
}
