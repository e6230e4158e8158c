//! `datastore_info`: the table's fields with their data dictionary and native schema, and
//! `meta` (row count, sizes, aliases), from one statement.

use serde_json::{json, Map, Value};
use tokio_postgres::types::Type;

use crate::app::AppState;
use crate::auth::credentials::Presented;
use crate::auth::{gate, Endpoint};
use crate::db::CancelOnDrop;
use crate::error::{from_db_error, ApiError};
use crate::search::params::{bool_rule, resource_id_rule};

use super::envelope::ObjectWriter;

/// CKAN's `resource_fields` schema query, verbatim in its joins (so "last index row wins" picks
/// the same index), for the table named `$1`.
const SCHEMA_ROWS: &str = "SELECT f.attname::text AS column_name, \
       pg_catalog.format_type(f.atttypid,f.atttypmod) AS native_type, \
       f.attnotnull AS notnull, i.relname::text as index_name, \
       CASE WHEN i.oid<>0 THEN True ELSE False END AS is_index, \
       CASE WHEN p.contype = 'u' THEN True WHEN p.contype = 'p' THEN True ELSE False END AS uniquekey \
  FROM pg_attribute f \
  JOIN pg_class c ON c.oid = f.attrelid \
  JOIN pg_type t ON t.oid = f.atttypid \
  LEFT JOIN pg_constraint p ON p.conrelid = c.oid AND f.attnum = ANY (p.conkey) \
  LEFT JOIN pg_index AS ix ON f.attnum = ANY(ix.indkey) AND c.oid = f.attrelid AND c.oid = ix.indrelid \
  LEFT JOIN pg_class AS i ON ix.indexrelid = i.oid \
 WHERE c.relkind = 'r'::char AND c.relname = $1::text AND f.attnum > 0 \
 ORDER BY c.relname,f.attnum";

pub async fn handle(
    state: &AppState,
    data: Map<String, Value>,
    who: &Presented,
) -> Result<Vec<u8>, ApiError> {
    let requested = resource_id_rule(&data).map_err(|m| ApiError::field("resource_id", m))?;
    let flag = |k: &str| match data.get(k) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) if s.is_empty() => true,
        Some(v) => bool_rule(v),
    };
    let (include_meta, include_schema) = (flag("include_meta"), flag("include_fields_schema"));
    // A page abandoned because access was denied is usually over within milliseconds.
    let mut client = CancelOnDrop::with_grace(
        super::connection(state).await?,
        std::time::Duration::from_millis(20),
    );
    if state.access.is_public() {
        let out = answer(state, &requested, &client, include_meta, include_schema).await;
        client.release();
        return out.map(|(bytes, _)| bytes);
    }
    // Existence first (CKAN: 404 before 403), then the check alongside the query.
    let checked = state
        .catalog
        .get(&***client, &requested, false)
        .await?
        .ok_or_else(|| not_found(&requested))?
        .id
        .clone();
    let verdict = state
        .access
        .decide(who, &checked, &requested, Endpoint::Info);
    let work = answer(state, &requested, &client, include_meta, include_schema);
    let (bytes, served) = match gate(verdict, work).await {
        Err(denial) => return Err(denial.api_error(&checked)),
        Ok(out) => {
            client.release();
            out?
        }
    };
    if served != checked {
        state
            .access
            .decide(who, &served, &requested, Endpoint::Info)
            .await
            .map_err(|d| d.api_error(&served))?;
    }
    Ok(bytes)
}

fn not_found(requested: &str) -> ApiError {
    ApiError::NotFound(Some(format!(
        "Resource/Alias \"{requested}\" was not found."
    )))
}

/// The result object for the table behind `requested`, and that table's id.
async fn answer(
    state: &AppState,
    requested: &str,
    client: &deadpool_postgres::Object,
    include_meta: bool,
    include_schema: bool,
) -> Result<(Vec<u8>, String), ApiError> {
    let mut retried = false;
    loop {
        let table = state
            .catalog
            .get(&***client, requested, false)
            .await?
            .ok_or_else(|| not_found(requested))?;
        let id = table.id.as_str();
        let sql = format!(
            "SELECT (SELECT count(_id) FROM {t}), \
               CASE WHEN EXISTS (SELECT 1 FROM pg_matviews WHERE matviewname = $1::text) THEN 'MATERIALIZED VIEW' \
                    ELSE (SELECT table_type::text FROM information_schema.tables WHERE table_name = $1::text LIMIT 1) END, \
               pg_relation_size(to_regclass(quote_ident($1::text))), \
               pg_database_size(current_database()), \
               pg_indexes_size(to_regclass(quote_ident($1::text))), \
               (SELECT coalesce(json_agg(name), '[]')::text FROM (SELECT name FROM \"_table_metadata\" WHERE alias_of = $1::text) a), \
               (SELECT coalesce(json_agg(json_build_array(column_name, native_type, s.\"notnull\", index_name, is_index, uniquekey)), '[]')::text FROM ({SCHEMA_ROWS}) s), \
               {fp}",
            t = crate::sql::ident(id),
            fp = crate::catalog::fingerprint_sql("$2::text")
        );
        let row = match client
            .query_typed(&sql, &[(&id, Type::TEXT), (&requested, Type::TEXT)])
            .await
        {
            Ok(rows) => rows
                .into_iter()
                .next()
                .ok_or_else(|| ApiError::Internal("no info row".into()))?,
            Err(e) if !retried => {
                tracing::debug!(error = %e, "datastore_info failed; reloading metadata");
                state.catalog.invalidate(requested).await;
                retried = true;
                continue;
            }
            Err(e) => return Err(from_db_error(&e, &sql)),
        };
        let fingerprint: String = row.get(7);
        if fingerprint != table.fingerprint && !retried {
            state.catalog.invalidate(requested).await;
            retried = true;
            continue;
        }
        let schema_rows: Vec<Value> =
            serde_json::from_str(row.get::<_, &str>(6)).unwrap_or_default();
        let mut schema: Map<String, Value> = Map::new();
        for r in schema_rows {
            if let Some(name) = r.get(0).and_then(Value::as_str) {
                schema.insert(
                    name.to_string(),
                    json!({"native_type": r[1], "notnull": r[2], "index_name": r[3], "is_index": r[4], "uniquekey": r[5]}),
                );
            }
        }
        let fields: Vec<Value> = table
            .columns
            .iter()
            .filter(|c| !c.name.starts_with('_'))
            .map(|c| {
                let mut f = Map::new();
                f.insert("id".into(), json!(c.name));
                f.insert("type".into(), json!(c.typname));
                if let Some(info) = &c.info {
                    f.insert("info".into(), info.clone());
                }
                if include_schema {
                    f.insert(
                        "schema".into(),
                        schema.get(&c.name).cloned().unwrap_or(Value::Null),
                    );
                }
                Value::Object(f)
            })
            .collect();
        let mut w = ObjectWriter::new();
        w.value("fields", &Value::Array(fields));
        if include_meta {
            let aliases: Value = serde_json::from_str(row.get::<_, &str>(5)).unwrap_or(json!([]));
            let mut meta = Map::new();
            meta.insert("id".into(), json!(id));
            meta.insert("count".into(), json!(row.get::<_, i64>(0)));
            meta.insert("table_type".into(), json!(row.get::<_, Option<String>>(1)));
            meta.insert("size".into(), json!(row.get::<_, Option<i64>>(2)));
            meta.insert("db_size".into(), json!(row.get::<_, i64>(3)));
            meta.insert("idx_size".into(), json!(row.get::<_, Option<i64>>(4)));
            meta.insert("aliases".into(), aliases);
            w.value("meta", &Value::Object(meta));
        }
        return Ok((w.finish(), id.to_string()));
    }
}
