//! The state every request shares: configuration, the database pools and the caches that
//! validate themselves against the database. Built once by `app.rs` (the server) or by the
//! dump command; services below the HTTP layer take it by reference.

use std::time::Duration;

use crate::catalog::Catalog;
use crate::config::Settings;
use crate::error::ApiError;
use crate::search::totals::TotalsCache;

/// State shared by every request.
pub struct AppState {
    pub settings: Settings,
    /// The search pool, in lanes by table (see `db/lanes.rs`).
    pub pool: crate::db::Lanes,
    pub catalog: Catalog,
    pub totals: TotalsCache,
    /// Connections for dumps (kept apart from `pool`: a dump holds one for its whole duration).
    pub dump_pool: crate::db::Pool,
    /// CKAN's write role, for `_table_stats` only (None when not configured).
    pub write_pool: Option<crate::db::Pool>,
    /// Who may read what.
    pub access: crate::auth::Access,
    /// `datastore_info`'s `db_size`, a few seconds old at most.
    pub db_size: crate::db_size::DbSize,
    /// `datastore_search_sql`, when enabled.
    pub sql_search: Option<crate::search_sql::SqlSearch>,
}

impl AppState {
    /// The pools (connected lazily) and empty caches for `settings`.
    pub fn new(settings: Settings) -> Result<AppState, String> {
        let pool = crate::db::pool(&settings)?;
        let write_pool = crate::db::write_pool(&settings)?;
        let dump_pool = crate::db::dump_pool(&settings)?;
        let access =
            crate::auth::Access::new(settings.access.clone(), crate::db::ckan_db_pool(&settings)?);
        let totals = TotalsCache::new(
            settings.totals_cache_bytes,
            Duration::from_secs(settings.totals_cache_ttl_secs),
            Duration::from_millis(settings.totals_max_staleness_ms),
            write_pool.is_some(),
        );
        let sql_search = match settings.sqlsearch_enabled {
            false => None,
            true => {
                let text = match &settings.sqlsearch_allowed_functions_file {
                    None => crate::search_sql::sanitize::DEFAULT_ALLOWED_FUNCTIONS.to_string(),
                    Some(p) => std::fs::read_to_string(p).map_err(|e| {
                        format!(
                            "ckan.datastore.sqlsearch.allowed_functions_file {}: {e}",
                            p.display()
                        )
                    })?,
                };
                Some(crate::search_sql::SqlSearch {
                    functions: crate::search_sql::sanitize::Functions::from_text(&text),
                    pool: crate::db::sql_search_pool(&settings)?,
                })
            }
        };
        Ok(AppState {
            settings,
            pool,
            catalog: Catalog::default(),
            totals,
            write_pool,
            dump_pool,
            access,
            db_size: Default::default(),
            sql_search,
        })
    }

    /// A connection from the search pool for reading the table `rid` names (its lane's when
    /// one is free), or CKAN's 500 when the database cannot be reached.
    pub async fn connection(&self, rid: &str) -> Result<crate::db::Object, ApiError> {
        self.pool
            .get(rid)
            .await
            .map_err(|e| ApiError::Internal(format!("database pool: {e}")))
    }
}
