//! The DDL CKAN 2.12 itself runs: `ckan datastore set-permissions` (verbatim from CKAN's
//! `set_permissions.sql`; plus our `read_role_limits.sql`, which a superuser runs once) and what `datastore_create` executes for a new table
//! (`backend/postgres.py::create_table`, `create_indexes`, `_create_fulltext_trigger`,
//! `create_alias`). The demo and the tests build their databases with it, so the tables we read
//! are shaped exactly like a CKAN site's (checked against a CKAN-made table in the tests).

use serde_json::{Map, Value};

use crate::sql::ident;

const SET_PERMISSIONS: &str = include_str!("sql_assets/set_permissions.sql");

/// `set_permissions.sql` with CKAN's placeholders filled in.
pub fn set_permissions_sql(
    maindb: &str,
    datastoredb: &str,
    mainuser: &str,
    writeuser: &str,
    readuser: &str,
) -> String {
    SET_PERMISSIONS
        .replace("{maindb}", &ident(maindb))
        .replace("{datastoredb}", &ident(datastoredb))
        .replace("{mainuser}", &ident(mainuser))
        .replace("{writeuser}", &ident(writeuser))
        .replace("{readuser}", &ident(readuser))
}

const READ_ROLE_LIMITS: &str = include_str!("sql_assets/read_role_limits.sql");

/// `read_role_limits.sql` (run by operators with `psql -v read_role=…`) for `read_role`: the
/// limits on the read role that only a superuser may set (`temp_file_limit`).
pub fn read_role_limits_sql(read_role: &str) -> String {
    READ_ROLE_LIMITS.replace(":\"read_role\"", &ident(read_role))
}

/// CKAN creates the composite type for `json` columns on first use (`_cache_types`).
pub const NESTED_TYPE_SQL: &str = "DO $$ BEGIN \
    IF NOT EXISTS (SELECT 1 FROM pg_type WHERE typname = 'nested') THEN \
    CREATE TYPE \"nested\" AS (json json, extra text); END IF; END $$;";

/// One field of a `datastore_create` call.
#[derive(Debug, Clone)]
pub struct FieldDef {
    pub id: String,
    /// The type as given to `datastore_create` (`int`, `text`, `json`, `timestamp`, `text[]`, …).
    pub type_: String,
    pub info: Option<Value>,
}

/// CKAN's index name: sha1 of the resource id followed by the indexed expression.
pub fn index_name(resource_id: &str, expression: &str) -> String {
    use sha1_smol::Sha1;
    Sha1::from(format!("{resource_id}{expression}"))
        .digest()
        .to_string()
}

/// The statements `datastore_create` runs for a new table with these fields, primary key and
/// aliases (run as the write role).
pub fn create_table_sql(
    resource_id: &str,
    fields: &[FieldDef],
    primary_key: &[String],
    aliases: &[String],
) -> Vec<String> {
    let table = ident(resource_id);
    let mut cols = vec![
        "\"_id\" serial primary key".to_string(),
        "\"_full_text\" tsvector".to_string(),
    ];
    for f in fields {
        let typ = if f.type_ == "json" {
            "nested"
        } else {
            f.type_.as_str()
        };
        cols.push(format!("{} {}", ident(&f.id), typ));
    }
    let mut out = Vec::new();
    if fields.iter().any(|f| f.type_ == "json") {
        out.push(NESTED_TYPE_SQL.to_string());
    }
    out.push(format!("CREATE TABLE {table} ({});", cols.join(", ")));
    for f in fields {
        if let Some(info) = &f.info {
            let mut comment = Map::new();
            comment.insert("_info".into(), info.clone());
            let text = format!(
                " {}",
                serde_json::to_string(&Value::Object(comment)).expect("json")
            );
            out.push(format!(
                "COMMENT ON COLUMN {table}.{} is {}",
                ident(&f.id),
                postgres_protocol::escape::escape_literal(&text).trim_start()
            ));
        }
    }
    out.push(format!(
        "CREATE  INDEX {} ON {table} USING gist(\"_full_text\")",
        ident(&index_name(resource_id, "\"_full_text\""))
    ));
    if !primary_key.is_empty() {
        let json_fields: Vec<&str> = fields
            .iter()
            .filter(|f| f.type_ == "json")
            .map(|f| f.id.as_str())
            .collect();
        let exprs: Vec<String> = primary_key
            .iter()
            .map(|k| {
                if json_fields.contains(&k.as_str()) {
                    format!("(({}).json::text)", ident(k))
                } else {
                    ident(k)
                }
            })
            .collect();
        let fields_string = exprs.join(", ");
        out.push(format!(
            "CREATE unique INDEX {} ON {table} ({fields_string})",
            ident(&index_name(resource_id, &fields_string))
        ));
    }
    out.push(format!(
        "CREATE TRIGGER zfulltext BEFORE INSERT OR UPDATE ON {table} \
         FOR EACH ROW EXECUTE PROCEDURE populate_full_text_trigger()"
    ));
    for a in aliases {
        out.push(format!("CREATE VIEW {} AS SELECT * FROM {table}", ident(a)));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn index_names_match_ckan() {
        // From the oracle's datastore_info sample.
        assert_eq!(
            super::index_name("11111111-1111-4111-8111-111111111111", "\"id\""),
            "bd0d67010003b846358495b3f59c3414b190ec8e"
        );
    }
}
