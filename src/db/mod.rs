//! Connections to PostgreSQL: the pools (the DataStore's read role for searches, dumps and SQL
//! search; its write role for `_table_stats`; CKAN's main database for access checks), their
//! connections with a bounded cache of prepared statements (`conn`), cancelling a dropped
//! request's query (`cancel`) and TLS (`tls`).

mod cancel;
mod conn;
mod lanes;
mod tls;

use std::time::Duration;

use deadpool_postgres::{ManagerConfig, RecyclingMethod, Runtime};

use crate::config::Settings;

pub use cancel::CancelOnDrop;
pub use conn::{Conn, Object, Pool, Retirement};
pub use lanes::Lanes;
pub use tls::tls;

/// Prepared statements kept per connection (least recently used first out): enough for every
/// request shape of the hot tables, bounded for portals with tens of thousands of tables.
pub const STATEMENTS_PER_CONNECTION: usize = 256;

/// `application_name` of our sessions when the URL does not set one.
pub const APPLICATION_NAME: &str = "ckan-datastore";

/// The search pool, in lanes by table (`lanes.rs`), whose connections carry CKAN's statement timeout (CKAN: `SET LOCAL statement_timeout`
/// in every search transaction; a session setting gives the same limit without the extra
/// statements).
pub fn pool(settings: &Settings) -> Result<Lanes, String> {
    let pools = lanes::lane_sizes(settings.pool_size)
        .into_iter()
        .map(|size| pool_for(settings, &settings.read_url, size))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("read_url: {e}"))?;
    Ok(Lanes::new(pools))
}

/// The pool dumps stream from: separate, so long dumps never starve searches of connections.
pub fn dump_pool(settings: &Settings) -> Result<Pool, String> {
    pool_for(settings, &settings.read_url, settings.dump_pool_size)
        .map_err(|e| format!("read_url: {e}"))
}

/// A small pool on CKAN's write role, used for one read-only query: `_table_stats`.
pub fn write_pool(settings: &Settings) -> Result<Option<Pool>, String> {
    match &settings.write_url {
        None => Ok(None),
        Some(url) => pool_for(settings, url, 4.min(settings.pool_size))
            .map(Some)
            .map_err(|e| format!("write_url: {e}")),
    }
}

/// CKAN's main database, for access checks (role: src/sql_assets/authz_role.sql). A short
/// statement timeout: a check that hangs must fail (closed) long before the page does.
pub fn ckan_db_pool(settings: &Settings) -> Result<Option<Pool>, String> {
    match &settings.access.ckan_db_url {
        None => Ok(None),
        // The check is one prepared statement whose best plan never depends on its values:
        // without this, PostgreSQL may re-plan it for every execution (custom plans), which
        // costs more than running it.
        Some(url) => pool_with(
            settings,
            url,
            settings.pool_size,
            5_000,
            "SET plan_cache_mode = force_generic_plan",
        )
        .map(Some)
        .map_err(|e| format!("ckan_db_url: {e}")),
    }
}

/// Session settings of the `datastore_search_sql` pool: only `public` is on the search path, and
/// transactions are read-only unless a query says otherwise (it cannot: see `search_sql`).
const SQL_SEARCH_SESSION: &str =
    "SET search_path TO public; SET default_transaction_read_only = on";

/// The pool `datastore_search_sql` runs on: CKAN's read role, read-only transactions by
/// default, `search_path` pinned to `public`.
pub fn sql_search_pool(settings: &Settings) -> Result<Pool, String> {
    pool_with(
        settings,
        &settings.read_url,
        4.min(settings.pool_size),
        settings.statement_timeout_ms,
        SQL_SEARCH_SESSION,
    )
    .map_err(|e| format!("read_url: {e}"))
}

/// The read role's `temp_file_limit` as its sessions see it (`None`: no limit), checked at
/// start-up when `datastore_search_sql` is on and by `doctor`: only a superuser can set it
/// (`src/sql_assets/read_role_limits.sql`), so we can only tell the operator it is missing.
pub async fn read_role_temp_file_limit(settings: &Settings) -> Result<Option<String>, String> {
    let (client, connection) = tokio_postgres::connect(&settings.read_url, tls())
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let row = client
        .query_one("SHOW temp_file_limit", &[])
        .await
        .map_err(|e| e.to_string())?;
    let limit: String = row.get(0);
    Ok((limit != "-1").then_some(limit))
}

/// When `settings` retire a pooled connection.
fn retirement(settings: &Settings) -> Retirement {
    Retirement {
        lifetime: Duration::from_secs(settings.conn_max_lifetime_secs),
        max_tables: settings.conn_max_tables,
    }
}

fn pool_for(settings: &Settings, url: &str, size: usize) -> Result<Pool, String> {
    pool_with(settings, url, size, settings.statement_timeout_ms, "")
}

fn pool_with(
    settings: &Settings,
    url: &str,
    size: usize,
    timeout: u64,
    extra: &'static str,
) -> Result<Pool, String> {
    let mut config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    // Names our sessions in pg_stat_activity (and for `doctor`, the benchmarks and an
    // operator's monitoring) unless the URL names them itself.
    if config.get_application_name().is_none() {
        config.application_name(APPLICATION_NAME);
    }
    let manager = deadpool_postgres::Manager::from_config(
        config,
        tls(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    // JIT compilation costs more than it saves on these short statements, and page + count in
    // one statement crosses `jit_above_cost` where CKAN's two separate statements do not
    // (measured: 898 ms with JIT, 515 ms without, for a 1M-row `q` search; docs/totals.md).
    let session = format!("SET statement_timeout = {timeout}; SET jit = off; {extra}");
    Pool::builder(conn::Manager::new(
        manager,
        session,
        STATEMENTS_PER_CONNECTION,
        retirement(settings),
    ))
    .max_size(size)
    .runtime(Runtime::Tokio1)
    .wait_timeout(Some(Duration::from_secs(30)))
    .create_timeout(Some(Duration::from_secs(10)))
    .build()
    .map_err(|e| format!("pool: {e}"))
}
