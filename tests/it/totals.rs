//! The totals cache: paging through one result counts once, and a total is never stale after a
//! write made the way CKAN makes it (data written, then `_table_stats` cleared, or, with
//! `calculate_record_count: true`, ANALYZE'd), whatever the write, on any server instance, under
//! concurrent load. Writes that bypass CKAN are reflected within `totals_max_staleness_ms`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio_postgres::Client;

use crate::harness::{create_table, spawn_app_with, TestApp};

/// A server that can read CKAN's `_table_stats` (write URL configured, as `--ckan-ini` gives it).
async fn ckan_site_app(max_staleness_ms: u64) -> TestApp {
    let write = crate::harness::db().write.clone();
    spawn_app_with(move |s| {
        s.write_url = Some(write);
        s.totals_max_staleness_ms = max_staleness_ms;
    })
    .await
}

/// (hits, misses, invalidations) from `/metrics`.
async fn counters(app: &TestApp) -> (u64, u64, u64) {
    let text = app.send("GET", "/metrics", "", None).await.text();
    let get = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} missing from {text}"))
            .trim()
            .parse()
            .unwrap()
    };
    (
        get("ckan_datastore_totals_cache_hits_total"),
        get("ckan_datastore_totals_cache_misses_total"),
        get("ckan_datastore_totals_cache_invalidations_total"),
    )
}

/// A table of `n` rows, `cat` cycling over four values, with CKAN's cached row count in place
/// (what CKAN's background job leaves) and autovacuum off so only our writes touch it.
async fn table(app: &TestApp, tag: &str, n: i64) -> (String, Client) {
    let id = create_table(
        app,
        tag,
        &[("n", "int"), ("cat", "text")],
        &format!(
            "INSERT INTO {{T}} (n, cat) SELECT g, 'c' || (g % 4) FROM generate_series(1, {n}) g"
        ),
    )
    .await;
    let w = app.writer().await;
    w.batch_execute(&format!(
        "ALTER TABLE \"{id}\" SET (autovacuum_enabled = false); SELECT update_table_stats('{id}')"
    ))
    .await
    .unwrap();
    (id, w)
}

/// What CKAN's datastore_upsert/delete/records_delete do with the default
/// `calculate_record_count`: the write, committed; then `_table_stats` cleared.
async fn ckan_write(w: &Client, id: &str, sql: &str) {
    w.batch_execute(&sql.replace("{T}", &format!("\"{id}\"")))
        .await
        .unwrap();
    w.execute(
        "DELETE FROM \"_table_stats\" WHERE resource_id = $1",
        &[&id],
    )
    .await
    .unwrap();
}

async fn true_count(w: &Client, id: &str, filter_cat: Option<&str>) -> i64 {
    let row = match filter_cat {
        Some(c) => {
            w.query_one(
                &format!("SELECT count(*) FROM \"{id}\" WHERE cat = $1"),
                &[&c],
            )
            .await
        }
        None => {
            w.query_one(&format!("SELECT count(*) FROM \"{id}\""), &[])
                .await
        }
    };
    row.unwrap().get(0)
}

async fn total(app: &TestApp, body: Value) -> i64 {
    let r = app.search(&body.to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["result"]["total"].as_i64().unwrap()
}

#[tokio::test]
async fn paging_through_a_filtered_result_counts_once() {
    let app = ckan_site_app(60_000).await;
    let (id, _w) = table(&app, "page", 2000).await;
    let before = counters(&app).await;
    for (i, format) in ["objects", "lists", "csv", "tsv", "objects"]
        .iter()
        .cycle()
        .take(20)
        .enumerate()
    {
        let body = json!({
            "resource_id": id, "filters": {"cat": "c1"}, "limit": 10, "offset": i * 10,
            "records_format": format, "sort": if i % 2 == 0 { "n desc" } else { "_id" },
            "fields": if i % 3 == 0 { json!("n,cat") } else { json!(["cat"]) },
        });
        assert_eq!(total(&app, body).await, 500, "page {i}");
    }
    let after = counters(&app).await;
    assert_eq!(
        after.1 - before.1,
        1,
        "the count ran more than once: {before:?} -> {after:?}"
    );
    assert_eq!(after.0 - before.0, 19);
    // Another filter is another count.
    assert_eq!(
        total(
            &app,
            json!({"resource_id": id, "filters": {"cat": ["c1", "c2"]}})
        )
        .await,
        1000
    );
    assert_eq!(counters(&app).await.1 - before.1, 2);
}

#[tokio::test]
async fn ckan_writes_of_every_kind_are_seen_by_the_next_search() {
    let app = ckan_site_app(60_000).await;
    let (id, w) = table(&app, "kinds", 400).await;
    let filtered = json!({"resource_id": id, "filters": {"cat": "c2"}, "limit": 1});
    let unfiltered = json!({"resource_id": id, "limit": 1});
    let check = |label: &'static str| {
        let (app, w, id, filtered, unfiltered) =
            (&app, &w, &id, filtered.clone(), unfiltered.clone());
        async move {
            // Warm, then the write happens in the caller, then this must be exact.
            assert_eq!(
                total(app, filtered).await,
                true_count(w, id, Some("c2")).await,
                "{label}: filtered"
            );
            assert_eq!(
                total(app, unfiltered).await,
                true_count(w, id, None).await,
                "{label}: unfiltered"
            );
        }
    };
    check("warm").await;
    for (label, sql) in [
        (
            "insert",
            "INSERT INTO {T} (n, cat) SELECT g, 'c2' FROM generate_series(1, 7) g",
        ),
        (
            "update of the filtered column",
            "UPDATE {T} SET cat = 'c2' WHERE n BETWEEN 1 AND 20 AND cat <> 'c2'",
        ),
        (
            "update elsewhere",
            "UPDATE {T} SET n = n + 1 WHERE cat = 'c3'",
        ),
        ("delete", "DELETE FROM {T} WHERE n % 9 = 0"),
        ("truncate", "TRUNCATE {T}"),
        (
            "refill",
            "INSERT INTO {T} (n, cat) SELECT g, 'c' || (g % 4) FROM generate_series(1, 50) g",
        ),
    ] {
        // Counts cached while CKAN's _table_stats row is present, as after its background job.
        w.batch_execute(&format!("SELECT update_table_stats('{id}')"))
            .await
            .unwrap();
        check(label).await;
        ckan_write(&w, &id, sql).await;
        check(label).await;
    }
    // calculate_record_count = true: CKAN runs update_table_stats() instead of clearing.
    w.batch_execute(&format!("SELECT update_table_stats('{id}')"))
        .await
        .unwrap();
    check("before calculate_record_count=true").await;
    w.batch_execute(&format!(
        "INSERT INTO \"{id}\" (n, cat) VALUES (1, 'c2'), (2, 'c2')"
    ))
    .await
    .unwrap();
    w.batch_execute(&format!("SELECT update_table_stats('{id}')"))
        .await
        .unwrap();
    check("calculate_record_count=true").await;

    // Drop and re-create under the same id.
    w.batch_execute(&format!("DROP TABLE \"{id}\""))
        .await
        .unwrap();
    let sql = ckan_datastore::ckan_schema::create_table_sql(
        &id,
        &[
            ckan_datastore::ckan_schema::FieldDef {
                id: "n".into(),
                type_: "int".into(),
                info: None,
            },
            ckan_datastore::ckan_schema::FieldDef {
                id: "cat".into(),
                type_: "text".into(),
                info: None,
            },
        ],
        &[],
        &[],
    )
    .join(";");
    w.batch_execute(&sql).await.unwrap();
    ckan_write(
        &w,
        &id,
        "INSERT INTO {T} (n, cat) VALUES (1, 'c2'), (2, 'c2'), (3, 'c1')",
    )
    .await;
    check("re-created").await;
}

#[tokio::test]
async fn alias_retargeting_changes_the_total_at_once() {
    let app = ckan_site_app(60_000).await;
    let (t1, w) = table(&app, "al1", 40).await;
    let (t2, _) = table(&app, "al2", 80).await;
    let alias = format!("alias-{t1}");
    w.batch_execute(&format!(
        "CREATE VIEW \"{alias}\" AS SELECT * FROM \"{t1}\""
    ))
    .await
    .unwrap();
    let body = json!({"resource_id": alias, "filters": {"cat": "c0"}});
    assert_eq!(total(&app, body.clone()).await, 10);
    w.batch_execute(&format!(
        "DROP VIEW \"{alias}\"; CREATE VIEW \"{alias}\" AS SELECT * FROM \"{t2}\""
    ))
    .await
    .unwrap();
    assert_eq!(total(&app, body).await, 20);
}

#[tokio::test]
async fn two_instances_agree_after_a_write() {
    let a = ckan_site_app(60_000).await;
    let b = ckan_site_app(60_000).await;
    let (id, w) = table(&a, "two", 300).await;
    let body = json!({"resource_id": id, "filters": {"cat": "c1"}, "limit": 0});
    assert_eq!(total(&a, body.clone()).await, 75);
    assert_eq!(total(&b, body.clone()).await, 75);
    ckan_write(&w, &id, "DELETE FROM {T} WHERE n < 41").await;
    let want = true_count(&w, &id, Some("c1")).await;
    assert_eq!(total(&b, body.clone()).await, want);
    assert_eq!(total(&a, body.clone()).await, want);
    ckan_write(&w, &id, "INSERT INTO {T} (n, cat) VALUES (0, 'c1')").await;
    assert_eq!(total(&a, body.clone()).await, want + 1);
    assert_eq!(total(&b, body).await, want + 1);
}

#[tokio::test]
async fn writes_bypassing_ckan_are_seen_within_the_bound() {
    let bound = Duration::from_millis(400);
    let app = ckan_site_app(bound.as_millis() as u64).await;
    let (id, w) = table(&app, "bypass", 200).await;
    let body = json!({"resource_id": id, "filters": {"cat": "c3"}, "limit": 0});
    assert_eq!(total(&app, body.clone()).await, 50);
    // Plain SQL: CKAN's _table_stats is untouched.
    w.batch_execute(&format!(
        "DELETE FROM \"{id}\" WHERE cat = 'c3' AND n < 100"
    ))
    .await
    .unwrap();
    let written = Instant::now();
    let want = true_count(&w, &id, Some("c3")).await;
    loop {
        let t = total(&app, body.clone()).await;
        if t == want {
            break;
        }
        assert_eq!(t, 50, "neither the old nor the new total");
        assert!(
            written.elapsed() < bound + Duration::from_millis(500),
            "still stale after {:?}",
            written.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Without CKAN's write role the server only trusts PostgreSQL's snapshot: always exact.
    let exact = crate::harness::spawn_app().await;
    assert_eq!(total(&exact, body.clone()).await, want);
    w.batch_execute(&format!("DELETE FROM \"{id}\" WHERE cat = 'c3'"))
        .await
        .unwrap();
    assert_eq!(total(&exact, body).await, 0);
}

#[tokio::test]
async fn concurrent_readers_never_see_a_total_that_was_never_true() {
    let app = ckan_site_app(60_000).await;
    let (id, w) = table(&app, "conc", 1000).await;
    let start = Instant::now();
    let body = json!({"resource_id": id, "filters": {"cat": "c0"}, "limit": 5});
    // Writer: each write commits together with the _table_stats clear CKAN does right after it.
    let writer = {
        let id = id.clone();
        tokio::spawn(async move {
            let mut log = vec![(Duration::ZERO, Duration::ZERO, 250_i64)];
            for i in 0..25 {
                let sql = if i % 3 == 2 {
                    format!("DELETE FROM \"{id}\" WHERE _id IN (SELECT _id FROM \"{id}\" WHERE cat = 'c0' LIMIT 2)")
                } else {
                    format!("INSERT INTO \"{id}\" (n, cat) VALUES ({i}, 'c0')")
                };
                let sent = start.elapsed();
                w.batch_execute(&format!(
                    "BEGIN; {sql}; DELETE FROM \"_table_stats\" WHERE resource_id = '{id}'; COMMIT"
                ))
                .await
                .unwrap();
                let done = start.elapsed();
                let n: i64 = w
                    .query_one(
                        &format!("SELECT count(*) FROM \"{id}\" WHERE cat = 'c0'"),
                        &[],
                    )
                    .await
                    .unwrap()
                    .get(0);
                log.push((sent, done, n));
                if i % 5 == 4 {
                    // CKAN's background job puts the row count back now and then.
                    w.batch_execute(&format!("SELECT update_table_stats('{id}')"))
                        .await
                        .unwrap();
                }
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            log
        })
    };
    let mut readers = Vec::new();
    for _ in 0..6 {
        let (base, body) = (app.base.clone(), body.clone());
        readers.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut seen = Vec::new();
            while start.elapsed() < Duration::from_millis(1500) {
                let s = start.elapsed();
                let v: Value = client
                    .post(format!("{base}/api/3/action/datastore_search"))
                    .header("Content-Type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                seen.push((s, start.elapsed(), v["result"]["total"].as_i64().unwrap()));
            }
            seen
        }));
    }
    let log = writer.await.unwrap();
    let mut observations = 0;
    for r in readers {
        for (s, e, t) in r.await.unwrap() {
            observations += 1;
            // Value i may be visible from when its write was sent until write i+1 returned.
            let ok = (0..log.len()).any(|i| {
                let from = if i == 0 { Duration::ZERO } else { log[i].0 };
                let until = log.get(i + 1).map(|n| n.1).unwrap_or(Duration::MAX);
                log[i].2 == t && from <= e && s <= until
            });
            assert!(
                ok,
                "total {t} seen during {s:?}..{e:?} was never true then; writes: {log:?}"
            );
        }
    }
    assert!(observations > 30, "only {observations} observations");
}

#[tokio::test]
async fn total_estimation_threshold_is_honoured_only_when_configured() {
    let app = spawn_app_with(|s| s.honour_total_estimation = true).await;
    let (id, _w) = table(&app, "estim", 4000).await;
    let search = |body: Value| {
        let app = &app;
        async move {
            let r = app.search(&body.to_string()).await;
            assert_eq!(r.status, 200, "{}", r.text());
            let v = r.json()["result"].clone();
            (
                v["total"].as_i64().unwrap(),
                v["total_was_estimated"].clone(),
                v["total_estimation_threshold"].clone(),
            )
        }
    };
    // Unfiltered: pg_class.reltuples (exact here, just ANALYZEd), as CKAN 2.11.
    assert_eq!(
        search(json!({"resource_id": id, "total_estimation_threshold": 1000})).await,
        (4000, json!(true), json!(1000))
    );
    assert_eq!(
        search(json!({"resource_id": id, "total_estimation_threshold": 100000})).await,
        (4000, json!(false), json!(100000))
    );
    // Filtered: the planner's estimate above the threshold, the exact count below it.
    let (t, est, _) = search(
        json!({"resource_id": id, "filters": {"cat": "c1"}, "total_estimation_threshold": 10}),
    )
    .await;
    assert_eq!(est, json!(true));
    assert!((900..=1100).contains(&t), "estimate {t}");
    assert_eq!(
        search(json!({"resource_id": id, "filters": {"cat": "c1"}, "total_estimation_threshold": 1000000})).await,
        (1000, json!(false), json!(1000000))
    );
    let r = app
        .search(&json!({"resource_id": id, "total_estimation_threshold": "x"}).to_string())
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["error"]["total_estimation_threshold"],
        json!(["Invalid integer"])
    );

    // As CKAN 2.12 by default: accepted, ignored, not echoed.
    let plain = crate::harness::spawn_app().await;
    let r = plain
        .search(&json!({"resource_id": id, "total_estimation_threshold": 10}).to_string())
        .await;
    let v = r.json()["result"].clone();
    assert_eq!(v["total"], json!(4000));
    assert!(
        v.get("total_was_estimated").is_none() && v.get("total_estimation_threshold").is_none()
    );
}
