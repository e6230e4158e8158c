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

use crate::search::plan::Plan;
use crate::search::statement::Pieces;
use crate::sql::{Bind, Binder};

/// The count query for `plan`: a scalar subquery (without parentheses).
pub fn count_sql(plan: &Plan, p: &Pieces) -> String {
    if plan.distinct {
        return format!(
            "SELECT count(*) FROM (SELECT DISTINCT {} FROM {} {}) as t",
            p.select, p.from, p.where_
        );
    }
    // Without DISTINCT the select list does not change the number of rows, so it is left out
    // (and out of the cache key: `fields` and `records_format` share one entry).
    format!("SELECT count(*) FROM {} {}", p.from, p.where_)
}

/// SQL for the table's change marker (see the module comment), given the SQL of its name.
pub fn marker_sql(table_name_sql: &str) -> String {
    format!(
        "(SELECT c.relfilenode::text || '/' || pg_stat_get_tuples_inserted(c.oid) || '/' || \
         pg_stat_get_tuples_updated(c.oid) || '/' || pg_stat_get_tuples_deleted(c.oid) || '/' || \
         pg_stat_get_live_tuples(c.oid) || '/' || pg_stat_get_analyze_count(c.oid) || '/' || \
         pg_stat_get_autoanalyze_count(c.oid) FROM pg_catalog.pg_class c \
         WHERE c.relnamespace = 'public'::regnamespace AND c.relname = {table_name_sql})"
    )
}

pub const SNAPSHOT_SQL: &str = "pg_current_snapshot()::text";

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

/// CKAN's `_table_stats` marker: the version of the table's row, or `absent`. Every CKAN write
/// action deletes that row (or, with `calculate_record_count: true`, runs ANALYZE, which the
/// statistics marker sees at once), so an unchanged, present row proves CKAN has not written.
pub const TSTATS_SQL: &str = "SELECT coalesce((SELECT xmin::text FROM public.\"_table_stats\" \
     WHERE resource_id = $1::text::name), 'absent')";

/// Reads the `_table_stats` marker through the write role.
pub async fn read_tstats(pool: &deadpool_postgres::Pool, table: &str) -> Option<String> {
    let client = pool
        .get()
        .await
        .map_err(|e| tracing::warn!(error = %e, "write pool"))
        .ok()?;
    match client
        .query_typed(TSTATS_SQL, &[(&table, tokio_postgres::types::Type::TEXT)])
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
) -> Result<(i64, String, Option<String>), tokio_postgres::Error> {
    let mut b = Binder::params();
    for v in &key.binds {
        b.bind(v.clone());
    }
    let name = b.bind(Bind::Text(key.table.clone()));
    let sql = format!(
        "SELECT ({}), {SNAPSHOT_SQL}, {}",
        key.sql,
        marker_sql(&name)
    );
    let row = client.query_typed(&sql, &b.typed_params()).await?;
    let row = row.first().expect("one row");
    Ok((row.get(0), row.get(1), row.get(2)))
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
    /// Looks the search's total up; `binds_before` is how many binds the pieces used (the count
    /// uses exactly those).
    pub fn new(
        cache: &TotalsCache,
        plan: &Plan,
        p: &Pieces,
        b: &Binder,
        trust_markers: bool,
    ) -> TotalPlan {
        let key = TotalKey {
            table: plan.table.id.clone(),
            fingerprint: plan.table.fingerprint.clone(),
            sql: count_sql(plan, p),
            binds: b.values().to_vec(),
        };
        let cached = cache.get(&key);
        TotalPlan {
            key,
            cached,
            trust_markers,
        }
    }

    /// The SQL columns for the total: the count (or NULL when the cached value is still valid),
    /// the snapshot and the table's change marker.
    pub fn columns(
        &self,
        b: &mut Binder,
        table_name_sql: &str,
        max_staleness: Duration,
    ) -> [String; 3] {
        let count = format!("({})", self.key.sql);
        // The marker is only worth reading when rule 2 can ever apply (write role configured).
        let marker = if self.trust_markers {
            marker_sql(table_name_sql)
        } else {
            "NULL::text".to_string()
        };
        match &self.cached {
            None => [count, SNAPSHOT_SQL.to_string(), marker],
            Some(c) => {
                let fresh = self.trust_markers
                    && c.at.elapsed() <= max_staleness
                    && c.marker.is_some()
                    && c.tstats.as_deref().is_some_and(|t| t != "absent");
                let snap = b.bind(Bind::Text(c.snapshot.clone()));
                let valid = if fresh {
                    let mark = b.bind(Bind::Text(c.marker.clone().unwrap_or_default()));
                    format!("{SNAPSHOT_SQL} = {snap} OR {marker} IS NOT DISTINCT FROM {mark}")
                } else {
                    format!("{SNAPSHOT_SQL} = {snap}")
                };
                // Both the count and the marker (stored with a new count) only on a miss.
                [
                    format!("CASE WHEN {valid} THEN NULL ELSE {count} END"),
                    SNAPSHOT_SQL.to_string(),
                    format!("CASE WHEN {valid} THEN NULL ELSE {marker} END"),
                ]
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
pub async fn estimate(
    client: &tokio_postgres::Client,
    plan: &Plan,
) -> Result<i64, crate::error::ApiError> {
    let mut b = Binder::params();
    let p = Pieces::build(plan, &mut b)?;
    let db = |e: tokio_postgres::Error| crate::error::from_db_error(&e, "estimate");
    if p.where_.is_empty() && !plan.distinct {
        let name = b.bind(Bind::Text(plan.table.id.clone()));
        let sql = format!(
            "SELECT coalesce((SELECT reltuples::bigint FROM pg_catalog.pg_class \
             WHERE relnamespace = 'public'::regnamespace AND relname = {name}), 0)"
        );
        let row = client
            .query_typed(&sql, &b.typed_params())
            .await
            .map_err(db)?;
        return Ok(row.first().map(|r| r.get::<_, i64>(0)).unwrap_or(0).max(0));
    }
    let inner = if plan.distinct {
        format!("SELECT DISTINCT {} FROM {} {}", p.select, p.from, p.where_)
    } else {
        format!("SELECT 1 FROM {} {}", p.from, p.where_)
    };
    let rows = client
        .query_typed(&format!("EXPLAIN (FORMAT JSON) {inner}"), &b.typed_params())
        .await
        .map_err(db)?;
    let v: serde_json::Value = rows.first().map(|r| r.get(0)).unwrap_or_default();
    Ok(v[0]["Plan"]["Plan Rows"].as_f64().unwrap_or(0.0).max(0.0) as i64)
}
