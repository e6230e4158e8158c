//! Dumps stream from one statement: a consistent snapshot while CKAN writes, backpressure from
//! a slow client, and a cancelled query when the client goes away.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{create_table, spawn_app, TestApp};

async fn big_table(app: &TestApp, tag: &str, rows: i64) -> String {
    create_table(
        app,
        tag,
        &[("n", "int"), ("t", "text")],
        &format!(
            "INSERT INTO {{T}} (n, t) SELECT g, repeat('row ' || g || ' ', 8) FROM generate_series(1, {rows}) g"
        ),
    )
    .await
}

async fn open_dump(app: &TestApp, id: &str) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(app.base.trim_start_matches("http://"))
        .await
        .unwrap();
    s.write_all(
        format!("GET /datastore/dump/{id} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )
    .await
    .unwrap();
    s
}

/// Reads at least `n` bytes.
async fn read_some(s: &mut tokio::net::TcpStream, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    while out.len() < n {
        let k = s.read(&mut buf).await.unwrap();
        if k == 0 {
            break;
        }
        out.extend_from_slice(&buf[..k]);
    }
    out
}

#[tokio::test]
async fn a_dump_is_one_snapshot_while_the_table_changes() {
    let app = spawn_app().await;
    let id = big_table(&app, "snap", 60_000).await;
    let w = app.writer().await;
    let mut s = open_dump(&app, &id).await;
    let mut body = read_some(&mut s, 100 * 1024).await;
    // The dump is under way (and held back by this slow reader): change the table under it.
    w.batch_execute(&format!(
        "DELETE FROM \"{id}\" WHERE n % 2 = 0; \
         INSERT INTO \"{id}\" (n, t) SELECT g, 'late' FROM generate_series(1, 5000) g"
    ))
    .await
    .unwrap();
    s.read_to_end(&mut body).await.unwrap();
    let text = String::from_utf8_lossy(&body);
    let payload = &text[text.find("\r\n\r\n").unwrap() + 4..];
    // Undo chunked framing: count data lines by their `_id,n,` prefix.
    let rows = payload.matches(",row ").count();
    assert_eq!(rows, 60_000, "the dump mixed two states of the table");
    assert!(!payload.contains("late"));
}

#[tokio::test]
async fn an_abandoned_dump_stops_its_query() {
    let app = spawn_app().await;
    let id = big_table(&app, "gone", 100_000).await;
    let mut s = open_dump(&app, &id).await;
    let first = read_some(&mut s, 64 * 1024).await;
    assert!(first.starts_with(b"HTTP/1.1 200"));
    let reader = ckan_datastore::demo::connect(&app.db.read).await.unwrap();
    let active = || async {
        reader
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'COPY (WITH records_page%' \
                 AND query LIKE $1",
                &[&format!("%{id}%")],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(
        active().await,
        1,
        "the dump's query should still be running (backpressure)"
    );
    drop(s);
    let gone = Instant::now();
    while active().await > 0 {
        assert!(
            gone.elapsed() < Duration::from_secs(2),
            "query still active 2 s after the client left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // It was stopped by us, not left to run to its end: PostgreSQL logs the query with the
    // reason it ended — our cancel, or, when the backend was blocked sending to us (a cancel
    // waits until a blocked write completes), the connection we closed right after it.
    if crate::harness::server_log().is_some() {
        // Other tests' backends write to the same log at the same time: match the query's
        // STATEMENT line to the line its own backend (`[pid]` in the prefix) wrote just before.
        let cancelled = || {
            let log = crate::harness::server_log().unwrap();
            let lines: Vec<&str> = log.lines().collect();
            let pid = |l: &str| {
                l.split_once('[')
                    .and_then(|(_, r)| r.split_once(']'))
                    .map(|(p, _)| p.to_string())
            };
            lines.iter().enumerate().any(|(i, l)| {
                if !(l.contains("STATEMENT:") && l.contains(&id)) {
                    return false;
                }
                let Some(p) = pid(l) else { return false };
                lines[..i]
                    .iter()
                    .rev()
                    .find(|m| pid(m).as_deref() == Some(p.as_str()))
                    .is_some_and(|m| {
                        m.contains("canceling statement due to user request")
                            || m.contains("connection to client lost")
                    })
            })
        };
        // The query has stopped; its log line can take a moment to be written on a loaded machine.
        while !cancelled() {
            assert!(
                gone.elapsed() < Duration::from_secs(10),
                "no cancel (or closed connection) for the query in PostgreSQL's log"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The pool still serves.
    let r = app
        .send("GET", &format!("/datastore/dump/{id}?limit=2"), "", None)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.text().lines().count(), 3);
}

#[tokio::test]
async fn dumps_in_progress_do_not_starve_searches() {
    let setup = spawn_app().await;
    let id = big_table(&setup, "starve", 40_000).await;
    let app = crate::harness::spawn_app_with(|s| {
        s.pool_size = 1;
        s.dump_pool_size = 1;
    })
    .await;
    // A dump held open by a client that stopped reading keeps its connection.
    let mut s = open_dump(&app, &id).await;
    let first = read_some(&mut s, 64 * 1024).await;
    assert!(first.starts_with(b"HTTP/1.1 200"));
    let started = Instant::now();
    let r = app
        .search(&serde_json::json!({"resource_id": id, "limit": 1}).to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(s);
}
