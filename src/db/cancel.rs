//! Cancelling what a dropped request left running.

use std::time::Duration;

use super::conn::Object;
use super::tls::tls;

/// A pooled connection whose running query is cancelled if it is dropped before `release`
/// (a client gone mid-dump, a page abandoned because access was denied). A connection that
/// needed a cancel is closed, never reused (see `drop`).
pub struct CancelOnDrop {
    client: Option<Object>,
    grace: Duration,
}

impl CancelOnDrop {
    /// Cancels at once (a dump: whatever is left of it is long).
    pub fn new(client: Object) -> CancelOnDrop {
        CancelOnDrop::with_grace(client, Duration::ZERO)
    }

    /// Lets an abandoned query finish on its own for `grace` before cancelling it: a short
    /// page usually does, and then no cancel request (a new connection to the server) is
    /// needed at all.
    pub fn with_grace(client: Object, grace: Duration) -> CancelOnDrop {
        CancelOnDrop {
            client: Some(client),
            grace,
        }
    }

    /// Done: the connection goes back to the pool as it is.
    pub fn release(&mut self) {
        drop(self.client.take());
    }
}

impl std::ops::Deref for CancelOnDrop {
    type Target = Object;
    fn deref(&self) -> &Object {
        self.client.as_ref().expect("connection used after release")
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to clean up on: never reuse this connection.
            let _ = Object::take(client);
            return;
        };
        let token = client.cancel_token();
        let grace = self.grace;
        handle.spawn(async move {
            // Statements run in order on a connection, so `SELECT 1` answers once the abandoned
            // query is over.
            let finished = {
                let probe = client.simple_query("SELECT 1");
                tokio::pin!(probe);
                matches!(tokio::time::timeout(grace, &mut probe).await, Ok(Ok(_)))
            };
            if finished {
                return; // back to the pool as it is
            }
            tracing::debug!("query abandoned: cancelling it");
            let _ = token.cancel_query(tls()).await;
            // PostgreSQL delivers a cancel asynchronously: it can land on whatever this
            // connection runs next. So a connection we cancelled on is never reused.
            drop(Object::take(client));
        });
    }
}
