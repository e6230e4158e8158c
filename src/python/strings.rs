//! String functions of Python's standard library: `str.isspace`/`str.strip`, `html.escape`,
//! `urllib.parse.quote`/`quote_plus`/`unquote`, and the one `re.sub` CKAN's DataTables view uses.

/// `c.isspace()` (`Py_UNICODE_ISSPACE`): ASCII `\t\n\v\f\r` and space, the separators
/// U+001C..U+001F, and the Unicode whitespace U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028,
/// U+2029, U+202F, U+205F, U+3000 (not U+200B, U+FEFF or U+180E).
pub fn is_space(c: char) -> bool {
    matches!(
        c,
        '\t'..='\r'
            | '\u{1c}'..='\u{20}'
            | '\u{85}'
            | '\u{a0}'
            | '\u{1680}'
            | '\u{2000}'..='\u{200a}'
            | '\u{2028}'
            | '\u{2029}'
            | '\u{202f}'
            | '\u{205f}'
            | '\u{3000}'
    )
}

/// `s.strip()` with no argument: leading and trailing [`is_space`] characters removed.
pub fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `html.escape(s, quote=True)`: `&`, `<`, `>`, `"` and `'` (as `&#x27;`).
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

/// `urllib.parse.quote(s, safe=safe)`: the UTF-8 bytes of `s`, each one outside ASCII letters,
/// digits, `_.-~` and the ASCII characters of `safe` written `%XX` (upper-case hex). Python's
/// default is `safe='/'`; `quote(s, safe='')` quotes `/` too.
pub fn quote(s: &str, safe: &str) -> String {
    quote_bytes(s, safe.as_bytes(), false)
}

/// `urllib.parse.quote_plus(s)` (what `urlencode` applies to each key and value): as
/// `quote(s, safe='')`, but a space becomes `+`.
pub fn quote_plus(s: &str) -> String {
    quote_bytes(s, b"", true)
}

fn quote_bytes(s: &str, safe: &[u8], space_as_plus: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-' | b'~' => {
                out.push(b as char)
            }
            b' ' if space_as_plus => out.push('+'),
            b if b.is_ascii() && safe.contains(&b) => out.push(b as char),
            b => {
                out.push('%');
                out.push(HEX[usize::from(b >> 4)] as char);
                out.push(HEX[usize::from(b & 0xf)] as char);
            }
        }
    }
    out
}

/// `urllib.parse.unquote(s)` (`encoding='utf-8'`, `errors='replace'`): in each run of ASCII
/// characters, `%XX` (exactly two hex digits, either case) becomes that byte and the run's bytes
/// are decoded as UTF-8, each invalid sequence (maximal subpart) becoming U+FFFD; anything else
/// (`%`, `%4`, `%zz`, `%+1`, non-ASCII characters) is kept as it is.
pub fn unquote(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while !rest.is_empty() {
        // `_asciire = re.compile('([\x00-\x7f]+)')`: non-ASCII text is copied, ASCII runs decoded.
        let ascii_len = rest.find(|c: char| !c.is_ascii()).unwrap_or(rest.len());
        let (run, tail) = rest.split_at(ascii_len);
        out.push_str(&String::from_utf8_lossy(&unquote_to_bytes(run.as_bytes())));
        let other_len = tail.find(|c: char| c.is_ascii()).unwrap_or(tail.len());
        out.push_str(&tail[..other_len]);
        rest = &tail[other_len..];
    }
    out
}

/// `urllib.parse.unquote_to_bytes`: `%XX` with two hex digits becomes the byte.
fn unquote_to_bytes(s: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' && i + 2 < s.len() {
            if let (Some(hi), Some(lo)) = (hex(s[i + 1]), hex(s[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(s[i]);
        i += 1;
    }
    out
}

/// `re.sub(r'[^0-9a-zA-Z\-]+', '_', s)`: every run of characters other than ASCII letters,
/// digits and `-` becomes one `_` (CKAN's DataTables view, before appending `:*` for a prefix
/// full-text search).
pub fn re_sub_outside_alnum_dash(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut in_run = false;
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '-' {
            out.push(c);
            in_run = false;
        } else if !in_run {
            out.push('_');
            in_run = true;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isspace_is_cpythons() {
        // python3 -c "print([hex(c) for c in range(0x110000) if chr(c).isspace()])"
        let want: Vec<u32> = vec![
            0x9, 0xa, 0xb, 0xc, 0xd, 0x1c, 0x1d, 0x1e, 0x1f, 0x20, 0x85, 0xa0, 0x1680, 0x2000,
            0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200a, 0x2028,
            0x2029, 0x202f, 0x205f, 0x3000,
        ];
        let got: Vec<u32> = (0..=0x10ffff)
            .filter_map(char::from_u32)
            .filter(|&c| is_space(c))
            .map(|c| c as u32)
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn strip_matches_cpython() {
        // python3 -c "print([s.strip() for s in CASES])"  (CASES: the first column)
        for (s, want) in [
            (" a ", "a"),
            ("\u{1c}\u{1d} a\u{1e}\u{1f}", "a"),
            ("\u{85}\u{a0}x\u{3000}", "x"),
            ("\u{200b}x\u{200b}", "\u{200b}x\u{200b}"),
            ("\u{feff}x", "\u{feff}x"),
            ("\t\n\u{b}\u{c}\rx", "x"),
            ("", ""),
            ("   ", ""),
            ("a b", "a b"),
        ] {
            assert_eq!(strip(s), want, "{s:?}");
        }
    }

    #[test]
    fn html_escape_matches_cpython() {
        // python3 -c "import html; print([html.escape(s, quote=True) for s in CASES])"
        for (s, want) in [
            ("<a href='x'>&\"", "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;"),
            ("&amp;", "&amp;amp;"),
            ("caf\u{e9} \u{1f389}", "caf\u{e9} \u{1f389}"),
            ("", ""),
            ("a>b<c", "a&gt;b&lt;c"),
            ("'\"'", "&#x27;&quot;&#x27;"),
        ] {
            assert_eq!(html_escape(s), want, "{s:?}");
        }
    }

    #[test]
    fn quoting_matches_cpython() {
        // python3 -c "import urllib.parse as u; print([(u.quote_plus(s), u.quote(s, safe=''), u.quote(s)) for s in CASES])"
        for (s, plus, no_safe, default_safe) in [
            ("a b", "a+b", "a%20b", "a%20b"),
            ("a+b", "a%2Bb", "a%2Bb", "a%2Bb"),
            (
                "a/b?c=d&e",
                "a%2Fb%3Fc%3Dd%26e",
                "a%2Fb%3Fc%3Dd%26e",
                "a/b%3Fc%3Dd%26e",
            ),
            ("~_.-", "~_.-", "~_.-", "~_.-"),
            (
                "caf\u{e9} \u{1f389}",
                "caf%C3%A9+%F0%9F%8E%89",
                "caf%C3%A9%20%F0%9F%8E%89",
                "caf%C3%A9%20%F0%9F%8E%89",
            ),
            ("%", "%25", "%25", "%25"),
            ("", "", "", ""),
            (
                "A-Z a-z 0-9",
                "A-Z+a-z+0-9",
                "A-Z%20a-z%200-9",
                "A-Z%20a-z%200-9",
            ),
            (
                "!*'();:@&=+$,/?#[]",
                "%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D",
                "%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C%2F%3F%23%5B%5D",
                "%21%2A%27%28%29%3B%3A%40%26%3D%2B%24%2C/%3F%23%5B%5D",
            ),
            ("\u{0}\u{7f}", "%00%7F", "%00%7F", "%00%7F"),
        ] {
            assert_eq!(quote_plus(s), plus, "{s:?}");
            assert_eq!(quote(s, ""), no_safe, "{s:?}");
            assert_eq!(quote(s, "/"), default_safe, "{s:?}");
        }
    }

    #[test]
    fn unquote_matches_cpython() {
        // python3 -c "import urllib.parse as u; print([u.unquote(s) for s in CASES])"
        for (s, want) in [
            ("abc", "abc"),
            ("a%20b", "a b"),
            ("a+b", "a+b"),
            ("%", "%"),
            ("%4", "%4"),
            ("%4g", "%4g"),
            ("%zz", "%zz"),
            ("%+1", "%+1"),
            ("%-1", "%-1"),
            ("% 1", "% 1"),
            ("%%41", "%A"),
            ("%41%", "A%"),
            ("%e2%82%ac", "\u{20ac}"),
            ("%E2%82%AC", "\u{20ac}"),
            ("%E2%82", "\u{fffd}"),
            ("%E2%82x", "\u{fffd}x"),
            ("%E2%82\u{e9}%AC", "\u{fffd}\u{e9}\u{fffd}"),
            ("\u{e9}%C3%A9\u{e9}", "\u{e9}\u{e9}\u{e9}"),
            ("%C3%28", "\u{fffd}("),
            ("%F0%9F%98", "\u{fffd}"),
            ("%F0%9F%98%80", "\u{1f600}"),
            ("%ED%A0%80", "\u{fffd}\u{fffd}\u{fffd}"),
            ("%F4%90%80%80", "\u{fffd}\u{fffd}\u{fffd}\u{fffd}"),
            ("%C0%80", "\u{fffd}\u{fffd}"),
            ("%E0%80%80", "\u{fffd}\u{fffd}\u{fffd}"),
            ("%FF%FE", "\u{fffd}\u{fffd}"),
            ("%80", "\u{fffd}"),
            ("%C3", "\u{fffd}"),
            ("%C3\u{e9}", "\u{fffd}\u{e9}"),
            ("100%", "100%"),
            ("%u00e9", "%u00e9"),
            ("%2", "%2"),
            ("a%2Fb", "a/b"),
            ("\u{e9}%", "\u{e9}%"),
        ] {
            assert_eq!(unquote(s), want, "{s:?}");
        }
    }

    #[test]
    fn re_sub_matches_cpython() {
        // python3 -c "import re; print([re.sub(r'[^0-9a-zA-Z\-]+', '_', s) for s in CASES])"
        for (s, want) in [
            ("ban ana!!x", "ban_ana_x"),
            ("caf\u{e9}", "caf_"),
            ("a-b_c", "a-b_c"),
            ("__", "_"),
            ("", ""),
            ("  x  ", "_x_"),
            ("Kelvin\u{212a}", "Kelvin_"),
            ("\u{131}i", "_i"),
            ("a\u{301}", "a_"),
            ("x\u{1f389}\u{1f389}y", "x_y"),
            ("1.5e-3", "1_5e-3"),
        ] {
            assert_eq!(re_sub_outside_alnum_dash(s), want, "{s:?}");
        }
    }
}
