//! The shipped nginx files, loaded into Debian's nginx as their first comments say
//! (`config/nginx/ckan-datastore-upstream.conf` in `http { }`, `…-locations.conf` in the site's
//! `server { }`), only the upstream's address rewritten: `nginx -t`, then nginx itself on a free
//! port as the current user, in front of our real server and a stand-in for CKAN that marks
//! every answer. One request per path says which server answered. nginx comes from
//! `scripts/ensure-nginx.sh` (run by `scripts/test.sh`; `NGINX` names another binary).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{repo_path, spawn_app, SAMPLE};

/// The header the stand-in for CKAN puts on every answer.
const MARK: &str = "x-answered-by";

fn nginx_binary() -> PathBuf {
    if let Ok(p) = std::env::var("NGINX") {
        return p.into();
    }
    for p in ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("nginx not found: run scripts/ensure-nginx.sh (scripts/test.sh does), or set NGINX");
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Answers every request with `X-Answered-By: ckan` and what it was sent (path, headers).
pub async fn stand_in_ckan() -> u16 {
    use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = HttpServer::new(|| {
        App::new().default_service(web::to(|req: HttpRequest| async move {
            if req.path() == "/api/3/action/status_show" {
                return HttpResponse::Ok()
                    .insert_header((MARK, "ckan"))
                    .content_type("application/json")
                    .body(r#"{"success": true, "result": {"ckan_version": "2.12.0"}}"#);
            }
            HttpResponse::Ok()
                .insert_header((MARK, "ckan"))
                .content_type("text/plain")
                .body(req.uri().to_string())
        }))
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    port
}

pub struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The site's nginx.conf: the files of `snippets` (the repository's `config/nginx`, or where
/// the package installed them) included where their comments say.
fn write_conf(dir: &Path, snippets: &Path, listen: u16, ours: u16, ckan: u16) -> PathBuf {
    let upstream = std::fs::read_to_string(snippets.join("ckan-datastore-upstream.conf")).unwrap();
    assert!(upstream.contains("server 127.0.0.1:8800;"));
    std::fs::write(
        dir.join("ckan-datastore-upstream.conf"),
        upstream.replace(
            "server 127.0.0.1:8800;",
            &format!("server 127.0.0.1:{ours};"),
        ),
    )
    .unwrap();
    let locations = snippets.join("ckan-datastore-locations.conf");
    let d = dir.display();
    // As root, nginx would hand its workers to `nobody`, who cannot write the temp dir.
    let user = if unsafe { libc::geteuid() } == 0 {
        "user root;"
    } else {
        ""
    };
    let conf = format!(
        "{user}
daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log {d}/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    include {d}/ckan-datastore-upstream.conf;
    upstream ckan {{ server 127.0.0.1:{ckan}; }}
    server {{
        listen 127.0.0.1:{listen};
        server_name _;
        include {locations};
        location / {{
            proxy_pass http://ckan;
            proxy_set_header Host $host;
        }}
    }}
}}
",
        locations = locations.display()
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    path
}

/// nginx on `port` in front of our server on `ours` and CKAN's stand-in on `ckan`, with the
/// repository's nginx files.
pub async fn start_nginx(port: u16, ours: u16, ckan: u16) -> (Nginx, tempfile::TempDir, String) {
    start_nginx_with(&repo_path("config/nginx"), port, ours, ckan).await
}

/// As `start_nginx`, with the nginx files of `snippets`.
pub async fn start_nginx_with(
    snippets: &Path,
    port: u16,
    ours: u16,
    ckan: u16,
) -> (Nginx, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let conf = write_conf(dir.path(), snippets, port, ours, ckan);
    let bin = nginx_binary();
    let prefix = format!("{}/", dir.path().display());
    let err_log = format!("{}/startup-error.log", dir.path().display());
    let base_args = ["-p", &prefix, "-e", &err_log, "-c", conf.to_str().unwrap()];
    let t = Command::new(&bin)
        .args(base_args)
        .arg("-t")
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let nginx = Nginx(
        Command::new(&bin)
            .args(base_args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while reqwest::get(format!("{front}/")).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "nginx did not start: {}",
            std::fs::read_to_string(dir.path().join("error.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (nginx, dir, front)
}

#[tokio::test]
async fn the_shipped_nginx_files_load_and_route_each_path() {
    let app = spawn_app().await;
    let ours: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let ckan = stand_in_ckan().await;
    let (_nginx, _dir, front) = start_nginx(free_port(), ours, ckan).await;
    check_each_path(&front).await;
}

/// One request per path through nginx at `front`: ours reach our server (the SAMPLE table's
/// data), everything else CKAN's stand-in.
pub async fn check_each_path(front: &str) {
    let client = reqwest::Client::new();
    let search = format!("resource_id={SAMPLE}&limit=1");
    // (method, path, who should answer)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "GET",
            format!("/api/3/action/datastore_search?{search}"),
            "us",
        ),
        (
            "GET",
            format!("/api/action/datastore_search?{search}"),
            "us",
        ),
        ("POST", "/api/3/action/datastore_search".into(), "us"),
        (
            "GET",
            format!("/api/3/action/datastore_info?id={SAMPLE}"),
            "us",
        ),
        (
            "GET",
            format!("/api/action/datastore_info?id={SAMPLE}"),
            "us",
        ),
        (
            "GET",
            "/api/3/action/datastore_search_sql?sql=SELECT%201".into(),
            "us",
        ),
        (
            "GET",
            "/api/action/datastore_search_sql?sql=SELECT%201".into(),
            "us",
        ),
        ("GET", format!("/datastore/dump/{SAMPLE}?limit=2"), "us"),
        ("POST", "/datatables/ajax/some-view".into(), "us"),
        (
            "POST",
            "/datatables/filtered-download/some-view".into(),
            "us",
        ),
        ("GET", "/api/3/action/package_show?id=x".into(), "ckan"),
        ("GET", "/api/action/datastore_create".into(), "ckan"),
        ("GET", "/api/3/action/datastore_search_x".into(), "ckan"),
        ("GET", "/dataset/x/resource/y".into(), "ckan"),
        ("GET", "/".into(), "ckan"),
    ];
    for (method, path, who) in cases {
        let mut req = client.request(method.parse().unwrap(), format!("{front}{path}"));
        if method == "POST" && path.starts_with("/api/") {
            req = req
                .header("Content-Type", "application/json")
                .body(format!(r#"{{"resource_id": "{SAMPLE}", "limit": 1}}"#));
        } else if method == "POST" {
            req = req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body("draw=1&start=0&length=10");
        }
        let r = req.send().await.unwrap();
        let status = r.status().as_u16();
        let answered = if r.headers().contains_key(MARK) {
            "ckan"
        } else {
            "us"
        };
        let body = r.text().await.unwrap();
        assert_ne!(
            status, 502,
            "{method} {path}: nginx could not reach the upstream"
        );
        assert_eq!(answered, who, "{method} {path} ({status}): {body}");
        if path.contains("datastore_search?") || path.ends_with("datastore_search") {
            assert_eq!(status, 200, "{method} {path}: {body}");
            assert!(body.contains("\"success\": true"), "{body}");
        }
        if path.starts_with("/datastore/dump/") {
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(body.lines().count(), 3, "{body}");
        }
    }
}

/// README step 3 as it used to be: the probe URL is the site URL, i.e. nginx, which routes the
/// probe (a datastore_search) back to us. The probe is recognised and refused at once: the
/// logged-in caller gets 503 well under a second (not a loop), and the start-up check, though
/// `status_show` there reaches CKAN, names the setting.
#[tokio::test]
async fn a_probe_routed_back_by_nginx_is_refused_at_once() {
    use ckan_datastore::auth::ckan_api;
    let port = free_port();
    let front = format!("http://127.0.0.1:{port}");
    let app = crate::access::spawn_with_access("", |a| a.ckan_api_url = Some(front.clone())).await;
    let ours: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let ckan = stand_in_ckan().await;
    let (_nginx, _dir, front) = start_nginx(port, ours, ckan).await;
    let client = reqwest::Client::new();
    let t = Instant::now();
    let r = client
        .post(format!("{front}/api/3/action/datastore_search"))
        .header("Cookie", "ckan=member-session")
        .header("X-CSRFToken", "csrf")
        .json(&serde_json::json!({"resource_id": crate::access::R3, "limit": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert!(
        t.elapsed() < Duration::from_millis(900),
        "{:?}",
        t.elapsed()
    );
    let why = ckan_api::check_probe_url(&ckan_api::client(), &front)
        .await
        .unwrap_err();
    assert!(why.contains("--ckan-api-url"), "{why}");
    // CKAN's own address passes.
    let ok = ckan_api::check_probe_url(&ckan_api::client(), &format!("http://127.0.0.1:{ckan}"))
        .await
        .unwrap();
    assert!(ok.contains("2.12.0"), "{ok}");
}
