//! The search pool, split into lanes of a few connections, each table read on its own lane
//! when that lane has a connection free.
//!
//! Why: a PostgreSQL backend that reads a table for the first time builds its catalog-cache
//! entries for it (≈60 KB each, never given back) and, here, plans its statements twice
//! (unnamed, then prepared; `conn.rs`). With any connection serving any table, a portal's long
//! tail of tables is cold on most connections: in the portal-scale mix (Zipf-like picks,
//! 16 connections) 38% of the requests at 10,000 tables hit a table their connection had not
//! read, against 12% that hit a table no connection had read. Sending each table to the same
//! few connections makes the second figure the cost, divides every backend's catalog memory
//! by the number of lanes, and so retires connections that many times less often.
//!
//! A lane never makes a request wait while another has a connection free: the table's lane
//! first, then the other lanes in an order fixed per table, and when every connection is busy,
//! whichever lane frees one first.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use deadpool::managed::PoolError;
use futures_util::future::select_all;

use super::conn::{Object, Pool};

/// Connections per lane: two, so a table's lane can serve a second request for it while the
/// first runs (the hot tables of a portal are read concurrently).
pub const CONNECTIONS_PER_LANE: usize = 2;

/// The search pool's lanes.
#[derive(Clone)]
pub struct Lanes {
    lanes: Arc<[Pool]>,
}

impl Lanes {
    /// Lanes over `pools`, each already sized (see `lane_sizes`).
    pub fn new(pools: Vec<Pool>) -> Lanes {
        assert!(!pools.is_empty(), "at least one lane");
        Lanes {
            lanes: pools.into(),
        }
    }

    /// A connection for reading what `key` (a resource id or alias, as requested) names.
    pub async fn get(&self, key: &str) -> Result<Object, PoolError<tokio_postgres::Error>> {
        let n = self.lanes.len();
        if n == 1 {
            return self.lanes[0].get().await;
        }
        let mut h = std::collections::hash_map::DefaultHasher::new();
        key.hash(&mut h);
        let first = (h.finish() % n as u64) as usize;
        let order = (0..n).map(|k| &self.lanes[(first + k) % n]);
        // A free (or not yet opened) connection, the table's own lane first.
        for lane in order.clone() {
            let mut now = lane.timeouts();
            now.wait = Some(Duration::ZERO);
            match lane.timeout_get(&now).await {
                Ok(conn) => return Ok(conn),
                Err(PoolError::Timeout(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        // All busy: the first lane to free one (each wait bounded by the pool's wait timeout).
        let waits = order.map(|lane| Box::pin(lane.get()));
        select_all(waits).await.0
    }

    /// A connection of any lane (health checks, `db_size`): those of a table's lane are better
    /// kept for it, so the last lane first.
    pub async fn any(&self) -> Result<Object, PoolError<tokio_postgres::Error>> {
        self.lanes[self.lanes.len() - 1].get().await
    }

    /// Open connections over all lanes, and how many of them are idle.
    pub fn connections(&self) -> (usize, usize) {
        self.lanes.iter().fold((0, 0), |(open, idle), lane| {
            let s = lane.status();
            (open + s.size, idle + s.available)
        })
    }

    /// Connections replaced by their successors over all lanes (`conn.rs`, retirement).
    pub fn retired(&self) -> u64 {
        self.lanes.iter().map(|lane| lane.manager().retired()).sum()
    }
}

/// The sizes of the lanes `pool_size` connections make: lanes of `CONNECTIONS_PER_LANE`, the
/// remainder spread over the first ones.
pub fn lane_sizes(pool_size: usize) -> Vec<usize> {
    let lanes = (pool_size / CONNECTIONS_PER_LANE).max(1);
    (0..lanes)
        .map(|i| pool_size / lanes + usize::from(i < pool_size % lanes))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::lane_sizes;

    #[test]
    fn lanes_hold_every_connection() {
        assert_eq!(lane_sizes(1), vec![1]);
        assert_eq!(lane_sizes(2), vec![2]);
        assert_eq!(lane_sizes(3), vec![3]);
        assert_eq!(lane_sizes(5), vec![3, 2]);
        assert_eq!(lane_sizes(16), vec![2; 8]);
        for n in 1..100 {
            assert_eq!(lane_sizes(n).iter().sum::<usize>(), n);
            assert!(lane_sizes(n).iter().all(|&s| s >= 1));
        }
    }
}
