//! The `filters` grammar of CKAN 2.12 (`ckanext/datastore/filters.py`), parsed into a tree of
//! filter operations with the same shape, the same error messages and the same echo
//! (`filterops`). SQL for the tree is built in `sql.rs`.

use serde_json::{json, Map, Value};

use crate::error::ApiError;
use crate::python;

const MAX_FILTER_OPS_DEPTH: usize = 10;
const MAX_FILTER_OPS_NUM: usize = 100;

/// One node of the parsed filter tree (CKAN's `FilterOp` named tuple).
#[derive(Debug, Clone, PartialEq)]
pub struct FilterOp {
    /// `eq`, `in`, `gt`, `gte`, `lt`, `lte`, `$and`, `$or`, or whatever operator the caller
    /// wrote (unknown operators are only rejected when SQL is built, as in CKAN).
    pub op: String,
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
        json!({"op": self.op, "field": self.field, "value": value})
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
            python::str_repr(&self.op)
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
            op: op.to_string(),
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
                None => Err(ApiError::Internal("empty filter operator object".into())),
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
        if op.op == parent && (parent == "$and" || parent == "$or") {
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
        assert_eq!(t.op, "$or");
        assert_eq!(c.len(), 3);
    }

    #[test]
    fn repr_of_unknown_op() {
        let t = parse_str(r#"{"id": {"foo": 1}}"#).unwrap().unwrap();
        assert_eq!(t.python_repr(), "FilterOp(field='id', op='foo', value=1)");
    }
}
