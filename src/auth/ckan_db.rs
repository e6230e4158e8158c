//! Strategy A (docs/ckan-spec/ckan-auth.md §6.1): the caller and their rights, read from CKAN's main database
//! under a role that can read nothing else (`src/sql_assets/authz_role.sql`).
//!
//! Every request needs one such check, on a database other than the page's, so it cannot ride
//! along in the page statement. What costs PostgreSQL is the statement round trip itself more
//! than the lookups, so checks that arrive while others are running are answered together: one
//! statement over arrays of (token, table) pairs (`Batcher`). With little traffic a batch holds
//! one check; under load the cost per check falls with the batch size.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Semaphore};
use tokio_postgres::types::Type;

/// Who each token belongs to and what they may do with each resource, for a batch of checks.
///
/// `$1` the tokens' `jti`s (NULL: anonymous) and `$2` the table ids, pairwise; `$3` the roles
/// that cascade to sub-organizations; `$4` whether dataset collaborators may read. Resources
/// are found **by id only**: CKAN's fallback to resource *names* lets anyone who can name a
/// resource unlock an orphan table or a private alias (docs/ckan-spec/ckan-auth.md §4.4). One output row per
/// input pair, in input order (`n`).
pub const VERDICT_SQL: &str = r#"WITH RECURSIVE
q AS (SELECT * FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS q(jti, rid, n)),
caller AS (
  SELECT q.n, u.id, u.name, coalesce(u.sysadmin, false) AS sysadmin, u.state = 'active' AS active
    FROM q JOIN api_token t ON t.id = q.jti JOIN "user" u ON u.id = t.user_id),
me AS (SELECT n, id FROM caller WHERE active),
res AS (
  SELECT q.n, r.id AS rid, r.state AS rstate, p.id AS pid, p.state AS pstate,
         coalesce(p.private, false) AS private, p.owner_org, p.creator_user_id
    FROM q JOIN resource r ON r.id = q.rid JOIN package p ON p.id = r.package_id),
up(n, gid, depth) AS (
    SELECT n, owner_org, 0 FROM res WHERE owner_org IS NOT NULL
  UNION
    SELECT up.n, m.table_id, up.depth + 1
      FROM member m JOIN up ON m.group_id = up.gid
     WHERE m.table_name = 'group' AND m.state = 'active' AND up.depth < 9)
SELECT q.n,
       EXISTS (SELECT 1 FROM caller c WHERE c.n = q.n) AS token_found,
       (SELECT c.name FROM caller c WHERE c.n = q.n AND c.active) AS user_name,
       coalesce((SELECT c.sysadmin FROM caller c WHERE c.n = q.n AND c.active), false) AS sysadmin,
       res.rid IS NOT NULL AS found,
       res.rstate AS resource_state,
       coalesce(res.pstate = 'active' AND NOT res.private, false) AS public,
       coalesce(EXISTS (
         SELECT 1 FROM "group" o
          WHERE o.id = res.owner_org AND o.is_organization AND o.state = 'active'
            AND (EXISTS (SELECT 1 FROM member m
                          WHERE m.group_id = o.id AND m.table_name = 'user'
                            AND m.state = 'active'
                            AND m.table_id = (SELECT id FROM me WHERE me.n = q.n)
                            AND m.capacity IN ('admin', 'editor', 'member'))
                 OR (o.type = 'organization' AND EXISTS (
                      SELECT 1 FROM up JOIN member m ON m.group_id = up.gid
                       WHERE up.n = q.n AND up.depth > 0 AND m.table_name = 'user'
                         AND m.state = 'active'
                         AND m.table_id = (SELECT id FROM me WHERE me.n = q.n)
                         AND m.capacity = ANY($3::text[]))))), false) AS org_member,
       coalesce(res.owner_org IS NULL
                AND res.creator_user_id = (SELECT id FROM me WHERE me.n = q.n), false) AS creator,
       coalesce($4::bool AND EXISTS (
         SELECT 1 FROM package_member pm
          WHERE pm.package_id = res.pid
            AND pm.user_id = (SELECT id FROM me WHERE me.n = q.n)), false) AS collaborator
  FROM q LEFT JOIN res ON res.n = q.n
 ORDER BY q.n"#;

pub const VERDICT_TYPES: &[Type] = &[
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::TEXT_ARRAY,
    Type::BOOL,
];

/// The first question for every caller: does a resource have this id, is it active, and is its
/// dataset active and public? Public data is readable by everyone, whoever the caller is (an
/// invalid token only makes them anonymous), so most checks end here, with two index lookups
/// per table; only private or orphan tables need `VERDICT_SQL` and the caller's identity.
pub const PUBLIC_SQL: &str = r#"SELECT q.n, r.id IS NOT NULL, r.state,
       coalesce(p.state = 'active' AND NOT coalesce(p.private, false), false)
  FROM unnest($1::text[]) WITH ORDINALITY AS q(rid, n)
  LEFT JOIN resource r ON r.id = q.rid
  LEFT JOIN package p ON p.id = r.package_id
 ORDER BY q.n"#;

/// The facts one verdict is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// An `api_token` row matched the `jti` (whatever its user's state).
    pub token_found: bool,
    /// The caller, if the token's user is active.
    pub user_name: Option<String>,
    pub sysadmin: bool,
    /// A `resource` row has the table's id.
    pub found: bool,
    pub resource_active: bool,
    pub public: bool,
    /// Reads through membership, authorship or collaboration.
    pub reader: bool,
}

/// Which statement a batch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Question {
    /// `PUBLIC_SQL`: only the resource's facts (the token is not looked at).
    Public,
    /// `VERDICT_SQL`: the caller's identity and rights too.
    Caller,
}

/// The checks of one batch, answered by one statement.
pub async fn facts_batch(
    client: &crate::db::Object,
    question: Question,
    checks: &[(Option<String>, String)],
    cascade_roles: &[String],
    collaborators: bool,
) -> Result<Vec<Facts>, tokio_postgres::Error> {
    if question == Question::Public {
        let rids: Vec<&str> = checks.iter().map(|(_, r)| r.as_str()).collect();
        let stmt = client
            .prepare_cached(PUBLIC_SQL, &[Type::TEXT_ARRAY])
            .await?;
        let rows = client.query(&stmt, &[&rids]).await?;
        return Ok(rows
            .iter()
            .map(|row| Facts {
                found: row.get(1),
                resource_active: row.get::<_, Option<&str>>(2) == Some("active"),
                public: row.get(3),
                ..Facts::default()
            })
            .collect());
    }
    let jtis: Vec<Option<&str>> = checks.iter().map(|(j, _)| j.as_deref()).collect();
    let rids: Vec<&str> = checks.iter().map(|(_, r)| r.as_str()).collect();
    let stmt = client.prepare_cached(VERDICT_SQL, VERDICT_TYPES).await?;
    let rows = client
        .query(&stmt, &[&jtis, &rids, &cascade_roles, &collaborators])
        .await?;
    Ok(rows
        .iter()
        .map(|row| Facts {
            token_found: row.get(1),
            user_name: row.get(2),
            sysadmin: row.get(3),
            found: row.get(4),
            resource_active: row.get::<_, Option<&str>>(5) == Some("active"),
            public: row.get(6),
            reader: row.get::<_, bool>(7) || row.get::<_, bool>(8) || row.get::<_, bool>(9),
        })
        .collect())
}

type Reply = oneshot::Sender<Result<Facts, String>>;
/// A check waiting for a statement: (token `jti`, table id) and where to send its facts.
type Waiting = ((Option<String>, String), Reply);

/// Answers checks in batches without a task of its own: whoever gets one of the few
/// statement slots takes every check waiting at that moment (its own and others') and answers
/// them all; the others wait for their answer or for a slot, whichever comes first. The
/// statement runs in a task of its own, so a caller that goes away never strands the others.
#[derive(Clone)]
pub struct Batcher {
    inner: Arc<Inner>,
}

struct Inner {
    pool: crate::db::Pool,
    question: Question,
    cascade_roles: Vec<String>,
    collaborators: bool,
    waiting: Mutex<VecDeque<Waiting>>,
    slots: Arc<Semaphore>,
    statements: std::sync::atomic::AtomicU64,
}

/// Largest batch: bounds one statement's arrays.
const MAX_BATCH: usize = 256;

impl Batcher {
    pub fn new(
        pool: crate::db::Pool,
        question: Question,
        cascade_roles: Vec<String>,
        collaborators: bool,
        concurrency: usize,
    ) -> Batcher {
        Batcher {
            inner: Arc::new(Inner {
                pool,
                question,
                cascade_roles,
                collaborators,
                waiting: Mutex::new(VecDeque::new()),
                slots: Arc::new(Semaphore::new(concurrency.max(1))),
                statements: Default::default(),
            }),
        }
    }

    /// Statements run so far (each answers one batch).
    pub fn statements(&self) -> u64 {
        self.inner
            .statements
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The facts for the token `jti` (None: anonymous) and the table `table_id`.
    pub async fn facts(&self, jti: Option<&str>, table_id: &str) -> Result<Facts, String> {
        let (tx, mut rx) = oneshot::channel();
        self.inner
            .waiting
            .lock()
            .expect("batch queue")
            .push_back(((jti.map(str::to_string), table_id.to_string()), tx));
        loop {
            tokio::select! {
                answer = &mut rx => {
                    return answer.unwrap_or_else(|_| Err("access check abandoned".into()));
                }
                slot = self.inner.slots.clone().acquire_owned() => {
                    let slot = slot.map_err(|e| e.to_string())?;
                    let batch = self.inner.take_waiting();
                    if batch.is_empty() {
                        // Someone else took our check: its answer is on the way.
                        drop(slot);
                        return rx.await.unwrap_or_else(|_| Err("access check abandoned".into()));
                    }
                    let inner = self.inner.clone();
                    tokio::spawn(async move {
                        inner.answer(batch).await;
                        drop(slot);
                    });
                }
            }
        }
    }
}

impl Inner {
    fn take_waiting(&self) -> Vec<Waiting> {
        let mut q = self.waiting.lock().expect("batch queue");
        let n = q.len().min(MAX_BATCH);
        q.drain(..n).collect()
    }

    async fn answer(&self, batch: Vec<Waiting>) {
        let (checks, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        self.statements
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let result = async {
            let client = self.pool.get().await.map_err(|e| e.to_string())?;
            facts_batch(
                &client,
                self.question,
                &checks,
                &self.cascade_roles,
                self.collaborators,
            )
            .await
            .map_err(|e| e.to_string())
        }
        .await;
        let result = match result {
            Ok(facts) if facts.len() != replies.len() => Err(format!(
                "{} answers for {} checks",
                facts.len(),
                replies.len()
            )),
            r => r,
        };
        match result {
            Ok(facts) => {
                for (reply, f) in replies.into_iter().zip(facts) {
                    let _ = reply.send(Ok(f));
                }
            }
            Err(e) => {
                for reply in replies {
                    let _ = reply.send(Err(e.clone()));
                }
            }
        }
    }
}
