//! The connection pool to the DataStore database (CKAN's read URL).

use std::time::Duration;

use std::sync::Arc;

use deadpool_postgres::{Hook, HookError, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::Settings;

/// A pool whose connections carry CKAN's statement timeout (CKAN: `SET LOCAL statement_timeout`
/// in every search transaction; a session setting gives the same limit without the extra
/// statements).
pub fn pool(settings: &Settings) -> Result<Pool, String> {
    pool_for(
        &settings.read_url,
        settings.pool_size,
        settings.statement_timeout_ms,
    )
    .map_err(|e| format!("read_url: {e}"))
}

/// The pool dumps stream from: separate, so long dumps never starve searches of connections.
pub fn dump_pool(settings: &Settings) -> Result<Pool, String> {
    pool_for(
        &settings.read_url,
        settings.dump_pool_size,
        settings.statement_timeout_ms,
    )
    .map_err(|e| format!("read_url: {e}"))
}

/// A small pool on CKAN's write role, used for one read-only query: `_table_stats`.
pub fn write_pool(settings: &Settings) -> Result<Option<Pool>, String> {
    match &settings.write_url {
        None => Ok(None),
        Some(url) => pool_for(
            url,
            4.min(settings.pool_size),
            settings.statement_timeout_ms,
        )
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
            url,
            settings.pool_size,
            5_000,
            "SET plan_cache_mode = force_generic_plan",
        )
        .map(Some)
        .map_err(|e| format!("ckan_db_url: {e}")),
    }
}

/// The pool `datastore_search_sql` runs on: CKAN's read role, read-only transactions by
/// default, `search_path` pinned to `public`.
pub fn sql_search_pool(settings: &Settings) -> Result<Pool, String> {
    pool_with(
        &settings.read_url,
        4.min(settings.pool_size),
        settings.statement_timeout_ms,
        crate::search_sql::SESSION_SETUP,
    )
    .map_err(|e| format!("read_url: {e}"))
}

/// A pooled connection whose running query is cancelled if it is dropped before `release`
/// (a client gone mid-dump, a page abandoned because access was denied). A connection that
/// needed a cancel is closed, never reused (see `drop`).
pub struct CancelOnDrop {
    client: Option<deadpool_postgres::Object>,
    grace: Duration,
}

impl CancelOnDrop {
    /// Cancels at once (a dump: whatever is left of it is long).
    pub fn new(client: deadpool_postgres::Object) -> CancelOnDrop {
        CancelOnDrop::with_grace(client, Duration::ZERO)
    }

    /// Lets an abandoned query finish on its own for `grace` before cancelling it: a short
    /// page usually does, and then no cancel request (a new connection to the server) is
    /// needed at all.
    pub fn with_grace(client: deadpool_postgres::Object, grace: Duration) -> CancelOnDrop {
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
    type Target = deadpool_postgres::Object;
    fn deref(&self) -> &deadpool_postgres::Object {
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
            let _ = deadpool_postgres::Object::take(client);
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
            drop(deadpool_postgres::Object::take(client));
        });
    }
}

pub(crate) fn pool_for(url: &str, size: usize, timeout: u64) -> Result<Pool, String> {
    pool_with(url, size, timeout, "")
}

fn pool_with(url: &str, size: usize, timeout: u64, extra: &'static str) -> Result<Pool, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    let manager = Manager::from_config(
        config,
        tls(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(30)))
        .create_timeout(Some(Duration::from_secs(10)))
        .post_create(Hook::async_fn(move |client, _| {
            Box::pin(async move {
                client
                    // JIT compilation costs more than it saves on these short statements, and
                    // page + count in one statement crosses `jit_above_cost` where CKAN's two
                    // separate statements do not (measured: 898 ms with JIT, 515 ms without,
                    // for a 1M-row `q` search; docs/totals.md).
                    .simple_query(&format!(
                        "SET statement_timeout = {timeout}; SET jit = off; {extra}"
                    ))
                    .await
                    .map_err(HookError::Backend)?;
                Ok(())
            })
        }))
        .build()
        .map_err(|e| format!("pool: {e}"))
}

/// TLS for PostgreSQL connections with libpq's `sslmode=prefer` / `require` semantics (CKAN's
/// psycopg2 defaults to `prefer`): encrypt when the server offers TLS, without verifying its
/// certificate — libpq only verifies with `verify-ca` / `verify-full`, which tokio-postgres'
/// connection strings do not accept. `sslmode=disable` and unix sockets never use TLS.
pub fn tls() -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
        .with_no_client_auth();
    MakeRustlsConnect::new(config)
}

/// Accepts the server's certificate as libpq's `sslmode=require` does, but still checks the
/// handshake signatures (the connection is encrypted to whoever holds the key).
#[derive(Debug)]
struct EncryptOnly(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
