//! "Run one SQL query": the `datastore_search_sql` service. The query is parsed and checked by
//! `search_sql::sanitize`, every table it names is checked for the caller like any read, and it
//! runs on its own read-only pool; the answer is CKAN's result object.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use tokio_postgres::{SimpleQueryMessage, SimpleQueryRow};

use crate::auth::credentials::Presented;
use crate::auth::{Denial, Endpoint};
use crate::db::CancelOnDrop;
use crate::error::{classify_db_error, ApiError, DbErrorClass};
use crate::object_writer::ObjectWriter;
use crate::search_sql::callers::Caller;
use crate::search_sql::records::{text_len, Records};
use crate::search_sql::render::Kind;
use crate::search_sql::sanitize::{on_parser_stack, sanitize, TypeRef};
use crate::search_sql::SqlSearch;
use crate::state::AppState;

pub async fn search_sql(
    state: &AppState,
    sql_search: &SqlSearch,
    data: Map<String, Value>,
    who: &Presented,
    address: Option<IpAddr>,
) -> Result<Vec<Bytes>, ApiError> {
    // CKAN reads `data_dict['sql']` with no schema: missing or not text is a crash (500).
    let Some(Value::String(query)) = data.get("sql") else {
        return Err(ApiError::CkanCrash(
            "datastore_search_sql without a text `sql`".into(),
        ));
    };
    // Refused at once over the caller's limit, before a parser thread or a connection is used;
    // held until the answer is built (or the request is dropped).
    let caller = match state.access.token_id(who) {
        Some(jti) => Caller::Token(jti),
        None => Caller::Address(address),
    };
    let Some(_slot) = sql_search.callers.try_take(caller) else {
        tracing::info!(
            ?address,
            "datastore_search_sql: caller over its concurrency limit"
        );
        return Err(ApiError::Busy(RETRY_AFTER_SECS));
    };
    let limit = state.settings.rows_max + 1;
    // Parsing, the walk and the re-serialization run on their own deep stack (deep SQL).
    let owned = query.clone();
    let parsed = on_parser_stack(move || {
        let checked = sanitize(&owned)?;
        let wrapped = format!("SELECT * FROM ({}) AS blah LIMIT {limit}", checked.sql);
        // Defence in depth: what we send is exactly one SELECT.
        match pg_query::parse(&wrapped, 0) {
            Ok(p) if p.protobuf.stmts.len() == 1 => Ok((checked, wrapped)),
            _ => Err(ApiError::Internal(
                "re-serialized query did not re-parse".into(),
            )),
        }
    })
    .await?;
    // A bounded wait for one of the endpoint's few connections: 503 + Retry-After, never 500.
    let client = match tokio::time::timeout(POOL_WAIT, sql_search.pool.get()).await {
        Ok(Ok(c)) => c,
        Ok(Err(deadpool::managed::PoolError::Timeout(_))) | Err(_) => {
            return Err(ApiError::Busy(RETRY_AFTER_SECS))
        }
        Ok(Err(e)) => return Err(ApiError::Internal(format!("database pool: {e}"))),
    };
    // A client that goes away takes its query with it (cancelled, as dumps are).
    let mut client = CancelOnDrop::with_grace(client, Duration::from_millis(20));
    let (mut checked, wrapped) = match parsed {
        Ok(s) => s,
        Err(e) => return Err(with_error_index(e, query, &client).await),
    };
    // A relation named as a type is read as a table is: its row type shows its columns.
    for table in row_type_tables(&client, &checked.types).await? {
        if !checked.tables.contains(&table) {
            checked.tables.push(table);
        }
    }
    if checked
        .tables
        .iter()
        .any(|(schema, _)| !matches!(schema.as_deref(), None | Some("public")))
    {
        return Err(ApiError::Forbidden(Some(
            "Not authorized to access tables in other schemas".into(),
        )));
    }
    if checked.tables.iter().any(|(_, t)| t.starts_with("pg_")) {
        return Err(ApiError::Forbidden(Some(
            "Not authorized to access system tables".into(),
        )));
    }
    // Each name as a resource id (never an alias, a CTE name or a resource *name*: 404).
    for (_, table) in &checked.tables {
        state
            .access
            .decide(who, table, table, Endpoint::Sql)
            .await
            .map_err(sql_denial)?;
    }
    for f in &checked.functions {
        sql_search.functions.check(f)?;
    }

    // The column types (psycopg2 converts by type), then the rows as PostgreSQL's text.
    let stmt = client.prepare(&wrapped).await.map_err(db_error)?;
    let columns: Vec<(String, String, Kind)> = stmt
        .columns()
        .iter()
        .map(|c| {
            let typname = c.type_().name().to_string();
            let kind = Kind::of(&typname);
            // CKAN reports its `nested` composite as `json`.
            let shown = if typname == "nested" {
                "json".to_string()
            } else {
                typname
            };
            (c.name().to_string(), shown, kind)
        })
        .collect();
    let caller_truncated = data
        .get("records_truncated")
        .is_some_and(crate::python::truthy);
    let rows = client.simple_query_raw(&wrapped).await.map_err(db_error)?;
    let max_bytes = state.settings.sqlsearch_max_answer_bytes;
    let (records, truncated) = collect(rows, &columns, limit, caller_truncated, max_bytes).await?;
    client.release();
    Ok(render(&data, truncated, &columns, Bytes::from(records)))
}

/// Rows of at least this many bytes of text are rendered on a blocking thread, not on the
/// request's: the actix worker that runs this request runs other connections too, and
/// rendering 100 MB would stall them (issue 21: a `datastore_search` waited 6 s). Smaller
/// answers — nearly all — are rendered in place (a thread hop costs more than ~1 ms of work).
const OFF_THREAD_BYTES: usize = 1 << 20;

/// The records of the query's rows as they arrive, at most `max_bytes`, and whether there were
/// more than `limit - 1` rows (CKAN's `records_truncated`). CKAN drops the last row when the
/// answer is truncated, or when the caller's own `records_truncated` is truthy: so each row
/// is written only once the next has arrived, and the last one at the end if it stays.
async fn collect(
    rows: tokio_postgres::SimpleQueryStream,
    columns: &[(String, String, Kind)],
    limit: i64,
    drop_last: bool,
    max_bytes: usize,
) -> Result<(Vec<u8>, bool), ApiError> {
    use futures_util::StreamExt;
    let mut records = Records::new(columns.iter().map(|(n, _, k)| (n.as_str(), k)), max_bytes);
    let mut batch: Vec<SimpleQueryRow> = Vec::new();
    let mut batch_bytes = 0;
    let mut held: Option<SimpleQueryRow> = None;
    let mut count: i64 = 0;
    tokio::pin!(rows);
    while let Some(message) = rows.next().await {
        let SimpleQueryMessage::Row(row) = message.map_err(db_error)? else {
            continue;
        };
        count += 1;
        let Some(previous) = held.replace(row) else {
            continue;
        };
        batch_bytes += text_len(&previous);
        batch.push(previous);
        // The text is (nearly always) no longer than its JSON: past the bound, stop now
        // rather than buffer the rest.
        if batch_bytes >= OFF_THREAD_BYTES || batch_bytes > max_bytes {
            records = write_off_thread(records, std::mem::take(&mut batch)).await?;
            batch_bytes = 0;
        }
    }
    let truncated = count == limit;
    if let Some(last) = held {
        if !(truncated || drop_last) {
            batch_bytes += text_len(&last);
            batch.push(last);
        }
    }
    if batch_bytes >= OFF_THREAD_BYTES {
        records = write_off_thread(records, batch).await?;
    } else {
        for row in &batch {
            records.push(row)?;
        }
    }
    Ok((records.finish(), truncated))
}

/// Appends `batch` to `records` on a blocking thread.
async fn write_off_thread(
    mut records: Records,
    batch: Vec<SimpleQueryRow>,
) -> Result<Records, ApiError> {
    tokio::task::spawn_blocking(move || {
        for row in &batch {
            records.push(row)?;
        }
        Ok(records)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("rendering thread: {e}")))?
}

/// How long a query waits for one of the endpoint's connections before 503.
const POOL_WAIT: Duration = Duration::from_secs(5);
/// The `Retry-After` of that 503.
const RETRY_AFTER_SECS: u32 = 5;

/// Which type names PostgreSQL resolves (with this session's `search_path`, `pg_catalog`
/// first) to a relation's row type — directly, as its array type (`"t"[]`, `"_t"`) or through
/// domains — each as the relation's `(schema, name)` (`None` for `public`), to be checked as
/// a table reference. Composite types (`CREATE TYPE`, CKAN's `nested`) hold no rows and pass.
/// `%TYPE` names and catalog-qualified names are table references whatever they resolve to.
async fn row_type_tables(
    client: &tokio_postgres::Client,
    types: &[TypeRef],
) -> Result<Vec<(Option<String>, String)>, ApiError> {
    let mut tables = Vec::new();
    let mut asked: Vec<&TypeRef> = Vec::new();
    for t in types {
        let parts: &[String] = if t.pct_type {
            &t.names[..t.names.len().saturating_sub(1)]
        } else {
            &t.names
        };
        match parts {
            [] => {}
            [_, _, _, ..] => {
                let mut m = Map::new();
                m.insert(
                    "message".into(),
                    Value::String(format!("Catalog cannot be provided: {}", parts[0])),
                );
                return Err(ApiError::Validation(m));
            }
            _ if t.pct_type => tables.push(as_table(parts)),
            _ => asked.push(t),
        }
    }
    if asked.is_empty() {
        return Ok(tables);
    }
    let quoted: Vec<String> = asked
        .iter()
        .map(|t| {
            t.names
                .iter()
                .map(|p| format!("\"{}\"", p.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(".")
        })
        .collect();
    let rows = client
        .query(ROW_TYPES_SQL, &[&quoted])
        .await
        .map_err(|e| ApiError::Internal(format!("resolving type names: {e}")))?;
    // The relation itself (`"_t"` is `"t"`'s array type): checked as `FROM "t"` would be.
    for row in rows {
        let schema: String = row.get(0);
        let name: String = row.get(1);
        tables.push(((schema != "public").then_some(schema), name));
    }
    Ok(tables)
}

/// The relations (schema, name) whose row types the names resolve to.
const ROW_TYPES_SQL: &str = "WITH RECURSIVE named AS ( \
       SELECT i, to_regtype(n)::oid AS t FROM unnest($1::text[]) WITH ORDINALITY AS u(n, i)), \
     walk(i, t, d) AS ( \
       SELECT i, t, 0 FROM named WHERE t IS NOT NULL \
       UNION ALL \
       SELECT w.i, CASE WHEN ty.typtype = 'd' THEN ty.typbasetype ELSE ty.typelem END, w.d + 1 \
       FROM walk w JOIN pg_catalog.pg_type ty ON ty.oid = w.t \
       WHERE w.d < 32 AND (ty.typtype = 'd' OR ty.typelem <> 0)) \
     SELECT DISTINCT n.nspname::text, c.relname::text FROM walk w \
       JOIN pg_catalog.pg_type ty ON ty.oid = w.t \
       JOIN pg_catalog.pg_class c ON c.oid = ty.typrelid \
       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind <> 'c'";

fn as_table(parts: &[String]) -> (Option<String>, String) {
    match parts {
        [schema, name] => (Some(schema.clone()), name.clone()),
        [name] => (None, name.clone()),
        _ => (None, String::new()),
    }
}

/// The result: the request's keys as sent, then `records_truncated` (when true), `records`,
/// `fields` — CKAN returns its `data_dict`. In parts: the records (up to
/// `sqlsearch_max_answer_bytes`) are sent as they are, never copied into the object.
fn render(
    data: &Map<String, Value>,
    truncated: bool,
    columns: &[(String, String, Kind)],
    records: Bytes,
) -> Vec<Bytes> {
    let fields: Vec<Value> = columns
        .iter()
        .map(|(name, typname, _)| json!({"id": name, "type": typname}))
        .collect();

    let mut w = ObjectWriter::new();
    let mut pending = vec![
        ("records_truncated", truncated),
        ("records", true),
        ("fields", true),
    ];
    for (k, v) in data {
        match k.as_str() {
            "records" => {
                w.spliced("records", records.clone());
                pending.retain(|(n, _)| *n != "records");
            }
            "fields" => {
                w.value("fields", &Value::Array(fields.clone()));
                pending.retain(|(n, _)| *n != "fields");
            }
            "records_truncated" if truncated => {
                w.value(k, &json!(true));
                pending.retain(|(n, _)| *n != "records_truncated");
            }
            _ => w.value(k, v),
        }
    }
    for (k, wanted) in pending {
        match (k, wanted) {
            ("records_truncated", true) => w.value(k, &json!(true)),
            ("records", _) => w.spliced("records", records.clone()),
            ("fields", _) => w.value("fields", &Value::Array(fields.clone())),
            _ => {}
        }
    }
    w.finish_parts()
}

/// CKAN's answers for a table the caller may not read (its messages differ from search's).
fn sql_denial(d: Denial) -> ApiError {
    match d {
        Denial::NoResource | Denial::ResourceGone => ApiError::NotFound(None),
        Denial::Ckan { status: 404, .. } => ApiError::NotFound(None),
        Denial::Forbidden { .. } | Denial::Ckan { status: 403, .. } => {
            ApiError::Forbidden(Some("Not authorized to read resource.".into()))
        }
        other => other.api_error(""),
    }
}

/// pglast reports where the parser stopped (`…, at index N`); `pg_query` does not, so the
/// same text is given to PostgreSQL's parser (never executed: it failed to parse) for its
/// position.
async fn with_error_index(err: ApiError, query: &str, client: &tokio_postgres::Client) -> ApiError {
    let ApiError::Validation(mut m) = err else {
        return err;
    };
    let Some(Value::String(msg)) = m.get("message").cloned() else {
        return ApiError::Validation(m);
    };
    if !msg.starts_with("Invalid SQL: ") {
        return ApiError::Validation(m);
    }
    if let Err(e) = client.prepare(query).await {
        if let Some(tokio_postgres::error::ErrorPosition::Original(pos)) =
            e.as_db_error().and_then(|d| d.position())
        {
            m.insert(
                "message".into(),
                Value::String(format!("{msg}, at index {}", pos.saturating_sub(1))),
            );
        }
    }
    ApiError::Validation(m)
}

/// PostgreSQL's error for the query, as CKAN classifies it (psycopg2 exception classes).
fn db_error(e: tokio_postgres::Error) -> ApiError {
    let (class, message) = classify_db_error(&e);
    let code = e.as_db_error().map(|d| d.code().code()).unwrap_or("");
    match class {
        DbErrorClass::Connection => ApiError::Internal(format!("database: {message}")),
        DbErrorClass::InsufficientPrivilege => {
            ApiError::Forbidden(Some("Not authorized to read resource.".into()))
        }
        DbErrorClass::Cancelled => ApiError::field("query", "Query took too long"),
        // The read role's `temp_file_limit` (read_role_limits.sql): the query is too costly as
        // written, as a timeout is. CKAN, given the same limit, answers 500 (an uncaught
        // OperationalError); PostgreSQL's message names the limit and no SQL.
        DbErrorClass::ConfigurationLimit => {
            tracing::info!(code, error = %message, "datastore_search_sql over a server limit");
            let mut m = Map::new();
            m.insert(
                "query".into(),
                json!(["Query needs more temporary disk space than the server allows"]),
            );
            m.insert("info".into(), json!({"orig": [message]}));
            ApiError::Validation(m)
        }
        // DataError and the like: an uncaught exception in CKAN.
        DbErrorClass::OtherServerError => ApiError::CkanCrash(format!("search_sql: {message}")),
        DbErrorClass::UndefinedTable | DbErrorClass::Rejected => {
            tracing::info!(code, error = %message, "datastore_search_sql rejected by PostgreSQL");
            // CKAN adds the statement, its parameters and PostgreSQL's context lines (SQL
            // text); we keep the exception class and PostgreSQL's message.
            let mut m = Map::new();
            m.insert(
                "query".into(),
                json!([format!(
                    "(psycopg2.errors.{}) {message}",
                    psycopg2_class(code)
                )]),
            );
            m.insert("info".into(), json!({"orig": [message]}));
            ApiError::Validation(m)
        }
    }
}

/// `psycopg2.errors` class names for SQLSTATE class 42.
fn psycopg2_class(code: &str) -> &'static str {
    match code {
        "42601" => "SyntaxError",
        "42501" => "InsufficientPrivilege",
        "42846" => "CannotCoerce",
        "42803" => "GroupingError",
        "42P20" => "WindowingError",
        "42P19" => "InvalidRecursion",
        "42830" => "InvalidForeignKey",
        "42602" => "InvalidName",
        "42622" => "NameTooLong",
        "42939" => "ReservedName",
        "42804" => "DatatypeMismatch",
        "42P18" => "IndeterminateDatatype",
        "42P21" => "CollationMismatch",
        "42P22" => "IndeterminateCollation",
        "42809" => "WrongObjectType",
        "42703" => "UndefinedColumn",
        "42883" => "UndefinedFunction",
        "42P01" => "UndefinedTable",
        "42P02" => "UndefinedParameter",
        "42704" => "UndefinedObject",
        "42701" => "DuplicateColumn",
        "42P03" => "DuplicateCursor",
        "42P04" => "DuplicateDatabase",
        "42723" => "DuplicateFunction",
        "42P05" => "DuplicatePreparedStatement",
        "42P06" => "DuplicateSchema",
        "42P07" => "DuplicateTable",
        "42712" => "DuplicateAlias",
        "42710" => "DuplicateObject",
        "42702" => "AmbiguousColumn",
        "42725" => "AmbiguousFunction",
        "42P08" => "AmbiguousParameter",
        "42P09" => "AmbiguousAlias",
        "42P10" => "InvalidColumnReference",
        "42611" => "InvalidColumnDefinition",
        "42P11" => "InvalidCursorDefinition",
        "42P12" => "InvalidDatabaseDefinition",
        "42P13" => "InvalidFunctionDefinition",
        "42P14" => "InvalidPreparedStatementDefinition",
        "42P15" => "InvalidSchemaDefinition",
        "42P16" => "InvalidTableDefinition",
        "42P17" => "InvalidObjectDefinition",
        _ => "ProgrammingError",
    }
}
