//! From validated parameters and the table's real columns to a search plan: CKAN's backend
//! validation (`backend/postgres.py::validate` and `plugin.py::datastore_validate`: one error,
//! the first by sorted key) and the decisions of `datastore_search` / `search_data` (output
//! columns, rank columns, sort, next page). Every identifier in a plan is a real column.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::catalog::{ColumnKind, Table};
use crate::config::Settings;
use crate::error::ApiError;
use crate::python;
use crate::search::filters::{self, FilterOp};
use crate::search::params::{get_list, RecordsFormat, SearchParams};

/// A text-search query item placed in the FROM list (`plainto_tsquery(...) "query col"`).
#[derive(Debug, Clone)]
pub struct TsQuery {
    /// `None` for the whole-row query (`"query"`), else the column (`"query <col>"`).
    pub column: Option<String>,
    pub text: String,
}

impl TsQuery {
    /// The FROM alias, also the rank column's name without the `query` prefix.
    pub fn alias(&self) -> String {
        match &self.column {
            None => "query".into(),
            Some(c) => format!("query {c}"),
        }
    }
    pub fn rank_name(&self) -> String {
        match &self.column {
            None => "rank".into(),
            Some(c) => format!("rank {c}"),
        }
    }
}

/// One output column of the page.
#[derive(Debug, Clone)]
pub enum Output {
    /// A table column (or `_id`), with the kind that decides its rendering.
    Column { name: String, kind: ColumnKind },
    /// A rank column, by index into `Plan::ts_queries`.
    Rank(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Asc,
    Desc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nulls {
    First,
    Last,
}

/// One ORDER BY item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderItem {
    /// A caller's sort clause: a real column, its direction, and `NULLS FIRST|LAST` if given.
    Column {
        column: String,
        direction: Direction,
        nulls: Option<Nulls>,
    },
    /// `<rank expression> DESC` for the text-search item with this index.
    RankDesc(usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextPage {
    /// `{"gt": max(_id)}`.
    Gt,
    /// `{"lt": min(_id)}`.
    Lt,
}

/// Everything needed to build the SQL and the response.
#[derive(Debug, Clone)]
pub struct Plan {
    pub table: Arc<Table>,
    pub format: RecordsFormat,
    pub filter: Option<FilterOp>,
    pub ts_queries: Vec<TsQuery>,
    pub plain: bool,
    pub language: String,
    /// WHERE pieces other than the filter, in CKAN's order (see `statement.rs`).
    pub q_text: bool,
    pub q_columns: Vec<String>,
    pub full_text: bool,
    pub outputs: Vec<Output>,
    /// ORDER BY items.
    pub order: Vec<OrderItem>,
    pub distinct: bool,
    pub limit: i64,
    /// `None` when the caller sent an empty offset (CKAN renders `OFFSET None`).
    pub offset: Option<i64>,
    pub next_page: Option<NextPage>,
    pub include_total: bool,
    /// The `fields` list of the response.
    pub result_fields: Vec<Value>,
    pub ms_in_timestamp: bool,
    /// Column types with their own full-text index (no extra `_full_text` clause).
    pub fts_index_types: Vec<String>,
}

impl Plan {
    /// True when a WHERE clause exists (CKAN then counts with `count(*)`).
    pub fn has_where(&self) -> bool {
        self.filter.is_some() || self.q_text || !self.q_columns.is_empty() || self.full_text
    }
}

/// CKAN's sort clause grammar: `^(.+?)( +(asc|desc))?( nulls +(first|last) *)?$`, case-insensitive.
/// Returns the ORDER BY item when the clause names a real column.
pub fn parse_sort_clause(clause: &str, table: &Table) -> Option<OrderItem> {
    // Python's `$` also matches before one trailing newline.
    let clause = clause.strip_suffix('\n').unwrap_or(clause);
    if clause.contains('\n') || clause.is_empty() {
        return None;
    }
    let lower = clause.to_lowercase();
    // Try the longest optional suffixes first, as the lazy group lets them match.
    let (mut rest, mut nulls) = (clause, None);
    if let Some(pos) = find_nulls_suffix(&lower) {
        nulls = Some(if lower[pos..].trim_end().ends_with("first") {
            Nulls::First
        } else {
            Nulls::Last
        });
        rest = &clause[..pos];
    }
    let mut direction = Direction::Asc;
    let rest_lower = rest.to_lowercase();
    for (word, dir) in [("asc", Direction::Asc), ("desc", Direction::Desc)] {
        if rest_lower.ends_with(word) {
            let before = &rest[..rest.len() - word.len()];
            let trimmed = before.trim_end_matches(' ');
            if trimmed.len() < before.len() && !trimmed.is_empty() {
                direction = dir;
                rest = trimmed;
                break;
            }
        }
    }
    let mut field = rest;
    if field.len() >= 2 && field.starts_with('"') && field.ends_with('"') {
        field = &field[1..field.len() - 1];
    } else if field == "\"" {
        field = "";
    }
    table.column(field)?;
    Some(OrderItem::Column {
        column: field.to_string(),
        direction,
        nulls,
    })
}

/// Finds ` nulls +(first|last) *$` (case-insensitive) and returns where it starts.
fn find_nulls_suffix(lower: &str) -> Option<usize> {
    let trimmed = lower.trim_end_matches(' ');
    let word = if trimmed.ends_with("first") {
        "first"
    } else if trimmed.ends_with("last") {
        "last"
    } else {
        return None;
    };
    let before_word = &trimmed[..trimmed.len() - word.len()];
    let spaces = before_word.len() - before_word.trim_end_matches(' ').len();
    if spaces == 0 {
        return None;
    }
    let before_spaces = &before_word[..before_word.len() - spaces];
    let start = before_spaces.strip_suffix("nulls")?.len();
    let start = start.checked_sub(1)?;
    if lower.as_bytes()[start] != b' ' || start == 0 {
        return None;
    }
    Some(start)
}

/// The `invalid value "<v>"` text CKAN shows for a leftover parameter.
fn shown(v: &Value) -> String {
    match v {
        Value::Array(a) => a.first().map(python::str_of).unwrap_or_default(),
        Value::Object(m) => m.keys().next().cloned().unwrap_or_default(),
        other => python::str_of(other),
    }
}

pub fn plan(
    params: &SearchParams,
    table: Arc<Table>,
    settings: &Settings,
) -> Result<Plan, ApiError> {
    let has_column = |c: &str| table.column(c).is_some();

    // 1. filters parse errors come first (CKAN parses them before anything else).
    let filter = match &params.filters {
        Some(f) => filters::parse(f, &has_column)?,
        None => None,
    };

    // A filter that parsed to nothing goes to `datastore_validate` as it is: it must be a
    // dict (CKAN calls `.keys()` on it: anything else is a 500), and keys that are not columns
    // are left over (e.g. `{"$or": []}`).
    let mut leftover_filter_key = None;
    if let (Some(raw), None) = (&params.filters, &filter) {
        match raw {
            Value::Object(m) => leftover_filter_key = m.keys().find(|k| !has_column(k)).cloned(),
            _ => {
                return Err(ApiError::CkanCrash(
                    "filters parsed to nothing and are not a dict".into(),
                ))
            }
        }
    }

    // 2. one leftover parameter, by sorted key.
    if let Some(first) = params.extras.first() {
        return Err(ApiError::invalid_value("__extras", first));
    }
    let mut rank_names: Vec<String> = Vec::new();
    if params.q_text().is_some() {
        rank_names.push("rank".into());
    }
    let mut bad_q_key = None;
    if let Some(cols) = params.q_columns() {
        for (k, v) in cols {
            if has_column(k) && v.is_string() {
                rank_names.push(format!("rank {k}"));
            } else if bad_q_key.is_none() {
                bad_q_key = Some(k.clone());
            }
        }
    }
    let requested_fields: Option<Vec<Value>> = params.fields.as_ref().map(|f| get_list(f, true));
    if let Some(list) = &requested_fields {
        if list.iter().any(|v| !v.is_string()) {
            // CKAN puts the names in a Python set; a list member is unhashable (TypeError).
            return Err(ApiError::CkanCrash("unhashable field name".into()));
        }
        if let Some(bad) = list
            .iter()
            .filter_map(Value::as_str)
            .find(|f| !has_column(f) && !rank_names.iter().any(|r| r == f))
        {
            return Err(ApiError::invalid_value("fields", bad));
        }
    }
    if let Some(k) = leftover_filter_key {
        return Err(ApiError::invalid_value("filters", &k));
    }
    if let Some(Value::Number(n)) = &params.offset {
        if n.as_i64().is_some_and(|o| o < 0) {
            return Err(ApiError::invalid_value("offset", &n.to_string()));
        }
    }
    if let Some(k) = bad_q_key {
        return Err(ApiError::invalid_value("q", &k));
    }
    let mut order = Vec::new();
    if let Some(sort) = &params.sort {
        let clauses = get_list(sort, false);
        let mut invalid = Vec::new();
        for c in &clauses {
            let Some(text) = c.as_str() else {
                return Err(ApiError::CkanCrash("sort clause is not a string".into()));
            };
            match parse_sort_clause(text, &table) {
                Some(item) => order.push(item),
                None => invalid.push(c.clone()),
            }
        }
        if !invalid.is_empty() {
            return Err(ApiError::invalid_value(
                "sort",
                &shown(&Value::Array(invalid)),
            ));
        }
    }

    // Text search items and rank columns, in CKAN's order.
    let full_text = params.full_text().map(str::to_string);
    let mut ts_queries = Vec::new();
    match (&full_text, params.q_text(), params.q_columns()) {
        (None, Some(q), _) => ts_queries.push(TsQuery {
            column: None,
            text: q.into(),
        }),
        (None, None, Some(cols)) => {
            for (k, v) in cols {
                ts_queries.push(TsQuery {
                    column: Some(k.clone()),
                    text: v.as_str().unwrap_or_default().into(),
                });
            }
        }
        (Some(ft), _, cols) => {
            ts_queries.push(TsQuery {
                column: None,
                text: ft.clone(),
            });
            if let Some(cols) = cols {
                for (k, v) in cols {
                    ts_queries.push(TsQuery {
                        column: Some(k.clone()),
                        text: v.as_str().unwrap_or_default().into(),
                    });
                }
            }
        }
        (None, None, None) => {}
    }
    // CKAN's fields_types with the rank columns appended.
    let mut all: Vec<(String, String)> = table
        .columns
        .iter()
        .map(|c| (c.name.clone(), c.typname.clone()))
        .collect();
    for q in &ts_queries {
        // A rank name equal to a column name replaces its type in CKAN's ordered dict.
        let name = q.rank_name();
        match all.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = "float".into(),
            None => all.push((name, "float".into())),
        }
    }
    let type_of = |name: &str| all.iter().find(|(n, _)| n == name).map(|(_, t)| t.clone());

    let field_strings: Option<Vec<String>> = requested_fields.as_ref().map(|l| {
        l.iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect()
    });
    let output_names: Vec<String> = match (&field_strings, &full_text) {
        (Some(f), None) if !f.is_empty() => f.clone(),
        (Some(f), Some(_)) if !f.is_empty() => {
            let mut ids: Vec<String> = all.iter().map(|(n, _)| n.clone()).collect();
            let rank_requested = match params.fields.as_ref() {
                Some(Value::String(s)) => s.contains("rank"),
                Some(Value::Array(a)) => a.iter().any(|v| v.as_str() == Some("rank")),
                _ => false,
            };
            if !rank_requested {
                if let Some(pos) = ids.iter().position(|n| n == "rank") {
                    ids.remove(pos);
                }
            }
            let extra: Vec<String> = f.iter().filter(|x| !ids.contains(x)).cloned().collect();
            ids.extend(extra);
            ids
        }
        _ => all.iter().map(|(n, _)| n.clone()).collect(),
    };
    let outputs: Vec<Output> = output_names
        .iter()
        .map(
            |name| match ts_queries.iter().position(|q| q.rank_name() == *name) {
                Some(i) => Output::Rank(i),
                None => Output::Column {
                    name: name.clone(),
                    kind: ColumnKind::of_typname(&type_of(name).unwrap_or_default()),
                },
            },
        )
        .collect();

    // CKAN's lists format puts an `AS` alias inside a `||` chain for rank columns: its SQL
    // parser rejects that statement before it runs.
    if params.records_format == RecordsFormat::Lists
        && outputs.iter().any(|o| matches!(o, Output::Rank(_)))
    {
        return Err(ApiError::field("query", "Query is not a single statement."));
    }

    let distinct = params.distinct.unwrap_or(false);
    if order.is_empty() {
        order.extend((0..ts_queries.len()).map(OrderItem::RankDesc));
    }
    if order.is_empty() && !distinct {
        order.push(OrderItem::Column {
            column: "_id".into(),
            direction: Direction::Asc,
            nulls: None,
        });
    }
    // CKAN offers a next page for a lone `_id` sort: below the smallest id for `_id desc`,
    // above the largest otherwise (also for `_id desc nulls …`, as CKAN's text match does).
    let next_page = match order.as_slice() {
        [OrderItem::Column {
            column,
            direction,
            nulls,
        }] if params.include_next_page && column == "_id" => {
            Some(if *direction == Direction::Desc && nulls.is_none() {
                NextPage::Lt
            } else {
                NextPage::Gt
            })
        }
        _ => None,
    };

    // The response's field list.
    let listed: Vec<String> = match &field_strings {
        Some(f) => f.clone(),
        None => all.iter().map(|(n, _)| n.clone()).collect(),
    };
    let result_fields = listed
        .iter()
        .map(|name| {
            let typ = type_of(name).unwrap_or_default();
            // CKAN reports its `nested` composite as `json`.
            let typ = match ColumnKind::of_typname(&typ) {
                ColumnKind::Nested => "json".to_string(),
                _ => typ,
            };
            let mut f = Map::new();
            f.insert("id".into(), json!(name));
            f.insert("type".into(), json!(typ));
            if let Some(info) = table.column(name).and_then(|c| c.info.clone()) {
                f.insert("info".into(), info);
            }
            Value::Object(f)
        })
        .collect();

    let offset = match &params.offset {
        None => Some(0),
        Some(Value::Number(n)) => n.as_i64(),
        Some(_) => None,
    };
    Ok(Plan {
        format: params.records_format,
        filter,
        plain: params.plain.unwrap_or(true),
        language: params.language_or(settings),
        q_text: params.q_text().is_some(),
        q_columns: params
            .q_columns()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default(),
        full_text: full_text.is_some(),
        ts_queries,
        outputs,
        order,
        distinct,
        limit: params.limit,
        offset,
        next_page,
        include_total: params.include_total,
        result_fields,
        ms_in_timestamp: settings.ms_in_timestamp,
        fts_index_types: settings.default_fts_index_field_types.clone(),
        table,
    })
}

impl SearchParams {
    /// The text-search configuration in force.
    pub fn language_or(&self, settings: &Settings) -> String {
        match &self.language {
            Some(l) if !l.is_empty() => l.clone(),
            _ => settings.default_fts_lang.clone(),
        }
    }
}
