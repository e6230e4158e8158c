//! The bytes of CKAN's dump writers (`ckanext/datastore/writer.py`), reproduced: the CSV/TSV
//! header as Python's `csv` module writes it, the JSON layout with records decoded and
//! re-encoded the way Python does (numbers with a fraction through float64, compact
//! separators, non-ASCII raw), and ElementTree's XML.

use serde_json::Value;
use unicode_normalization::UnicodeNormalization;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DumpFormat {
    Csv,
    Tsv,
    Json,
    Xml,
}

impl DumpFormat {
    pub fn parse(s: &str) -> Option<DumpFormat> {
        match s {
            "csv" => Some(DumpFormat::Csv),
            "tsv" => Some(DumpFormat::Tsv),
            "json" => Some(DumpFormat::Json),
            "xml" => Some(DumpFormat::Xml),
            _ => None,
        }
    }
    pub fn extension(self) -> &'static str {
        match self {
            DumpFormat::Csv => "csv",
            DumpFormat::Tsv => "tsv",
            DumpFormat::Json => "json",
            DumpFormat::Xml => "xml",
        }
    }
}

pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One row of Python's `csv.writer` (excel / excel-tab dialect, QUOTE_MINIMAL), CRLF-terminated.
pub fn csv_header(names: &[String], delimiter: char) -> String {
    let cells: Vec<String> = names
        .iter()
        .map(|n| {
            if n.contains(delimiter) || n.contains('"') || n.contains('\r') || n.contains('\n') {
                format!("\"{}\"", n.replace('"', "\"\""))
            } else {
                n.clone()
            }
        })
        .collect();
    format!("{}\r\n", cells.join(&delimiter.to_string()))
}

/// JSON as `simplejson.dumps(v, ensure_ascii=False, separators=(',', ':'))` writes a value
/// Python decoded from PostgreSQL's JSON.
pub fn write_compact(out: &mut Vec<u8>, v: &Value) {
    crate::pyjson::write_styled(out, v, crate::pyjson::COMPACT);
}

/// `{\n  "fields": F,\n  "records": [` (the JSON writer's opening).
pub fn json_opening(fields: &Value) -> Vec<u8> {
    let mut out = b"{\n  \"fields\": ".to_vec();
    write_compact(&mut out, fields);
    out.extend_from_slice(b",\n  \"records\": [");
    out
}

pub const JSON_CLOSING: &[u8] = b"\n]}\n";
pub const XML_OPENING: &[u8] = b"<data xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n";
pub const XML_CLOSING: &[u8] = b"</data>\n";

fn escape_text(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
}

fn escape_attr(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\n' => out.push_str("&#10;"),
            '\t' => out.push_str("&#09;"),
            c => out.push(c),
        }
    }
}

/// The XML writer's element name for a column (NFC, then CKAN's four regex rules).
pub fn xml_element_name(col: &str) -> String {
    let s: String = col.nfc().collect();
    // 1. no leading (\d*xml\d*|\d+), case-insensitive
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() && chars[i].is_ascii_digit() {
        i += 1;
    }
    let lower: String = chars[i..].iter().take(3).collect::<String>().to_lowercase();
    let cut = if lower == "xml" {
        let mut j = i + 3;
        while j < chars.len() && chars[j].is_ascii_digit() {
            j += 1;
        }
        j
    } else if i > 0 {
        i
    } else {
        0
    };
    let s: String = chars[cut..].iter().collect();
    // 2. whitespace runs → `_`
    let mut s2 = String::new();
    let mut in_ws = false;
    for c in s.chars() {
        if c.is_whitespace() {
            if !in_ws {
                s2.push('_');
            }
            in_ws = true;
        } else {
            s2.push(c);
            in_ws = false;
        }
    }
    // 3. only word characters, `_`, `.`, `-`
    let s3: String = s2
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
        .collect();
    // 4. no leading digits, dots or hyphens
    s3.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == '-')
        .to_string()
}

/// Writes rows as CKAN's XML writer (ElementTree) does.
pub struct XmlRows {
    id_col: bool,
    columns: Vec<(String, String)>,
}

impl XmlRows {
    pub fn new(columns: &[String]) -> XmlRows {
        let id_col = columns.first().is_some_and(|c| c == "_id");
        let cols = if id_col { &columns[1..] } else { columns };
        let mut named: Vec<(String, String)> = Vec::new();
        for col in cols {
            if named.iter().any(|(c, _)| c == col) {
                continue;
            }
            let base = xml_element_name(col);
            let mut unique = base.clone();
            let mut suffix = 0;
            while named.iter().any(|(_, n)| *n == unique) {
                unique = format!("{base}_{suffix}");
                suffix += 1;
            }
            named.push((col.clone(), unique));
        }
        // Python iterates the columns list (duplicates included) but maps each name once.
        let columns = cols
            .iter()
            .map(|c| {
                (
                    c.clone(),
                    named
                        .iter()
                        .find(|(n, _)| n == c)
                        .map(|(_, e)| e.clone())
                        .unwrap_or_default(),
                )
            })
            .collect();
        XmlRows { id_col, columns }
    }

    fn node(out: &mut String, tag: &str, v: &Value, key: Option<&str>) {
        out.push('<');
        out.push_str(tag);
        if v.is_null() {
            out.push_str(" xsi:nil=\"true\"");
        }
        if let Some(k) = key {
            out.push_str(" key=\"");
            escape_attr(k, out);
            out.push('"');
        }
        let mut children = String::new();
        let text = match v {
            Value::Null => String::new(),
            Value::Array(a) => {
                for (i, x) in a.iter().enumerate() {
                    XmlRows::node(&mut children, "value", x, Some(&i.to_string()));
                }
                String::new()
            }
            Value::Object(m) => {
                for (k, x) in m {
                    XmlRows::node(&mut children, "value", x, Some(k));
                }
                String::new()
            }
            scalar => crate::python::str_of(scalar),
        };
        if text.is_empty() && children.is_empty() {
            out.push_str(" />");
            return;
        }
        out.push('>');
        escape_text(&text, out);
        out.push_str(&children);
        out.push_str("</");
        out.push_str(tag);
        out.push('>');
    }

    /// One `<row>` line for a record given as a JSON object.
    pub fn write(&self, out: &mut Vec<u8>, record: &Value) {
        let mut s = String::from("<row");
        if self.id_col {
            s.push_str(" _id=\"");
            escape_attr(&crate::python::str_of(&record["_id"]), &mut s);
            s.push('"');
        }
        let mut body = String::new();
        for (col, name) in &self.columns {
            XmlRows::node(
                &mut body,
                name,
                record.get(col).unwrap_or(&Value::Null),
                None,
            );
        }
        if body.is_empty() {
            s.push_str(" />");
        } else {
            s.push('>');
            s.push_str(&body);
            s.push_str("</row>");
        }
        s.push('\n');
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn element_names_follow_ckan() {
        for (col, want) in [
            ("rank name", "rank_name"),
            ("2020 value", "_value"),
            ("xml data", "_data"),
            ("a/b", "ab"),
            ("-x.y", "x.y"),
            ("123", ""),
            ("Full Name", "Full_Name"),
        ] {
            assert_eq!(xml_element_name(col), want, "{col}");
        }
    }

    #[test]
    fn xml_rows_match_the_sample() {
        let cols: Vec<String> = ["_id", "id", "name", "price", "active", "meta"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let w = XmlRows::new(&cols);
        let mut out = Vec::new();
        let rec: Value = serde_json::from_str(
            r#"{"_id":7,"id":7,"name":"honeydew & <x>","price":null,"active":false,"meta":{"n": 7, "tags": ["honeydew", null], "e": ""}}"#,
        )
        .unwrap();
        w.write(&mut out, &rec);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<row _id=\"7\"><id>7</id><name>honeydew &amp; &lt;x&gt;</name><price xsi:nil=\"true\" /><active>False</active><meta><value key=\"n\">7</value><value key=\"tags\"><value key=\"0\">honeydew</value><value xsi:nil=\"true\" key=\"1\" /></value><value key=\"e\" /></meta></row>\n"
        );
    }

    #[test]
    fn json_records_are_reencoded_like_python() {
        let v: Value =
            serde_json::from_str(r#"[1, 8970.80, 3.00, 1e20, "é\u0001\"", {"n": 1, "t": [true]}]"#)
                .unwrap();
        let mut out = Vec::new();
        write_compact(&mut out, &v);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[1,8970.8,3.0,1e+20,"é\u0001\"",{"n":1,"t":[true]}]"#
        );
        assert_eq!(
            csv_header(&["a,b".into(), "x\"y".into(), "z".into()], ','),
            "\"a,b\",\"x\"\"y\",z\r\n"
        );
        let _ = json!(null);
    }
}
