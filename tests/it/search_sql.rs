//! `datastore_search_sql` against an attack corpus, with access control on: everything CKAN
//! refuses is refused the same way, CKAN 2.12.0's own bypasses are closed (ckan-auth.md §4.4),
//! and what could still write, sleep, read files or other schemas never runs. The recorded
//! CKAN answers for ordinary queries are in tests/golden/sql (goldens.rs).

use serde_json::{json, Value};

use crate::access::{spawn_with_access, token, R1, R13, R14, R3};
use crate::harness::{Resp, TestApp};

pub async fn sql(app: &TestApp, query: &str, auth: Option<&str>) -> Resp {
    let mut req = app
        .client
        .post(format!("{}/api/3/action/datastore_search_sql", app.base))
        .json(&json!({ "sql": query }));
    if let Some(t) = auth {
        req = req.header("Authorization", t);
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

fn message(r: &Resp) -> String {
    let v: Value = r.json();
    v["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub async fn app() -> TestApp {
    spawn_with_access("ckan.datastore.sqlsearch.enabled = true", |_| {}).await
}

#[tokio::test]
async fn the_attack_corpus_is_refused_before_anything_runs() {
    let app = app().await;
    let forbidden_read = "Access denied: Not authorized to read resource.";
    let cases: Vec<(String, u16, String)> = vec![
        // CKAN 2.12.0 runs this (its allowlist has ts_rewrite) and leaks the private rows.
        (
            format!("SELECT ts_rewrite('one'::tsquery, 'SELECT to_tsquery(''simple'', v), to_tsquery(''simple'', ''LEAKED'') FROM \"{R3}\"') AS x"),
            403,
            "Access denied: Not authorized to call function ts_rewrite".into(),
        ),
        // CKAN 2.12.0 finds a public resource *named* like this private alias: 200.
        (format!("SELECT k, v FROM \"{R13}\""), 404, "Not found".into()),
        // … and like this orphan table of a purged private dataset: 200 with its rows.
        (format!("SELECT * FROM \"{R14}\""), 404, "Not found".into()),
        (format!("SELECT * FROM \"{R3}\""), 403, forbidden_read.into()),
        (format!("TABLE \"{R3}\""), 403, forbidden_read.into()),
        (format!("SELECT * FROM \"{R1}\" a JOIN \"{R3}\" b ON a.k = b.k"), 403, forbidden_read.into()),
        // A CTE named like a public table, reading a private one.
        (format!("WITH \"{R1}\" AS (SELECT * FROM \"{R3}\") SELECT * FROM \"{R1}\""), 403, forbidden_read.into()),
        (format!("SELECT * FROM \"{R1}\" WHERE (SELECT k FROM \"{R3}\" LIMIT 1) = 1"), 403, forbidden_read.into()),
        (format!("SELECT * FROM \"{R1}\" WHERE pg_sleep(30) IS NULL"), 403, "Access denied: Not authorized to call function pg_sleep".into()),
        ("SELECT (SELECT pg_sleep(30))".into(), 403, "Access denied: Not authorized to call function pg_sleep".into()),
        ("SELECT pg_read_file('/etc/passwd')".into(), 403, "Access denied: Not authorized to call function pg_read_file".into()),
        ("SELECT lo_import('/etc/passwd')".into(), 403, "Access denied: Not authorized to call function lo_import".into()),
        ("SELECT dblink('dbname=ckan_default', 'SELECT 1')".into(), 403, "Access denied: Not authorized to call function dblink".into()),
        (format!("SELECT query_to_xml('SELECT * FROM \"{R3}\"', true, true, '')"), 403, "Access denied: Not authorized to call function query_to_xml".into()),
        ("SELECT set_config('search_path', 'pg_catalog', false)".into(), 403, "Access denied: Not authorized to call function set_config".into()),
        ("SELECT nextval('x')".into(), 403, "Access denied: Not authorized to call function nextval".into()),
        ("SELECT pg_catalog.upper('a')".into(), 403, "Access denied: Not authorized to call function pg_catalog.upper".into()),
        // CKAN compares lower-cased names: allowed, and PostgreSQL has no "UPPER".
        ("SELECT \"UPPER\"('a')".into(), 409, "".into()),
        ("SELECT * FROM pg_catalog.pg_authid".into(), 403, "Access denied: Not authorized to access tables in other schemas".into()),
        ("SELECT * FROM information_schema.tables".into(), 403, "Access denied: Not authorized to access tables in other schemas".into()),
        ("SELECT * FROM pg_roles".into(), 403, "Access denied: Not authorized to access system tables".into()),
        ("SELECT * FROM \"_table_metadata\"".into(), 404, "Not found".into()),
        ("SELECT * FROM \"ÄÖ-täble\"".into(), 404, "Not found".into()),
        ("SELECT * FROM otherdb.public.t".into(), 409, "Catalog cannot be provided: otherdb".into()),
        (format!("SELECT * FROM \"{R1}\"; DROP TABLE \"{R1}\""), 409, "Query is not a single statement".into()),
        (format!("SELECT * FROM \"{R1}\" FOR UPDATE"), 409, "Invalid query AST element: LockingClause".into()),
        (format!("SELECT * FROM \"{R1}\" FOR SHARE"), 409, "Invalid query AST element: LockingClause".into()),
        (format!("SELECT * INTO stolen FROM \"{R1}\""), 409, "Invalid query AST element: IntoClause".into()),
        (format!("COPY \"{R1}\" TO '/tmp/x'"), 409, "Invalid query AST element: CopyStmt".into()),
        (format!("DELETE FROM \"{R1}\""), 409, "Invalid query AST element: DeleteStmt".into()),
        (format!("UPDATE \"{R1}\" SET v = 'x'"), 409, "Invalid query AST element: UpdateStmt".into()),
        (format!("WITH d AS (DELETE FROM \"{R1}\" RETURNING *) SELECT * FROM d"), 409, "Invalid query AST element: DeleteStmt".into()),
        ("CREATE TEMP TABLE t AS SELECT 1".into(), 409, "Invalid query AST element: CreateTableAsStmt".into()),
        ("BEGIN".into(), 409, "Invalid query AST element: TransactionStmt".into()),
        ("SET search_path = pg_catalog".into(), 409, "Invalid query AST element: VariableSetStmt".into()),
        (format!("EXPLAIN ANALYZE SELECT * FROM \"{R1}\""), 409, "Invalid query AST element: ExplainStmt".into()),
        ("DO $$BEGIN PERFORM 1; END$$".into(), 409, "Invalid query AST element: DoStmt".into()),
        ("PREPARE p AS SELECT 1".into(), 409, "Invalid query AST element: PrepareStmt".into()),
        ("LISTEN x".into(), 409, "Invalid query AST element: ListenStmt".into()),
        ("LOCK TABLE x".into(), 409, "Invalid query AST element: LockStmt".into()),
        ("SELEC 1".into(), 409, "Invalid SQL: syntax error at or near \"SELEC\", at index 0".into()),
    ];
    let started = std::time::Instant::now();
    let mut failures = Vec::new();
    for (query, status, msg) in &cases {
        let r = sql(&app, query, None).await;
        if r.status != *status || message(&r) != *msg {
            failures.push(format!("{query}\n    got {} {}", r.status, r.text()));
        }
        assert!(
            !r.text().contains("LEAKED") && !r.text().contains("secret-seven"),
            "{query}"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // Nothing slept: every pg_sleep was refused before it reached PostgreSQL.
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

#[tokio::test]
async fn readers_read_and_sysadmins_read_everything() {
    let app = app().await;
    let member = token("member");
    let r = sql(
        &app,
        &format!("SELECT k, v FROM \"{R3}\" ORDER BY k"),
        Some(&member),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json()["result"]["records"],
        json!([{"k": 1, "v": "one"}, {"k": 2, "v": "two"}])
    );
    let join =
        format!("SELECT a.v, b.v AS w FROM \"{R1}\" a JOIN \"{R3}\" b USING (k) ORDER BY a.k");
    assert_eq!(sql(&app, &join, Some(&member)).await.status, 200);
    assert_eq!(sql(&app, &join, None).await.status, 403);
    // The closed bypasses stay closed for members too; a sysadmin reads the orphan, as in CKAN.
    assert_eq!(
        sql(&app, &format!("SELECT * FROM \"{R14}\""), Some(&member))
            .await
            .status,
        404
    );
    let sys = token("sys");
    let r = sql(&app, &format!("SELECT v FROM \"{R14}\""), Some(&sys)).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json()["result"]["records"],
        json!([{"v": "secret-seven"}])
    );
    assert_eq!(
        sql(
            &app,
            "SELECT name FROM \"_table_metadata\" LIMIT 1",
            Some(&sys)
        )
        .await
        .status,
        200
    );
    // Sysadmins are refused what everyone is refused.
    assert_eq!(
        sql(&app, "SELECT pg_sleep(0)", Some(&sys)).await.status,
        403
    );
    assert_eq!(
        sql(&app, "SELECT * FROM pg_class", Some(&sys)).await.status,
        403
    );
    // A member's token with a JSONP `callback` is anonymous.
    let r = app
        .client
        .post(format!("{}/api/3/action/datastore_search_sql", app.base))
        .header("Authorization", &member)
        .json(&json!({"sql": format!("SELECT * FROM \"{R3}\""), "callback": "cb"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
}

#[tokio::test]
async fn huge_and_odd_queries_do_not_crash() {
    let app = app().await;
    // 200 KB of arithmetic, deep nesting, a long IN list.
    let long = format!("SELECT {}1 AS x", "1 + ".repeat(50_000));
    let r = sql(&app, &long, None).await;
    assert!(
        matches!(r.status, 200 | 409),
        "{} {}",
        r.status,
        r.text().chars().take(200).collect::<String>()
    );
    let deep = format!("SELECT {}1{} AS x", "(".repeat(5_000), ")".repeat(5_000));
    let r = sql(&app, &deep, None).await;
    assert!(matches!(r.status, 200 | 409), "{}", r.status);
    let r = sql(&app, "SELECT 1 AS x", None).await;
    assert_eq!(r.status, 200, "the server survived");
    assert_eq!(r.json()["result"]["records"], json!([{"x": 1}]));
    // Not text: CKAN crashes (500), and so do we — without a panic.
    let r = app
        .client
        .post(format!("{}/api/3/action/datastore_search_sql", app.base))
        .json(&json!({"sql": ["SELECT 1"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
}

#[tokio::test]
async fn off_unless_enabled() {
    let app = spawn_with_access("", |_| {}).await;
    let r = sql(&app, "SELECT 1", None).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.text(),
        "\"Bad request: Action name not known: datastore_search_sql\""
    );
}

/// Defence in depth below the parser: the connections the queries run on cannot write and
/// resolve unqualified names in `public` only.
#[tokio::test]
async fn the_pool_is_read_only_with_a_pinned_search_path() {
    let mut settings =
        ckan_datastore::config::Settings::with_read_url(crate::harness::db().read.clone());
    settings.pool_size = 2;
    let pool = ckan_datastore::db::sql_search_pool(&settings).unwrap();
    let c = pool.get().await.unwrap();
    let row = c.query_one("SHOW search_path", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "public");
    let err = c
        .batch_execute("CREATE TEMP TABLE nope (x int)")
        .await
        .expect_err("read-only");
    assert_eq!(
        err.as_db_error()
            .map(|d| d.code().code().to_string())
            .as_deref(),
        Some("25006"),
        "{err}"
    );
    let row = c.query_one("SHOW statement_timeout", &[]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "1min");
}

/// A relation named as a type shows its columns (`json_populate_record(NULL::"t", '{}')`
/// answers one null row keyed by them): every spelling is checked as a table reference,
/// refused exactly as `SELECT * FROM "<private table>"` is, and allowed for a reader.
#[tokio::test]
async fn row_types_are_table_references() {
    let app = app().await;
    let alias = "acl-alias-priv"; // an alias of the private R3
    let spellings = |t: &str| -> Vec<String> {
        vec![
            format!("SELECT NULL::\"{t}\" AS x"),
            format!("SELECT CAST(NULL AS \"{t}\") AS x"),
            format!("SELECT '{{}}'::\"{t}\"[] AS x"),
            format!("SELECT CAST('{{}}' AS \"{t}\"[][]) AS x"),
            format!("SELECT NULL::public.\"{t}\" AS x"),
            format!("SELECT NULL::\"_{t}\" AS x"),
            format!("SELECT * FROM json_populate_record(NULL::\"{t}\", '{{}}')"),
            format!("SELECT * FROM json_populate_recordset(NULL::\"{t}\", '[{{}}]')"),
            format!("SELECT (json_populate_record(NULL::\"{t}\", '{{}}')).*"),
            format!("SELECT row_to_json(json_populate_record(NULL::\"{t}\", '{{}}')) AS x"),
            format!("SELECT row_to_json(ROW(1, 'a')::\"{t}\") AS x"),
            format!("SELECT * FROM json_to_record('{{\"a\": {{}}}}') AS r(a \"{t}\")"),
            format!("SELECT 1 AS x WHERE (SELECT NULL::\"{t}\") IS NULL"),
            format!("SELECT k FROM \"{R1}\" WHERE NULL::\"{t}\" IS NULL"),
        ]
    };
    for (table, private_ref) in [
        (R3, format!("SELECT * FROM \"{R3}\"")),
        (alias, format!("SELECT * FROM \"{alias}\"")),
    ] {
        let want = sql(&app, &private_ref, None).await;
        assert!(matches!(want.status, 403 | 404), "{}", want.text());
        for q in spellings(table) {
            let r = sql(&app, &q, None).await;
            assert_eq!(
                (r.status, message(&r)),
                (want.status, message(&want)),
                "{q}: {}",
                r.text()
            );
            assert!(!r.text().contains("\"k\""), "{q}: {}", r.text());
        }
    }
    // %TYPE, a catalog type's row type, another schema's table as a type.
    for (q, status) in [
        ("SELECT NULL::pg_class AS x", 403),
        ("SELECT NULL::pg_catalog.pg_class AS x", 403),
        ("SELECT NULL::information_schema.tables AS x", 403),
        ("SELECT NULL::\"_table_metadata\" AS x", 404),
    ] {
        let r = sql(&app, q, None).await;
        assert_eq!(r.status, status, "{q}: {}", r.text());
    }
    // A reader of R3 may use its row type, as she may read the table.
    let member = token("member");
    let r = sql(
        &app,
        &format!("SELECT * FROM json_populate_record(NULL::\"{R3}\", '{{\"k\": 5}}')"),
        Some(&member),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["result"]["records"][0]["k"], json!(5));
    // Real types still work, for everyone.
    let r = sql(
        &app,
        "SELECT 1::int4 AS a, 'x'::text AS b, 2.5::numeric(4,2) AS c, '2020-01-01'::timestamp AS d, \
         '{}'::json AS e, '{1}'::int[] AS f, 'a'::pg_catalog.text AS g, '1'::\"int8\" AS h, \
         CAST('1 day' AS interval) AS i, '{}'::jsonb[] AS j, 't'::boolean AS k, 1::double precision AS l",
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Public tables' row types are readable by everyone.
    let r = sql(
        &app,
        &format!("SELECT (json_populate_record(NULL::\"{R1}\", '{{\"k\": 1}}')).*"),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

/// Moderately deep SQL answers as in CKAN (200); what PostgreSQL's parser cannot take is its
/// own message, never a library's.
#[tokio::test]
async fn deep_sql_answers_as_ckan_does() {
    let app = app().await;
    for terms in [60, 100] {
        let q = format!("SELECT {}1 AS x", "1 + ".repeat(terms - 1));
        let r = sql(&app, &q, None).await;
        assert_eq!(r.status, 200, "{terms}: {}", r.text());
        assert_eq!(r.json()["result"]["records"], json!([{"x": terms}]));
    }
    let mut case = "1".to_string();
    for i in 0..30 {
        case = format!("CASE WHEN {i} > 0 THEN {case} ELSE 0 END");
    }
    let r = sql(&app, &format!("SELECT {case} AS x"), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for q in [
        format!("SELECT {}1 AS x", "1 + ".repeat(100_000)),
        format!("SELECT {}1{} AS x", "(".repeat(20_000), ")".repeat(20_000)),
        format!("SELECT {}1 AS x", "- ".repeat(50_000)),
        format!(
            "SELECT {}1{} AS x",
            "ARRAY[".repeat(5_000),
            "]".repeat(5_000)
        ),
    ] {
        let r = sql(&app, &q, None).await;
        let text = r.text();
        for library in ["Protobuf", "decode", "prost", "pg_query", "Node.node"] {
            assert!(!text.contains(library), "{}", &text[..text.len().min(300)]);
        }
        assert!(
            matches!(r.status, 200 | 409),
            "{} {}",
            r.status,
            &text[..text.len().min(300)]
        );
    }
    assert_eq!(sql(&app, "SELECT 1 AS x", None).await.status, 200);
}

/// With every connection busy, the next query waits a bounded time and answers 503 +
/// `Retry-After` in CKAN's shape, never 500.
#[tokio::test]
async fn a_full_pool_answers_503_with_retry_after() {
    // One caller may hold every connection here: this is the pool's wait, not the per-caller
    // limit (search_sql_limits.rs).
    let app = spawn_with_access("ckan.datastore.sqlsearch.enabled = true", |a| {
        a.sqlsearch_max_per_caller = Some(8)
    })
    .await;
    let heavy = "SELECT sum(g) AS s FROM (SELECT generate_series(1::bigint, 100000000000) AS g) s";
    let admin = ckan_datastore::demo::connect(&crate::harness::db().main_admin)
        .await
        .unwrap();
    // Four queries that keep their clients hold every connection: the fifth waits, then 503.
    let mut held = Vec::new();
    for _ in 0..4 {
        let req = app
            .client
            .post(format!("{}/api/3/action/datastore_search_sql", app.base))
            .timeout(std::time::Duration::from_secs(9))
            .json(&json!({ "sql": heavy }));
        held.push(tokio::spawn(async move { req.send().await.is_err() }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let started = std::time::Instant::now();
    let r = sql(&app, "SELECT 1 AS x", None).await;
    let waited = started.elapsed();
    // Stop the heavy queries (they would run to the statement timeout).
    admin
        .batch_execute(
            "SELECT pg_cancel_backend(pid) FROM pg_stat_activity \
             WHERE query LIKE '%100000000000%' AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    assert!(waited < std::time::Duration::from_secs(7), "{waited:?}");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.headers.get("retry-after").unwrap(), "5");
    assert_eq!(r.json()["error"]["__type"], "Service Unavailable");
    assert_eq!(r.json()["success"], false);
    for h in held {
        let _ = h.await;
    }
    assert_eq!(sql(&app, "SELECT 1 AS x", None).await.status, 200);
}
