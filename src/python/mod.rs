//! CPython's behaviour, emulated: the one place where the server imitates what a Python
//! expression in CKAN returns.
//!
//! Each function names the exact expression it stands for (CPython 3.11, Unicode 14.0.0, the
//! default `sys.get_int_max_str_digits()` of 4300). Values are JSON values as Python's
//! `json.loads` decodes them: `null` is `None`, a number without fraction or exponent an `int`
//! (of any size), any other number a `float`. The expected values in the tests were produced by
//! running CPython; each table of cases carries the one-liner that printed it.
//!
//! - [`int`], [`int_of`], [`PyInt`]: `int(s)`, `int(v)` and the integer they give;
//! - [`truthy`], [`str_of`], [`repr`], [`str_repr`], [`number_str`], [`float_repr`],
//!   [`is_integer_text`]: `bool()`, `str()` and `repr()` of decoded JSON values;
//! - [`is_space`], [`strip`], [`html_escape`], [`quote_plus`], [`quote`], [`unquote`],
//!   [`re_sub_outside_alnum_dash`]: string functions of the standard library.
//!
//! The JSON text writer (`json.dumps` in CKAN's styles) is [`crate::pyjson`].

mod integers;
mod strings;
mod values;

pub use integers::{decimal, int, int_of, IntError, PyInt, MAX_STR_DIGITS};
pub use strings::{
    html_escape, is_space, quote, quote_plus, re_sub_outside_alnum_dash, strip, unquote,
};
pub use values::{float_repr, is_integer_text, number_str, repr, str_of, str_repr, truthy};
