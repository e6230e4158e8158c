//! A request's cost must not grow with the number of tables, and the index lookups that make it
//! so must answer exactly what CKAN's catalog views answer: `datastore_info`'s aliases
//! (`_table_metadata WHERE alias_of = …`), `table_type` (`pg_matviews` /
//! `information_schema.tables`) and row count, on a database with a thousand extra tables.

use serde_json::{json, Value};

use ckan_datastore::ckan_schema::{create_table_sql, FieldDef};

use crate::harness::{create_table, spawn_app, TestApp};

/// What CKAN's own queries say about `id` (its `datastore_info` SQL, verbatim).
async fn ckan_view_of(app: &TestApp, id: &str) -> (Value, Option<String>, i64) {
    let w = app.writer().await;
    let aliases: String = w
        .query_one(
            "SELECT coalesce(json_agg(name), '[]')::text FROM \
             (SELECT name FROM \"_table_metadata\" WHERE alias_of = $1::text) a",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    let table_type: Option<String> = w
        .query_one(
            "SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_matviews WHERE matviewname = $1::text) \
               THEN 'MATERIALIZED VIEW' ELSE (SELECT table_type::text FROM information_schema.tables \
               WHERE table_name = $1::text LIMIT 1) END",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    let count: i64 = w
        .query_one(&format!("SELECT count(_id) FROM \"{id}\""), &[])
        .await
        .unwrap()
        .get(0);
    (serde_json::from_str(&aliases).unwrap(), table_type, count)
}

async fn meta(app: &TestApp, id: &str) -> Value {
    let r = app.info(&json!({"id": id}).to_string()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["result"]["meta"].clone()
}

async fn assert_meta_as_ckan(app: &TestApp, id: &str) {
    let m = meta(app, id).await;
    let (aliases, table_type, count) = ckan_view_of(app, id).await;
    assert_eq!(m["aliases"], aliases, "aliases of {id}");
    assert_eq!(m["table_type"], json!(table_type), "table_type of {id}");
    assert_eq!(m["count"], json!(count), "count of {id}");
}

#[tokio::test]
async fn info_meta_is_what_ckans_views_say() {
    let app = spawn_app().await;
    let t = create_table(
        &app,
        "scale1",
        &[("a", "int"), ("b", "text")],
        "INSERT INTO {T} (a, b) SELECT g, 'x' FROM generate_series(1, 25) g",
    )
    .await;
    let other = create_table(&app, "scale2", &[("a", "int")], "").await;
    assert_meta_as_ckan(&app, &t).await;
    let w = app.writer().await;
    // Several aliases, created in an order that differs from their names' order; one alias of
    // another table; an alias of an alias is not an alias of the table.
    for (alias, of) in [
        (format!("zz-{t}"), &t),
        (format!("aa-{t}"), &t),
        (format!("mm-{t}"), &t),
        (format!("other-{t}"), &other),
    ] {
        w.batch_execute(&format!(
            "CREATE VIEW \"{alias}\" AS SELECT * FROM \"{of}\""
        ))
        .await
        .unwrap();
    }
    w.batch_execute(&format!(
        "CREATE VIEW \"second-{t}\" AS SELECT * FROM \"aa-{t}\""
    ))
    .await
    .unwrap();
    assert_meta_as_ckan(&app, &t).await;
    assert_meta_as_ckan(&app, &other).await;
    assert_eq!(meta(&app, &t).await["aliases"].as_array().unwrap().len(), 3);

    // The count follows writes (cached, and proven current).
    w.batch_execute(&format!("DELETE FROM \"{t}\" WHERE a <= 5"))
        .await
        .unwrap();
    assert_meta_as_ckan(&app, &t).await;
    w.batch_execute(&format!("DROP VIEW \"mm-{t}\""))
        .await
        .unwrap();
    assert_meta_as_ckan(&app, &t).await;
    // db_size is the database's size (a few seconds old at most).
    let m = meta(&app, &t).await;
    let size: i64 = w
        .query_one("SELECT pg_database_size(current_database())", &[])
        .await
        .unwrap()
        .get(0);
    let served = m["db_size"].as_i64().unwrap();
    assert!(
        served > 0 && (served - size).abs() < size / 2,
        "{served} vs {size}"
    );
}

/// A thousand more CKAN-shaped tables (some with aliases and data dictionaries): every answer
/// still equals a fresh query.
#[tokio::test]
async fn many_tables_answer_exactly() {
    let app = spawn_app().await;
    let w = app.writer().await;
    let run = std::process::id();
    let mut ids = Vec::new();
    let mut sql = String::new();
    for n in 0..1000 {
        let id = format!("{n:08x}-many-4000-8000-{run:012x}");
        let fields = [
            FieldDef {
                id: "n".into(),
                type_: "int".into(),
                info: (n % 7 == 0).then(|| json!({"label": format!("N {n}")})),
            },
            FieldDef {
                id: "t".into(),
                type_: "text".into(),
                info: None,
            },
        ];
        let aliases = if n % 50 == 0 {
            vec![format!("many-alias-{n}-{run}")]
        } else {
            vec![]
        };
        for s in create_table_sql(&id, &fields, &[], &aliases) {
            sql.push_str(&s);
            sql.push_str(";\n");
        }
        sql.push_str(&format!(
            "INSERT INTO \"{id}\" (n, t) SELECT g, 'row ' || g FROM generate_series(1, {}) g;\n",
            n % 13 + 1
        ));
        ids.push(id);
        if sql.len() > 200_000 {
            w.batch_execute(&sql).await.unwrap();
            sql.clear();
        }
    }
    w.batch_execute(&sql).await.unwrap();
    for (k, id) in ids.iter().enumerate().step_by(97) {
        assert_meta_as_ckan(&app, id).await;
        let r = app
            .search(&json!({"resource_id": id, "filters": {"n": 1}}).to_string())
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["result"]["total"], json!(1), "{id}");
        let all = app.search(&json!({"resource_id": id}).to_string()).await;
        assert_eq!(all.json()["result"]["total"], json!(k % 13 + 1), "{id}");
    }
    for n in (0..1000).step_by(250) {
        let alias = format!("many-alias-{n}-{run}");
        let r = app.search(&json!({"resource_id": alias}).to_string()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.json()["result"]["resource_id"], json!(ids[n]));
        assert_eq!(meta(&app, &ids[n]).await["aliases"], json!([alias]));
    }
}

/// A pooled connection is retired once it has read `conn_max_tables` distinct tables: its
/// successor is opened in the background while it goes on serving, then takes its place, so
/// there are never more than the pool's size plus one connection (the one being opened).
#[tokio::test]
async fn connections_are_retired_after_many_tables() {
    let name = format!("retire-{}", std::process::id());
    let app = crate::harness::spawn_app_with(|s| {
        s.read_url = if !s.read_url.starts_with("postgres") {
            format!("{} application_name={name}", s.read_url)
        } else if s.read_url.contains('?') {
            format!("{}&application_name={name}", s.read_url)
        } else {
            format!("{}?application_name={name}", s.read_url)
        };
        s.pool_size = 1;
        s.conn_max_tables = 3;
    })
    .await;
    let mut ids = Vec::new();
    for n in 0..12 {
        ids.push(create_table(&app, &format!("retire{n}"), &[("a", "int")], "").await);
    }
    let w = app.writer().await;
    let backends = || async {
        let rows = w
            .query(
                "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                &[&name],
            )
            .await
            .unwrap();
        rows.iter().map(|r| r.get::<_, i32>(0)).collect::<Vec<_>>()
    };
    let mut seen = std::collections::BTreeSet::new();
    for id in &ids {
        let r = app.search(&json!({"resource_id": id}).to_string()).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let live = backends().await;
        assert!(
            live.len() <= 2,
            "one pooled connection and at most one successor: {live:?}"
        );
        seen.extend(live);
        // Time for a successor to open (it is swapped in at the next request).
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // 12 tables, a successor due after every 3 or 4: at least 3 connections in turn.
    assert!(seen.len() >= 3, "backends seen: {seen:?}");
    // Each swap is counted for operators; the pool itself never holds more than its size.
    let metrics = app.send("GET", "/metrics", "", None).await.text();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name} in {metrics}"))
            .parse()
            .unwrap()
    };
    assert!(
        value("ckan_datastore_db_connections_retired_total") >= 2,
        "{metrics}"
    );
    assert!(value("ckan_datastore_db_connections") <= 1, "{metrics}");
}

/// Deep pages in `_id` order (found through the primary key first) hold exactly the rows
/// CKAN's `ORDER BY _id LIMIT n OFFSET m` gives, in the same order, gaps and all.
#[tokio::test]
async fn deep_pages_are_the_same_rows() {
    let app = spawn_app().await;
    let t = create_table(
        &app,
        "deep",
        &[("n", "int"), ("t", "text")],
        "INSERT INTO {T} (n, t) SELECT g, 'row ' || g FROM generate_series(1, 30000) g; \
         DELETE FROM {T} WHERE n % 7 = 0",
    )
    .await;
    let w = app.writer().await;
    for (offset, sort) in [(12_000, "asc"), (25_000, "desc"), (40_000, "asc")] {
        let r = app
            .search(
                &json!({"resource_id": t, "offset": offset, "limit": 50, "sort": format!("_id {sort}")})
                    .to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let got = r.json()["result"]["records"].clone();
        let want: String = w
            .query_one(
                &format!(
                    "SELECT coalesce(json_agg(json_build_object('_id', _id, 'n', n, 't', t)), '[]')::text \
                     FROM (SELECT * FROM \"{t}\" ORDER BY _id {sort} LIMIT 50 OFFSET {offset}) x"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            got,
            serde_json::from_str::<Value>(&want).unwrap(),
            "{offset} {sort}"
        );
    }
}
