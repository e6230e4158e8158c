//! Pooled connections that keep their prepared statements.
//!
//! PostgreSQL parses and plans a statement sent unnamed every time; a named (prepared) one once
//! per connection, after which each execution only binds and runs (with a generic plan once
//! PostgreSQL finds it as good as the custom ones: `plan_cache_mode = auto`, which keeps custom
//! plans where a value changes the plan). Measured on page100 before this: parse ≈1.0 ms,
//! plan ≈3.1 ms, execute ≈1.0 ms (BENCHMARKS.md). Statement texts depend only on a request's
//! shape (values are always bound), so a connection sees the same few texts again and again.
//!
//! Each prepared statement lives in its backend's memory, and a portal with tens of thousands
//! of tables produces as many texts, so each connection keeps at most `capacity` statements,
//! least recently used first out; a statement that falls out is closed on the server (tokio-
//! postgres sends `Close` when the last handle to it is dropped).
//!
//! A table's metadata changing under a prepared statement cannot make it answer stale bytes:
//! PostgreSQL re-analyses a prepared statement whose relations changed, every statement's
//! result columns are fixed (JSON or CSV text, ids, counts) so "cached plan must not change
//! result type" cannot arise, and the statement's metadata fingerprint tells the search to
//! reload its plan (see `catalog.rs`).

use std::num::NonZeroUsize;
use std::sync::Mutex;

use deadpool::managed::{self, Metrics, RecycleResult};
use lru::LruCache;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Error, Row, Statement};

/// One pooled connection: the client and its prepared statements.
pub struct Conn {
    client: deadpool_postgres::ClientWrapper,
    statements: Mutex<LruCache<String, Statement>>,
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
        if let Some(st) = self.lock().get(sql) {
            return Ok(st.clone());
        }
        let st = self.client.prepare_typed(sql, types).await?;
        // Whatever falls out is closed on the server once no running query holds it.
        self.lock().put(sql.to_string(), st.clone());
        Ok(st)
    }

    /// Runs `sql` as a prepared statement with typed parameters (the shape `query_typed` takes).
    pub async fn query_cached(
        &self,
        sql: &str,
        params: &[(&(dyn ToSql + Sync), Type)],
    ) -> Result<Vec<Row>, Error> {
        let types: Vec<Type> = params.iter().map(|(_, t)| t.clone()).collect();
        let st = self.prepare_cached(sql, &types).await?;
        let values: Vec<&(dyn ToSql + Sync)> = params.iter().map(|(v, _)| *v).collect();
        self.client.query(&st, &values).await
    }

    /// How many statements this connection keeps prepared.
    pub fn prepared(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LruCache<String, Statement>> {
        // A panic while holding the lock cannot leave the map half-updated: recover it.
        self.statements
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// deadpool-postgres' manager (connect, recycle), with a statement cache per connection.
pub struct Manager {
    inner: deadpool_postgres::Manager,
    capacity: NonZeroUsize,
}

impl Manager {
    pub fn new(inner: deadpool_postgres::Manager, statements_per_connection: usize) -> Manager {
        Manager {
            inner,
            capacity: NonZeroUsize::new(statements_per_connection.max(1)).expect("at least 1"),
        }
    }
}

impl managed::Manager for Manager {
    type Type = Conn;
    type Error = Error;

    async fn create(&self) -> Result<Conn, Error> {
        Ok(Conn {
            client: managed::Manager::create(&self.inner).await?,
            statements: Mutex::new(LruCache::new(self.capacity)),
        })
    }

    async fn recycle(&self, conn: &mut Conn, metrics: &Metrics) -> RecycleResult<Error> {
        managed::Manager::recycle(&self.inner, &mut conn.client, metrics).await
    }
}

pub type Pool = managed::Pool<Manager>;
pub type Object = managed::Object<Manager>;
