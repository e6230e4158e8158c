//! Access control against real PostgreSQL: CKAN's main-database tables (schema from CKAN 2.12's
//! `db init`) filled like the spec's fixtures (ckan-auth.md Appendix A), tokens minted as CKAN
//! mints them, and the §7 matrix — every caller class × resource state × search/info/dump —
//! with CKAN's statuses and error bodies, except the name-lookup bypasses (§4.4), which we
//! close, and the dump's 500s, which are 404s here.

use std::collections::HashMap;

use ckan_datastore::ckan_schema::{create_table_sql, FieldDef};
use ckan_datastore::config::{ConfigArgs, Settings};
use ckan_datastore::demo::connect;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tokio::sync::OnceCell;

use crate::harness::{db, spawn_app_settings, Resp, TestApp};

const SECRET: &str = "acl-test-secret-key";

// Tables (resource ids) of the fixture states, R1…R15.
pub const R1: &str = "a1000000-0000-4000-8000-000000000001";
const R2: &str = "acl-alias-pub";
pub const R3: &str = "a3000000-0000-4000-8000-000000000003";
const R4: &str = "acl-alias-priv";
const R5: &str = "a5000000-0000-4000-8000-000000000005";
const R6: &str = "a6000000-0000-4000-8000-000000000006";
const R7: &str = "a7000000-0000-4000-8000-000000000007";
const R8: &str = "a8000000-0000-4000-8000-000000000008";
const R9: &str = "a9000000-0000-4000-8000-000000000009";
const R10: &str = "a1000000-0000-4000-8000-000000000010";
const R11: &str = "a1100000-0000-4000-8000-000000000011";
const R12: &str = "acl-00000000-0000-4000-8000-000000000000";
pub const R13: &str = "acl-alias-collide";
pub const R14: &str = "a1400000-0000-4000-8000-000000000014";
const R15: &str = "a1500000-0000-4000-8000-000000000015";
/// A private dataset's table and an orphan table, for other test modules.
pub const PRIVATE_TABLE: &str = R3;
pub const ORPHAN_TABLE: &str = R11;
/// A table whose dataset's visibility and memberships the freshness test changes.
const FLIP: &str = "af000000-0000-4000-8000-00000000000f";

const STATES: &[&str] = &[
    R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, R11, R12, R13, R14, R15,
];

/// The real table behind each id (aliases resolved), for 403 messages.
fn real(x: &str) -> &str {
    match x {
        R2 => R1,
        R4 | R13 => R3,
        x => x,
    }
}

static FIXTURES: OnceCell<()> = OnceCell::const_new();

pub async fn fixtures() {
    FIXTURES
        .get_or_init(|| async {
            let db = db();
            let w = connect(&db.write).await.unwrap();
            let fields = [("k", "int"), ("v", "text")]
                .iter()
                .map(|(id, t)| FieldDef {
                    id: id.to_string(),
                    type_: t.to_string(),
                    info: None,
                })
                .collect::<Vec<_>>();
            let tables: &[(&str, &[&str])] = &[
                (R1, &[R2]),
                (R3, &[R4, R13]),
                (R5, &[]),
                (R6, &[]),
                (R7, &[]),
                (R8, &[]),
                (R10, &[]),
                (R11, &[]),
                (R14, &[]),
                (R15, &[]),
                (FLIP, &[]),
            ];
            for (id, aliases) in tables {
                let aliases: Vec<String> = aliases.iter().map(|a| a.to_string()).collect();
                let sql = create_table_sql(id, &fields, &[], &aliases).join(";\n") + ";";
                w.batch_execute(&sql).await.unwrap();
                let row = if *id == R14 {
                    "(7, 'secret-seven')"
                } else {
                    "(1, 'one'), (2, 'two')"
                };
                w.batch_execute(&format!("INSERT INTO \"{id}\" (k, v) VALUES {row}"))
                    .await
                    .unwrap();
            }
            let m = connect(&db.main_admin).await.unwrap();
            m.batch_execute(&main_rows()).await.unwrap();
        })
        .await;
}

/// CKAN's main-database rows for the fixtures (ckan-auth.md Appendix A, plus an organization
/// hierarchy and a dataset without an organization, which the spec only read from source).
fn main_rows() -> String {
    let mut sql = String::from(
        "INSERT INTO \"user\" (id, name, sysadmin, state) VALUES
           ('u-sys', 'acl-sysadmin', true, 'active'),
           ('u-member', 'acl-member', false, 'active'),
           ('u-editor', 'acl-editor', false, 'active'),
           ('u-orgadmin', 'acl-orgadmin', false, 'active'),
           ('u-parentadmin', 'acl-parentadmin', false, 'active'),
           ('u-outsider', 'acl-outsider', false, 'active'),
           ('u-otherorg', 'acl-otherorg', false, 'active'),
           ('u-collab', 'acl-collab', false, 'active'),
           ('u-deleted', 'acl-deleted', true, 'deleted'),
           ('u-pending', 'acl-pending', false, 'pending'),
           ('u-exmember', 'acl-exmember', false, 'active'),
           ('u-creator', 'acl-creator', false, 'active'),
           ('u-flipper', 'acl-flipper', false, 'active');
         INSERT INTO \"group\" (id, name, state, type, is_organization) VALUES
           ('g-org', 'acl-org', 'active', 'organization', true),
           ('g-org2', 'acl-org2', 'active', 'organization', true),
           ('g-parent', 'acl-parent', 'active', 'organization', true);
         INSERT INTO member (id, group_id, table_id, state, table_name, capacity) VALUES
           ('m1', 'g-org', 'u-member', 'active', 'user', 'member'),
           ('m2', 'g-org', 'u-editor', 'active', 'user', 'editor'),
           ('m3', 'g-org', 'u-orgadmin', 'active', 'user', 'admin'),
           ('m4', 'g-org2', 'u-otherorg', 'active', 'user', 'admin'),
           ('m5', 'g-org', 'u-exmember', 'deleted', 'user', 'member'),
           ('m6', 'g-parent', 'u-parentadmin', 'active', 'user', 'admin'),
           ('m7', 'g-org', 'g-parent', 'active', 'group', 'parent'),
           ('m8', 'g-org', 'u-deleted', 'active', 'user', 'admin'),
           ('m9', 'g-org', 'u-pending', 'active', 'user', 'admin'),
           ('m10', 'g-org', 'u-flipper', 'active', 'user', 'member');
         INSERT INTO package (id, name, state, private, owner_org, creator_user_id, type) VALUES
           ('p-public', 'acl-public', 'active', false, 'g-org', 'u-sys', 'dataset'),
           ('p-private', 'acl-private', 'active', true, 'g-org', 'u-sys', 'dataset'),
           ('p-draft', 'acl-draft', 'draft', false, 'g-org', 'u-sys', 'dataset'),
           ('p-draftpriv', 'acl-draft-private', 'draft', true, 'g-org', 'u-sys', 'dataset'),
           ('p-del', 'acl-deleted-ds', 'deleted', false, 'g-org', 'u-sys', 'dataset'),
           ('p-delpriv', 'acl-deleted-ds-private', 'deleted', true, 'g-org', 'u-sys', 'dataset'),
           ('p-resdel', 'acl-res-deleted', 'active', false, 'g-org', 'u-sys', 'dataset'),
           ('p-resrem', 'acl-res-removed', 'active', false, 'g-org', 'u-sys', 'dataset'),
           ('p-collide', 'acl-name-collision', 'active', false, 'g-org2', 'u-otherorg', 'dataset'),
           ('p-unowned', 'acl-unowned', 'active', true, NULL, 'u-creator', 'dataset'),
           ('p-flip', 'acl-flip', 'active', false, 'g-org', 'u-sys', 'dataset'),
           ('p-golden', 'acl-golden', 'active', false, 'g-org', 'u-sys', 'dataset');
         INSERT INTO package_member (package_id, user_id, capacity, modified) VALUES
           ('p-private', 'u-collab', 'editor', now());
",
    );
    let resources: &[(&str, &str, &str, &str)] = &[
        (R1, "p-public", "active", "data"),
        (R3, "p-private", "active", "data"),
        (R5, "p-draft", "active", "data"),
        (R6, "p-draftpriv", "active", "data"),
        (R7, "p-del", "active", "data"),
        (R8, "p-delpriv", "active", "data"),
        (R9, "p-resdel", "deleted", "data"),
        (R10, "p-resrem", "deleted", "data"),
        (R15, "p-unowned", "active", "data"),
        (FLIP, "p-flip", "active", "data"),
        // The golden tables, public as in the oracle.
        (crate::harness::SAMPLE, "p-golden", "active", "data"),
        (crate::harness::UGLY, "p-golden", "active", "data"),
        // CKAN 2.12 finds resources by name too: these names would unlock R13 and R14.
        ("rc-1", "p-collide", "active", R13),
        ("rc-2", "p-collide", "active", R14),
    ];
    for (id, pkg, state, name) in resources {
        sql.push_str(&format!(
            "INSERT INTO resource (id, url, package_id, state, name) VALUES ('{id}', '', '{pkg}', '{state}', '{name}');\n"
        ));
    }
    // DataTables views as the oracle has them (tests/golden/datatables was recorded on these).
    sql.push_str(&format!(
        r#"INSERT INTO resource_view (id, resource_id, title, view_type, "order", config) VALUES
           ('d7000000-0000-4000-8000-000000000001', '{s}', 't', 'datatables_view', 0,
            '{{"date_format": "llll", "ellipsis_length": 100, "filterable": true, "responsive": false}}'),
           ('d7000000-0000-4000-8000-000000000002', '{u}', 't', 'datatables_view', 1,
            '{{"date_format": "NONE", "ellipsis_length": 20, "filter_fields": ["flag"], "filter_values": ["true"], "filterable": true, "filters": {{"flag": ["true"]}}, "responsive": true, "show_fields": ["_id", "id", "Full Name", "UPPER", "a,b", "weird", "day", "created", "price", "score", "big", "flag", "meta", "tags"]}}'),
           ('d7000000-0000-4000-8000-000000000003', '{u}', 't', 'datatables_view', 2,
            '{{"date_format": "llll", "ellipsis_length": 100, "filterable": true, "responsive": false}}'),
           ('d7000000-0000-4000-8000-000000000004', '{u}', 't', 'datatables_view', 3,
            '{{"date_format": "llll", "ellipsis_length": 100, "filterable": true, "responsive": false, "show_fields": ["id", "Full Name", "price", "flag"]}}'),
           ('d7000000-0000-4000-8000-000000000008', '{s}', 't', 'datatables_view', 4,
            '{{"date_format": "llll", "ellipsis_length": 100, "filter_fields": ["nope"], "filter_values": ["x"], "filterable": true, "filters": {{"nope": ["x"]}}, "responsive": false}}');
"#,
        s = crate::harness::SAMPLE,
        u = crate::harness::UGLY
    ));
    for u in [
        "sys",
        "member",
        "editor",
        "orgadmin",
        "parentadmin",
        "outsider",
        "otherorg",
        "collab",
        "deleted",
        "pending",
        "exmember",
        "creator",
        "flipper",
    ] {
        sql.push_str(&format!(
            "INSERT INTO api_token (id, name, user_id) VALUES ('jti-{u}', 'acl', 'u-{u}');\n"
        ));
    }
    sql
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A token as CKAN mints it: HS256 over `{"jti", "iat"}` with the decode secret.
fn mint(claims: Value, key: &str) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

pub fn token(user: &str) -> String {
    mint(
        json!({"jti": format!("jti-{user}"), "iat": now() - 60}),
        SECRET,
    )
}

/// A CKAN ini as `ckan generate config` writes it (interpolated secret), read through the
/// same code path `serve --ckan-ini` uses.
fn ckan_ini(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("ckan.ini");
    std::fs::write(
        &path,
        format!(
            "[DEFAULT]\ndebug = false\n\n[app:main]\nuse = egg:ckan\nSECRET_KEY = {SECRET}\n\
             api_token.jwt.encode.secret = string:%(SECRET_KEY)s\n\
             api_token.jwt.decode.secret = string:%(SECRET_KEY)s\n\
             api_token.jwt.algorithm = HS256\n\
             ckan.site_url = http://127.0.0.1:5000\n\
             ckan.plugins = datastore datatables_view\n{extra}\n"
        ),
    )
    .unwrap();
    path
}

pub async fn spawn_with_access(extra_ini: &str, adjust: impl FnOnce(&mut ConfigArgs)) -> TestApp {
    fixtures().await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = ConfigArgs {
        ckan_ini: Some(ckan_ini(dir.path(), extra_ini)),
        read_url: Some(db().read.clone()),
        ckan_db_url: Some(db().main_authz.clone()),
        pool_size: Some(4),
        ..ConfigArgs::default()
    };
    adjust(&mut args);
    let settings = Settings::load(&args).unwrap();
    spawn_app_settings(settings).await
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Class {
    Sysadmin,
    Reader,
    Nobody,
}

struct Caller {
    label: &'static str,
    /// The class on the API, and on the dump (they differ only for `callback`).
    api: Class,
    dump: Class,
    headers: Vec<(&'static str, String)>,
    callback: bool,
    /// The user name CKAN puts in its 403 message.
    name: &'static str,
}

fn callers() -> Vec<Caller> {
    use Class::*;
    let b64 = |s: &str| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    };
    let auth = |v: String| vec![("Authorization", v)];
    let c = |label, class, headers, name| Caller {
        label,
        api: class,
        dump: class,
        headers,
        callback: false,
        name,
    };
    vec![
        c("sysadmin", Sysadmin, auth(token("sys")), "acl-sysadmin"),
        c("org member", Reader, auth(token("member")), "acl-member"),
        c("org editor", Reader, auth(token("editor")), "acl-editor"),
        c("org admin", Reader, auth(token("orgadmin")), "acl-orgadmin"),
        c(
            "admin of the parent org",
            Reader,
            auth(token("parentadmin")),
            "acl-parentadmin",
        ),
        c(
            "lower-case header",
            Reader,
            vec![("authorization", token("member"))],
            "acl-member",
        ),
        c("anonymous", Nobody, vec![], ""),
        c("outsider", Nobody, auth(token("outsider")), "acl-outsider"),
        c(
            "admin of another org",
            Nobody,
            auth(token("otherorg")),
            "acl-otherorg",
        ),
        c(
            "collaborator, collaborators off",
            Nobody,
            auth(token("collab")),
            "acl-collab",
        ),
        c(
            "removed member",
            Nobody,
            auth(token("exmember")),
            "acl-exmember",
        ),
        c(
            "deleted (sysadmin) user",
            Nobody,
            auth(token("deleted")),
            "",
        ),
        c("pending user", Nobody, auth(token("pending")), ""),
        c(
            "revoked token",
            Nobody,
            auth(mint(
                json!({"jti": "jti-revoked", "iat": now() - 60}),
                SECRET,
            )),
            "",
        ),
        c("not a JWT", Nobody, auth("not-a-jwt".into()), ""),
        c(
            "signed with another key",
            Nobody,
            auth(mint(
                json!({"jti": "jti-member", "iat": now()}),
                "another-key",
            )),
            "",
        ),
        c(
            "alg none",
            Nobody,
            auth(format!(
                "{}.{}.",
                b64(r#"{"alg":"none","typ":"JWT"}"#),
                b64(r#"{"jti":"jti-member"}"#)
            )),
            "",
        ),
        c(
            "no jti",
            Nobody,
            auth(mint(json!({"iat": now()}), SECRET)),
            "",
        ),
        c(
            "future iat",
            Nobody,
            auth(mint(
                json!({"jti": "jti-member", "iat": now() + 3600}),
                SECRET,
            )),
            "",
        ),
        c(
            "expired",
            Nobody,
            auth(mint(json!({"jti": "jti-member", "exp": now() - 1}), SECRET)),
            "",
        ),
        c("bare jti", Nobody, auth("jti-member".into()), ""),
        c(
            "Bearer prefix",
            Nobody,
            auth(format!("Bearer {}", token("member"))),
            "",
        ),
        c(
            "X-CKAN-API-Key header",
            Nobody,
            vec![("X-CKAN-API-Key", token("member"))],
            "",
        ),
        Caller {
            label: "member token + callback",
            api: Nobody,
            dump: Reader,
            headers: auth(token("member")),
            callback: true,
            name: "",
        },
    ]
}

/// Expected status for a class on a state (spec §7.3 with our deviations: §4.4 bypasses
/// closed — R13 is the alias-name collision, R14 the orphan named by a public resource — and
/// the dump's 500s answered 404). R15 is a private dataset without an organization.
fn expected(endpoint: &str, class: Class, x: &str) -> u16 {
    use Class::*;
    let private = [R3, R4, R5, R6, R7, R8, R13, R15].contains(&x) && !(class == Reader && x != R15);
    match (endpoint, x) {
        (_, R9 | R12) => 404,
        ("info", R10 | R11 | R14) => 404,
        (_, R11 | R14) if class != Sysadmin => 404,
        (_, _) if class == Sysadmin => 200,
        ("dump", _) if private => 404,
        (_, _) if private => 403,
        _ => 200,
    }
}

fn expected_message(endpoint: &str, x: &str, status: u16, name: &str) -> Option<String> {
    match (status, endpoint, x) {
        (200, ..) | (_, "dump", _) => None,
        (403, ..) => Some(format!(
            "Access denied: User {name} not authorized to perform resource_show on resource {}",
            real(x)
        )),
        (404, "search", R9 | R12) => Some(format!("Not found: Resource \"{x}\" was not found.")),
        (404, "info", R9 | R12) => {
            Some(format!("Not found: Resource/Alias \"{x}\" was not found."))
        }
        (404, "info", R10) => Some("Not found: Resource was not found.".into()),
        (404, ..) => Some("Not found".into()),
        _ => None,
    }
}

async fn call(app: &TestApp, endpoint: &str, x: &str, caller: &Caller) -> Resp {
    let mut req = match endpoint {
        "dump" => {
            let cb = if caller.callback { "&callback=cb" } else { "" };
            app.client
                .get(format!("{}/datastore/dump/{x}?limit=1{cb}", app.base))
        }
        _ => {
            let (action, mut body) = match endpoint {
                "search" => ("datastore_search", json!({"resource_id": x, "limit": 1})),
                _ => ("datastore_info", json!({"id": x})),
            };
            if caller.callback {
                body["callback"] = json!("cb");
            }
            app.client
                .post(format!("{}/api/3/action/{action}", app.base))
                .json(&body)
        }
    };
    for (k, v) in &caller.headers {
        req = req.header(*k, v);
    }
    let r = req.send().await.unwrap();
    let status = r.status().as_u16();
    let headers = r.headers().clone();
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    Resp {
        status,
        content_type,
        headers,
        body: r.bytes().await.unwrap().to_vec(),
    }
}

#[tokio::test]
async fn the_matrix_of_callers_and_resource_states() {
    let app = spawn_with_access("", |_| {}).await;
    let mut failures = Vec::new();
    let mut cells = 0;
    for caller in callers() {
        for endpoint in ["search", "info", "dump"] {
            let class = if endpoint == "dump" {
                caller.dump
            } else {
                caller.api
            };
            for &x in STATES {
                cells += 1;
                let want = expected(endpoint, class, x);
                let r = call(&app, endpoint, x, &caller).await;
                let mut problem = None;
                if r.status != want {
                    problem = Some(format!("status {} (want {want}): {}", r.status, r.text()));
                } else if let Some(msg) = expected_message(endpoint, x, want, caller.name) {
                    let body = r.json();
                    if body["error"]["message"] != json!(msg) || body["success"] != json!(false) {
                        problem = Some(format!("body {body} (want message {msg:?})"));
                    }
                } else if want == 200 && endpoint != "dump" {
                    let body = r.json();
                    if endpoint == "search" {
                        let want_v = if x == R14 || x == R11 {
                            None
                        } else {
                            Some("one")
                        };
                        if let Some(v) = want_v {
                            if body["result"]["records"][0]["v"] != json!(v) {
                                problem = Some(format!("records {}", body["result"]["records"]));
                            }
                        }
                    }
                } else if want == 200 && !r.text().starts_with("_id,k,v") {
                    problem = Some(format!("dump body {:?}", r.text()));
                } else if want == 404
                    && endpoint == "dump"
                    && !r.text().contains("DataStore resource not found")
                {
                    problem = Some(format!("dump 404 page {:?}", r.text()));
                }
                if let Some(p) = problem {
                    failures.push(format!("{} / {endpoint} / {x}: {p}", caller.label));
                }
            }
        }
    }
    assert!(cells > 1000, "{cells}");
    assert!(
        failures.is_empty(),
        "{} of {cells} cells differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn leaks_of_ckan_2_12_stay_closed() {
    let app = spawn_with_access("", |_| {}).await;
    let anon = &callers()[6];
    assert_eq!(anon.label, "anonymous");
    // R14: an orphan table (purged private dataset) that a public resource is *named* after.
    // CKAN 2.12 finds the public resource by name and serves `secret-seven` to everyone.
    for endpoint in ["search", "info", "dump"] {
        let r = call(&app, endpoint, R14, anon).await;
        assert_eq!(r.status, 404, "{endpoint}: {}", r.text());
        assert!(!r.text().contains("secret-seven"));
    }
    // R13: an alias of a private table that is also a public resource's name.
    let r = call(&app, "search", R13, anon).await;
    assert_eq!(r.status, 403, "{}", r.text());
    // The sysadmin still reads the orphan, as in CKAN.
    let r = call(&app, "search", R14, &callers()[0]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("secret-seven"));
}

#[tokio::test]
async fn validation_comes_before_access_and_backend_errors_after() {
    let app = spawn_with_access("", |_| {}).await;
    let r = app
        .search(&format!(r#"{{"resource_id": "{R3}", "limit": "abc"}}"#))
        .await;
    assert_eq!(r.status, 409, "{}", r.text());
    // An unknown sort field: 403 for the anonymous caller, 409 for a member.
    let body = format!(r#"{{"resource_id": "{R3}", "sort": "nosuchfield"}}"#);
    assert_eq!(app.search(&body).await.status, 403);
    let r = app
        .client
        .post(format!("{}/api/3/action/datastore_search", app.base))
        .header("Authorization", token("member"))
        .body(body)
        .header("Content-Type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    // `_table_metadata` stays public for search, as CKAN documents.
    let r = app.search(r#"{"resource_id": "_table_metadata"}"#).await;
    assert_eq!(r.status, 200);
    // … and is still no resource to datastore_info (a cached lookup must not say otherwise).
    let r = app.info(r#"{"id": "_table_metadata"}"#).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["error"]["message"],
        "Not found: Resource/Alias \"_table_metadata\" was not found."
    );
    // … but its dump is for sysadmins (CKAN: 500 for others; here 404).
    let anon = app
        .send("GET", "/datastore/dump/_table_metadata", "", None)
        .await;
    assert_eq!(anon.status, 404);
    let r = app
        .client
        .get(format!("{}/datastore/dump/_table_metadata", app.base))
        .header("Authorization", token("sys"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test]
async fn changes_in_ckan_take_effect_on_the_next_request() {
    let app = spawn_with_access("", |_| {}).await;
    let admin = connect(&db().main_admin).await.unwrap();
    let flipper = Caller {
        label: "flipper",
        api: Class::Reader,
        dump: Class::Reader,
        headers: vec![("Authorization", token("flipper"))],
        callback: false,
        name: "acl-flipper",
    };
    let anon = &callers()[6];
    let status = |r: Resp| r.status;
    assert_eq!(status(call(&app, "search", FLIP, anon).await), 200);
    admin
        .batch_execute("UPDATE package SET private = true WHERE id = 'p-flip'")
        .await
        .unwrap();
    assert_eq!(status(call(&app, "search", FLIP, anon).await), 403);
    assert_eq!(status(call(&app, "search", FLIP, &flipper).await), 200);
    admin
        .batch_execute("UPDATE member SET state = 'deleted' WHERE id = 'm10'")
        .await
        .unwrap();
    assert_eq!(status(call(&app, "search", FLIP, &flipper).await), 403);
    assert_eq!(status(call(&app, "dump", FLIP, &flipper).await), 404);
    admin
        .batch_execute("UPDATE member SET state = 'active' WHERE id = 'm10'")
        .await
        .unwrap();
    assert_eq!(status(call(&app, "info", FLIP, &flipper).await), 200);
    // Revoking a token deletes its row.
    admin
        .batch_execute("DELETE FROM api_token WHERE id = 'jti-flipper'")
        .await
        .unwrap();
    assert_eq!(status(call(&app, "search", FLIP, &flipper).await), 403);
    admin
        .batch_execute(
            "INSERT INTO api_token (id, name, user_id) VALUES ('jti-flipper', 'acl', 'u-flipper');
             UPDATE \"user\" SET state = 'deleted' WHERE id = 'u-flipper'",
        )
        .await
        .unwrap();
    assert_eq!(status(call(&app, "search", FLIP, &flipper).await), 403);
    admin
        .batch_execute(
            "UPDATE \"user\" SET state = 'active' WHERE id = 'u-flipper';
             UPDATE package SET private = false WHERE id = 'p-flip'",
        )
        .await
        .unwrap();
    assert_eq!(status(call(&app, "search", FLIP, anon).await), 200);
}

#[tokio::test]
async fn collaborators_creators_and_cascading_roles_follow_the_ini() {
    let who = |user: &'static str| Caller {
        label: user,
        api: Class::Reader,
        dump: Class::Reader,
        headers: vec![("Authorization", token(user))],
        callback: false,
        name: "",
    };
    let app = spawn_with_access("ckan.auth.allow_dataset_collaborators = true", |_| {}).await;
    assert_eq!(call(&app, "search", R3, &who("collab")).await.status, 200);
    assert_eq!(call(&app, "dump", R4, &who("collab")).await.status, 200);
    assert_eq!(call(&app, "search", R8, &who("collab")).await.status, 403);
    // A dataset without an organization: its creator reads it, org members do not.
    assert_eq!(call(&app, "search", R15, &who("creator")).await.status, 200);
    assert_eq!(call(&app, "search", R15, &who("member")).await.status, 403);
    // Admins of a parent organization read its children's datasets — unless the ini says
    // no role cascades.
    assert_eq!(
        call(&app, "search", R3, &who("parentadmin")).await.status,
        200
    );
    let app = spawn_with_access("ckan.auth.roles_that_cascade_to_sub_groups =", |_| {}).await;
    assert_eq!(
        call(&app, "search", R3, &who("parentadmin")).await.status,
        403
    );
    assert_eq!(call(&app, "search", R3, &who("collab")).await.status, 403);
}

#[tokio::test]
async fn the_token_header_is_the_configured_one() {
    let app = spawn_with_access("apitoken_header_name = X-CKAN-API-Key", |_| {}).await;
    let via = |h: &'static str| Caller {
        label: h,
        api: Class::Reader,
        dump: Class::Reader,
        headers: vec![(h, token("member"))],
        callback: false,
        name: "",
    };
    assert_eq!(
        call(&app, "search", R3, &via("X-CKAN-API-Key"))
            .await
            .status,
        200
    );
    assert_eq!(
        call(&app, "search", R3, &via("Authorization")).await.status,
        403
    );
}

/// A stand-in for CKAN's HTTP answers to our probes (strategy B): it records what it was sent
/// and answers like CKAN would for a member's session cookie. Only CKAN itself can read its
/// cookies, so this is the one place a test plays CKAN; `scripts/auth_matrix_vs_oracle.py`
/// runs the same paths against the real CKAN.
async fn fake_ckan(seen: std::sync::Arc<std::sync::Mutex<Vec<HashMap<String, String>>>>) -> String {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(move || {
        let seen = seen.clone();
        App::new().default_service(web::to(move |req: HttpRequest, body: web::Bytes| {
            let seen = seen.clone();
            async move {
                let mut h: HashMap<String, String> = req
                    .headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                h.insert(":path".into(), req.uri().to_string());
                h.insert(":method".into(), req.method().to_string());
                h.insert(":body".into(), String::from_utf8_lossy(&body).into_owned());
                let member = h.get("cookie").is_some_and(|c| c.contains("ckan=member-session"));
                seen.lock().unwrap().push(h);
                if member {
                    HttpResponse::Ok().content_type("application/json").body("{}")
                } else if req.path().starts_with("/datastore/dump/") {
                    HttpResponse::NotFound().content_type("text/html").body("<p>not found</p>")
                } else {
                    HttpResponse::Forbidden()
                        .content_type("application/json;charset=utf-8")
                        .body(r#"{"help": "ckan", "error": {"__type": "Authorization Error", "message": "from CKAN"}, "success": false}"#)
                }
            }
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn cookies_are_decided_by_ckan_and_fail_closed() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ckan = fake_ckan(seen.clone()).await;
    let app = spawn_with_access("", |a| a.ckan_api_url = Some(ckan.clone())).await;
    let cookie = |c: &str, extra: Vec<(&'static str, String)>| Caller {
        label: "cookie",
        api: Class::Reader,
        dump: Class::Reader,
        headers: [
            vec![("Cookie", c.to_string()), ("X-CSRFToken", "csrf".into())],
            extra,
        ]
        .concat(),
        callback: false,
        name: "",
    };
    let member = cookie("ckan=member-session", vec![]);
    let r = call(&app, "search", R3, &member).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["records"][0]["v"], "one");
    {
        let seen = seen.lock().unwrap();
        let probe = seen.last().unwrap();
        assert_eq!(probe[":method"], "POST");
        assert_eq!(probe[":path"], "/api/3/action/datastore_search");
        assert_eq!(
            serde_json::from_str::<Value>(&probe[":body"]).unwrap(),
            json!({"resource_id": R3, "limit": 0, "include_total": false})
        );
        assert_eq!(probe["cookie"], "ckan=member-session");
        assert_eq!(probe["x-csrftoken"], "csrf");
    }
    assert_eq!(call(&app, "dump", R4, &member).await.status, 200);
    assert!(seen.lock().unwrap().last().unwrap()[":path"]
        .starts_with(&format!("/datastore/dump/{R4}?limit=0")));
    // CKAN's refusal is passed on as it is.
    let stranger = cookie("ckan=someone-else", vec![]);
    let r = call(&app, "info", R3, &stranger).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"]["message"], "from CKAN");
    assert_eq!(call(&app, "dump", R3, &stranger).await.status, 404);
    // A valid token beats the session cookie: decided here, CKAN not asked.
    let n = seen.lock().unwrap().len();
    let both = cookie(
        "ckan=someone-else",
        vec![("Authorization", token("member"))],
    );
    assert_eq!(call(&app, "search", R3, &both).await.status, 200);
    assert_eq!(seen.lock().unwrap().len(), n);
    // … but a token nobody owns leaves the cookie's user: CKAN is asked.
    let revoked = mint(json!({"jti": "jti-nobody", "iat": now()}), SECRET);
    let r = call(
        &app,
        "search",
        R3,
        &cookie("ckan=member-session", vec![("Authorization", revoked)]),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(seen.lock().unwrap().len(), n + 1);
    // CKAN says yes to a table no resource has the id of (its name lookup): not trusted.
    assert_eq!(call(&app, "search", R14, &member).await.status, 404);
    // `callback` makes the caller anonymous whatever it sends: nothing to ask CKAN.
    let n = seen.lock().unwrap().len();
    let mut cb = cookie("ckan=member-session", vec![]);
    cb.callback = true;
    assert_eq!(call(&app, "search", R3, &cb).await.status, 403);
    assert_eq!(seen.lock().unwrap().len(), n);

    // CKAN unreachable: refuse (503), never serve.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let app = spawn_with_access("", |a| a.ckan_api_url = Some(dead.clone())).await;
    let r = call(&app, "search", R3, &member).await;
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(!r.text().contains("one"));
    assert_eq!(call(&app, "dump", R3, &member).await.status, 503);
}

#[tokio::test]
async fn auth_plugins_send_every_request_to_ckan() {
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let ckan = fake_ckan(seen.clone()).await;
    let ini = "ckan.plugins = datastore saml2auth";
    let app = spawn_with_access(ini, |a| a.ckan_api_url = Some(ckan.clone())).await;
    // Even a sysadmin token is CKAN's to judge (the fake refuses everything but the cookie).
    let sys = &callers()[0];
    assert_eq!(call(&app, "search", R1, sys).await.status, 403);
    assert!(seen.lock().unwrap().last().unwrap()["authorization"].starts_with("eyJ"));
    // Unless the operator says the plugin leaves authorization alone.
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("c.toml");
    std::fs::write(&toml, "auth_neutral_plugins = [\"saml2auth\"]\n").unwrap();
    let app = spawn_with_access(ini, |a| a.config = Some(toml.clone())).await;
    assert_eq!(call(&app, "search", R3, sys).await.status, 200);
}

#[tokio::test]
async fn caches_only_what_they_may() {
    // Denials cached: a member added late waits at most the TTL; grants to anonymous callers
    // cached: a dataset made private is still served for at most the TTL.
    let app = spawn_with_access("", |a| {
        a.auth_deny_cache_ms = Some(60_000);
        a.auth_grant_cache_ms = Some(60_000);
    })
    .await;
    let anon = &callers()[6];
    let member = &callers()[1];
    assert_eq!(call(&app, "search", R1, anon).await.status, 200);
    assert_eq!(call(&app, "search", R3, anon).await.status, 403);
    let before = metrics(&app, "ckan_datastore_auth_db_checks_total").await;
    assert_eq!(call(&app, "search", R1, anon).await.status, 200);
    assert_eq!(call(&app, "search", R3, anon).await.status, 403);
    assert_eq!(
        metrics(&app, "ckan_datastore_auth_db_checks_total").await,
        before
    );
    // A token caller's grant is never cached: revocation must be seen at once.
    assert_eq!(call(&app, "search", R3, member).await.status, 200);
    assert_eq!(call(&app, "search", R3, member).await.status, 200);
    assert_eq!(
        metrics(&app, "ckan_datastore_auth_db_checks_total").await,
        before + 2
    );
}

async fn metrics(app: &TestApp, name: &str) -> u64 {
    let text = app.send("GET", "/metrics", "", None).await.text();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} not in {text}"))
}

#[tokio::test]
async fn the_role_reads_only_what_it_needs() {
    fixtures().await;
    let c = connect(&db().main_authz).await.unwrap();
    for sql in [
        "SELECT password FROM \"user\"",
        "SELECT email FROM \"user\"",
        "SELECT apikey FROM \"user\"",
        "SELECT plugin_extras FROM api_token",
        "SELECT * FROM package",
        "UPDATE package SET private = false",
    ] {
        let err = c.batch_execute(sql).await.expect_err(sql);
        assert_eq!(
            err.as_db_error().map(|d| d.code().clone()),
            Some(tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{sql}: {err}"
        );
    }
    c.batch_execute("SELECT id, name, sysadmin, state FROM \"user\"")
        .await
        .unwrap();
}

/// Checks arriving together are answered in one statement (`ckan_db::Batcher`): each caller
/// must still get its own verdict.
#[tokio::test]
async fn concurrent_checks_are_answered_each_for_itself() {
    let app = std::sync::Arc::new(spawn_with_access("", |_| {}).await);
    let callers = std::sync::Arc::new(callers());
    let mut tasks = Vec::new();
    for i in 0..240usize {
        let (app, callers) = (app.clone(), callers.clone());
        tasks.push(tokio::spawn(async move {
            let caller = &callers[i % callers.len()];
            let x = STATES[(i / callers.len() + i) % STATES.len()];
            let endpoint = ["search", "info", "dump"][i % 3];
            let class = if endpoint == "dump" {
                caller.dump
            } else {
                caller.api
            };
            let got = call(&app, endpoint, x, caller).await.status;
            let want = expected(endpoint, class, x);
            (got == want)
                .then_some(())
                .ok_or(format!("{} {endpoint} {x}: {got} != {want}", caller.label))
        }));
    }
    let mut failures = Vec::new();
    for t in tasks {
        if let Err(e) = t.await.unwrap() {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // A burst of anonymous reads (one question each) takes fewer statements than checks.
    let before = metrics(&app, "ckan_datastore_auth_db_statements_total").await;
    let anon = std::sync::Arc::new(Caller {
        label: "anonymous",
        api: Class::Nobody,
        dump: Class::Nobody,
        headers: vec![],
        callback: false,
        name: "",
    });
    let burst: Vec<_> = (0..200)
        .map(|_| {
            let (app, anon) = (app.clone(), anon.clone());
            tokio::spawn(async move { call(&app, "search", R1, &anon).await.status })
        })
        .collect();
    for t in burst {
        assert_eq!(t.await.unwrap(), 200);
    }
    let statements = metrics(&app, "ckan_datastore_auth_db_statements_total").await - before;
    assert!(
        statements < 200,
        "no batching: {statements} statements for 200 checks"
    );
}

/// `ckan_api_url` pointing back at this server (what the site URL does behind nginx): every
/// probe carries `X-Ckan-Datastore-Probe`, so the one that comes back is refused at once — the
/// cookie caller gets 503 quickly instead of a loop —, and the start-up check names the setting.
#[tokio::test]
async fn a_probe_that_comes_back_to_us_is_refused_at_once() {
    use ckan_datastore::auth::ckan_api;
    fixtures().await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let me = format!("http://{}", listener.local_addr().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let args = ConfigArgs {
        ckan_ini: Some(ckan_ini(dir.path(), "")),
        read_url: Some(db().read.clone()),
        ckan_db_url: Some(db().main_authz.clone()),
        ckan_api_url: Some(me.clone()),
        pool_size: Some(4),
        ..ConfigArgs::default()
    };
    let server =
        ckan_datastore::app::Application::build(Settings::load(&args).unwrap(), listener).unwrap();
    tokio::spawn(server.run());
    let app = TestApp {
        base: me.clone(),
        client: reqwest::Client::new(),
        db: db(),
    };
    let member = Caller {
        label: "cookie",
        api: Class::Reader,
        dump: Class::Reader,
        headers: vec![
            ("Cookie", "ckan=member-session".into()),
            ("X-CSRFToken", "csrf".into()),
        ],
        callback: false,
        name: "",
    };
    for endpoint in ["search", "info", "dump"] {
        let t = std::time::Instant::now();
        let r = call(&app, endpoint, R3, &member).await;
        assert_eq!(r.status, 503, "{endpoint}: {}", r.text());
        assert!(!r.text().contains("one"));
        assert!(
            t.elapsed() < std::time::Duration::from_millis(900),
            "{endpoint}: {:?}",
            t.elapsed()
        );
    }
    // Any instance's probe is refused (only the header's presence counts), naming the setting.
    let r = app
        .client
        .get(format!(
            "{me}/api/3/action/datastore_search?resource_id={R3}"
        ))
        .header("X-Ckan-Datastore-Probe", "another-instance")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 508);
    assert!(r.headers().contains_key(ckan_api::LOOP_HEADER));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], false);
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("ckan_api_url") && msg.contains("--ckan-api-url"),
        "{msg}"
    );
    // The start-up check (`serve` logs it) recognises us, and says what to set.
    let why = ckan_api::check_probe_url(&ckan_api::client(), &me)
        .await
        .unwrap_err();
    assert!(
        why.contains("ckan_api_url") && why.contains("--ckan-api-url"),
        "{why}"
    );
}
