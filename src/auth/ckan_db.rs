//! Strategy A (ckan-auth.md §6.1): the caller and their rights, read from CKAN's main database
//! in one statement, under a role that can read nothing else (`src/sql_assets/authz_role.sql`).

use tokio_postgres::types::Type;

/// Who the token belongs to and what they may do with one resource: one round trip.
///
/// `$1` the token's `jti` (NULL: anonymous), `$2` the table id, `$3` the roles that cascade to
/// sub-organizations, `$4` whether dataset collaborators may read. Resources are found **by id
/// only**: CKAN's fallback to resource *names* lets anyone who can name a resource unlock an
/// orphan table or a private alias (ckan-auth.md §4.4).
pub const VERDICT_SQL: &str = r#"WITH RECURSIVE
caller AS (
  SELECT u.id, u.name, coalesce(u.sysadmin, false) AS sysadmin, u.state = 'active' AS active
    FROM api_token t JOIN "user" u ON u.id = t.user_id
   WHERE t.id = $1::text),
me AS (SELECT id FROM caller WHERE active),
res AS (
  SELECT r.id AS rid, r.state AS rstate, p.id AS pid, p.state AS pstate,
         coalesce(p.private, false) AS private, p.owner_org, p.creator_user_id
    FROM resource r JOIN package p ON p.id = r.package_id
   WHERE r.id = $2::text),
up(gid, depth) AS (
    SELECT owner_org, 0 FROM res WHERE owner_org IS NOT NULL
  UNION
    SELECT m.table_id, up.depth + 1
      FROM member m JOIN up ON m.group_id = up.gid
     WHERE m.table_name = 'group' AND m.state = 'active' AND up.depth < 9)
SELECT EXISTS (SELECT 1 FROM caller) AS token_found,
       (SELECT name FROM caller WHERE active) AS user_name,
       coalesce((SELECT sysadmin FROM caller WHERE active), false) AS sysadmin,
       res.rid IS NOT NULL AS found,
       res.rstate AS resource_state,
       coalesce(res.pstate = 'active' AND NOT res.private, false) AS public,
       coalesce(EXISTS (
         SELECT 1 FROM "group" o
          WHERE o.id = res.owner_org AND o.is_organization AND o.state = 'active'
            AND (EXISTS (SELECT 1 FROM member m
                          WHERE m.group_id = o.id AND m.table_name = 'user'
                            AND m.state = 'active' AND m.table_id = (SELECT id FROM me)
                            AND m.capacity IN ('admin', 'editor', 'member'))
                 OR (o.type = 'organization' AND EXISTS (
                      SELECT 1 FROM up JOIN member m ON m.group_id = up.gid
                       WHERE up.depth > 0 AND m.table_name = 'user'
                         AND m.state = 'active' AND m.table_id = (SELECT id FROM me)
                         AND m.capacity = ANY($3::text[]))))), false) AS org_member,
       coalesce(res.owner_org IS NULL AND res.creator_user_id = (SELECT id FROM me), false) AS creator,
       coalesce($4::bool AND EXISTS (
         SELECT 1 FROM package_member pm
          WHERE pm.package_id = res.pid AND pm.user_id = (SELECT id FROM me)), false) AS collaborator
  FROM (SELECT 1) AS one LEFT JOIN res ON true"#;

pub const VERDICT_TYPES: &[Type] = &[Type::TEXT, Type::TEXT, Type::TEXT_ARRAY, Type::BOOL];

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

pub async fn facts(
    client: &deadpool_postgres::Client,
    jti: Option<&str>,
    table_id: &str,
    cascade_roles: &[String],
    collaborators: bool,
) -> Result<Facts, tokio_postgres::Error> {
    let stmt = client
        .prepare_typed_cached(VERDICT_SQL, VERDICT_TYPES)
        .await?;
    let row = client
        .query_one(&stmt, &[&jti, &table_id, &cascade_roles, &collaborators])
        .await?;
    Ok(Facts {
        token_found: row.get(0),
        user_name: row.get(1),
        sysadmin: row.get(2),
        found: row.get(3),
        resource_active: row.get::<_, Option<&str>>(4) == Some("active"),
        public: row.get(5),
        reader: row.get::<_, bool>(6) || row.get::<_, bool>(7) || row.get::<_, bool>(8),
    })
}
