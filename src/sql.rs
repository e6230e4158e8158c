//! The one place where anything reaches SQL text.
//!
//! Identifiers are quoted here, and only after the caller checked them against the table's real
//! columns. Values become bind parameters (`$n` with an explicit type), or, for statements that
//! cannot take parameters (COPY), literals escaped by `postgres_protocol::escape`.

use tokio_postgres::types::{ToSql, Type};

use crate::search::plan::TsQuery;

/// `"name"` with embedded quotes doubled and NULs dropped (CKAN's `identifier`).
pub fn ident(name: &str) -> String {
    let cleaned: String = name.chars().filter(|c| *c != '\0').collect();
    format!("\"{}\"", cleaned.replace('"', "\"\""))
}

/// A value bound into a statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bind {
    Text(String),
    Int(i64),
    Bool(bool),
}

/// Collects bind values and hands out their placeholders, or inlines escaped literals.
#[derive(Debug)]
pub struct Binder {
    literal: bool,
    values: Vec<Bind>,
}

impl Binder {
    /// Placeholders `$1`, `$2`, … for an extended-protocol statement.
    pub fn params() -> Binder {
        Binder {
            literal: false,
            values: Vec::new(),
        }
    }

    /// Escaped literals, for COPY, which takes no parameters.
    pub fn literals() -> Binder {
        Binder {
            literal: true,
            values: Vec::new(),
        }
    }

    /// The SQL for `value`, typed `text`, `int8` or `bool`.
    pub fn bind(&mut self, value: Bind) -> String {
        if self.literal {
            return match value {
                Bind::Text(s) => {
                    let s: String = s.chars().filter(|c| *c != '\0').collect();
                    format!(
                        "{}::text",
                        postgres_protocol::escape::escape_literal(&s).trim_start()
                    )
                }
                Bind::Int(n) => format!("({n})::int8"),
                Bind::Bool(b) => format!("{b}::bool"),
            };
        }
        let ty = match &value {
            Bind::Text(_) => "text",
            Bind::Int(_) => "int8",
            Bind::Bool(_) => "bool",
        };
        self.values.push(value);
        format!("${}::{ty}", self.values.len())
    }

    /// A text value cast to `sql_type` (a type name from the catalog, never from the caller).
    pub fn bind_as(&mut self, value: Bind, sql_type: &str) -> String {
        format!("{}::{sql_type}", self.bind(value))
    }

    pub fn values(&self) -> &[Bind] {
        &self.values
    }

    /// The parameters in the shape `query_typed` takes.
    pub fn typed_params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        self.values
            .iter()
            .map(|v| match v {
                Bind::Text(s) => (s as &(dyn ToSql + Sync), Type::TEXT),
                Bind::Int(n) => (n as &(dyn ToSql + Sync), Type::INT8),
                Bind::Bool(b) => (b as &(dyn ToSql + Sync), Type::BOOL),
            })
            .collect()
    }
}

/// The rank expression of a text-search item, given the SQL of the language.
pub fn rank_expression_with(q: &TsQuery, lang_sql: &str) -> String {
    match &q.column {
        None => format!("ts_rank(_full_text, {}, 32)", ident(&q.alias())),
        Some(c) => format!(
            "ts_rank(to_tsvector({lang_sql}, cast({} as text)), {}, 32)",
            ident(c),
            ident(&q.alias())
        ),
    }
}

/// Placeholder used by code that only needs the shape of a rank expression.
pub fn rank_expression(q: &TsQuery) -> String {
    rank_expression_with(q, "$lang")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(ident("x\0y"), "\"xy\"");
    }

    #[test]
    fn literals_are_escaped() {
        let mut b = Binder::literals();
        assert_eq!(b.bind(Bind::Text("it's".into())), "'it''s'::text");
        assert_eq!(b.bind(Bind::Text("a\\b".into())), "E'a\\\\b'::text");
        assert!(b.values().is_empty());
        let mut b = Binder::params();
        assert_eq!(
            b.bind_as(Bind::Text("4".into()), "integer"),
            "$1::text::integer"
        );
        assert_eq!(b.bind(Bind::Int(4)), "$2::int8");
    }
}
