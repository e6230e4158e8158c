//! `datastore_info`'s `db_size`: the size of the whole database, a few seconds old at most.
//!
//! `pg_database_size(current_database())` stats every file of the database: on a portal with
//! 30,000 DataStore tables that is ~260,000 files and ~0.5 s per call (measured, issue 22), for
//! a figure that changes with every write anywhere and that no client can check against a
//! moment in time. So it is read at most once per `MAX_AGE`: a request that finds the value
//! older serves it and starts one refresh in the background; only the very first request
//! waits for it. This is a deliberate difference from CKAN (README).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::db::{Conn, Lanes};
use crate::error::{from_db_error, ApiError};

/// How old a served `db_size` may be.
pub const MAX_AGE: Duration = Duration::from_secs(5);

const SQL: &str = "SELECT pg_database_size(current_database())";

#[derive(Default)]
struct Inner {
    value: Option<(i64, Instant)>,
    refreshing: bool,
}

#[derive(Default, Clone)]
pub struct DbSize {
    inner: Arc<Mutex<Inner>>,
}

impl DbSize {
    /// The database's size, read at most `MAX_AGE` ago (or now on `client`, the first time).
    /// A stale value is refreshed in the background on a connection of `pool` — never while
    /// the caller holds one of its connections and waits for another.
    pub async fn get(&self, client: &Conn, pool: &Lanes) -> Result<i64, ApiError> {
        let stale = {
            let mut g = self.lock();
            match g.value {
                Some((v, at)) if at.elapsed() <= MAX_AGE => return Ok(v),
                Some((v, _)) if g.refreshing => return Ok(v),
                Some((v, _)) => {
                    g.refreshing = true;
                    Some(v)
                }
                None => None,
            }
        };
        match stale {
            Some(v) => {
                let (this, pool) = (self.clone(), pool.clone());
                tokio::spawn(async move {
                    let out = match pool.any().await {
                        Ok(client) => this.refresh(&client).await,
                        Err(e) => Err(ApiError::Internal(format!("database pool: {e}"))),
                    };
                    if let Err(e) = out {
                        this.lock().refreshing = false;
                        tracing::warn!(error = %e, "db_size refresh failed");
                    }
                });
                Ok(v)
            }
            None => self.refresh(client).await,
        }
    }

    async fn refresh(&self, client: &Conn) -> Result<i64, ApiError> {
        let out = match client.query_cached(SQL, &[]).await {
            Ok(rows) => rows
                .first()
                .map(|r| r.get::<_, i64>(0))
                .ok_or_else(|| ApiError::Internal("no database size".into())),
            Err(e) => Err(from_db_error(&e, SQL)),
        };
        let mut g = self.lock();
        g.refreshing = false;
        if let Ok(v) = out {
            g.value = Some((v, Instant::now()));
        }
        out
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}
