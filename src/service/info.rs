//! "Describe one table": the `datastore_info` service — the table's columns with their data
//! dictionary, CKAN's native schema rows and `meta` (row count, sizes, aliases), from one
//! statement, behind the same access check as every read. Every catalog read in it is an
//! index lookup by the table's name or oid, so its cost does not grow with the number of
//! tables in the DataStore; the row count comes from the totals cache; `db_size` from
//! `db_size.rs`.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio_postgres::types::Type;

use crate::auth::credentials::Presented;
use crate::auth::Endpoint;
use crate::catalog::{RequestedId, Table, TableId};
use crate::db::CancelOnDrop;
use crate::error::{from_db_error, ApiError};
use crate::search::execute::TotalColumns;
use crate::search::params::SearchParams;
use crate::search::plan::plan;
use crate::search::statement::standalone_total_columns;
use crate::search::totals::{settle_total, TotalPlan};
use crate::service::gate::read_checked;
use crate::sql::{Bind, Binder};
use crate::state::AppState;

/// CKAN's `resource_fields` schema query, verbatim in its joins (so "last index row wins" picks
/// the same index), for the table whose name is the SQL `name`.
fn schema_rows_sql(name: &str) -> String {
    format!(
        "SELECT f.attname::text AS column_name, \
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
 WHERE c.relkind = 'r'::char AND c.relname = {name} AND f.attnum > 0 \
 ORDER BY c.relname,f.attnum"
    )
}

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
    let mut client = CancelOnDrop::with_grace(
        state.connection(requested).await?,
        Duration::from_millis(20),
    );
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

/// The table's aliases: the views whose rewrite rule reads it (CKAN's `_table_metadata WHERE
/// alias_of = …`), newest first. Found from the table through `pg_depend`'s index on what is
/// referenced, not by scanning `_table_metadata` (a `DISTINCT` over every relation's rules:
/// its cost grows with the number of tables). Same rows as CKAN's view for every alias
/// `datastore_create` makes; `name` is the SQL of the table's name.
fn aliases_sql(name: &str) -> String {
    format!(
        "(SELECT coalesce(json_agg(a.name ORDER BY a.oid DESC), '[]')::text FROM (\
           SELECT DISTINCT v.relname::text AS name, v.oid \
             FROM pg_catalog.pg_class dependent \
             JOIN pg_catalog.pg_depend d ON d.refclassid = 'pg_catalog.pg_class'::regclass \
               AND d.refobjid = dependent.oid AND d.classid = 'pg_catalog.pg_rewrite'::regclass \
             JOIN pg_catalog.pg_rewrite r ON r.oid = d.objid \
             JOIN pg_catalog.pg_class v ON v.oid = r.ev_class \
            WHERE dependent.relname = {name} AND v.oid <> dependent.oid \
              AND v.relkind IN ('r', 'v') AND v.relnamespace = 'public'::regnamespace \
              AND NOT starts_with(v.relname::text, '_')) a)"
    )
}

/// CKAN's `table_type` (`pg_matviews`, else `information_schema.tables`), read from the
/// table's own `pg_class` row by name (an index lookup: `information_schema.tables` compares a
/// domain-typed name and scans every relation).
fn table_type_sql(name: &str) -> String {
    format!(
        "(SELECT CASE WHEN c.relkind = 'm' THEN 'MATERIALIZED VIEW' \
                 WHEN c.relkind IN ('r', 'p') THEN 'BASE TABLE' \
                 WHEN c.relkind = 'v' THEN 'VIEW' WHEN c.relkind = 'f' THEN 'FOREIGN' END \
            FROM pg_catalog.pg_class c \
           WHERE c.relnamespace = 'public'::regnamespace AND c.relname = {name} \
             AND c.relkind IN ('r', 'p', 'v', 'f', 'm'))"
    )
}

/// `datastore_info`'s catalog reads for the table `$1` (its real name) requested as `$2`:
/// table type, sizes, aliases, fields schema and metadata fingerprint. Built once: its text
/// never depends on the table.
static CATALOG_SQL: LazyLock<String> = LazyLock::new(|| {
    let mut b = Binder::params();
    let name = b.bind(Bind::Text(String::new()));
    let req = b.bind(Bind::Text(String::new()));
    format!(
        "SELECT {table_type}, \
           pg_relation_size(to_regclass(quote_ident({name}))), \
           pg_indexes_size(to_regclass(quote_ident({name}))), \
           {aliases}, \
           (SELECT coalesce(json_agg(json_build_array(column_name, native_type, s.\"notnull\", index_name, is_index, uniquekey)), '[]')::text FROM ({schema}) s), \
           {fp}",
        table_type = table_type_sql(&name),
        aliases = aliases_sql(&name),
        schema = schema_rows_sql(&name),
        fp = crate::catalog::fingerprint_sql(&req)
    )
});

/// The row count's plan (the unfiltered search's total), its statement and binds.
fn count_statement(
    state: &AppState,
    table: &Arc<Table>,
) -> Result<(TotalPlan, String, Binder), ApiError> {
    let mut count_request = Map::new();
    count_request.insert("resource_id".into(), json!(table.id.as_str()));
    let count_params = SearchParams::parse(&count_request, &state.settings)?;
    let count_plan = plan(&count_params, table.clone(), &state.settings)?;
    let total_plan = TotalPlan::new(&state.totals, &count_plan)?;
    let total_sql = total_plan.sql(state.totals.max_staleness);
    let mut b = Binder::params();
    let sql = format!(
        "SELECT {}",
        standalone_total_columns(&count_plan, &total_sql, &mut b)?.join(", ")
    );
    Ok((total_plan, sql, b))
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
        // Two statements pipelined on the connection (one round trip): the catalog reads
        // (`CATALOG_SQL`, the same text for every table, so each connection prepares it once
        // and a portal's never-read tables cost no planning of it), and, when `include_meta`
        // asks for it, the row count — the unfiltered search's total, from the totals cache,
        // proven current exactly as a search's is (docs/totals.md), or counted; its text names
        // the table and is small to plan.
        let count = match params.include_meta {
            false => None,
            true => Some(count_statement(state, &table)?),
        };
        let (id_text, requested_text) = (id.to_string(), requested.to_string());
        let catalog_params = [
            (
                &id_text as &(dyn tokio_postgres::types::ToSql + Sync),
                Type::TEXT,
            ),
            (&requested_text, Type::TEXT),
        ];
        let count_params = count.as_ref().map(|(_, _, b)| b.typed_params());
        let (rows, counted) =
            tokio::join!(client.query_cached(&CATALOG_SQL, &catalog_params), async {
                match (&count, &count_params) {
                    (Some((_, sql, _)), Some(p)) => client.query_cached(sql, p).await.map(Some),
                    _ => Ok(None),
                }
            });
        let rows = rows.and_then(|rows| Ok((rows, counted?)));
        let (row, counted) = match rows {
            Ok((rows, counted)) => {
                let one = |rows: Vec<tokio_postgres::Row>| {
                    rows.into_iter()
                        .next()
                        .ok_or_else(|| ApiError::Internal("no info row".into()))
                };
                (one(rows)?, counted.map(one).transpose()?)
            }
            Err(e) if !retried => {
                tracing::debug!(error = %e, "datastore_info failed; reloading metadata");
                state.catalog.invalidate(requested).await;
                retried = true;
                continue;
            }
            Err(e) => return Err(from_db_error(&e, &CATALOG_SQL)),
        };
        let fingerprint: String = row.get(5);
        if fingerprint != table.fingerprint && !retried {
            state.catalog.invalidate(requested).await;
            retried = true;
            continue;
        }
        let schema = params.include_fields_schema.then(|| {
            let rows: Vec<Value> = serde_json::from_str(row.get::<_, &str>(4)).unwrap_or_default();
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
        let meta = match (count, counted) {
            (Some((total_plan, _, _)), Some(c)) => {
                let counted = TotalColumns {
                    counted: c.get(0),
                    snapshot: c.get(1),
                    marker: c.get(2),
                };
                let wp = state.write_pool.as_ref();
                let count = settle_total(&state.totals, client, wp, total_plan, counted).await?;
                Some(Meta {
                    count,
                    table_type: row.get(0),
                    size: row.get(1),
                    db_size: state.db_size.get(client, &state.pool).await?,
                    idx_size: row.get(2),
                    aliases: serde_json::from_str(row.get::<_, &str>(3)).unwrap_or(json!([])),
                })
            }
            _ => None,
        };
        return Ok(InfoAnswer {
            table,
            schema,
            meta,
        });
    }
}
