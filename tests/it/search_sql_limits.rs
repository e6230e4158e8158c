//! `datastore_search_sql`'s limits (docs/search-sql.md, Limits): an abandoned query is
//! cancelled, one caller cannot take every connection, temporary files and answers are
//! bounded — each answered in CKAN's error shape, never 500, never with SQL text.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::harness::TestApp;
use crate::search_sql::{app, sql};

/// Runs for hours unless stopped (a hundred billion rows summed); `tag` names it in
/// `pg_stat_activity`.
fn heavy(tag: &str) -> String {
    format!("SELECT sum(g) AS {tag} FROM (SELECT generate_series(1::bigint, 100000000000) AS g) s")
}

/// Backends running a query whose text contains `tag` (any database, any role).
async fn running(tag: &str) -> i64 {
    let admin = ckan_datastore::demo::connect(&crate::harness::db().main_admin)
        .await
        .unwrap();
    admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' \
             AND query LIKE $1 AND pid <> pg_backend_pid()",
            &[&format!("%{tag}%")],
        )
        .await
        .unwrap()
        .get(0)
}

/// Waits until `tag`'s query is running (at most 10 s).
async fn until_running(tag: &str) {
    let started = Instant::now();
    while running(tag).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{tag} never ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops whatever is left of `tag`'s queries (they would run to the statement timeout).
async fn cancel(tag: &str) {
    let admin = ckan_datastore::demo::connect(&crate::harness::db().main_admin)
        .await
        .unwrap();
    admin
        .execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE $1 AND pid <> pg_backend_pid()",
            &[&format!("%{tag}%")],
        )
        .await
        .unwrap();
}

/// A raw connection that has sent one `datastore_search_sql` request and reads nothing.
async fn send_and_hold(app: &TestApp, query: &str) -> tokio::net::TcpStream {
    let body = json!({ "sql": query }).to_string();
    let mut s = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(
        format!(
            "POST /api/3/action/datastore_search_sql HTTP/1.1\r\nHost: t\r\n\
             Connection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    s
}

/// The attack: a heavy query whose client leaves. Its backend stops within a second
/// (we poll the client's socket every 100 ms, then cancel), and the endpoint still serves.
#[tokio::test]
async fn a_query_whose_client_leaves_is_cancelled_within_a_second() {
    let app = app().await;
    let tag = "abandoned_by_its_client";
    let client = send_and_hold(&app, &heavy(tag)).await;
    until_running(tag).await;
    drop(client);
    let gone = Instant::now();
    while running(tag).await > 0 {
        if gone.elapsed() > Duration::from_secs(1) {
            cancel(tag).await;
            panic!("query still running 1 s after its client left");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = sql(&app, "SELECT 1 AS x", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // A client that stays gets its answer: the watcher does not cut live connections.
    let r = sql(
        &app,
        "SELECT count(*) AS n FROM generate_series(1, 3000000) g",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["records"], json!([{"n": 3000000}]));
}

/// What a held connection got within `wait`: its whole response (the server closes after it:
/// `Connection: close`), or None if nothing came (its query is still running).
async fn answer_within(s: &mut tokio::net::TcpStream, wait: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut out = Vec::new();
    match tokio::time::timeout(wait, s.read_to_end(&mut out)).await {
        Ok(Ok(_)) if !out.is_empty() => Some(String::from_utf8_lossy(&out).into_owned()),
        _ => None,
    }
}

/// Issue 21's lock-out: eight heavy queries from one caller. Those over the per-caller limit
/// (2 by default) answer 503 + `Retry-After` at once, in CKAN's shape; the endpoint's other
/// connections stay free, so another caller's `SELECT 1` answers in well under 250 ms.
#[tokio::test]
async fn one_caller_cannot_take_every_connection() {
    let app = app().await;
    let tag = "one_greedy_caller";
    // Warm: the other caller's query below should not pay for a first connection.
    assert_eq!(sql(&app, "SELECT 1 AS x", None).await.status, 200);
    let started = Instant::now();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(send_and_hold(&app, &heavy(tag)).await);
    }
    let mut refused = 0;
    let mut still_running = Vec::new();
    for mut s in held {
        match answer_within(&mut s, Duration::from_millis(1500)).await {
            Some(resp) => {
                assert!(resp.starts_with("HTTP/1.1 503"), "{resp}");
                assert!(
                    resp.to_ascii_lowercase().contains("\r\nretry-after: 5\r\n"),
                    "{resp}"
                );
                assert!(
                    resp.contains("\"__type\": \"Service Unavailable\""),
                    "{resp}"
                );
                assert!(resp.contains("\"success\": false"), "{resp}");
                assert!(!resp.contains("generate_series"), "no SQL text: {resp}");
                refused += 1;
            }
            None => still_running.push(s),
        }
    }
    let refusing_took = started.elapsed();
    assert_eq!(refused, 6, "all over the limit, and only those, refused");
    assert_eq!(running(tag).await, 2);
    // The 503s came at once, not after the 5 s pool wait (the 1.5 s reads of the two running
    // ones are in this figure too).
    assert!(refusing_took < Duration::from_secs(4), "{refusing_took:?}");
    // Another caller (a member's token) meanwhile.
    let member = crate::access::token("member");
    let asked = Instant::now();
    let r = sql(&app, "SELECT 1 AS x", Some(&member)).await;
    let took = asked.elapsed();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(took < Duration::from_millis(250), "{took:?}");
    // The greedy caller's slots come back when its queries end (here: its clients leave).
    drop(still_running);
    let gone = Instant::now();
    while running(tag).await > 0 {
        if gone.elapsed() > Duration::from_secs(2) {
            cancel(tag).await;
            panic!("abandoned queries still running 2 s after their clients left");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = sql(&app, "SELECT 1 AS x", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `db().read` as another login role (same server and database).
fn as_role(conninfo: &str, role: &str) -> String {
    let c: tokio_postgres::Config = conninfo.parse().unwrap();
    let host = match &c.get_hosts()[0] {
        tokio_postgres::config::Host::Tcp(h) => h.clone(),
        tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    format!(
        "host='{host}' port={} user='{role}' password='{role}' dbname='{}'",
        c.get_ports()[0],
        c.get_dbname().unwrap()
    )
}

/// The read role's `temp_file_limit` (src/sql_assets/read_role_limits.sql, which only a
/// superuser may run) stops a query that spills gigabytes to disk, answered 409 in CKAN's
/// shape with PostgreSQL's message and no SQL; the endpoint serves on.
#[tokio::test]
async fn a_query_over_temp_file_limit_is_stopped_with_a_clear_error() {
    let admin = ckan_datastore::demo::connect(&crate::harness::db().main_admin)
        .await
        .unwrap();
    // A reader like CKAN's read role (a member of it), with the shipped limits: exactly what
    // an operator runs, then a limit small enough to reach at once.
    let role = "sql_temp_limited";
    let read_role: String = {
        let c: tokio_postgres::Config = crate::harness::db().read.parse().unwrap();
        c.get_user().unwrap().to_string()
    };
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN CREATE ROLE {role} LOGIN PASSWORD '{role}'; \
             EXCEPTION WHEN duplicate_object THEN NULL; END $$; \
             GRANT \"{read_role}\" TO {role};"
        ))
        .await
        .unwrap();
    admin
        .batch_execute(&ckan_datastore::ckan_schema::read_role_limits_sql(role))
        .await
        .expect("the shipped read_role_limits.sql");
    let read_url = as_role(&crate::harness::db().read, role);
    let shipped = ckan_datastore::demo::connect(&read_url).await.unwrap();
    let limit: String = shipped
        .query_one("SHOW temp_file_limit", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(limit, "1GB", "what read_role_limits.sql sets");
    // What `serve` checks at start-up (a warning when there is none): the test read role has the
    // shipped limits too (`create_ckan_databases`).
    let shared = ckan_datastore::config::Settings::with_read_url(crate::harness::db().read.clone());
    assert_eq!(
        ckan_datastore::db::read_role_temp_file_limit(&shared)
            .await
            .unwrap()
            .as_deref(),
        Some("1GB")
    );
    admin
        .batch_execute(&format!("ALTER ROLE {role} SET temp_file_limit = '1MB'"))
        .await
        .unwrap();
    let app = crate::access::spawn_with_access("ckan.datastore.sqlsearch.enabled = true", |a| {
        a.read_url = Some(read_url.clone())
    })
    .await;
    let started = Instant::now();
    let r = sql(
        &app,
        "SELECT count(*) AS n FROM generate_series(1, 2000000000) g",
        None,
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());
    let error = &r.json()["error"];
    assert_eq!(error["__type"], "Validation Error");
    assert_eq!(
        error["query"],
        json!(["Query needs more temporary disk space than the server allows"])
    );
    assert_eq!(
        error["info"]["orig"],
        json!(["temporary file size exceeds temp_file_limit (1024kB)"])
    );
    assert!(!r.text().contains("generate_series"), "{}", r.text());
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let r = sql(&app, "SELECT 1 AS x", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// `sqlsearch_max_answer_bytes`: issue 21's 1 GB of rows stops at the bound with a 409 in
/// CKAN's shape (a deliberate difference: CKAN has no bound), its query cancelled; an answer
/// under the bound that is rendered off the request threads is whole and exact.
#[tokio::test]
async fn an_answer_over_the_size_bound_is_stopped_with_a_clear_error() {
    let app = crate::access::spawn_with_access("ckan.datastore.sqlsearch.enabled = true", |a| {
        a.sqlsearch_max_answer_bytes = Some(5_000_000)
    })
    .await;
    let started = Instant::now();
    let r = sql(
        &app,
        "SELECT repeat('x', 1000000) AS answer_bound_1 FROM generate_series(1, 1000)",
        None,
    )
    .await;
    assert_eq!(r.status, 409, "{}", &r.text()[..r.text().len().min(300)]);
    let error = &r.json()["error"];
    assert_eq!(error["__type"], "Validation Error");
    assert_eq!(
        error["query"],
        json!(["Query result too large: its records would exceed 5000000 bytes; select fewer rows or columns"])
    );
    assert!(r.body.len() < 1000, "no records in the error");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    // Stopped, not left to send the rest.
    let stopped = Instant::now();
    while running("answer_bound_1").await > 0 {
        assert!(
            stopped.elapsed() < Duration::from_secs(2),
            "query not cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // 4 MB, rendered in batches on blocking threads and sent without a copy: every record,
    // in order, exactly.
    let r = sql(
        &app,
        "SELECT g AS n, repeat(chr(96 + g), 200000) AS t FROM generate_series(1, 20) g ORDER BY g",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", &r.text()[..r.text().len().min(300)]);
    // Sent in slices, never chunked: the length CKAN's answer has.
    assert_eq!(
        r.headers.get("content-length").unwrap().to_str().unwrap(),
        r.body.len().to_string()
    );
    assert!(r.headers.get("transfer-encoding").is_none());
    let records = r.json()["result"]["records"].as_array().unwrap().clone();
    assert_eq!(records.len(), 20);
    for (i, rec) in records.iter().enumerate() {
        let n = i as u32 + 1;
        assert_eq!(rec["n"], json!(n));
        let c = char::from_u32(96 + n).unwrap().to_string();
        assert_eq!(rec["t"].as_str().unwrap(), c.repeat(200_000), "record {n}");
    }
    // A single row over the bound.
    let r = sql(&app, "SELECT repeat('y', 6000000) AS y", None).await;
    assert_eq!(r.status, 409, "{}", &r.text()[..r.text().len().min(300)]);
}
