//! Access control: exactly CKAN 2.12's readers for every resource, without its leaks.
//!
//! `credentials` reads what a request presents, `token` checks API tokens, `ckan_db` reads the
//! caller's rights from CKAN's main database (the default), `ckan_api` asks CKAN itself when
//! only CKAN can tell (session cookies, auth plugins). `Access::decide` is the one place that
//! turns those into a verdict; `gate` runs it alongside the page query so that the check adds
//! no latency, and cancels the page when the answer is no. The reference is
//! `docs/ckan-spec/ckan-auth.md`; `docs/access-control.md` is the operator's view.

pub mod ckan_api;
pub mod ckan_db;
pub mod config;
pub mod credentials;
pub mod role_grants;
pub mod token;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use ckan_api::Answer;
use ckan_db::Facts;
use config::{AccessMode, AccessSettings};
use credentials::{Identify, Presented};

/// The read paths, whose rules differ in small ways (docs/ckan-spec/ckan-auth.md §2, §3, §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    Search,
    Info,
    Dump,
    /// One table named in a `datastore_search_sql` query.
    Sql,
}

/// Why a caller may not read.
#[derive(Debug, Clone)]
pub enum Denial {
    /// CKAN's `NotAuthorized` for `resource_show`: 403 on the API, 404 on the dump.
    Forbidden { user_name: String },
    /// No `resource` row has the table's id (an orphan table): 404 `Not found`.
    NoResource,
    /// `datastore_info` on a resource that is no longer active: 404.
    ResourceGone,
    /// CKAN's own refusal, passed on verbatim.
    Ckan {
        status: u16,
        content_type: String,
        body: Bytes,
    },
    /// CKAN could not be asked: 503, never a "yes".
    Unavailable(String),
}

impl Denial {
    /// The API error for this denial on the table `real_id`.
    pub fn api_error(&self, real_id: &str) -> ApiError {
        match self {
            Denial::Forbidden { user_name } => ApiError::Forbidden(Some(format!(
                "User {user_name} not authorized to perform resource_show on resource {real_id}"
            ))),
            Denial::NoResource => ApiError::NotFound(None),
            Denial::ResourceGone => ApiError::NotFound(Some("Resource was not found.".into())),
            Denial::Ckan {
                status,
                content_type,
                body,
            } => ApiError::Upstream {
                status: *status,
                content_type: content_type.clone(),
                body: body.clone(),
            },
            Denial::Unavailable(why) => ApiError::Unavailable(why.clone()),
        }
    }
}

pub type Verdict = Result<(), Denial>;

/// SHA-256 of the token's `jti` (never the token itself), endpoint, table.
type DenialKey = ([u8; 32], Endpoint, String);

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct AccessStats {
    pub db_checks: AtomicU64,
    pub ckan_probes: AtomicU64,
    pub denials: AtomicU64,
    pub cache_hits: AtomicU64,
}

/// The access decision for every request.
pub struct Access {
    pub settings: AccessSettings,
    /// Checks on CKAN's database: the resource's own facts, then (for private data) the caller's.
    db: Option<(ckan_db::Batcher, ckan_db::Batcher)>,
    /// CKAN's main database itself, for the few reads that are not access checks.
    main_db: Option<crate::db::Pool>,
    http: reqwest::Client,
    /// Anonymous grants (only with `grant_cache_ms` > 0).
    grants: Option<moka::sync::Cache<(Endpoint, String), ()>>,
    /// Denials, keyed by a hash of the token (only with `deny_cache_ms` > 0).
    denials: Option<moka::sync::Cache<DenialKey, Denial>>,
    pub stats: AccessStats,
}

impl Access {
    pub fn new(settings: AccessSettings, db: Option<crate::db::Pool>) -> Access {
        let main_db = db.clone();
        // A few statements at a time: more would only split the batches (see ckan_db.rs).
        let db = db.map(|pool| {
            let batcher = |q| {
                ckan_db::Batcher::new(
                    pool.clone(),
                    q,
                    settings.cascade_roles.clone(),
                    settings.allow_dataset_collaborators,
                    2,
                )
            };
            (
                batcher(ckan_db::Question::Public),
                batcher(ckan_db::Question::Caller),
            )
        });
        Access {
            grants: ttl_cache(settings.grant_cache_ms),
            denials: ttl_cache(settings.deny_cache_ms),
            settings,
            db,
            main_db,
            http: ckan_api::client(),
            stats: AccessStats::default(),
        }
    }

    /// Statements run on CKAN's database (each answers a batch of checks).
    pub fn db_statements(&self) -> u64 {
        self.db
            .as_ref()
            .map_or(0, |(p, c)| p.statements() + c.statements())
    }

    /// A DataTables view's resource and configuration (CKAN's `resource_view` row), or None.
    pub async fn resource_view(&self, view_id: &str) -> Result<Option<(String, String)>, String> {
        let Some(pool) = &self.main_db else {
            return Err("no CKAN database configured".into());
        };
        let client = pool.get().await.map_err(|e| e.to_string())?;
        let stmt = client
            .prepare_cached(
                "SELECT resource_id, coalesce(config, '{}') FROM resource_view \
                  WHERE id = $1::text AND view_type = 'datatables_view'",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        let row = client
            .query_opt(&stmt, &[&view_id])
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.map(|r| (r.get::<_, Option<String>>(0).unwrap_or_default(), r.get(1))))
    }

    /// The `jti` of the API token that identifies the caller, when CKAN would take the token
    /// as the caller's (valid signature and claims, no JSONP `callback`, no cookie CKAN would
    /// prefer). Checked locally: whether the token is still active is CKAN's database's to
    /// say, at the access decision.
    pub fn token_id(&self, p: &Presented) -> Option<String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let jti = match (&p.token, &self.settings.verifier) {
            (Some(t), Some(v)) => v.jti(t, now)?,
            _ => return None,
        };
        match p.identify(Some(jti), &self.settings) {
            Identify::Token { jti, .. } => Some(jti),
            _ => None,
        }
    }

    pub fn is_public(&self) -> bool {
        self.settings.mode == AccessMode::Public
    }

    /// May the caller who presented `p` use `kind` on the table `table_id` (the real table
    /// behind `id_as_sent`, which may be an alias)?
    pub async fn decide(
        &self,
        p: &Presented,
        table_id: &str,
        id_as_sent: &str,
        kind: Endpoint,
    ) -> Verdict {
        if self.is_public() {
            return Ok(());
        }
        let verdict = self.decide_uncounted(p, table_id, id_as_sent, kind).await;
        if verdict.is_err() {
            self.stats.denials.fetch_add(1, Relaxed);
        }
        verdict
    }

    async fn decide_uncounted(
        &self,
        p: &Presented,
        table_id: &str,
        id_as_sent: &str,
        kind: Endpoint,
    ) -> Verdict {
        let s = &self.settings;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let jti = match (&p.token, &s.verifier) {
            (Some(t), Some(v)) => v.jti(t, now),
            _ => None,
        };
        if s.delegate_everything() {
            return self.ask_ckan(p, table_id, id_as_sent, kind).await;
        }
        let (jti, cookie_fallback) = match p.identify(jti, s) {
            Identify::AskCkan => return self.ask_ckan(p, table_id, id_as_sent, kind).await,
            Identify::Anonymous => (None, false),
            Identify::Token {
                jti,
                cookie_fallback,
            } => (Some(jti), cookie_fallback),
        };
        let deny_key = self.denials.as_ref().map(|_| {
            let h: [u8; 32] = Sha256::digest(jti.as_deref().unwrap_or("").as_bytes()).into();
            (h, kind, table_id.to_string())
        });
        if let (Some(c), Some(k)) = (&self.denials, &deny_key) {
            if let Some(d) = c.get(k) {
                self.stats.cache_hits.fetch_add(1, Relaxed);
                return Err(d);
            }
        }
        let grant_key = (kind, table_id.to_string());
        if let (Some(c), None) = (&self.grants, &jti) {
            if c.contains_key(&grant_key) {
                self.stats.cache_hits.fetch_add(1, Relaxed);
                return Ok(());
            }
        }
        let facts = match self.facts(jti.as_deref(), table_id).await {
            Ok(f) => f,
            Err(e) => return Err(e),
        };
        if cookie_fallback && !facts.token_found {
            // The token is no one's: the session cookie names the caller, and only CKAN can
            // read it.
            return self.ask_ckan(p, table_id, id_as_sent, kind).await;
        }
        let verdict = judge(&facts, kind);
        match (&verdict, &deny_key) {
            (
                Err(d @ (Denial::Forbidden { .. } | Denial::NoResource | Denial::ResourceGone)),
                Some(k),
            ) => {
                if let Some(c) = &self.denials {
                    c.insert(k.clone(), d.clone());
                }
            }
            (Ok(()), _) if jti.is_none() => {
                if let Some(c) = &self.grants {
                    c.insert(grant_key, ());
                }
            }
            _ => {}
        }
        verdict
    }

    async fn facts(&self, jti: Option<&str>, table_id: &str) -> Result<Facts, Denial> {
        let Some((public, caller)) = &self.db else {
            return Err(Denial::Unavailable("no CKAN database configured".into()));
        };
        self.stats.db_checks.fetch_add(1, Relaxed);
        let unavailable = |e: String| {
            tracing::error!(error = %e, "CKAN database: access check failed");
            Denial::Unavailable("CKAN's database could not be reached".into())
        };
        // Public data needs no caller: most checks end with the cheap question.
        let f = public.facts(None, table_id).await.map_err(unavailable)?;
        if (f.found && f.public) || jti.is_none() {
            return Ok(f);
        }
        caller.facts(jti, table_id).await.map_err(unavailable)
    }

    /// Strategy B. With CKAN's database at hand, what does not depend on the caller is
    /// settled first, without asking CKAN: a table no resource has the id of is 404 for
    /// everyone but sysadmins (which keeps CKAN's name-lookup bypasses closed, and is what CKAN
    /// answers for aliases in SQL), and public data is readable by every caller — unless auth
    /// plugins may change that (`delegate_everything`). Only the rest is asked of CKAN.
    async fn ask_ckan(
        &self,
        p: &Presented,
        table_id: &str,
        id_as_sent: &str,
        kind: Endpoint,
    ) -> Verdict {
        let Some(base) = &self.settings.ckan_api_url else {
            return Err(Denial::Unavailable("no CKAN URL configured".into()));
        };
        if self.db.is_some() {
            let f = self.facts(None, table_id).await?;
            if !f.found {
                return Err(Denial::NoResource);
            }
            if f.public && !self.settings.delegate_everything() {
                return judge(&f, kind);
            }
        }
        self.stats.ckan_probes.fetch_add(1, Relaxed);
        match ckan_api::ask(&self.http, base, kind, id_as_sent, p).await {
            Answer::Allowed => Ok(()),
            Answer::Refused {
                status,
                content_type,
                body,
            } => Err(Denial::Ckan {
                status,
                content_type,
                body,
            }),
            Answer::Unavailable(why) => {
                tracing::error!(%why, "access check: CKAN gave no usable answer; refusing");
                Err(Denial::Unavailable(why))
            }
        }
    }
}

fn ttl_cache<K, V>(ms: u64) -> Option<moka::sync::Cache<K, V>>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    (ms > 0).then(|| {
        moka::sync::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_millis(ms))
            .build()
    })
}

/// CKAN's `resource_show` authorization (docs/ckan-spec/ckan-auth.md §2.2, §3) from the facts.
pub fn judge(f: &Facts, kind: Endpoint) -> Verdict {
    if f.sysadmin {
        // Sysadmins skip the check, but `datastore_info` still runs `resource_show`.
        return match kind {
            Endpoint::Info if !f.found => Err(Denial::NoResource),
            Endpoint::Info if !f.resource_active => Err(Denial::ResourceGone),
            _ => Ok(()),
        };
    }
    if !f.found {
        return Err(Denial::NoResource);
    }
    if !(f.public || (f.user_name.is_some() && f.reader)) {
        return Err(Denial::Forbidden {
            user_name: f.user_name.clone().unwrap_or_default(),
        });
    }
    if kind == Endpoint::Info && !f.resource_active {
        return Err(Denial::ResourceGone);
    }
    Ok(())
}

/// Runs `work` (the page query) and `verdict` (the access check) at the same time and yields
/// the work's result only once the verdict is "yes". On "no", `work` is dropped at once: it
/// must cancel its query when dropped (see `db::CancelOnDrop`).
pub async fn gate<T>(
    verdict: impl Future<Output = Verdict>,
    work: impl Future<Output = T>,
) -> Result<T, Denial> {
    tokio::pin!(verdict);
    tokio::pin!(work);
    tokio::select! {
        v = &mut verdict => match v {
            Ok(()) => Ok(work.await),
            Err(d) => Err(d),
        },
        out = &mut work => verdict.await.map(|()| out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            token_found: true,
            user_name: Some("u".into()),
            found: true,
            resource_active: true,
            ..Facts::default()
        }
    }

    #[test]
    fn judge_follows_ckan() {
        let f = facts();
        assert!(
            matches!(judge(&f, Endpoint::Search), Err(Denial::Forbidden { ref user_name }) if user_name == "u")
        );
        assert!(judge(
            &Facts {
                reader: true,
                ..f.clone()
            },
            Endpoint::Search
        )
        .is_ok());
        assert!(judge(
            &Facts {
                public: true,
                user_name: None,
                ..f.clone()
            },
            Endpoint::Dump
        )
        .is_ok());
        // A reader who is not logged in (inactive user) reads nothing private.
        assert!(judge(
            &Facts {
                reader: true,
                user_name: None,
                ..f.clone()
            },
            Endpoint::Search
        )
        .is_err());
        let orphan = Facts {
            found: false,
            public: false,
            ..f.clone()
        };
        assert!(matches!(
            judge(&orphan, Endpoint::Search),
            Err(Denial::NoResource)
        ));
        let admin = Facts {
            sysadmin: true,
            ..orphan.clone()
        };
        assert!(judge(&admin, Endpoint::Search).is_ok());
        assert!(matches!(
            judge(&admin, Endpoint::Info),
            Err(Denial::NoResource)
        ));
        let removed = Facts {
            public: true,
            resource_active: false,
            ..f.clone()
        };
        assert!(judge(&removed, Endpoint::Search).is_ok());
        assert!(matches!(
            judge(&removed, Endpoint::Info),
            Err(Denial::ResourceGone)
        ));
    }

    #[actix_rt::test]
    async fn gate_waits_for_the_verdict_and_drops_work_on_denial() {
        let slow_yes = async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            Ok(())
        };
        assert_eq!(gate(slow_yes, async { 7 }).await.unwrap(), 7);
        let dropped = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        struct OnDrop(std::sync::Arc<std::sync::atomic::AtomicBool>);
        impl Drop for OnDrop {
            fn drop(&mut self) {
                self.0.store(true, Relaxed);
            }
        }
        let guard = OnDrop(dropped.clone());
        let never = async move {
            let _g = guard;
            std::future::pending::<()>().await
        };
        let r = gate(async { Err(Denial::NoResource) }, never).await;
        assert!(r.is_err());
        assert!(dropped.load(Relaxed));
    }
}
