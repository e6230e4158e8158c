//! Python's `int()`: of a string (`PyLong_FromUnicodeObject` with base 10) and of a decoded JSON
//! value, giving an integer of any size.

use std::fmt;

use serde_json::{Number, Value};

use super::strings::is_space;
use super::values::is_integer_text;

/// `sys.get_int_max_str_digits()` by default: `int()` of a string with more digits (leading
/// zeros count, underscores do not) raises `ValueError`.
pub const MAX_STR_DIGITS: usize = 4300;

/// The exception Python's `int()` raises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntError {
    /// `ValueError`: a string that is not a base-10 integer literal.
    Value,
    /// `TypeError`: `None`, a list or a dict.
    Type,
    /// `OverflowError`: an infinite float (`int(json.loads('1e400'))`).
    Overflow,
}

/// An `int` as Python holds it: exact, of any size. Callers narrow it where they need a machine
/// integer, by [`PyInt::to_i64`] (None outside `i64`) or by saturating (the value's sign and
/// order are kept, so comparisons and `min()` against a bound still come out as in Python).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyInt {
    /// `str(n)`: an optional `-`, then digits without leading zeros (`0` for zero).
    text: String,
}

impl PyInt {
    /// From a sign and ASCII digits (leading zeros allowed).
    fn from_digits(negative: bool, digits: &[u8]) -> PyInt {
        let start = digits
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(digits.len());
        let digits = &digits[start..];
        if digits.is_empty() {
            return PyInt { text: "0".into() };
        }
        let mut text = String::with_capacity(digits.len() + 1);
        if negative {
            text.push('-');
        }
        text.extend(digits.iter().map(|&d| d as char));
        PyInt { text }
    }

    /// `int(f)` for a float: truncated toward zero, exact (`int(1e23)` is
    /// `99999999999999991611392`); infinities raise `OverflowError`, NaN `ValueError`.
    pub fn from_float(f: f64) -> Result<PyInt, IntError> {
        if f.is_nan() {
            return Err(IntError::Value);
        }
        if f.is_infinite() {
            return Err(IntError::Overflow);
        }
        // `{:.0}` prints the exact decimal value of an integral float.
        let text = format!("{:.0}", f.trunc());
        let (negative, digits) = match text.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, text.as_str()),
        };
        Ok(PyInt::from_digits(negative, digits.as_bytes()))
    }

    /// `str(n)`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// `n < 0`.
    pub fn is_negative(&self) -> bool {
        self.text.starts_with('-')
    }

    /// The value when it fits an `i64`.
    pub fn to_i64(&self) -> Option<i64> {
        self.text.parse().ok()
    }

    /// The value clamped to `i64::MIN..=i64::MAX`.
    pub fn saturating_i64(&self) -> i64 {
        self.to_i64().unwrap_or(if self.is_negative() {
            i64::MIN
        } else {
            i64::MAX
        })
    }

    /// The value clamped to `i128::MIN..=i128::MAX`.
    pub fn saturating_i128(&self) -> i128 {
        self.text.parse().unwrap_or(if self.is_negative() {
            i128::MIN
        } else {
            i128::MAX
        })
    }

    /// The JSON number `json.dumps(n)` writes: exactly the digits, whatever the size.
    pub fn to_json(&self) -> Value {
        let n: Number = self
            .text
            .parse()
            .expect("an integer's text is a JSON number");
        Value::Number(n)
    }
}

impl From<i64> for PyInt {
    fn from(n: i64) -> PyInt {
        PyInt {
            text: n.to_string(),
        }
    }
}

impl fmt::Display for PyInt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The first code point of each run of ten decimal digits outside ASCII (Unicode 14.0.0, as in
/// CPython 3.11): every character `unicodedata.decimal(c, None)` gives a value for is
/// `zero + value` for one of these. From
/// `python3 -c "import unicodedata as u; print([hex(c) for c in range(128, 0x110000) if u.decimal(chr(c), None) == 0])"`
const DECIMAL_ZEROS: [u32; 65] = [
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6,
    0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50,
    0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// `unicodedata.decimal(c, None)`: the value of a decimal digit of any script (`'٣'` is 3);
/// None for everything else, superscripts and numerals like `'²'` or `'Ⅻ'` included.
pub fn decimal(c: char) -> Option<u32> {
    if let Some(d) = c.to_digit(10) {
        return Some(d);
    }
    let c = c as u32;
    let i = DECIMAL_ZEROS.partition_point(|&zero| zero <= c);
    let zero = *DECIMAL_ZEROS.get(i.checked_sub(1)?)?;
    (c - zero < 10).then_some(c - zero)
}

/// Python's `int(s)` of a string: surrounding whitespace (any Unicode whitespace except
/// U+001C..U+001F, which `str.isspace()` counts but `int()` does not), one optional sign,
/// decimal digits of any script with single underscores between digits, at most
/// [`MAX_STR_DIGITS`] digits. `int('_1')`, `int('1__2')`, `int('1_')`, `int('- 1')` and
/// `int('1.0')` raise `ValueError`; `int(' 1_0 ')` is 10, `int('+1')` 1, `int('-0')` 0,
/// `int('٣')` 3. The only error is [`IntError::Value`].
pub fn int(s: &str) -> Result<PyInt, IntError> {
    // `_PyUnicode_TransformDecimalAndSpaceToASCII`, then `PyLong_FromString` on the result.
    let mut ascii = Vec::with_capacity(s.len());
    for c in s.chars() {
        let b = if (c as u32) < 127 {
            c as u8
        } else if is_space(c) {
            b' '
        } else if let Some(d) = decimal(c) {
            b'0' + d as u8
        } else {
            return Err(IntError::Value);
        };
        ascii.push(b);
    }
    parse_ascii(&ascii, true)
}

/// `PyLong_FromString(s, &end, 10)` followed by the check that all of `s` was used.
fn parse_ascii(s: &[u8], limit_digits: bool) -> Result<PyInt, IntError> {
    // `Py_ISSPACE`: ASCII whitespace, not U+001C..U+001F.
    let is_ws = |b: u8| b == b' ' || (b'\t'..=b'\r').contains(&b);
    let mut i = 0;
    while i < s.len() && is_ws(s[i]) {
        i += 1;
    }
    let negative = match s.get(i) {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut digits = Vec::new();
    // True before the first digit too: a leading underscore is refused like a doubled one.
    let mut after_underscore = true;
    while let Some(&b) = s.get(i) {
        match b {
            b'0'..=b'9' => {
                digits.push(b);
                after_underscore = false;
            }
            b'_' if !after_underscore => after_underscore = true,
            b'_' => return Err(IntError::Value),
            _ => break,
        }
        i += 1;
    }
    if digits.is_empty() || after_underscore {
        return Err(IntError::Value);
    }
    if limit_digits && digits.len() > MAX_STR_DIGITS {
        return Err(IntError::Value);
    }
    while i < s.len() && is_ws(s[i]) {
        i += 1;
    }
    if i != s.len() {
        return Err(IntError::Value);
    }
    Ok(PyInt::from_digits(negative, &digits))
}

/// Python's `int(v)` of a value `json.loads` gave: `bool` is 0 or 1, an `int` itself (any
/// size), a `float` truncated toward zero ([`PyInt::from_float`]), a `str` as [`int`];
/// `None`, lists and dicts raise `TypeError`.
pub fn int_of(v: &Value) -> Result<PyInt, IntError> {
    match v {
        Value::Bool(b) => Ok(PyInt::from(i64::from(*b))),
        Value::Number(n) => {
            let text = n.to_string();
            if is_integer_text(&text) {
                // Already a Python int: no digit limit applies any more.
                parse_ascii(text.as_bytes(), false)
            } else {
                PyInt::from_float(text.parse().map_err(|_| IntError::Value)?)
            }
        }
        Value::String(s) => int(s),
        Value::Null | Value::Array(_) | Value::Object(_) => Err(IntError::Type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_of_strings_matches_cpython() {
        // CASES: the first column; None where CPython raises ValueError:
        // python3 -c "
        // def f(s):
        //     try: return str(int(s))
        //     except ValueError: return None
        // print([f(s) for s in CASES])"
        for (s, want) in [
            ("0", Some("0")),
            ("7", Some("7")),
            ("-7", Some("-7")),
            ("+7", Some("7")),
            ("-0", Some("0")),
            ("+0", Some("0")),
            ("00", Some("0")),
            ("007", Some("7")),
            ("-007", Some("-7")),
            (" 1_0 ", Some("10")),
            ("1_000_000", Some("1000000")),
            ("0_0", Some("0")),
            ("\t-7\n", Some("-7")),
            ("\u{b}1\u{c}", Some("1")),
            ("\r\n42\r\n", Some("42")),
            ("\u{85}5\u{a0}", Some("5")),
            ("\u{3000}5\u{3000}", Some("5")),
            ("\u{2028}-3\u{2029}", Some("-3")),
            ("\u{1680}+1\u{202f}", Some("1")),
            ("\u{205f}9\u{2000}", Some("9")),
            ("\u{663}", Some("3")),
            ("1\u{663}", Some("13")),
            ("\u{663}_\u{663}", Some("33")),
            ("\u{661}\u{662}\u{663}", Some("123")),
            ("\u{ff11}\u{ff12}", Some("12")),
            ("\u{ff11}_\u{ff12}", Some("12")),
            ("\u{1d7cf}\u{1d7d0}", Some("12")),
            ("\u{e51}\u{e52}", Some("12")),
            ("-\u{966}\u{967}", Some("-1")),
            ("\u{1fbf9}", Some("9")),
            ("9223372036854775807", Some("9223372036854775807")),
            ("9223372036854775808", Some("9223372036854775808")),
            ("-9223372036854775808", Some("-9223372036854775808")),
            ("-9223372036854775809", Some("-9223372036854775809")),
            (
                "170141183460469231731687303715884105727",
                Some("170141183460469231731687303715884105727"),
            ),
            (
                "170141183460469231731687303715884105728",
                Some("170141183460469231731687303715884105728"),
            ),
            (
                "-170141183460469231731687303715884105728",
                Some("-170141183460469231731687303715884105728"),
            ),
            (
                "-170141183460469231731687303715884105729",
                Some("-170141183460469231731687303715884105729"),
            ),
            (
                "99999999999999999999999999999999999999999999999999",
                Some("99999999999999999999999999999999999999999999999999"),
            ),
            ("-0000000000000000000000000000000000000000001", Some("-1")),
            ("_1", None),
            ("1__2", None),
            ("1_", None),
            ("-_1", None),
            ("+_1", None),
            ("_", None),
            ("__", None),
            ("1_\u{663}", Some("13")),
            ("\u{663}__1", None),
            ("", None),
            ("  ", None),
            ("+", None),
            ("-", None),
            ("+-1", None),
            ("-+1", None),
            ("--1", None),
            ("- 1", None),
            ("1 2", None),
            ("1\u{0}", None),
            ("\u{0}1", None),
            ("\u{1c}5", None),
            ("5\u{1c}", None),
            ("\u{1f}5", None),
            ("\u{200b}5", None),
            ("5\u{200b}", None),
            ("\u{feff}5", None),
            ("\u{180e}5", None),
            ("1e3", None),
            ("1.0", None),
            ("1.", None),
            (".1", None),
            ("0x10", None),
            ("0b1", None),
            ("0o7", None),
            ("1j", None),
            ("\u{216b}", None),
            ("\u{b2}", None),
            ("\u{bd}", None),
            ("1\u{7f}", None),
            ("\u{661}.\u{662}", None),
            ("infinity", None),
            ("nan", None),
            ("true", None),
            // Kawi digit zero: a digit from Unicode 15.0, unknown to CPython 3.11.
            ("\u{11f50}", None),
        ] {
            let got = int(s);
            assert_eq!(got.as_ref().ok().map(PyInt::as_str), want, "int({s:?})");
            if want.is_none() {
                assert_eq!(got, Err(IntError::Value), "int({s:?})");
            }
        }
    }

    #[test]
    fn int_digit_limit_matches_cpython() {
        // python3 -c "int('0'*4300); int('1_'*4299+'1')"  → fine
        // python3 -c "int('0'*4301)"; python3 -c "int('1_'*4300+'1')"  → ValueError (4301 digits)
        assert_eq!(int(&"0".repeat(4300)).unwrap().as_str(), "0");
        let digits_4300 = format!("{}1", "1_".repeat(4299));
        assert_eq!(int(&digits_4300).unwrap().as_str().len(), 4300);
        assert_eq!(int(&"0".repeat(4301)), Err(IntError::Value));
        assert_eq!(
            int(&format!("{}1", "1_".repeat(4300))),
            Err(IntError::Value)
        );
        // A decoded JSON int is already an int: no limit.
        let big: Value = serde_json::from_str(&"7".repeat(5000)).unwrap();
        assert_eq!(int_of(&big).unwrap().as_str().len(), 5000);
    }

    #[test]
    fn int_of_json_values_matches_cpython() {
        // CASES: the first column (JSON text); the exception's name where CPython raises:
        // python3 -c "
        // import json
        // def f(t):
        //     try: return str(int(json.loads(t)))
        //     except Exception as e: return type(e).__name__
        // print([f(t) for t in CASES])"
        let e300 = "1000000000000000052504760255204420248704468581108159154915854115511802457988908195786371375080447864043704443832883878176942523235360430575644792184786706982848387200926575803737830233794788090059368953234970799945081119038967640880074652742780142494579258788820056842838115669472196386865459400540160";
        let min_float = "-179769313486231570814527423731704356798070567525844996598917476803157260780028538760589558632766878171540458953514382464234321326889464182768467546703537516986049910576551282076245490090389328944075868508455133942304583236903222948165808559332123348274797826204144723168738177180919299881250404026184124858368";
        for (text, want) in [
            ("true", Ok("1")),
            ("false", Ok("0")),
            ("0", Ok("0")),
            ("-0", Ok("0")),
            ("12", Ok("12")),
            ("-12", Ok("-12")),
            (
                "123456789012345678901234567890",
                Ok("123456789012345678901234567890"),
            ),
            ("1.9", Ok("1")),
            ("-1.9", Ok("-1")),
            ("0.5", Ok("0")),
            ("-0.5", Ok("0")),
            ("-0.0", Ok("0")),
            ("1e2", Ok("100")),
            ("1E2", Ok("100")),
            ("2.5e-300", Ok("0")),
            ("1e23", Ok("99999999999999991611392")),
            ("1e300", Ok(e300)),
            ("-1.7976931348623157e308", Ok(min_float)),
            ("9.223372036854776e18", Ok("9223372036854775808")),
            ("1e400", Err(IntError::Overflow)),
            ("-1e400", Err(IntError::Overflow)),
            ("null", Err(IntError::Type)),
            ("[]", Err(IntError::Type)),
            ("{}", Err(IntError::Type)),
            ("[1]", Err(IntError::Type)),
            (r#""12""#, Ok("12")),
            (r#"" -3 ""#, Ok("-3")),
            (r#""1.5""#, Err(IntError::Value)),
            (r#""x""#, Err(IntError::Value)),
        ] {
            let v: Value = serde_json::from_str(text).unwrap();
            let got = int_of(&v);
            assert_eq!(
                got.as_ref().map(PyInt::as_str),
                want.as_ref().copied(),
                "{text}"
            );
        }
    }

    #[test]
    fn narrowing_never_wraps() {
        let n = |s: &str| int(s).unwrap();
        assert_eq!(n("9223372036854775807").to_i64(), Some(i64::MAX));
        assert_eq!(n("9223372036854775808").to_i64(), None);
        assert_eq!(n("9223372036854775808").saturating_i64(), i64::MAX);
        assert_eq!(n("-9223372036854775808").saturating_i64(), i64::MIN);
        assert_eq!(n("-9223372036854775809").saturating_i64(), i64::MIN);
        assert_eq!(n("18446744073709551617").saturating_i64(), i64::MAX);
        assert_eq!(
            n("170141183460469231731687303715884105727").saturating_i128(),
            i128::MAX
        );
        assert_eq!(
            n("170141183460469231731687303715884105728").saturating_i128(),
            i128::MAX
        );
        assert_eq!(
            n(&format!("-1{}", "0".repeat(60))).saturating_i128(),
            i128::MIN
        );
        assert_eq!(n("-0").saturating_i64(), 0);
        assert!(!n("-0").is_negative());
        assert!(n("-1").is_negative());
        // The JSON echo keeps every digit.
        let big = "-123456789012345678901234567890123456789012345678901234567890";
        assert_eq!(crate::pyjson::to_string(&n(big).to_json()), big);
        assert_eq!(n(" 1_0 ").to_json(), serde_json::json!(10));
        assert_eq!(PyInt::from(-5).to_string(), "-5");
    }

    #[test]
    fn decimal_digits_of_every_script() {
        // python3 -c "import unicodedata as u; print([u.decimal(c, None) for c in '0٣९๑０𝟗²Ⅻa\U0001fbf9\U00011f50\u065f\u066a'])"
        // [0, 3, 9, 1, 0, 9, None, None, None, 9, None, None, None]
        let got: Vec<Option<u32>> = "0٣९๑０𝟗²Ⅻa\u{1fbf9}\u{11f50}\u{65f}\u{66a}"
            .chars()
            .map(decimal)
            .collect();
        assert_eq!(
            got,
            [
                Some(0),
                Some(3),
                Some(9),
                Some(1),
                Some(0),
                Some(9),
                None,
                None,
                None,
                Some(9),
                None,
                None,
                None,
            ]
        );
        // Every table entry starts a run of ten (checked against CPython when generated).
        for zero in DECIMAL_ZEROS {
            for d in 0..10 {
                assert_eq!(decimal(char::from_u32(zero + d).unwrap()), Some(d));
            }
        }
    }
}
