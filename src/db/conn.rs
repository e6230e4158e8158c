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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleResult};
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
    /// The connection that replaces this one once it is due for retirement, opened in the
    /// background (see `Manager::recycle`).
    replacement: Arc<Mutex<Replacement>>,
}

/// Where a retiring connection's successor is.
enum Replacement {
    None,
    Opening,
    Ready(deadpool_postgres::ClientWrapper),
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

    fn due(&self, retirement: &Retirement) -> bool {
        Instant::now() >= self.retire_at || self.tables_read() >= retirement.max_tables
    }

    /// Puts `fresh` in the place of this connection's client, with nothing prepared or read
    /// yet; the old client is closed (by being dropped).
    fn renew(&mut self, fresh: deadpool_postgres::ClientWrapper, retire_at: Instant) {
        self.client = fresh;
        locked(&self.statements).clear();
        locked(&self.seen_once).clear();
        locked(&self.tables).clear();
        self.retire_at = retire_at;
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

/// deadpool-postgres' manager (connect, recycle), with a statement cache per connection, the
/// pool's session settings, and connections retired by age and by the number of tables they
/// have read.
pub struct Manager {
    inner: Arc<deadpool_postgres::Manager>,
    /// Run first on every new connection (statement timeout, …). Here rather than in a pool
    /// hook because replacements are opened outside the pool.
    session: Arc<str>,
    capacity: NonZeroUsize,
    retirement: Retirement,
    /// Set while a replacement is being opened: one at a time per pool, so retiring never
    /// costs PostgreSQL more than one connection start at once.
    opening: Arc<AtomicBool>,
    /// Connections replaced by their successors (for /metrics).
    retired: AtomicU64,
}

/// A new connection with the pool's session settings.
async fn open(
    inner: &deadpool_postgres::Manager,
    session: &str,
) -> Result<deadpool_postgres::ClientWrapper, Error> {
    let client = managed::Manager::create(inner).await?;
    if !session.is_empty() {
        client.batch_execute(session).await?;
    }
    Ok(client)
}

impl Manager {
    pub fn new(
        inner: deadpool_postgres::Manager,
        session: String,
        statements_per_connection: usize,
        retirement: Retirement,
    ) -> Manager {
        Manager {
            inner: Arc::new(inner),
            session: session.into(),
            capacity: NonZeroUsize::new(statements_per_connection.max(1)).expect("at least 1"),
            retirement,
            opening: Arc::new(AtomicBool::new(false)),
            retired: AtomicU64::new(0),
        }
    }

    /// How many of this pool's connections have been replaced by their successors.
    pub fn retired(&self) -> u64 {
        self.retired.load(Ordering::Relaxed)
    }

    /// Starts opening `conn`'s successor in the background unless one is already on its way
    /// (for it or, since one at a time, for another connection of this pool).
    fn start_replacing(&self, conn: &Conn) {
        let mut slot = locked(&conn.replacement);
        if !matches!(*slot, Replacement::None)
            || self
                .opening
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        *slot = Replacement::Opening;
        drop(slot);
        let (inner, session, opening) = (
            self.inner.clone(),
            self.session.clone(),
            self.opening.clone(),
        );
        let replacement = conn.replacement.clone();
        tokio::spawn(async move {
            let opened = open(&inner, &session).await;
            let mut slot = locked(&replacement);
            *slot = match opened {
                Ok(fresh) => Replacement::Ready(fresh),
                Err(e) => {
                    // The old connection goes on serving; the next recycle tries again.
                    tracing::warn!("opening a connection to replace a retiring one: {e}");
                    Replacement::None
                }
            };
            opening.store(false, Ordering::Release);
        });
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
            client: open(&self.inner, &self.session).await?,
            statements: Mutex::new(LruCache::new(self.capacity)),
            seen_once: Mutex::new(LruCache::new(
                NonZeroUsize::new(self.capacity.get() * 4).expect("non-zero"),
            )),
            tables: Mutex::new(HashSet::new()),
            retire_at: Instant::now() + self.lifetime(),
            replacement: Arc::new(Mutex::new(Replacement::None)),
        })
    }

    /// Before a connection is handed out again. One due for retirement (old, or it has read
    /// too many tables) goes on serving while its successor is opened in the background, and
    /// is swapped for it here once that is ready: no request waits for a connection to open.
    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<Error> {
        let ready = {
            let mut slot = locked(&conn.replacement);
            match std::mem::replace(&mut *slot, Replacement::None) {
                Replacement::Ready(fresh) => Some(fresh),
                other => {
                    *slot = other;
                    None
                }
            }
        };
        if let Some(fresh) = ready {
            tracing::debug!(tables = conn.tables_read(), "retired a pooled connection");
            managed::Manager::detach(&*self.inner, &mut conn.client);
            conn.renew(fresh, Instant::now() + self.lifetime());
            self.retired.fetch_add(1, Ordering::Relaxed);
        } else if conn.due(&self.retirement) {
            self.start_replacing(conn);
        }
        managed::Manager::recycle(&*self.inner, &mut conn.client, metrics).await
    }

    fn detach(&self, conn: &mut Conn) {
        managed::Manager::detach(&*self.inner, &mut conn.client);
    }
}

pub type Pool = managed::Pool<Manager>;
pub type Object = managed::Object<Manager>;
