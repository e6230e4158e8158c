//! Pooled connections that keep their prepared statements.
//!
//! PostgreSQL parses and plans a statement sent unnamed every time; a named (prepared) one once
//! per connection, after which each execution only binds and runs (with a generic plan once
//! PostgreSQL finds it as good as the custom ones: `plan_cache_mode = auto`, which keeps custom
//! plans where a value changes the plan). Measured on page100 before this: parse ≈1.0 ms,
//! plan ≈3.1 ms, execute ≈1.0 ms (BENCHMARKS.md). Statement texts depend only on a request's
//! shape (values are always bound), so a connection sees the same few texts again and again.
//!
//! A text is run unnamed the first time a connection sees it and prepared the second time, so
//! the long tail of statements seen once (a portal's rarely read tables) costs one round trip
//! instead of two. Each prepared statement lives in its backend's memory, and a portal with
//! tens of thousands of tables produces as many texts, so each connection keeps at most
//! `capacity` statements,
//! least recently used first out; a statement that falls out is closed on the server (tokio-
//! postgres sends `Close` when the last handle to it is dropped).
//!
//! A table's metadata changing under a prepared statement cannot make it answer stale bytes:
//! PostgreSQL re-analyses a prepared statement whose relations changed, every statement's
//! result columns are fixed (JSON or CSV text, ids, counts) so "cached plan must not change
//! result type" cannot arise, and the statement's metadata fingerprint tells the search to
//! reload its plan (see `catalog.rs`).

use std::collections::HashSet;
use std::hash::{BuildHasher, Hash, Hasher};
use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use lru::LruCache;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, Row, Statement};

/// One pooled connection: the client, its prepared statements, and what decides when it is
/// retired.
pub struct Conn {
    client: deadpool_postgres::ClientWrapper,
    statements: Mutex<LruCache<String, Statement>>,
    /// Hashes of texts run once, unprepared: a text is prepared the second time it is seen,
    /// so the long tail of one-off statements (a portal's rarely read tables) costs one round
    /// trip, not two, and does not push the hot statements out.
    seen_once: Mutex<LruCache<u64, ()>>,
    /// Hashes of the tables read on this connection (each costs its backend catalog-cache
    /// memory that PostgreSQL never gives back).
    tables: Mutex<HashSet<u64>>,
    retire_at: Instant,
}

impl std::ops::Deref for Conn {
    type Target = Client;
    fn deref(&self) -> &Client {
        &self.client
    }
}

impl Conn {
    /// The prepared statement for `sql` (parameter types `types`), prepared on this connection
    /// the first time it is seen.
    pub async fn prepare_cached(&self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        if let Some(st) = locked(&self.statements).get(sql) {
            return Ok(st.clone());
        }
        self.prepare_and_keep(sql, types).await
    }

    async fn prepare_and_keep(&self, sql: &str, types: &[Type]) -> Result<Statement, Error> {
        let st = self.client.prepare_typed(sql, types).await?;
        // Whatever falls out is closed on the server once no running query holds it.
        locked(&self.statements).put(sql.to_string(), st.clone());
        Ok(st)
    }

    /// Runs `sql` with typed parameters (the shape `query_typed` takes): as a prepared
    /// statement when this connection has seen the text before, else unnamed (one round trip)
    /// and remembered, so that the second time prepares it.
    pub async fn query_cached(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        let cached = locked(&self.statements).get(sql).cloned();
        let st = match cached {
            Some(st) => st,
            None => {
                let key = text_hash(sql);
                let again = {
                    let mut seen = locked(&self.seen_once);
                    seen.pop(&key).is_some() || {
                        seen.put(key, ());
                        false
                    }
                };
                if !again {
                    return self.client.query_typed(sql, params).await;
                }
                let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
                self.prepare_and_keep(sql, &types).await?
            }
        };
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
        self.client.query(&st, &values).await
    }

    /// Notes that this connection reads `table` (see `Manager::recycle`).
    pub fn touch(&self, table: &str) {
        locked(&self.tables).insert(text_hash(table));
    }

    fn tables_read(&self) -> usize {
        locked(&self.tables).len()
    }
}

/// `m`'s guard. These maps are updated by single calls, so a panic while one was held cannot
/// have left it half-updated: a poisoned lock is taken as it is.
fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// When a pooled connection is retired and replaced by a fresh one.
#[derive(Debug, Clone, Copy)]
pub struct Retirement {
    /// After this long (spread by up to 20% per connection, so that they are replaced one at a
    /// time rather than all together).
    pub lifetime: Duration,
    /// Or once it has read this many distinct tables.
    pub max_tables: usize,
}

/// A text's hash (the same on every connection of this process).
fn text_hash(sql: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    sql.hash(&mut h);
    h.finish()
}

/// deadpool-postgres' manager (connect, recycle), with a statement cache per connection and
/// connections retired by age and by the number of tables they have read.
pub struct Manager {
    inner: deadpool_postgres::Manager,
    capacity: NonZeroUsize,
    retirement: Retirement,
}

impl Manager {
    pub fn new(
        inner: deadpool_postgres::Manager,
        statements_per_connection: usize,
        retirement: Retirement,
    ) -> Manager {
        Manager {
            inner,
            capacity: NonZeroUsize::new(statements_per_connection.max(1)).expect("at least 1"),
            retirement,
        }
    }

    /// This connection's lifetime: 80–100% of the configured one.
    fn lifetime(&self) -> Duration {
        let random = std::collections::hash_map::RandomState::new().hash_one(Instant::now());
        let fraction = 0.8 + 0.2 * (random % 1000) as f64 / 1000.0;
        self.retirement.lifetime.mul_f64(fraction)
    }
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = Error;

    async fn create(&self) -> Result<Conn, Error> {
        Ok(Conn {
            client: managed::Manager::create(&self.inner).await?,
            statements: Mutex::new(LruCache::new(self.capacity)),
            seen_once: Mutex::new(LruCache::new(
                NonZeroUsize::new(self.capacity.get() * 4).expect("non-zero"),
            )),
            tables: Mutex::new(HashSet::new()),
            retire_at: Instant::now() + self.lifetime(),
        })
    }

    /// Before a connection is handed out again: retired when old or when it has read too many
    /// tables (the pool then opens a new one), else deadpool-postgres' own check.
    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<Error> {
        if Instant::now() >= conn.retire_at {
            tracing::debug!("retiring a pooled connection: lifetime reached");
            return Err(RecycleError::message("lifetime reached"));
        }
        if conn.tables_read() >= self.retirement.max_tables {
            tracing::debug!(tables = conn.tables_read(), "retiring a pooled connection");
            return Err(RecycleError::message("read too many tables"));
        }
        managed::Manager::recycle(&self.inner, &mut conn.client, metrics).await
    }
}

pub type Pool = managed::Pool<Manager>;
pub type Object = managed::Object<Manager>;
