//! `total`: how it is counted, and the cache that makes it cheap without making it wrong.
//!
//! **Counting.** CKAN 2.12 counts with `count(*)` over the search's FROM/WHERE (with the
//! DISTINCT select list when `distinct`); for unfiltered searches it reads its cached row count
//! in `_table_stats` through the write role. We count exactly in every case: the same number
//! CKAN gives whenever its cached value is current (and the right one when it is not).
//!
//! **Caching** (see docs/totals.md for the reasoning and measurements). A total is cached under
//! everything that decides it: the table, its metadata fingerprint, the count SQL and its bind
//! values (filters, `q`, `language`, `plain`, `full_text`, `distinct` with its select list).
//! `limit`, `offset`, `sort`, `records_format` and, for non-distinct searches, `fields` are
//! not part of the key, so paging through one result counts once. An entry is served only
//! while the database proves it is still right, checked inside the page statement itself:
//!
//! 1. PostgreSQL's current snapshot equals the one the count was taken in: no transaction has
//!    committed since, so no table can have changed (exact, free); or
//! 2. the table's change marker — its relfilenode (TRUNCATE, rewrites) and its cumulative
//!    insert/update/delete/analyze counters — is unchanged **and** the entry is younger than
//!    `max_staleness`. The counters reach the statistics system shortly after each commit
//!    (normally well under a second), so a write that bypasses CKAN is reflected no later than
//!    `max_staleness`; with `max_staleness = 0` only rule 1 applies and totals are always exact.
//!
//! Otherwise the statement counts again (a SQL `CASE` skips the count when the entry is valid),
//! so a hit costs no extra round trip and a miss costs only the count.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use moka::sync::Cache;

use crate::error::ApiError;
use crate::search::execute::TotalColumns;
use crate::search::plan::Plan;
use crate::search::statement::{
    count_query, estimate_statement, recount_statement, EstimateSql, TotalSql, TSTATS_SQL,
};
use crate::sql::Bind;

/// What a cached total is stored under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TotalKey {
    pub table: String,
    pub fingerprint: String,
    pub sql: String,
    pub binds: Vec<Bind>,
}

impl TotalKey {
    fn weight(&self) -> u32 {
        let binds: usize = self
            .binds
            .iter()
            .map(|b| match b {
                Bind::Text(s) => s.len() + 24,
                _ => 24,
            })
            .sum();
        (self.table.len() + self.fingerprint.len() + self.sql.len() + binds + 128)
            .min(u32::MAX as usize) as u32
    }
}

/// A total and the proof of when it was true.
#[derive(Debug)]
pub struct CachedTotal {
    pub total: i64,
    pub snapshot: String,
    pub marker: Option<String>,
    /// CKAN's `_table_stats` row version (`xmin`, or `absent`) when the count was taken, if the
    /// write role is configured.
    pub tstats: Option<String>,
    pub at: Instant,
}

// CKAN's `_table_stats` marker: the version of the table's row, or `absent`. Every CKAN write
// action deletes that row (or, with `calculate_record_count: true`, runs ANALYZE, which the
// statistics marker sees at once), so an unchanged, present row proves CKAN has not written.

/// Reads the `_table_stats` marker through the write role.
pub async fn read_tstats(pool: &crate::db::Pool, table: &str) -> Option<String> {
    let client = pool
        .get()
        .await
        .map_err(|e| tracing::warn!(error = %e, "write pool"))
        .ok()?;
    match client
        .query_cached(TSTATS_SQL, &[(&table, tokio_postgres::types::Type::TEXT)])
        .await
    {
        Ok(rows) => rows.first().map(|r| r.get(0)),
        Err(e) => {
            tracing::warn!(error = %e, "cannot read _table_stats with the write role");
            None
        }
    }
}

/// Counts again, alone (after the statement trusted an entry that CKAN's `_table_stats` has
/// since shown stale). Returns (total, snapshot, marker).
pub async fn recount(
    client: &tokio_postgres::Client,
    key: &TotalKey,
) -> Result<(i64, String, Option<String>), ApiError> {
    let (sql, b) = recount_statement(&key.sql, &key.binds, &key.table);
    let rows = client
        .query_typed(&sql, &b.typed_params())
        .await
        .map_err(|e| crate::error::from_db_error(&e, &sql))?;
    let row = rows
        .first()
        .ok_or_else(|| ApiError::Internal("recount returned no row".into()))?;
    Ok((row.get(0), row.get(1), row.get(2)))
}

/// The total from a statement's answer: the cached one it proved current, or its count, or
/// (when CKAN's `_table_stats` shows the entry it trusted is stale) a recount.
///
/// CKAN's `_table_stats` marker is read (with the write role, when configured) only where a
/// rule needs it: to store with a fresh count, or when the entry was trusted by rule 2 (the
/// snapshot moved). While nothing commits, rule 1 settles the total and no second statement
/// runs. Reading it after the page rather than alongside is safe: a CKAN write in between
/// changes the marker the count was stored with (rule 2 then fails) or the `_table_stats` row
/// (it is then absent or newer, and never proves a stale entry).
pub async fn settle_total(
    cache: &TotalsCache,
    client: &tokio_postgres::Client,
    write_pool: Option<&crate::db::Pool>,
    tp: TotalPlan,
    cols: TotalColumns,
) -> Result<i64, ApiError> {
    let needed = match (&tp.cached, cols.counted) {
        (_, Some(_)) => true,
        (Some(c), None) => c.snapshot != cols.snapshot,
        (None, None) => false,
    };
    let tstats = match (write_pool, needed) {
        (Some(wp), true) => read_tstats(wp, &tp.key.table).await,
        _ => None,
    };
    match tp.settle(
        cache,
        cols.counted,
        cols.snapshot,
        cols.marker,
        tstats.clone(),
    ) {
        Settled::Total(n) => Ok(n),
        Settled::Recount(tp) => {
            let (n, snapshot, marker) = recount(client, &tp.key).await?;
            tp.store(cache, n, snapshot, marker, tstats);
            Ok(n)
        }
    }
}

/// What the statement's answer means for the total.
pub enum Settled {
    Total(i64),
    /// The entry the statement trusted is stale: count again.
    Recount(TotalPlan),
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct TotalsStats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub invalidations: AtomicU64,
}

/// The totals cache, shared by all requests (bounded in bytes, with a TTL).
pub struct TotalsCache {
    cache: Cache<TotalKey, Arc<CachedTotal>>,
    pub max_staleness: Duration,
    /// Whether rule 2 may be used at all (CKAN's write role configured).
    pub trust_markers: bool,
    pub stats: TotalsStats,
}

impl TotalsCache {
    pub fn new(
        max_bytes: u64,
        ttl: Duration,
        max_staleness: Duration,
        trust_markers: bool,
    ) -> TotalsCache {
        TotalsCache {
            cache: Cache::builder()
                .max_capacity(max_bytes)
                .weigher(|k: &TotalKey, _v: &Arc<CachedTotal>| k.weight())
                .time_to_live(ttl)
                .build(),
            max_staleness,
            trust_markers,
            stats: TotalsStats::default(),
        }
    }

    pub fn get(&self, key: &TotalKey) -> Option<Arc<CachedTotal>> {
        self.cache.get(key)
    }

    pub fn insert(&self, key: TotalKey, value: CachedTotal) {
        self.cache.insert(key, Arc::new(value));
    }

    pub fn entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// Drops every entry of `table` (its metadata changed).
    pub fn forget_table(&self, table: &str) {
        let table = table.to_string();
        let _ = self
            .cache
            .invalidate_entries_if(move |k, _| k.table == table);
    }
}

/// How the page statement should produce the total.
#[derive(Debug)]
pub struct TotalPlan {
    pub key: TotalKey,
    pub cached: Option<Arc<CachedTotal>>,
    /// Rule 2 may apply: CKAN's `_table_stats` is readable (write role configured).
    pub trust_markers: bool,
}

impl TotalPlan {
    /// Looks the search's total up under its key (the count's SQL and binds, see
    /// `statement::count_query`).
    pub fn new(cache: &TotalsCache, plan: &Plan) -> Result<TotalPlan, ApiError> {
        let (sql, binds) = count_query(plan)?;
        let key = TotalKey {
            table: plan.table.id.to_string(),
            fingerprint: plan.table.fingerprint.clone(),
            sql,
            binds,
        };
        let cached = cache.get(&key);
        Ok(TotalPlan {
            key,
            cached,
            trust_markers: cache.trust_markers,
        })
    }

    /// What the page statement must do about the total: count, or check the cached entry's
    /// proof (rule 1 always; rule 2 while the entry is younger than `max_staleness` and CKAN's
    /// `_table_stats` row was present when it was counted).
    pub fn sql(&self, max_staleness: Duration) -> TotalSql {
        let with_marker = self.trust_markers;
        match &self.cached {
            None => TotalSql::Count { with_marker },
            Some(c) => {
                let fresh = self.trust_markers
                    && c.at.elapsed() <= max_staleness
                    && c.marker.is_some()
                    && c.tstats.as_deref().is_some_and(|t| t != "absent");
                TotalSql::Check {
                    snapshot: c.snapshot.clone(),
                    marker: if fresh { c.marker.clone() } else { None },
                    with_marker,
                }
            }
        }
    }

    /// Settles the total from the statement's answer, updating the cache and its counters.
    /// `tstats` is CKAN's `_table_stats` marker read during the request.
    pub fn settle(
        self,
        cache: &TotalsCache,
        counted: Option<i64>,
        snapshot: String,
        marker: Option<String>,
        tstats: Option<String>,
    ) -> Settled {
        match (counted, &self.cached) {
            (None, Some(c)) => {
                // Rule 1 (same snapshot) needs nothing more; rule 2 also needs CKAN's marker.
                if c.snapshot == snapshot || (tstats.is_some() && c.tstats == tstats) {
                    cache.stats.hits.fetch_add(1, Ordering::Relaxed);
                    Settled::Total(c.total)
                } else {
                    Settled::Recount(self)
                }
            }
            (Some(n), _) => {
                self.store(cache, n, snapshot, marker, tstats);
                Settled::Total(n)
            }
            // A NULL count without a cached entry cannot happen (the count is unconditional).
            (None, None) => Settled::Recount(self),
        }
    }

    /// Records a fresh count.
    pub fn store(
        self,
        cache: &TotalsCache,
        n: i64,
        snapshot: String,
        marker: Option<String>,
        tstats: Option<String>,
    ) {
        cache.stats.misses.fetch_add(1, Ordering::Relaxed);
        if self.cached.is_some() {
            cache.stats.invalidations.fetch_add(1, Ordering::Relaxed);
        }
        tracing::debug!(table = %self.key.table, total = n, stale = self.cached.is_some(), "totals cache miss");
        cache.insert(
            self.key,
            CachedTotal {
                total: n,
                snapshot,
                marker,
                tstats,
                at: Instant::now(),
            },
        );
    }
}

/// The planner's estimate of the total (for `total_estimation_threshold`, CKAN ≤ 2.11
/// behaviour): `reltuples` for an unfiltered search, as CKAN 2.11's `fast_table_row_count`;
/// otherwise the row estimate of the count's input from `EXPLAIN`.
pub async fn estimate(client: &tokio_postgres::Client, plan: &Plan) -> Result<i64, ApiError> {
    let db = |e: tokio_postgres::Error| crate::error::from_db_error(&e, "estimate");
    match estimate_statement(plan)? {
        EstimateSql::RelTuples(sql, b) => {
            let row = client
                .query_typed(&sql, &b.typed_params())
                .await
                .map_err(db)?;
            Ok(row.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0).max(0))
        }
        EstimateSql::Explain(sql, b) => {
            let rows = client
                .query_typed(&sql, &b.typed_params())
                .await
                .map_err(db)?;
            let v: serde_json::Value = rows.first().map(|r| r.get(0)).unwrap_or_default();
            Ok(v[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0).max(0.0) as i64)
        }
    }
}
