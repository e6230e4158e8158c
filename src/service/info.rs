//! "Describe one table": the `datastore_info` service — the table's columns with their data
//! dictionary, CKAN's native schema rows and `meta` (row count, sizes, aliases), from one
//! statement, behind the same access check as every read.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio_postgres::types::Type;

use crate::auth::credentials::Presented;
use crate::auth::Endpoint;
use crate::catalog::{RequestedId, Table, TableId};
use crate::db::CancelOnDrop;
use crate::error::{from_db_error, ApiError};
use crate::service::gate::read_checked;
use crate::state::AppState;

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

/// A parsed `datastore_info` request.
pub struct InfoParams {
    pub requested: RequestedId,
    pub include_meta: bool,
    pub include_fields_schema: bool,
}

/// CKAN's `meta` object.
pub struct Meta {
    pub count: i64,
    pub table_type: Option<String>,
    pub size: Option<i64>,
    pub db_size: i64,
    pub idx_size: Option<i64>,
    /// JSON list of the table's aliases.
    pub aliases: Value,
}

/// The answer, before rendering.
pub struct InfoAnswer {
    pub table: Arc<Table>,
    /// Each column's native schema (`native_type`, `notnull`, …), by name, when asked.
    pub schema: Option<Map<String, Value>>,
    pub meta: Option<Meta>,
}

pub async fn info(
    state: &AppState,
    params: &InfoParams,
    who: &Presented,
) -> Result<InfoAnswer, ApiError> {
    let requested = params.requested.as_str();
    // A page abandoned because access was denied is usually over within milliseconds.
    let mut client = CancelOnDrop::with_grace(state.connection().await?, Duration::from_millis(20));
    // Existence first (CKAN: 404 before 403), then the check alongside the query.
    let table = state
        .catalog
        .get(&client, requested, false)
        .await?
        .ok_or_else(|| not_found(requested))?
        .id
        .clone();
    let work = async {
        let a = answer(state, params, &client).await?;
        let served = a.table.id.clone();
        Ok::<_, ApiError>((a, served))
    };
    match read_checked(&state.access, who, requested, &table, Endpoint::Info, work).await {
        Err((denial, table)) => Err(denial.api_error(&table)),
        Ok(out) => {
            client.release();
            out
        }
    }
}

fn not_found(requested: &str) -> ApiError {
    ApiError::NotFound(Some(format!(
        "Resource/Alias \"{requested}\" was not found."
    )))
}

/// The answer for the table behind `requested`, from fresh metadata if it changed.
async fn answer(
    state: &AppState,
    params: &InfoParams,
    client: &crate::db::Object,
) -> Result<InfoAnswer, ApiError> {
    let requested = params.requested.as_str();
    let mut retried = false;
    loop {
        let table = state
            .catalog
            .get(client, requested, false)
            .await?
            .ok_or_else(|| not_found(requested))?;
        let id: &TableId = &table.id;
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
        let id_text = id.as_str();
        let row = match client
            .query_cached(&sql, &[(&id_text, Type::TEXT), (&requested, Type::TEXT)])
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
        let schema = params.include_fields_schema.then(|| {
            let rows: Vec<Value> = serde_json::from_str(row.get::<_, &str>(6)).unwrap_or_default();
            let mut schema = Map::new();
            for r in rows {
                if let Some(name) = r.get(0).and_then(Value::as_str) {
                    schema.insert(
                        name.to_string(),
                        json!({"native_type": r[1], "notnull": r[2], "index_name": r[3], "is_index": r[4], "uniquekey": r[5]}),
                    );
                }
            }
            schema
        });
        let meta = params.include_meta.then(|| Meta {
            count: row.get(0),
            table_type: row.get(1),
            size: row.get(2),
            db_size: row.get(3),
            idx_size: row.get(4),
            aliases: serde_json::from_str(row.get::<_, &str>(5)).unwrap_or(json!([])),
        });
        return Ok(InfoAnswer {
            table,
            schema,
            meta,
        });
    }
}
