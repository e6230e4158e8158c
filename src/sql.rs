//! The one place where anything reaches SQL text.
//!
//! Identifiers are quoted here, and only after the caller checked them against the table's real
//! columns. Values become bind parameters (`$n` with an explicit type), or, for statements that
//! cannot take parameters (COPY), literals escaped by `postgres_protocol::escape`.

use tokio_postgres::types::{ToSql, Type};

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
    /// A text-search configuration name, bound as a `regconfig` value so that the planner sees
    /// a constant (CKAN's inlined literal lets PostgreSQL fold `plainto_tsquery(...)`; a text
    /// parameter cast to regconfig would not, and loses parallel plans).
    Regconfig(String),
}

/// A parameter sent in PostgreSQL's text format and parsed by the server's input function for
/// the declared type (used for `regconfig`, which has no Rust-side binary encoding).
#[derive(Debug)]
pub struct TextParam(pub String);

impl ToSql for TextParam {
    fn to_sql(
        &self,
        _ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(self.0.as_bytes());
        Ok(tokio_postgres::types::IsNull::No)
    }
    fn accepts(_ty: &Type) -> bool {
        true
    }
    fn encode_format(&self, _ty: &Type) -> tokio_postgres::types::Format {
        tokio_postgres::types::Format::Text
    }
    tokio_postgres::types::to_sql_checked!();
}

/// Collects bind values and hands out their placeholders, or inlines escaped literals.
#[derive(Debug)]
pub struct Binder {
    literal: bool,
    values: Vec<Bind>,
    /// Text-format twins of the values (used for `Regconfig`).
    text_params: Vec<TextParam>,
}

impl Binder {
    /// Placeholders `$1`, `$2`, … for an extended-protocol statement.
    pub fn params() -> Binder {
        Binder {
            literal: false,
            values: Vec::new(),
            text_params: Vec::new(),
        }
    }

    /// Escaped literals, for COPY, which takes no parameters.
    pub fn literals() -> Binder {
        Binder {
            literal: true,
            values: Vec::new(),
            text_params: Vec::new(),
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
                Bind::Regconfig(s) => {
                    let s: String = s.chars().filter(|c| *c != '\0').collect();
                    format!(
                        "{}::regconfig",
                        postgres_protocol::escape::escape_literal(&s).trim_start()
                    )
                }
            };
        }
        let ty = match &value {
            Bind::Text(_) => "text",
            Bind::Int(_) => "int8",
            Bind::Bool(_) => "bool",
            Bind::Regconfig(_) => "regconfig",
        };
        self.text_params.push(TextParam(match &value {
            Bind::Regconfig(s) => s.chars().filter(|c| *c != '\0').collect(),
            _ => String::new(),
        }));
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
            .zip(&self.text_params)
            .map(|(v, t)| match v {
                Bind::Text(s) => (s as &(dyn ToSql + Sync), Type::TEXT),
                Bind::Int(n) => (n as &(dyn ToSql + Sync), Type::INT8),
                Bind::Bool(b) => (b as &(dyn ToSql + Sync), Type::BOOL),
                Bind::Regconfig(_) => (t as &(dyn ToSql + Sync), Type::REGCONFIG),
            })
            .collect()
    }
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
