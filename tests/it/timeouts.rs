//! CKAN's statement timeout: a search that runs too long is cancelled by PostgreSQL and answered
//! as CKAN answers it (409 "Search took too long"; 500 for csv/tsv, whose COPY errors CKAN does
//! not catch). The pool's connections stay usable afterwards.

use serde_json::json;

use crate::harness::{create_table, spawn_app, spawn_app_with};

#[tokio::test]
async fn slow_searches_are_cancelled_like_ckan() {
    let setup = spawn_app().await;
    let id = create_table(
        &setup,
        "slow",
        &[("a", "int"), ("b", "text")],
        "INSERT INTO {T} (a, b) SELECT g, 'word' || (g % 1000) FROM generate_series(1, 100000) g",
    )
    .await;
    // Long enough for the metadata lookups, far too short for the search below.
    let app = spawn_app_with(|s| s.statement_timeout_ms = 40).await;
    // A prefix query matching every row makes PostgreSQL run to_tsvector() on all 100,000
    // rows and rank them: far longer than 40 ms.
    let slow =
        json!({"resource_id": id, "q": {"b": "w:*"}, "plain": false, "include_total": false});
    let r = app.search(&slow.to_string()).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(
        r.json()["error"],
        json!({"query": ["Search took too long"], "__type": "Validation Error"})
    );
    let mut csv = slow.clone();
    csv["records_format"] = json!("csv");
    let r = app.search(&csv.to_string()).await;
    assert_eq!(r.status, 500, "{}", r.text());
    assert_eq!(
        r.json()["error"],
        json!({"__type": "Internal Server Error", "message": "Internal Server Error"})
    );
    // The same pool still answers quick requests.
    let r = app
        .search(
            &json!({"resource_id": crate::harness::SAMPLE, "limit": 1, "include_total": false})
                .to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}
