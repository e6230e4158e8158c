//! `/datastore/dump/<id>`: CKAN's `dump_schema`, the search it stands for, and its byte formats.
//! CKAN pages through `datastore_search` 32,000 rows at a time; we produce the same rows from
//! one statement (one snapshot, constant memory) and stream them (`engine.rs`).

pub mod cli;
pub mod engine;
pub mod format;

use serde_json::{json, Map, Value};

use crate::search::params::{bool_rule, int_rule, json_rule, IntRule};
use format::DumpFormat;

/// CKAN's page size; it only matters for where CKAN's pages split, which one statement hides,
/// and for the limit of the first page (validated like any search).
pub const PAGINATE_BY: i64 = 32000;

/// Validated dump parameters.
#[derive(Debug, Clone)]
pub struct DumpParams {
    pub format: DumpFormat,
    pub bom: bool,
    pub offset: i64,
    pub limit: Option<i64>,
    /// The `datastore_search` parameters the dump passes on (filters, q, distinct, plain,
    /// language, fields) plus sort.
    pub search: Map<String, Value>,
}

/// Why the parameters were refused, and with which status CKAN answers.
#[derive(Debug, PartialEq)]
pub enum DumpParamError {
    /// 400 with CKAN's message (`key: msg` lines).
    BadRequest(String),
    /// CKAN crashes formatting the error for an unknown format: 500.
    Internal,
}

/// `dump_schema()` over the query string (single values: the first of each key).
pub fn parse(query: &str) -> Result<DumpParams, DumpParamError> {
    let mut args: Map<String, Value> = Map::new();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if !args.contains_key(k.as_ref()) {
            args.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    let get = |k: &str| args.get(k).and_then(Value::as_str);
    let empty = |k: &str| get(k).is_none_or(str::is_empty);
    let mut errors: Vec<(String, String)> = Vec::new();

    let int_param = |k: &str, errors: &mut Vec<(String, String)>| -> Option<i64> {
        match int_rule(&args[k]) {
            IntRule::Int(n) => Some(n.saturating_i64()),
            IntRule::Nothing => None,
            IntRule::Invalid => {
                errors.push((k.into(), "Invalid integer".into()));
                None
            }
        }
    };
    let offset = if empty("offset") {
        Some(0)
    } else {
        int_param("offset", &mut errors)
    };
    let limit = if args.contains_key("limit") {
        int_param("limit", &mut errors)
    } else {
        None
    };
    let format = if empty("format") {
        DumpFormat::Csv
    } else {
        match DumpFormat::parse(get("format").unwrap_or_default()) {
            Some(f) => f,
            None => return Err(DumpParamError::Internal),
        }
    };
    let bom = !empty("bom") && bool_rule(&args["bom"]);
    let mut search = Map::new();
    if let Some(v) = args.get("filters") {
        match json_rule(v) {
            Ok(decoded) => {
                search.insert("filters".into(), decoded);
            }
            Err(_) => errors.push(("filters".into(), "Cannot parse JSON".into())),
        }
    }
    for k in ["q", "language", "fields"] {
        if let Some(v) = args.get(k) {
            search.insert(k.into(), v.clone());
        }
    }
    for k in ["distinct", "plain"] {
        if let Some(v) = args.get(k) {
            search.insert(k.into(), json!(bool_rule(v)));
        }
    }
    let sort = if empty("sort") {
        json!("_id")
    } else {
        args["sort"].clone()
    };
    search.insert("sort".into(), sort);
    if !errors.is_empty() {
        errors.sort();
        let lines: Vec<String> = errors.iter().map(|(k, m)| format!("{k}: {m}")).collect();
        return Err(DumpParamError::BadRequest(lines.join("\n")));
    }
    Ok(DumpParams {
        format,
        bom,
        offset: offset.unwrap_or(0),
        limit,
        search,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_as_ckan() {
        let p =
            parse("format=json&bom=true&limit=5&offset=2&sort=id%20desc&fields=id,name&limit=9")
                .unwrap();
        assert_eq!(
            (p.format, p.bom, p.limit, p.offset),
            (DumpFormat::Json, true, Some(5), 2)
        );
        assert_eq!(p.search["sort"], json!("id desc"));
        assert_eq!(
            parse("limit=abc&offset=x").unwrap_err(),
            DumpParamError::BadRequest("limit: Invalid integer\noffset: Invalid integer".into())
        );
        assert_eq!(parse("format=xls").unwrap_err(), DumpParamError::Internal);
        assert_eq!(
            parse("filters=nope").unwrap_err(),
            DumpParamError::BadRequest("filters: Cannot parse JSON".into())
        );
        let p = parse("").unwrap();
        assert_eq!(
            (p.format, p.bom, p.limit, p.offset),
            (DumpFormat::Csv, false, None, 0)
        );
    }
}
