//! The test harness: one private PostgreSQL cluster per test run (initdb + postgres on a unix
//! socket in a temp dir, as the `postgres` user when running as root), or the server named by
//! `CKAN_DATASTORE_TEST_SUPERUSER_URL`; CKAN's roles, databases and `set-permissions` on it;
//! the golden tables created with the DDL `datastore_create` runs and filled with the rows CKAN
//! stored (COPY text taken from the oracle); and our real server on port 0 in front of it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use ckan_datastore::app::Application;
use ckan_datastore::ckan_schema::{create_table_sql, FieldDef};
use ckan_datastore::config::Settings;
use ckan_datastore::demo::{connect, create_ckan_databases, CkanNames, Server};
use ckan_datastore::pgcluster::PgCluster;
use futures_util::SinkExt;
use serde_json::Value;

/// The oracle samples' table.
pub const SAMPLE: &str = "11111111-1111-4111-8111-111111111111";
/// The "ugly" golden table (NULLs, unicode, quotes, odd column names, every type).
pub const UGLY: &str = "44444444-4444-4444-8444-444444444444";
/// The site URL the goldens were recorded with (`help` links).
pub const ORACLE_SITE_URL: &str = "http://127.0.0.1:5000";

pub struct TestDb {
    pub write: String,
    pub read: String,
    /// CKAN's main database as a superuser (to change users, datasets, memberships).
    pub main_admin: String,
    /// CKAN's main database as the access-control role of `src/sql_assets/authz_role.sql`.
    pub main_authz: String,
    _cluster: Option<PgCluster>,
}

static DB: OnceLock<TestDb> = OnceLock::new();
static CLUSTER_DIR: OnceLock<PathBuf> = OnceLock::new();

pub fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

extern "C" fn stop_cluster_at_exit() {
    if let Some(db) = DB.get() {
        if let Some(c) = &db._cluster {
            c.stop();
        }
    }
    if let Some(dir) = CLUSTER_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The shared database, set up on first use.
pub fn db() -> &'static TestDb {
    DB.get_or_init(|| {
        // Set up on a thread of its own: tests call this from inside their tokio runtimes.
        std::thread::spawn(|| {
            let rt = tokio::runtime::Runtime::new().expect("runtime");
            rt.block_on(setup())
        })
        .join()
        .expect("database setup panicked")
    })
}

async fn setup() -> TestDb {
    let (server, cluster) = match std::env::var("CKAN_DATASTORE_TEST_SUPERUSER_URL") {
        Ok(url) if !url.is_empty() => (
            Server::from_url(&url).expect("CKAN_DATASTORE_TEST_SUPERUSER_URL"),
            None,
        ),
        _ => {
            // A short path: unix socket paths are limited to ~107 bytes.
            let dir = tempfile::Builder::new()
                .prefix("ckds-test-")
                .tempdir_in("/tmp")
                .expect("tempdir")
                .keep();
            // Let the `postgres` user traverse it when we run as root.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
            CLUSTER_DIR.set(dir.clone()).ok();
            let port = 20000 + (std::process::id() % 20000) as u16;
            let cluster = PgCluster::start(&dir.join("data"), &dir.join("s"), port)
                .expect("start PostgreSQL");
            unsafe {
                libc::atexit(stop_cluster_at_exit);
            }
            (Server::of_cluster(&cluster), Some(cluster))
        }
    };
    let names = if cluster.is_some() {
        CkanNames::default()
    } else {
        CkanNames {
            main_db: "ckan_datastore_test_main".into(),
            datastore_db: "ckan_datastore_test".into(),
            write_role: "ckan_datastore_test_write".into(),
            read_role: "ckan_datastore_test_read".into(),
        }
    };
    if cluster.is_none() {
        // A server we do not own: start from empty test databases.
        let su = connect(&server.superuser_conninfo("postgres"))
            .await
            .expect("superuser connect");
        for db in [&names.datastore_db, &names.main_db] {
            su.batch_execute(&format!("DROP DATABASE IF EXISTS \"{db}\" WITH (FORCE)"))
                .await
                .expect("drop test db");
        }
    }
    let (write, read) = create_ckan_databases(&server, &names)
        .await
        .expect("CKAN databases");
    load_fixture_tables(&write).await;
    // The part of CKAN's main database access control reads, and the role it reads it with.
    let main_admin = server.superuser_conninfo(&names.main_db);
    let main = connect(&main_admin).await.expect("main db");
    main.batch_execute(
        &std::fs::read_to_string(repo_path("tests/fixtures/ckan_main_schema.sql")).unwrap(),
    )
    .await
    .expect("CKAN main schema");
    main.batch_execute(
        &std::fs::read_to_string(repo_path("src/sql_assets/authz_role.sql")).unwrap(),
    )
    .await
    .expect("authz_role.sql");
    main.batch_execute("ALTER ROLE datastore_authz PASSWORD 'datastore_authz'")
        .await
        .expect("authz password");
    let main_authz = server.conninfo("datastore_authz", Some("datastore_authz"), &names.main_db);
    TestDb {
        write,
        read,
        main_admin,
        main_authz,
        _cluster: cluster,
    }
}

/// `datastore_create`'s `fields` / `primary_key` / `aliases` from a request body.
pub fn fields_of(create: &Value) -> (Vec<FieldDef>, Vec<String>, Vec<String>) {
    let fields = create["fields"]
        .as_array()
        .expect("fields")
        .iter()
        .map(|f| FieldDef {
            id: f["id"].as_str().unwrap().into(),
            type_: f["type"].as_str().unwrap().into(),
            info: f.get("info").cloned(),
        })
        .collect();
    let list = |v: &Value| match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
        _ => vec![],
    };
    (
        fields,
        list(&create["primary_key"]),
        list(&create["aliases"]),
    )
}

async fn load_fixture_tables(write: &str) {
    let client = connect(write).await.expect("write connect");
    let tables = [
        (
            SAMPLE,
            repo_path("tests/golden/samples/datastore_create.json"),
        ),
        (
            UGLY,
            repo_path(&format!("tests/fixtures/tables/{UGLY}.create.json")),
        ),
    ];
    for (id, create_path) in tables {
        let create: Value =
            serde_json::from_str(&std::fs::read_to_string(create_path).unwrap()).unwrap();
        let (fields, pk, aliases) = fields_of(&create);
        let sql = create_table_sql(id, &fields, &pk, &aliases).join(";\n") + ";";
        client
            .batch_execute(&sql)
            .await
            .unwrap_or_else(|e| panic!("create {id}: {e}"));
        let columns: Vec<String> =
            std::fs::read_to_string(repo_path(&format!("tests/fixtures/tables/{id}.columns")))
                .unwrap()
                .lines()
                .filter(|l| !l.is_empty())
                .map(ckan_datastore::sql::ident)
                .collect();
        let data = std::fs::read(repo_path(&format!("tests/fixtures/tables/{id}.copy"))).unwrap();
        let sink = client
            .copy_in(&format!(
                "COPY \"{id}\" ({}) FROM STDIN",
                columns.join(", ")
            ))
            .await
            .unwrap();
        futures_util::pin_mut!(sink);
        sink.send(bytes::Bytes::from(data)).await.unwrap();
        sink.close().await.unwrap();
        client
            .batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('\"{id}\"', '_id'), (SELECT max(_id) FROM \"{id}\")); ANALYZE \"{id}\";"
            ))
            .await
            .unwrap();
    }
}

/// Our server, started on port 0 over the shared database.
pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db: &'static TestDb,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let db = db();
    let mut settings = Settings::with_read_url(db.read.clone());
    settings.site_url = ORACLE_SITE_URL.into();
    settings.access = ckan_datastore::auth::config::AccessSettings::public();
    settings.pool_size = 4;
    adjust(&mut settings);
    spawn_app_settings(settings).await
}

/// Our server with exactly these settings.
pub async fn spawn_app_settings(settings: Settings) -> TestApp {
    let db = db();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let app = Application::build(settings, listener).unwrap();
    let port = app.port;
    tokio::spawn(app.run());
    TestApp {
        base: format!("http://127.0.0.1:{port}"),
        client: reqwest::Client::builder().build().unwrap(),
        db,
    }
}

pub struct Resp {
    pub status: u16,
    pub content_type: String,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

impl TestApp {
    /// Sends a request; `path_and_query` may hold raw characters (`"`, `{`) as curl -g sends them.
    pub async fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
        content_type: Option<&str>,
    ) -> Resp {
        let url = format!("{}{}", self.base, path_and_query);
        let mut req = self.client.request(method.parse().unwrap(), url);
        if method == "POST" {
            req = req.body(body.to_string());
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let r = req.send().await.expect("request");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = r.bytes().await.unwrap().to_vec();
        Resp {
            status,
            content_type,
            headers,
            body,
        }
    }

    pub async fn search(&self, body: &str) -> Resp {
        self.send(
            "POST",
            "/api/3/action/datastore_search",
            body,
            Some("application/json"),
        )
        .await
    }

    pub async fn info(&self, body: &str) -> Resp {
        self.send(
            "POST",
            "/api/3/action/datastore_info",
            body,
            Some("application/json"),
        )
        .await
    }

    /// A connection as CKAN's write role, to change tables behind the server's back.
    pub async fn writer(&self) -> tokio_postgres::Client {
        connect(&self.db.write).await.unwrap()
    }
}

/// One recorded request/response pair.
#[derive(Debug, Clone)]
pub struct GoldenCase {
    pub name: String,
    pub method: String,
    pub path: String,
    pub body: String,
    pub content_type: Option<String>,
    pub status: u16,
    pub response_content_type: String,
    pub expected: Vec<u8>,
}

/// The recorded cases of `tests/golden/<dir>` (`samples` or `extra`).
pub fn golden_cases(dir: &str) -> Vec<GoldenCase> {
    let root = repo_path(&format!("tests/golden/{dir}"));
    let mut names: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "request"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|req| {
            let stem = req.file_stem().unwrap().to_str().unwrap().to_string();
            let line = std::fs::read_to_string(&req).unwrap();
            let line = line.strip_suffix('\n').unwrap_or(&line);
            let parts: Vec<&str> = line.split('\t').collect();
            let method = parts[0].to_string();
            let content_type = match parts.get(3) {
                Some(ct) if !ct.is_empty() => Some(ct.to_string()),
                _ if method == "POST" => Some("application/json".to_string()),
                _ => None,
            };
            let meta = std::fs::read_to_string(root.join(format!("{stem}.meta"))).unwrap();
            let get = |k: &str| {
                meta.lines()
                    .find_map(|l| l.strip_prefix(&format!("{k}=")))
                    .unwrap_or("")
                    .to_string()
            };
            let body_file = std::fs::read_dir(&root)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| {
                    p.file_stem().and_then(|s| s.to_str()) == Some(stem.as_str())
                        && !matches!(
                            p.extension().and_then(|e| e.to_str()),
                            Some("request" | "meta" | "headers" | "request_headers")
                        )
                });
            GoldenCase {
                name: stem.clone(),
                method,
                path: parts[1].to_string(),
                body: parts.get(2).unwrap_or(&"").to_string(),
                content_type,
                status: get("status").parse().unwrap(),
                response_content_type: get("content_type"),
                expected: body_file
                    .map(|p| std::fs::read(p).unwrap())
                    .unwrap_or_default(),
            }
        })
        .collect()
}

/// A fresh table under a unique resource id, created as `datastore_create` would, with rows
/// inserted through SQL (the trigger fills `_full_text`).
pub async fn create_table(
    app: &TestApp,
    tag: &str,
    fields: &[(&str, &str)],
    rows_sql: &str,
) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let id = format!(
        "{tag}-{}-{n}-0000-4000-8000-000000000000",
        std::process::id()
    );
    let defs: Vec<FieldDef> = fields
        .iter()
        .map(|(id, t)| FieldDef {
            id: id.to_string(),
            type_: t.to_string(),
            info: None,
        })
        .collect();
    let sql = create_table_sql(&id, &defs, &[], &[]).join(";\n") + ";";
    let w = app.writer().await;
    w.batch_execute(&sql).await.unwrap();
    if !rows_sql.is_empty() {
        w.batch_execute(&rows_sql.replace("{T}", &format!("\"{id}\"")))
            .await
            .unwrap();
    }
    id
}

/// Python truthiness of a decoded JSON value.
pub fn is_python_falsy(v: &Value) -> bool {
    !ckan_datastore::python::truthy(v)
}

impl TestApp {
    /// Sends bytes as written (like `curl -g`: no percent-encoding of the target), on a fresh
    /// connection closed after the response.
    pub async fn send_raw(
        &self,
        method: &str,
        path_and_query: &str,
        body: &str,
        content_type: Option<&str>,
    ) -> Resp {
        let mut head =
            format!("{method} {path_and_query} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
        if let Some(ct) = content_type {
            head.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if method == "POST" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        let raw = raw_exchange(&self.base, &[head.as_bytes(), body.as_bytes()].concat()).await;
        parse_response(&raw)
            .into_iter()
            .next()
            .expect("one response")
    }
}

/// Writes `request` to the server and reads until it closes the connection.
pub async fn raw_exchange(base: &str, request: &[u8]) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    out
}

/// Splits a byte stream of HTTP/1.1 responses (Content-Length or chunked bodies).
pub fn parse_response(mut raw: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    while let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&raw[..end]).into_owned();
        raw = &raw[end + 4..];
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let mut headers = reqwest::header::HeaderMap::new();
        for l in lines {
            if let Some((k, v)) = l.split_once(':') {
                headers.append(
                    reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()).unwrap(),
                    v.trim().parse().unwrap(),
                );
            }
        }
        let body = if let Some(len) = headers.get("content-length") {
            let n: usize = len.to_str().unwrap().parse().unwrap();
            let b = raw[..n].to_vec();
            raw = &raw[n..];
            b
        } else if headers.get("transfer-encoding").is_some() {
            let mut b = Vec::new();
            loop {
                // A stream cut short (the server gave up mid-body) has no final chunk.
                let Some(nl) = raw.windows(2).position(|w| w == b"\r\n") else {
                    raw = &[];
                    break;
                };
                let n = usize::from_str_radix(std::str::from_utf8(&raw[..nl]).unwrap().trim(), 16)
                    .unwrap();
                raw = &raw[nl + 2..];
                if n == 0 {
                    raw = &raw[2.min(raw.len())..];
                    break;
                }
                if raw.len() < n + 2 {
                    b.extend_from_slice(&raw[..n.min(raw.len())]);
                    raw = &[];
                    break;
                }
                b.extend_from_slice(&raw[..n]);
                raw = &raw[n + 2..];
            }
            b
        } else {
            let b = raw.to_vec();
            raw = &[];
            b
        };
        let content_type = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        out.push(Resp {
            status,
            content_type,
            headers,
            body,
        });
    }
    out
}

/// The private cluster's server log (None when testing against an external server).
pub fn server_log() -> Option<String> {
    db();
    let dir = CLUSTER_DIR.get()?;
    std::fs::read_to_string(dir.join("data").join("server.log")).ok()
}
