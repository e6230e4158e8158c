//! Table metadata per requested resource id: alias resolution, the columns with their types and
//! data-dictionary `info`, and a fingerprint of all of it.
//!
//! Loading costs two catalog queries, so entries are cached (moka). An entry is never trusted
//! blindly: every page statement also returns the current fingerprint (`fingerprint_sql`), and
//! a mismatch — CKAN altered, dropped, re-created or re-aliased the table, or edited its data
//! dictionary — drops the entry and the request is answered again from fresh metadata. So the
//! steady state is one round trip, and a change is seen by the very next request.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use serde_json::Value;
use tokio_postgres::types::Type;

use crate::db::Conn;

use crate::error::ApiError;

/// The id a caller sent: a resource id, an alias, or a name that resolves to nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RequestedId(pub String);

/// A real DataStore table's name (a resource id), after alias resolution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TableId(pub String);

macro_rules! str_newtype {
    ($t:ty) => {
        impl std::ops::Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl $t {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}
str_newtype!(RequestedId);
str_newtype!(TableId);

/// What a column's type means for rendering and filtering, decided once when metadata loads
/// (so no other module tests type-name strings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// `text`: filter values are Python `str()`-ed and bound as text, as CKAN does.
    Text,
    /// `timestamp`: rendered with `to_char` in CKAN's ISO format (`ms_in_timestamp`).
    Timestamp,
    /// CKAN's `nested` composite: rendered as its `json` member.
    Nested,
    /// Any array type (`_text`, `_int4`, …): rendered with `array_to_json`.
    Array,
    /// Everything else (numbers, dates, booleans, json, …): rendered as PostgreSQL renders it.
    Other,
}

impl ColumnKind {
    /// The kind of a `pg_type.typname` (also CKAN's reported types, e.g. `int` for `_id`).
    pub fn of_typname(typname: &str) -> ColumnKind {
        match typname {
            "text" => ColumnKind::Text,
            "timestamp" => ColumnKind::Timestamp,
            "nested" => ColumnKind::Nested,
            t if t.starts_with('_') || t.ends_with("[]") => ColumnKind::Array,
            _ => ColumnKind::Other,
        }
    }
}

/// One user column (or `_id`) as `datastore_search` sees it.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    /// `pg_type.typname` (`int4`, `text`, `nested`, `_text`, …); `_id` reports `int`. Shown
    /// to callers as the field's `type`.
    pub typname: String,
    /// What the type means for rendering and filtering.
    pub kind: ColumnKind,
    /// `format_type()` of the column, used to cast filter values to the column's type.
    pub sql_type: String,
    /// The data-dictionary `info` object, when the column comment carries one.
    pub info: Option<Value>,
}

/// A resolved DataStore table.
#[derive(Debug, Clone)]
pub struct Table {
    /// The real table name (the resource id, after alias resolution).
    pub id: TableId,
    /// Columns in table order: `_id` first, then the user columns (no other `_` columns).
    pub columns: Vec<Column>,
    /// Opaque token that changes whenever anything above changes.
    pub fingerprint: String,
    /// The latest database snapshot (`pg_current_snapshot()`) in which the fingerprint was seen
    /// unchanged: while a statement still runs in that very snapshot, nothing has committed
    /// since, so the metadata cannot have changed and the fingerprint need not be recomputed
    /// (see `statement::metadata_check`).
    proven_in: Arc<std::sync::Mutex<String>>,
}

impl Column {
    /// A column of type `typname` (`format_type` `sql_type`), without data-dictionary info.
    pub fn new(name: &str, typname: &str, sql_type: &str) -> Column {
        Column {
            name: name.into(),
            typname: typname.into(),
            kind: ColumnKind::of_typname(typname),
            sql_type: sql_type.into(),
            info: None,
        }
    }
}

impl Table {
    /// A table whose `fingerprint` was read in `snapshot`.
    pub fn new(id: TableId, columns: Vec<Column>, fingerprint: String, snapshot: String) -> Table {
        Table {
            id,
            columns,
            fingerprint,
            proven_in: Arc::new(std::sync::Mutex::new(snapshot)),
        }
    }

    /// The latest snapshot the fingerprint is known to hold in.
    pub fn proven_snapshot(&self) -> String {
        self.proven_in
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A statement saw the fingerprint unchanged in `snapshot`.
    pub fn prove(&self, snapshot: &str) {
        let mut s = self.proven_in.lock().unwrap_or_else(|p| p.into_inner());
        if *s != snapshot {
            *s = snapshot.to_string();
        }
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// SQL (one scalar expression, one text parameter `$n` = the requested name) that computes the
/// fingerprint of what `name` resolves to: the relation's oid, the alias target's oid, and every
/// column's name, type and comment.
pub fn fingerprint_sql(param: &str) -> String {
    // The relation named `param` plus, when it is a view (a CKAN alias), the relations its
    // rewrite rule depends on: all index lookups, unlike a scan of `_table_metadata`.
    format!(
        "(SELECT coalesce(string_agg(c.oid::text || '/' || coalesce((SELECT string_agg(\
             a.attname || ' ' || a.atttypid::text || ' ' || a.atttypmod::text || ' ' || \
             coalesce(d.description, ''), ',' ORDER BY a.attnum) \
           FROM pg_catalog.pg_attribute a \
           LEFT JOIN pg_catalog.pg_description d ON d.objoid = a.attrelid \
             AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum \
           WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), ''), \
           '|' ORDER BY c.relname = {param}::text DESC, c.oid), '') \
         FROM pg_catalog.pg_class c WHERE c.oid IN (\
           SELECT n.oid FROM pg_catalog.pg_class n \
             WHERE n.relnamespace = 'public'::regnamespace AND n.relname = {param}::text \
           UNION SELECT dep.refobjid FROM pg_catalog.pg_class v \
             JOIN pg_catalog.pg_rewrite r ON r.ev_class = v.oid \
             JOIN pg_catalog.pg_depend dep ON dep.classid = 'pg_catalog.pg_rewrite'::regclass \
               AND dep.objid = r.oid AND dep.refclassid = 'pg_catalog.pg_class'::regclass \
             WHERE v.relnamespace = 'public'::regnamespace AND v.relname = {param}::text \
               AND dep.refobjid <> v.oid))"
    )
}

/// The metadata cache.
#[derive(Clone)]
pub struct Catalog {
    cache: Cache<(String, bool), Arc<Table>>,
}

impl Default for Catalog {
    fn default() -> Self {
        Catalog::new(10_000, Duration::from_secs(3600))
    }
}

impl Catalog {
    pub fn new(max_entries: u64, ttl: Duration) -> Catalog {
        Catalog {
            cache: Cache::builder()
                .max_capacity(max_entries)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The table `requested` names (a table or an alias), from cache or freshly loaded.
    /// `Ok(None)` when it does not exist.
    /// With `direct`, `requested` is taken as the table itself, without resolution through
    /// `_table_metadata` (CKAN's `public_table_search` tables).
    pub async fn get(
        &self,
        client: &Conn,
        requested: &str,
        direct: bool,
    ) -> Result<Option<Arc<Table>>, ApiError> {
        // Keyed with `direct` too: `_table_metadata` is a table to datastore_search but not
        // a resource to datastore_info.
        let key = (requested.to_string(), direct);
        let table = match self.cache.get(&key).await {
            Some(t) => Some(t),
            None => {
                let loaded = load(client, requested, direct).await?;
                if let Some(t) = &loaded {
                    self.cache.insert(key, t.clone()).await;
                }
                loaded
            }
        };
        // The request goes on to read this table on this connection (see `db::Retirement`).
        if let Some(t) = &table {
            client.touch(&t.id);
        }
        Ok(table)
    }

    /// Forgets what `requested` resolved to (its fingerprint no longer matches).
    pub async fn invalidate(&self, requested: &str) {
        for direct in [false, true] {
            self.cache
                .invalidate(&(requested.to_string(), direct))
                .await;
        }
    }
}

/// Reads the metadata: resolution through `_table_metadata` (as CKAN does), then the columns.
async fn load(
    client: &Conn,
    requested: &str,
    direct: bool,
) -> Result<Option<Arc<Table>>, ApiError> {
    let db = |e: tokio_postgres::Error| crate::error::from_db_error(&e, "catalog lookup");
    // The relation read: the name itself (`direct`), else what CKAN's `_table_metadata` says
    // the name resolves to (an alias's target; no row: not a DataStore name). Resolved inside
    // the one statement, so a table read for the first time costs one round trip, not two; the
    // view's filter on `name` is pushed down to index lookups (docs/portal-scale.md).
    let real = if direct {
        "$1::text"
    } else {
        "(SELECT coalesce(m.alias_of::text, m.name::text) FROM public.\"_table_metadata\" m \
          WHERE m.name = $1::text LIMIT 1)"
    };
    let sql = format!(
        "SELECT a.attname::text, t.typname::text, format_type(a.atttypid, NULL), \
                d.description, {fp}, pg_current_snapshot()::text, c.relname::text \
         FROM pg_catalog.pg_class c \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_catalog.pg_description d ON d.objoid = c.oid \
           AND d.classoid = 'pg_catalog.pg_class'::regclass AND d.objsubid = a.attnum \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname = {real} \
         ORDER BY a.attnum",
        fp = fingerprint_sql("$1")
    );
    let rows = client
        .query_cached(&sql, &[(&requested, Type::TEXT)])
        .await
        .map_err(db)?;
    if rows.is_empty() {
        return Ok(None);
    }
    let real: String = rows[0].get(6);
    let fingerprint: String = rows[0].get(4);
    let snapshot: String = rows[0].get(5);
    let mut columns = vec![Column {
        name: "_id".into(),
        typname: "int".into(),
        kind: ColumnKind::Other,
        sql_type: "integer".into(),
        info: None,
    }];
    // CKAN drops every field's info when one comment is not JSON (`_get_field_info`).
    let mut infos_ok = true;
    for row in &rows {
        let name: String = row.get(0);
        if name == "_id" {
            // Keep CKAN's reported type, but cast filter values to the real one.
            columns[0].sql_type = row.get(2);
        }
        if name.starts_with('_') {
            continue;
        }
        let description: Option<String> = row.get(3);
        let info = match description {
            None => None,
            Some(text) => match serde_json::from_str::<Value>(&text) {
                Ok(Value::Object(mut doc)) => doc.remove("_info"),
                Ok(_) => None,
                Err(_) => {
                    infos_ok = false;
                    None
                }
            },
        };
        let typname: String = row.get(1);
        columns.push(Column {
            name,
            kind: ColumnKind::of_typname(&typname),
            typname,
            sql_type: row.get(2),
            info,
        });
    }
    if !infos_ok {
        for c in &mut columns {
            c.info = None;
        }
    }
    Ok(Some(Arc::new(Table::new(
        TableId(real),
        columns,
        fingerprint,
        snapshot,
    ))))
}
