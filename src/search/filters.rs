//! `filters`, from the request to SQL, in one place: CKAN 2.12's grammar
//! (`ckanext/datastore/filters.py`) parsed into a tree of filter operations with the same shape,
//! error messages and echo (`filterops`), and that tree rendered as the WHERE clause CKAN's
//! `_where_clauses.build_clause` builds (`filter_sql`; its tests show the SQL for each operator
//! and column kind). Values are always bind parameters; identifiers are real columns, quoted.

use serde_json::{json, Map, Value};

use crate::catalog::{ColumnKind, Table};
use crate::error::ApiError;
use crate::python;
use crate::sql::{ident, Bind, Binder};

const MAX_FILTER_OPS_DEPTH: usize = 10;
const MAX_FILTER_OPS_NUM: usize = 100;

/// A filter operator. Unknown operators are kept: CKAN only rejects them when it builds SQL,
/// after every other check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    Eq,
    In,
    Gt,
    Gte,
    Lt,
    Lte,
    And,
    Or,
    Unknown(String),
}

impl Operator {
    pub fn from_key(key: &str) -> Operator {
        match key {
            "eq" => Operator::Eq,
            "in" => Operator::In,
            "gt" => Operator::Gt,
            "gte" => Operator::Gte,
            "lt" => Operator::Lt,
            "lte" => Operator::Lte,
            "$and" => Operator::And,
            "$or" => Operator::Or,
            other => Operator::Unknown(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Operator::Eq => "eq",
            Operator::In => "in",
            Operator::Gt => "gt",
            Operator::Gte => "gte",
            Operator::Lt => "lt",
            Operator::Lte => "lte",
            Operator::And => "$and",
            Operator::Or => "$or",
            Operator::Unknown(s) => s,
        }
    }
}

/// One node of the parsed filter tree (CKAN's `FilterOp` named tuple).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterOp {
    pub op: Operator,
    /// The column, `None` for `$and` / `$or`.
    pub field: Option<String>,
    pub value: FilterValue,
}

#[derive(Debug, Clone, PartialEq)]
pub enum FilterValue {
    Json(Value),
    Children(Vec<FilterOp>),
}

impl FilterOp {
    /// The `filterops` echo: the named tuple serialised as `{"op", "field", "value"}`.
    pub fn to_json(&self) -> Value {
        let value = match &self.value {
            FilterValue::Json(v) => v.clone(),
            FilterValue::Children(c) => Value::Array(c.iter().map(FilterOp::to_json).collect()),
        };
        json!({"op": self.op.as_str(), "field": self.field, "value": value})
    }

    /// Python's `repr(FilterOp)`, used in the "Unknown filter operation" message.
    pub fn python_repr(&self) -> String {
        let field = match &self.field {
            Some(f) => python::str_repr(f),
            None => "None".into(),
        };
        let value = match &self.value {
            FilterValue::Json(v) => python::repr(v),
            FilterValue::Children(c) if !c.is_empty() => {
                let kids: Vec<String> = c
                    .iter()
                    .map(|k| {
                        k.python_repr()
                            .split('\n')
                            .map(|l| format!("    {l}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    })
                    .collect();
                format!("[\n{}\n]", kids.join(",\n"))
            }
            FilterValue::Children(_) => "[]".into(),
        };
        format!(
            "FilterOp(field={field}, op={}, value={value})",
            python::str_repr(self.op.as_str())
        )
    }
}

/// Parses decoded `filters` against the table's filterable columns (user columns and `_id`).
/// `Ok(None)` means "no filter" (CKAN: a falsy value or a tree that reduced to nothing).
pub fn parse(input: &Value, columns: &dyn Fn(&str) -> bool) -> Result<Option<FilterOp>, ApiError> {
    if !python::truthy(input) {
        return Ok(None);
    }
    let mut p = Parser {
        columns,
        errors: Vec::new(),
        total_ops: 0,
    };
    let tree = p.parse_root(input)?;
    if !p.errors.is_empty() {
        let mut m = Map::new();
        m.insert(
            "filters".into(),
            Value::Array(p.errors.into_iter().map(Value::String).collect()),
        );
        return Err(ApiError::Validation(m));
    }
    Ok(tree)
}

fn filters_error(msg: &str) -> ApiError {
    ApiError::field("filters", msg)
}

struct Parser<'a> {
    columns: &'a dyn Fn(&str) -> bool,
    errors: Vec<String>,
    total_ops: usize,
}

fn is_list_of_dicts(v: &Value) -> bool {
    matches!(v, Value::Array(items) if items.iter().all(Value::is_object))
}

fn is_operator_key(key: &str) -> bool {
    key.starts_with('$') && !key.starts_with("$$")
}

impl Parser<'_> {
    fn new_op(
        &mut self,
        op: &str,
        field: Option<String>,
        value: FilterValue,
    ) -> Result<FilterOp, ApiError> {
        self.total_ops += 1;
        if self.total_ops > MAX_FILTER_OPS_NUM {
            return Err(filters_error(
                "Maximum number of filter operations exceeded",
            ));
        }
        Ok(FilterOp {
            op: Operator::from_key(op),
            field,
            value,
        })
    }

    fn check_operator(&self, key: &str, value: &Value) -> Option<String> {
        if key != "$or" && key != "$and" {
            return Some(format!(
                "Unknown operators (must be one of $or, $and): {key}"
            ));
        }
        if !is_list_of_dicts(value) {
            return Some(format!(
                "Filter operations must be defined as a list of dicts: {}",
                python::str_of(value)
            ));
        }
        None
    }

    fn parse_root(&mut self, input: &Value) -> Result<Option<FilterOp>, ApiError> {
        if !(input.is_object() || is_list_of_dicts(input)) {
            return Err(filters_error(
                "Filters must be defined as a dict or a list of dicts",
            ));
        }
        match input {
            Value::Array(items) => {
                if items.len() >= MAX_FILTER_OPS_NUM {
                    return Err(filters_error(
                        "Maximum number of filter operations exceeded",
                    ));
                }
                match self.combine_members(input, "$or", 0)? {
                    Some(children) => Ok(Some(self.new_op(
                        "$or",
                        None,
                        FilterValue::Children(children),
                    )?)),
                    None => Ok(None),
                }
            }
            Value::Object(map) => {
                if map.len() >= MAX_FILTER_OPS_NUM {
                    return Err(filters_error(
                        "Maximum number of filter operations exceeded",
                    ));
                }
                let mut children = Vec::new();
                for (key, value) in map {
                    if is_operator_key(key) {
                        if let Some(e) = self.check_operator(key, value) {
                            self.errors.push(e);
                            continue;
                        }
                        if let Some(kids) = self.combine_members(value, key, 0)? {
                            if key == "$and" {
                                children.extend(kids);
                            } else {
                                children.push(self.new_op(
                                    key,
                                    None,
                                    FilterValue::Children(kids),
                                )?);
                            }
                        }
                    } else if let Some(op) = self.field_operator(key, value)? {
                        children.push(op);
                    }
                }
                if !self.errors.is_empty() {
                    return Ok(None);
                }
                match children.len() {
                    0 => Ok(None),
                    1 => Ok(children.pop()),
                    _ => Ok(Some(self.new_op(
                        "$and",
                        None,
                        FilterValue::Children(children),
                    )?)),
                }
            }
            _ => unreachable!("checked above"),
        }
    }

    fn combine_members(
        &mut self,
        value: &Value,
        parent: &str,
        level: usize,
    ) -> Result<Option<Vec<FilterOp>>, ApiError> {
        let children = self.members(value, parent, level + 1)?;
        Ok(children.map(|c| combine(c, parent)))
    }

    fn members(
        &mut self,
        value: &Value,
        _parent: &str,
        level: usize,
    ) -> Result<Option<Vec<FilterOp>>, ApiError> {
        if level >= MAX_FILTER_OPS_DEPTH {
            return Err(filters_error(
                "Maximum nesting depth for filter operations reached",
            ));
        }
        let Value::Array(items) = value else {
            self.errors.push(format!(
                "Filter operations must contain lists of filters: {}",
                python::str_of(value)
            ));
            return Ok(None);
        };
        let mut out = Vec::new();
        for item in items {
            let Value::Object(map) = item else {
                self.errors.push(format!(
                    "Filter operation members must be dictionaries: {}",
                    python::repr(item)
                ));
                continue;
            };
            if map.len() >= MAX_FILTER_OPS_NUM {
                return Err(filters_error(
                    "Maximum number of filter operations exceeded",
                ));
            }
            let mut child_ops = Vec::new();
            for (key, v) in map {
                if is_operator_key(key) {
                    if let Some(e) = self.check_operator(key, v) {
                        self.errors.push(e);
                        continue;
                    }
                    if let Some(kids) = self.combine_members(v, key, level)? {
                        child_ops.push(self.new_op(key, None, FilterValue::Children(kids))?);
                    }
                } else if let Some(op) = self.field_operator(key, v)? {
                    child_ops.push(op);
                }
            }
            match child_ops.len() {
                0 => {}
                1 => out.push(child_ops.pop().expect("one op")),
                _ => {
                    let combined = combine(child_ops, "$and");
                    out.push(self.new_op("$and", None, FilterValue::Children(combined))?);
                }
            }
        }
        Ok(if out.is_empty() { None } else { Some(out) })
    }

    fn check_field(
        &mut self,
        field: &str,
        op: &str,
        value: &Value,
    ) -> Result<Option<FilterOp>, ApiError> {
        if !(self.columns)(field) {
            self.errors.push(format!("Unknown field: {field}"));
            return Ok(None);
        }
        Ok(Some(self.new_op(
            op,
            Some(field.to_string()),
            FilterValue::Json(value.clone()),
        )?))
    }

    fn field_operator(&mut self, key: &str, value: &Value) -> Result<Option<FilterOp>, ApiError> {
        let field = key
            .strip_prefix('$')
            .filter(|_| key.starts_with("$$"))
            .unwrap_or(key);
        match value {
            Value::Object(map) if map.len() > 1 => {
                let mut kids = Vec::new();
                for (k, v) in map {
                    let mut single = Map::new();
                    single.insert(k.clone(), v.clone());
                    if let Some(op) = self.field_operator(field, &Value::Object(single))? {
                        kids.push(op);
                    }
                }
                if kids.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(self.new_op(
                        "$and",
                        None,
                        FilterValue::Children(kids),
                    )?))
                }
            }
            Value::Object(map) => match map.iter().next() {
                Some((op, v)) => self.check_field(field, op, v),
                // `{"col": {}}`: CKAN indexes an empty key list and fails with an IndexError.
                None => Err(ApiError::CkanCrash("empty filter operator object".into())),
            },
            Value::Array(items) => {
                let dicts: Vec<&Value> = items.iter().filter(|v| v.is_object()).collect();
                let others: Vec<Value> = items.iter().filter(|v| !v.is_object()).cloned().collect();
                if dicts.is_empty() {
                    return Ok(Some(self.new_op(
                        "in",
                        Some(field.to_string()),
                        FilterValue::Json(value.clone()),
                    )?));
                }
                let mut members = Vec::new();
                for d in dicts {
                    if let Some(op) = self.field_operator(field, d)? {
                        members.push(op);
                    }
                }
                if !others.is_empty() {
                    members.push(self.new_op(
                        "in",
                        Some(field.to_string()),
                        FilterValue::Json(Value::Array(others)),
                    )?);
                }
                if members.is_empty() {
                    Ok(None)
                } else {
                    Ok(Some(self.new_op(
                        "$or",
                        None,
                        FilterValue::Children(members),
                    )?))
                }
            }
            scalar => self.check_field(field, "eq", scalar),
        }
    }
}

/// Merges children that use the parent's own operator into the parent (CKAN flattens nested
/// `$and` in `$and` and `$or` in `$or`).
fn combine(ops: Vec<FilterOp>, parent: &str) -> Vec<FilterOp> {
    let mut out = Vec::new();
    for op in ops {
        if op.op.as_str() == parent && (parent == "$and" || parent == "$or") {
            match op.value {
                FilterValue::Children(c) => out.extend(c),
                FilterValue::Json(_) => unreachable!("operators hold children"),
            }
        } else {
            out.push(op);
        }
    }
    out
}

/// The filter tree as SQL (CKAN's `_where_clauses.build_clause`), its values bound in `b`.
pub fn filter_sql(fo: &FilterOp, table: &Table, b: &mut Binder) -> Result<String, ApiError> {
    match (&fo.op, &fo.value, &fo.field) {
        (Operator::And | Operator::Or, FilterValue::Children(children), None) => {
            let parts = children
                .iter()
                .map(|c| filter_sql(c, table, b))
                .collect::<Result<Vec<_>, _>>()?;
            let parts: Vec<String> = parts.into_iter().filter(|p| !p.is_empty()).collect();
            let (joiner, empty) = if fo.op == Operator::And {
                (" AND ", "true")
            } else {
                (" OR ", "false")
            };
            Ok(if parts.is_empty() {
                empty.to_string()
            } else {
                format!("({})", parts.join(joiner))
            })
        }
        (_, FilterValue::Json(value), Some(field)) => {
            let Some(col) = table.column(field) else {
                return Ok(String::new());
            };
            let c = ident(field);
            let cmp = match &fo.op {
                Operator::Eq => "=",
                Operator::Gt => ">",
                Operator::Gte => ">=",
                Operator::Lt => "<",
                Operator::Lte => "<=",
                Operator::In => {
                    // Python iterates the value: a string by characters, a dict by keys.
                    let items: Vec<Value> = match value {
                        Value::Array(a) => a.clone(),
                        Value::String(s) => {
                            s.chars().map(|ch| Value::String(ch.to_string())).collect()
                        }
                        Value::Object(m) => m.keys().map(|k| Value::String(k.clone())).collect(),
                        _ => {
                            return Err(ApiError::CkanCrash(
                                "`in` filter on a non-iterable value".into(),
                            ))
                        }
                    };
                    if items.is_empty() {
                        return Ok("false".into());
                    }
                    let ph = items
                        .iter()
                        .map(|v| value_sql(col, v, b))
                        .collect::<Result<Vec<_>, _>>()?;
                    return Ok(format!("{c} in ({})", ph.join(",")));
                }
                Operator::And | Operator::Or => {
                    // CKAN walks the raw value as operations and fails on a dict (500).
                    return Err(ApiError::CkanCrash(
                        "operator used as a column filter".into(),
                    ));
                }
                Operator::Unknown(_) => {
                    return Err(ApiError::field(
                        "filters",
                        format!("Unknown filter operation: {}", fo.python_repr()),
                    ))
                }
            };
            Ok(format!("{c} {cmp} {}", value_sql(col, value, b)?))
        }
        _ => Err(ApiError::Internal("malformed filter tree".into())),
    }
}

/// A filter value as SQL. CKAN stringifies values for `text` columns (Python `str()`), and
/// otherwise lets PostgreSQL convert the literal: strings are cast to the column's type
/// (`format_type` from the catalog, e.g. `timestamp without time zone`), integers are `int8`,
/// other numbers `numeric`, booleans `bool`, `null` is SQL NULL.
fn value_sql(col: &crate::catalog::Column, v: &Value, b: &mut Binder) -> Result<String, ApiError> {
    if col.kind == ColumnKind::Text {
        return Ok(b.bind(Bind::Text(python::str_of(v))));
    }
    Ok(match v {
        Value::Null => "NULL".into(),
        Value::Bool(x) => b.bind(Bind::Bool(*x)),
        Value::Number(n) => {
            let text = n.to_string();
            match (python::is_integer_text(&text), n.as_i64()) {
                (true, Some(i)) => b.bind(Bind::Int(i)),
                _ => b.bind_as(Bind::Text(python::number_str(n)), "numeric"),
            }
        }
        Value::String(s) => b.bind_as(Bind::Text(s.clone()), &col.sql_type),
        Value::Array(_) | Value::Object(_) => {
            let kind = if v.is_array() { "list" } else { "dict" };
            return Err(ApiError::invalid_query(&format!(
                "can't adapt type '{kind}'"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols(c: &str) -> bool {
        ["_id", "id", "name", "category", "active"].contains(&c)
    }

    fn parse_str(s: &str) -> Result<Option<FilterOp>, ApiError> {
        parse(&serde_json::from_str(s).unwrap(), &cols)
    }

    #[test]
    fn echo_matches_ckan_samples() {
        let t = parse_str(r#"{"active": true, "id": 4}"#).unwrap().unwrap();
        assert_eq!(
            crate::pyjson::to_string(&t.to_json()),
            r#"{"op": "$and", "field": null, "value": [{"op": "eq", "field": "active", "value": true}, {"op": "eq", "field": "id", "value": 4}]}"#
        );
        let t = parse_str(r#"{"category": ["fruit", "nut"]}"#)
            .unwrap()
            .unwrap();
        assert_eq!(
            crate::pyjson::to_string(&t.to_json()),
            r#"{"op": "in", "field": "category", "value": ["fruit", "nut"]}"#
        );
    }

    #[test]
    fn errors_are_collected() {
        let Err(ApiError::Validation(m)) = parse_str(r#"{"nope": 1, "$xor": [], "id": 5}"#) else {
            panic!()
        };
        assert_eq!(
            m["filters"],
            json!([
                "Unknown field: nope",
                "Unknown operators (must be one of $or, $and): $xor"
            ])
        );
        let Err(ApiError::Validation(m)) = parse_str(r#"{"$or": 5}"#) else {
            panic!()
        };
        assert_eq!(
            m["filters"],
            json!(["Filter operations must be defined as a list of dicts: 5"])
        );
        let Err(ApiError::Validation(m)) = parse_str("5") else {
            panic!()
        };
        assert_eq!(
            m["filters"],
            json!(["Filters must be defined as a dict or a list of dicts"])
        );
    }

    #[test]
    fn nested_same_operators_are_flattened() {
        let t = parse_str(r#"{"$or": [{"id": 1}, {"$or": [{"id": 2}, {"name": "x"}]}]}"#)
            .unwrap()
            .unwrap();
        let FilterValue::Children(c) = &t.value else {
            panic!()
        };
        assert_eq!(t.op, Operator::Or);
        assert_eq!(c.len(), 3);
    }

    /// The SQL of each operator on each kind of column (values are bind parameters; strings are
    /// cast to the column's own type, so PostgreSQL parses a timestamp as CKAN's literal is).
    #[test]
    fn sql_of_each_operator_and_column_kind() {
        use crate::catalog::{Column, TableId};
        let col = Column::new;
        let table = Table::new(
            TableId("t".into()),
            vec![
                col("_id", "int", "integer"),
                col("id", "int4", "integer"),
                col("name", "text", "text"),
                col("category", "text", "text"),
                col("active", "bool", "boolean"),
                col("created", "timestamp", "timestamp without time zone"),
            ],
            String::new(),
            String::new(),
        );
        let cases: &[(&str, &str, &[Bind])] = &[
            (
                r#"{"created": {"gte": "2020-01-01T00:00:00"}}"#,
                "\"created\" >= $1::text::timestamp without time zone",
                &[Bind::Text(String::new())],
            ),
            (
                r#"{"created": {"lt": "2021-01-01", "gt": "2020-06-01"}}"#,
                "(\"created\" < $1::text::timestamp without time zone AND \"created\" > $2::text::timestamp without time zone)",
                &[],
            ),
            (r#"{"id": 4}"#, "\"id\" = $1::int8", &[Bind::Int(4)]),
            (r#"{"id": {"lte": 4.5}}"#, "\"id\" <= $1::text::numeric", &[]),
            (r#"{"id": "7"}"#, "\"id\" = $1::text::integer", &[]),
            (r#"{"name": 5}"#, "\"name\" = $1::text", &[Bind::Text(String::new())]),
            (r#"{"active": false}"#, "\"active\" = $1::bool", &[Bind::Bool(false)]),
            (r#"{"id": null}"#, "\"id\" = NULL", &[]),
            (r#"{"category": ["a", "b"]}"#, "\"category\" in ($1::text,$2::text)", &[]),
            (r#"{"category": {"in": "ab"}}"#, "\"category\" in ($1::text,$2::text)", &[]),
            (r#"{"id": {"in": []}}"#, "false", &[]),
            (
                r#"{"$or": [{"id": 1}, {"name": "x"}]}"#,
                "(\"id\" = $1::int8 OR \"name\" = $2::text)",
                &[],
            ),
        ];
        for (filters, sql, binds) in cases {
            let tree = parse_str_with(filters, &|c| table.column(c).is_some())
                .unwrap()
                .unwrap();
            let mut b = Binder::params();
            assert_eq!(
                filter_sql(&tree, &table, &mut b).unwrap(),
                *sql,
                "{filters}"
            );
            // Where given, the kinds of the binds (text contents are checked elsewhere).
            for (got, want) in b.values().iter().zip(binds.iter()) {
                assert_eq!(std::mem::discriminant(got), std::mem::discriminant(want));
            }
        }
        // The caller's mistakes get CKAN's errors, never SQL.
        let tree = parse_str_with(r#"{"id": {"like": 1}}"#, &|c| c == "id")
            .unwrap()
            .unwrap();
        let err = filter_sql(&tree, &table, &mut Binder::params()).unwrap_err();
        assert!(format!("{err:?}").contains("Unknown filter operation"));
    }

    fn parse_str_with(s: &str, cols: &dyn Fn(&str) -> bool) -> Result<Option<FilterOp>, ApiError> {
        parse(&serde_json::from_str(s).unwrap(), cols)
    }

    #[test]
    fn repr_of_unknown_op() {
        let t = parse_str(r#"{"id": {"foo": 1}}"#).unwrap().unwrap();
        assert_eq!(t.python_repr(), "FilterOp(field='id', op='foo', value=1)");
    }
}
