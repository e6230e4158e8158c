//! The three databases, reached through the very pools `serve` uses (same TLS, same session
//! settings): the DataStore's read role must be read-only, the write role must read
//! `_table_stats`, and CKAN's main database role must see the columns access control reads.

use std::time::Duration;

use tokio_postgres::types::Type;

use super::report::Check;
use crate::auth::config::AccessMode;
use crate::auth::role_grants;
use crate::config::Settings;

/// How long a database may take to answer before the check fails.
const CONNECT_WAIT: Duration = Duration::from_secs(15);

/// Where authz_role.sql is, from the package or the source tree.
const AUTHZ_SQL_PATHS: &str =
    "/usr/share/ckan-datastore/authz_role.sql (package) or src/sql_assets/authz_role.sql (source)";

/// `user@host:port/db`, without the password.
pub fn describe(url: &str) -> String {
    let Ok(c) = url.parse::<tokio_postgres::Config>() else {
        return "(unparsable URL)".into();
    };
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or("?"),
        c.get_dbname().unwrap_or("?")
    )
}

/// An error and its sources, each once (tokio-postgres' own Display says only "db error").
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// A connection from `pool`, or the reason there is none.
async fn connect(pool: &crate::db::Pool) -> Result<crate::db::Object, String> {
    match tokio::time::timeout(CONNECT_WAIT, pool.get()).await {
        Err(_) => Err(format!("no answer in {} s", CONNECT_WAIT.as_secs())),
        Ok(Err(e)) => Err(chain(&e)),
        Ok(Ok(c)) => Ok(c),
    }
}

/// What the read role may do besides reading.
const READ_ROLE_SQL: &str = "\
SELECT current_user::text,
       coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false),
       has_database_privilege(current_database(), 'CREATE'),
       has_schema_privilege('public', 'CREATE'),
       ARRAY(SELECT c.relname::text FROM pg_class c
              WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p')
                AND has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')
              ORDER BY c.relname LIMIT 3)";

/// `read_url`: reachable, able to list the DataStore's tables, unable to change anything.
pub async fn read_url(settings: &Settings) -> Check {
    const NAME: &str = "read_url";
    let who = describe(&settings.read_url);
    let fix_url = "set ckan.datastore.read_url (or --read-url) to CKAN's read-only DataStore role";
    // The dump pool: the read URL with the search pool's session settings, as one plain pool.
    let client = match crate::db::dump_pool(settings) {
        Err(e) => return Check::fail(NAME, e, fix_url),
        Ok(pool) => match connect(&pool).await {
            Err(e) => return Check::fail(NAME, format!("{who}: cannot connect: {e}"), fix_url),
            Ok(c) => c,
        },
    };
    let row = match client.query_one(READ_ROLE_SQL, &[]).await {
        Err(e) => return Check::fail(NAME, format!("{who}: {}", chain(&e)), fix_url),
        Ok(r) => r,
    };
    let (role, superuser, create_db, create_schema, writable): (
        String,
        bool,
        bool,
        bool,
        Vec<String>,
    ) = (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4));
    let mut can = Vec::new();
    if superuser {
        can.push("is a superuser".to_string());
    }
    if create_db || create_schema {
        can.push("may create tables or schemas".to_string());
    }
    if !writable.is_empty() {
        can.push(format!("may write to {}", writable.join(", ")));
    }
    if !can.is_empty() {
        return Check::fail(
            NAME,
            format!("{who}: the role `{role}` {}", can.join(", ")),
            format!(
                "use CKAN's read-only DataStore role, as `ckan datastore set-permissions` makes \
                 it (SELECT only), e.g. REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN \
                 SCHEMA public FROM \"{role}\""
            ),
        );
    }
    match client
        .query_one(
            "SELECT count(*) FROM \"_table_metadata\" WHERE alias_of IS NULL",
            &[],
        )
        .await
    {
        Err(e) => Check::fail(
            NAME,
            format!("{who}: cannot read _table_metadata: {}", chain(&e)),
            "run `ckan datastore set-permissions` on the DataStore database (it creates \
             _table_metadata and grants the read role SELECT)",
        ),
        Ok(r) => Check::ok(
            NAME,
            format!(
                "{who}: reachable, read-only (role `{role}`), {} DataStore tables",
                r.get::<_, i64>(0)
            ),
        ),
    }
}

/// `datastore_search_sql` runs callers' SQL as the read role: without `temp_file_limit` (which
/// only a superuser can set) one query can fill the disk with temporary files.
pub async fn read_role_limits(settings: &Settings) -> Check {
    const NAME: &str = "read role limits";
    if !settings.sqlsearch_enabled {
        return Check::skip(NAME, "datastore_search_sql is off");
    }
    let fix = "as a superuser on the DataStore database: psql -v read_role=<read role> -f \
               /usr/share/ckan-datastore/read_role_limits.sql (package) or \
               src/sql_assets/read_role_limits.sql (source); docs/search-sql.md";
    match tokio::time::timeout(CONNECT_WAIT, crate::db::read_role_temp_file_limit(settings)).await {
        Err(_) => Check::fail(NAME, "read_url did not answer", fix),
        Ok(Err(e)) => Check::fail(NAME, format!("read_url: {e}"), fix),
        Ok(Ok(None)) => Check::warn(
            NAME,
            "datastore_search_sql is on and the read role has no temp_file_limit",
            fix,
        ),
        Ok(Ok(Some(limit))) => Check::ok(NAME, format!("temp_file_limit = {limit}")),
    }
}

/// `write_url`: optional; when set, it must read CKAN's `_table_stats` (its only use).
pub async fn write_url(settings: &Settings) -> Check {
    const NAME: &str = "write_url";
    let Some(url) = &settings.write_url else {
        return Check::skip(
            NAME,
            "not set: totals are counted exactly whenever a table may have changed \
             (docs/totals.md)",
        );
    };
    let who = describe(url);
    let fix = "set ckan.datastore.write_url (or --write-url) to CKAN's DataStore write role, or \
               leave it unset";
    let pool = match crate::db::write_pool(settings) {
        Err(e) => return Check::fail(NAME, e, fix),
        Ok(p) => p.expect("write_url is set"),
    };
    let client = match connect(&pool).await {
        Err(e) => return Check::fail(NAME, format!("{who}: cannot connect: {e}"), fix),
        Ok(c) => c,
    };
    // The statement the totals cache runs, on a resource id no table has.
    match client
        .query_typed(
            crate::search::statement::TSTATS_SQL,
            &[(&"ckan-datastore-doctor", Type::TEXT)],
        )
        .await
    {
        Err(e) => Check::fail(
            NAME,
            format!("{who}: cannot read _table_stats: {}", chain(&e)),
            "the write role owns _table_stats after `ckan datastore set-permissions`; or \
             leave write_url unset",
        ),
        Ok(_) => Check::ok(NAME, format!("{who}: reachable, reads _table_stats")),
    }
}

/// Each granted column: whether its table and column exist and the role may read it.
const COLUMNS_SQL: &str = "\
SELECT t.tbl, t.col, c.oid IS NOT NULL, a.attnum IS NOT NULL,
       coalesce(has_column_privilege(c.oid, a.attnum, 'SELECT'), false)
  FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS t(tbl, col, n)
  LEFT JOIN pg_class c ON c.relname = t.tbl AND c.relnamespace = 'public'::regnamespace
  LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = t.col AND NOT a.attisdropped
 ORDER BY t.n";

/// What the role may do that access control does not need.
const EXCESS_SQL: &str = "\
SELECT current_user::text,
       coalesce((SELECT rolsuper FROM pg_roles WHERE rolname = current_user), false),
       coalesce((SELECT has_column_privilege(c.oid, a.attnum, 'SELECT')
                   FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid
                  WHERE c.relname = 'user' AND c.relnamespace = 'public'::regnamespace
                    AND a.attname = 'password'), false),
       coalesce((SELECT has_table_privilege(c.oid, 'INSERT, UPDATE, DELETE')
                   FROM pg_class c
                  WHERE c.relname = 'package' AND c.relnamespace = 'public'::regnamespace), false)";

/// `ckan_db_url`: CKAN's main database, as a role that reads every column access control
/// reads (`authz_role.sql`) and, ideally, nothing else.
pub async fn ckan_db_url(settings: &Settings) -> Check {
    const NAME: &str = "ckan_db_url";
    let make_role = format!(
        "create the role with authz_role.sql ({AUTHZ_SQL_PATHS}) on CKAN's main database and \
         set ckan_db_url (--ckan-db-url) to postgresql://datastore_authz:…@host/ckan_default"
    );
    let Some(url) = &settings.access.ckan_db_url else {
        let mode = match settings.access.mode {
            AccessMode::Public => "access control is off (public)",
            _ => "every access check is asked of CKAN (ckan-api)",
        };
        return Check::warn(
            NAME,
            format!(
                "not set: {mode}, and the DataTables view's endpoints cannot read view \
                 configurations"
            ),
            make_role,
        );
    };
    let who = describe(url);
    let pool = match crate::db::ckan_db_pool(settings) {
        Err(e) => return Check::fail(NAME, e, make_role),
        Ok(p) => p.expect("ckan_db_url is set"),
    };
    let client = match connect(&pool).await {
        Err(e) => return Check::fail(NAME, format!("{who}: cannot connect: {e}"), make_role),
        Ok(c) => c,
    };
    let (tables, columns): (Vec<String>, Vec<String>) = role_grants::grants()
        .into_iter()
        .flat_map(|g| g.columns.into_iter().map(move |c| (g.table.clone(), c)))
        .unzip();
    let rows = match client.query(COLUMNS_SQL, &[&tables, &columns]).await {
        Err(e) => return Check::fail(NAME, format!("{who}: {}", chain(&e)), make_role),
        Ok(rows) => rows,
    };
    let mut missing = Vec::new();
    let mut unreadable = Vec::new();
    for r in &rows {
        let (table, column): (String, String) = (r.get(0), r.get(1));
        let (has_table, has_column, readable): (bool, bool, bool) = (r.get(2), r.get(3), r.get(4));
        let name = format!("{table}.{column}");
        if !has_table || !has_column {
            missing.push(name);
        } else if !readable {
            unreadable.push(name);
        }
    }
    if !missing.is_empty() {
        return Check::fail(
            NAME,
            format!(
                "{who}: not CKAN 2.12's main database: no {}",
                missing.join(", ")
            ),
            "point ckan_db_url at CKAN's main database (sqlalchemy.url's database)",
        );
    }
    if !unreadable.is_empty() {
        return Check::fail(
            NAME,
            format!("{who}: the role cannot read {}", unreadable.join(", ")),
            format!("re-run authz_role.sql ({AUTHZ_SQL_PATHS}) on CKAN's main database"),
        );
    }
    let summary = format!(
        "{who}: reads the {} columns access control needs",
        rows.len()
    );
    match client.query_one(EXCESS_SQL, &[]).await {
        Err(e) => Check::fail(NAME, format!("{who}: {}", chain(&e)), make_role),
        Ok(r) => {
            let (role, superuser, passwords, writes): (String, bool, bool, bool) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let mut more = Vec::new();
            if superuser {
                more.push("is a superuser");
            }
            if passwords {
                more.push("reads password hashes");
            }
            if writes {
                more.push("writes CKAN's datasets");
            }
            if more.is_empty() {
                Check::ok(NAME, format!("{summary}, and nothing else of note"))
            } else {
                Check::warn(
                    NAME,
                    format!("{summary}; the role `{role}` also {}", more.join(", ")),
                    format!("use a least-privilege role: {make_role}"),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn describes_a_database_without_its_password() {
        assert_eq!(
            describe("postgresql://datastore_authz:s3cret@db.example:6432/ckan_default"),
            "datastore_authz@db.example:6432/ckan_default"
        );
        let conninfo = "host=/run/postgresql user=ro password=s3cret dbname=ds";
        assert_eq!(describe(conninfo), "ro@/run/postgresql:5432/ds");
    }
}
