//! Micro-benchmark of the CPU work our server does per `datastore_search` request before and
//! after PostgreSQL: request map → typed `SearchParams` → `Plan` → the one page statement, and
//! the Python-style JSON writer used for the response envelope.
//!
//! No database, no HTTP: this isolates the Rust-side cost (it should stay in the microseconds,
//! i.e. negligible next to the ~0.3–1 ms PostgreSQL needs for the same request).
//!
//!   cargo bench --bench request_to_sql                 # full run (~1 min)
//!   cargo bench --bench request_to_sql -- --quick      # quick run (criterion's --quick)
//!   cargo bench --bench request_to_sql -- plan/        # one group
//!
//! The table mirrors the `demo` sample table (src/demo.rs): `_id` first as CKAN reports it
//! (typname "int", sql_type "integer"), then 13 user columns, one with data-dictionary info.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Map, Value};

use ckan_datastore::catalog::{Column, Table, TableId};
use ckan_datastore::config::Settings;
use ckan_datastore::pyjson;
use ckan_datastore::search::params::SearchParams;
use ckan_datastore::search::plan::plan;
use ckan_datastore::search::plan::Plan;
use ckan_datastore::search::statement::{page_statement, PageStatement};
use ckan_datastore::search::totals::{TotalPlan, TotalsCache};

/// An empty totals cache, as on a cold server (the statement then counts unconditionally).
fn totals() -> TotalsCache {
    TotalsCache::new(
        1 << 20,
        Duration::from_secs(60),
        Duration::from_secs(3),
        false,
    )
}

/// The page statement as a request builds it: the totals cache decides what to do about the
/// total first.
fn statement(p: &Plan, cache: &TotalsCache) -> PageStatement {
    let total = p
        .include_total
        .then(|| TotalPlan::new(cache, p).unwrap().sql(cache.max_staleness));
    page_statement(p, RID, total.as_ref()).unwrap()
}

const RID: &str = "5e0c3c6e-8c1f-4d2e-9a57-2f1c7a8b9d01";

fn col(name: &str, typname: &str, sql_type: &str) -> Column {
    Column::new(name, typname, sql_type)
}

fn demo_table() -> Arc<Table> {
    let mut columns = vec![
        col("_id", "int", "integer"),
        col("id", "int4", "integer"),
        col("name", "text", "text"),
        col("city", "text", "text"),
        col("category", "text", "text"),
        col("price", "numeric", "numeric"),
        col("quantity", "int8", "bigint"),
        col("rating", "float8", "double precision"),
        col("created", "timestamp", "timestamp without time zone"),
        col("day", "date", "date"),
        col("available", "bool", "boolean"),
        col("tags", "_text", "text[]"),
        col("meta", "nested", "nested"),
        col("description", "text", "text"),
    ];
    columns[5].info =
        Some(json!({"label": "Price", "notes": "Unit price in euros", "type_override": ""}));
    Arc::new(Table::new(
        TableId(RID.into()),
        columns,
        "16384/id 23 -1 ,name 25 -1 ".into(),
        String::new(),
    ))
}

fn map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("request bodies are objects"),
    }
}

/// The request shapes: (name, body).
fn shapes() -> Vec<(&'static str, Map<String, Value>)> {
    vec![
        (
            "default_page",
            map(json!({"resource_id": RID, "limit": 100})),
        ),
        (
            "filters_sort",
            map(json!({
                "resource_id": RID,
                "filters": {"category": ["fruit", "nut"], "available": true, "city": "Porto"},
                "sort": "price desc, _id asc",
                "limit": 50,
                "offset": 200
            })),
        ),
        (
            "q_dict_fields",
            map(json!({
                "resource_id": RID,
                "q": {"description": "organic harbour", "name": "apple"},
                "fields": ["_id", "name", "city", "price", "description"],
                "records_format": "lists",
                "include_total": false,
                "limit": 20
            })),
        ),
        (
            "q_text_distinct",
            map(json!({
                "resource_id": RID,
                "q": "cherry",
                "distinct": true,
                "fields": "category,city",
                "sort": "city",
                "include_next_page": true
            })),
        ),
    ]
}

fn bench_request_to_sql(c: &mut Criterion) {
    let settings = Settings::with_read_url("postgresql://x@localhost/db");
    let table = demo_table();
    let shapes = shapes();

    // Sanity check once, outside the timed loops: every shape must plan and build.
    for (name, body) in &shapes {
        let params =
            SearchParams::parse(body, &settings).unwrap_or_else(|e| panic!("{name}: parse: {e:?}"));
        let p = plan(&params, table.clone(), &settings)
            .unwrap_or_else(|e| panic!("{name}: plan: {e:?}"));
        let st = statement(&p, &totals());
        assert!(!st.sql.is_empty());
    }

    let mut g = c.benchmark_group("parse");
    for (name, body) in &shapes {
        g.bench_function(*name, |b| {
            b.iter(|| SearchParams::parse(black_box(body), &settings).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("plan");
    for (name, body) in &shapes {
        let params = SearchParams::parse(body, &settings).unwrap();
        g.bench_function(*name, |b| {
            b.iter(|| plan(black_box(&params), table.clone(), &settings).unwrap())
        });
    }
    g.finish();

    let mut g = c.benchmark_group("page_statement");
    let cache = totals();
    for (name, body) in &shapes {
        let params = SearchParams::parse(body, &settings).unwrap();
        let p = plan(&params, table.clone(), &settings).unwrap();
        g.bench_function(*name, |b| b.iter(|| statement(black_box(&p), &cache)));
    }
    g.finish();

    // The whole path, as one request does it.
    let mut g = c.benchmark_group("request_to_sql");
    for (name, body) in &shapes {
        g.bench_function(*name, |b| {
            b.iter(|| {
                let params = SearchParams::parse(black_box(body), &settings).unwrap();
                let p = plan(&params, table.clone(), &settings).unwrap();
                statement(&p, &totals()).sql.len()
            })
        });
    }
    g.finish();
}

fn bench_pyjson(c: &mut Criterion) {
    let settings = Settings::with_read_url("postgresql://x@localhost/db");
    let table = demo_table();
    let mut g = c.benchmark_group("pyjson");
    // The parts of a datastore_search result CKAN builds in Python: the echoed parameters and
    // the `fields` list (records are PostgreSQL's bytes, spliced in without re-encoding).
    for (name, body) in shapes() {
        let params = SearchParams::parse(&body, &settings).unwrap();
        let p = plan(&params, table.clone(), &settings).unwrap();
        let mut envelope = body.clone();
        envelope.insert("fields".into(), Value::Array(p.result_fields.clone()));
        let envelope = Value::Object(envelope);
        let mut buf = Vec::with_capacity(4096);
        g.bench_function(format!("envelope_{name}"), |b| {
            b.iter(|| {
                buf.clear();
                pyjson::write_value(&mut buf, black_box(&envelope));
                buf.len()
            })
        });
    }
    // Non-ASCII text: ensure_ascii escaping (\uXXXX, surrogate pairs) is the slow path.
    let unicode = json!({
        "q": "Malmö Kraków Zürich — ☃ 𝄞 naïve café",
        "filters": {"city": ["Malmö", "Kraków", "Zürich"]},
        "note": "é".repeat(200)
    });
    let mut buf = Vec::with_capacity(4096);
    g.bench_function("non_ascii", |b| {
        b.iter(|| {
            buf.clear();
            pyjson::write_value(&mut buf, black_box(&unicode));
            buf.len()
        })
    });
    g.finish();
}

fn config() -> Criterion {
    // Short by default so `cargo bench` stays bounded on a 2-core machine; command-line flags
    // (--quick, --measurement-time, --warm-up-time) still override these.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_request_to_sql, bench_pyjson
}
criterion_main!(benches);
