//! Table metadata is cached, but never answered stale: whatever CKAN (or anyone) does to a
//! table — add, drop or retype a column, edit the data dictionary, drop and re-create the table,
//! point an alias elsewhere — the very next request sees it.

use serde_json::{json, Value};

use crate::harness::{create_table, spawn_app, TestApp};

async fn fields(app: &TestApp, id: &str) -> Value {
    let r = app
        .search(&json!({"resource_id": id, "limit": 1}).to_string())
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["result"]["fields"].clone()
}

fn names(fields: &Value) -> Vec<String> {
    fields
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn column_changes_are_seen_at_once() {
    let app = spawn_app().await;
    let id = create_table(
        &app,
        "fresh1",
        &[("a", "int"), ("b", "text")],
        "INSERT INTO {T} (a, b) VALUES (1, 'x'), (2, 'y')",
    )
    .await;
    let w = app.writer().await;
    assert_eq!(names(&fields(&app, &id).await), ["_id", "a", "b"]);

    w.batch_execute(&format!("ALTER TABLE \"{id}\" ADD COLUMN c numeric"))
        .await
        .unwrap();
    assert_eq!(names(&fields(&app, &id).await), ["_id", "a", "b", "c"]);

    w.batch_execute(&format!("ALTER TABLE \"{id}\" DROP COLUMN b"))
        .await
        .unwrap();
    assert_eq!(names(&fields(&app, &id).await), ["_id", "a", "c"]);
    // A request naming the dropped column is now the caller's mistake, not a 500.
    let r = app
        .search(&json!({"resource_id": id, "fields": "b"}).to_string())
        .await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["fields"], json!(["invalid value \"b\""]));

    w.batch_execute(&format!("ALTER TABLE \"{id}\" ALTER COLUMN a TYPE text"))
        .await
        .unwrap();
    let f = fields(&app, &id).await;
    assert_eq!(f[1], json!({"id": "a", "type": "text"}));
    // And filters follow the new type (text columns compare as strings).
    let r = app
        .search(&json!({"resource_id": id, "filters": {"a": 2}}).to_string())
        .await;
    assert_eq!(r.json()["result"]["total"], json!(1));
}

#[tokio::test]
async fn data_dictionary_edits_are_seen_at_once() {
    let app = spawn_app().await;
    let id = create_table(
        &app,
        "fresh2",
        &[("a", "int")],
        "INSERT INTO {T} (a) VALUES (1)",
    )
    .await;
    assert_eq!(
        fields(&app, &id).await[1],
        json!({"id": "a", "type": "int4"})
    );
    let w = app.writer().await;
    w.batch_execute(&format!(
        "COMMENT ON COLUMN \"{id}\".a IS ' {{\"_info\":{{\"label\":\"A\",\"notes\":\"n\"}}}}'"
    ))
    .await
    .unwrap();
    assert_eq!(
        fields(&app, &id).await[1],
        json!({"id": "a", "type": "int4", "info": {"label": "A", "notes": "n"}})
    );
}

#[tokio::test]
async fn drop_and_recreate_are_seen_at_once() {
    let app = spawn_app().await;
    let id = create_table(
        &app,
        "fresh3",
        &[("a", "int")],
        "INSERT INTO {T} (a) VALUES (1), (2)",
    )
    .await;
    assert_eq!(names(&fields(&app, &id).await), ["_id", "a"]);
    let w = app.writer().await;
    w.batch_execute(&format!("DROP TABLE \"{id}\""))
        .await
        .unwrap();
    let r = app.search(&json!({"resource_id": id}).to_string()).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json()["error"]["message"],
        json!(format!("Not found: Resource \"{id}\" was not found."))
    );

    let sql = ckan_datastore::ckan_schema::create_table_sql(
        &id,
        &[ckan_datastore::ckan_schema::FieldDef {
            id: "z".into(),
            type_: "text".into(),
            info: None,
        }],
        &[],
        &[],
    )
    .join(";");
    w.batch_execute(&sql).await.unwrap();
    w.batch_execute(&format!("INSERT INTO \"{id}\" (z) VALUES ('q')"))
        .await
        .unwrap();
    let r = app.search(&json!({"resource_id": id}).to_string()).await;
    assert_eq!(r.json()["result"]["records"], json!([{"_id": 1, "z": "q"}]));
}

#[tokio::test]
async fn alias_retargeting_is_seen_at_once() {
    let app = spawn_app().await;
    let t1 = create_table(
        &app,
        "fresh4",
        &[("a", "int")],
        "INSERT INTO {T} (a) VALUES (1)",
    )
    .await;
    let t2 = create_table(
        &app,
        "fresh5",
        &[("b", "text")],
        "INSERT INTO {T} (b) VALUES ('x')",
    )
    .await;
    let alias = format!("alias-{t1}");
    let w = app.writer().await;
    w.batch_execute(&format!(
        "CREATE VIEW \"{alias}\" AS SELECT * FROM \"{t1}\""
    ))
    .await
    .unwrap();
    let r = app.search(&json!({"resource_id": alias}).to_string()).await;
    assert_eq!(r.json()["result"]["resource_id"], json!(t1));

    // CKAN re-points an alias by dropping and re-creating the view.
    w.batch_execute(&format!(
        "DROP VIEW \"{alias}\"; CREATE VIEW \"{alias}\" AS SELECT * FROM \"{t2}\""
    ))
    .await
    .unwrap();
    let r = app.search(&json!({"resource_id": alias}).to_string()).await;
    let v = r.json();
    assert_eq!(v["result"]["resource_id"], json!(t2));
    assert_eq!(v["result"]["records"], json!([{"_id": 1, "b": "x"}]));

    let r = app.info(&json!({"id": alias}).to_string()).await;
    assert_eq!(r.json()["result"]["meta"]["id"], json!(t2));

    w.batch_execute(&format!("DROP VIEW \"{alias}\""))
        .await
        .unwrap();
    let r = app.search(&json!({"resource_id": alias}).to_string()).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn totals_follow_writes() {
    let app = spawn_app().await;
    let id = create_table(
        &app,
        "fresh6",
        &[("a", "int")],
        "INSERT INTO {T} (a) SELECT g FROM generate_series(1, 10) g",
    )
    .await;
    let total = |v: Value| v["result"]["total"].clone();
    assert_eq!(
        total(
            app.search(&json!({"resource_id": id}).to_string())
                .await
                .json()
        ),
        json!(10)
    );
    let w = app.writer().await;
    w.batch_execute(&format!("DELETE FROM \"{id}\" WHERE a > 7"))
        .await
        .unwrap();
    assert_eq!(
        total(
            app.search(&json!({"resource_id": id}).to_string())
                .await
                .json()
        ),
        json!(7)
    );
    assert_eq!(
        total(
            app.search(&json!({"resource_id": id, "filters": {"a": [1, 2, 9]}}).to_string())
                .await
                .json()
        ),
        json!(2)
    );
}
