//! Portal scale: does a request's cost grow with the number of tables in the DataStore?
//!
//! Builds a private PostgreSQL cluster (as `ckan-datastore demo` does), adds CKAN-shaped tables
//! in steps (the DDL `datastore_create` runs: every column type, some aliases and data
//! dictionaries, 50–2,000 rows each), and after each step runs a mixed workload against our
//! real server in-process: searches, `datastore_info` and small dumps, tables picked with a
//! Zipf-like distribution (a portal's long tail), at a fixed concurrency. Prints one row per
//! size: mixed req/s, p50/p99 per request kind, and our backends' memory.
//!
//!   cargo bench --bench portal_scale                           # 1,000 / 10,000 tables, c=8, 15 s
//!   cargo bench --bench portal_scale -- 1000,10000,30000 8 20  # sizes, concurrency, seconds
//!
//! Needs PostgreSQL's server binaries (scripts/ensure-postgres.sh). The cluster lives in
//! target/portal-scale (kept between runs, so later runs skip the table building; delete the
//! folder to start over).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ckan_datastore::app::Application;
use ckan_datastore::ckan_schema::{create_table_sql, FieldDef};
use ckan_datastore::demo::{self, DemoArgs};
use serde_json::json;

fn table_id(n: usize) -> String {
    format!("{n:08x}-5ca1-4000-8000-000000000000")
}

/// Creates tables `from..to` as `datastore_create` does.
async fn add_tables(write: &str, from: usize, to: usize) {
    let types = [
        "int",
        "text",
        "numeric",
        "timestamp",
        "bool",
        "date",
        "_text",
        "json",
    ];
    let mut sql = String::new();
    let mut client = demo::connect(write).await.expect("write role");
    for n in from..to {
        let fields: Vec<FieldDef> = (0..4)
            .map(|k| FieldDef {
                id: format!("c{k}"),
                type_: types[(n + k) % types.len()].to_string(),
                info: (n % 7 == 0).then(|| json!({"label": format!("Column {k}"), "notes": "x"})),
            })
            .collect();
        let aliases = if n % 20 == 0 {
            vec![format!("alias-{n}")]
        } else {
            vec![]
        };
        for s in create_table_sql(&table_id(n), &fields, &[], &aliases) {
            sql.push_str(&s);
            sql.push_str(";\n");
        }
        sql.push_str(&format!(
            "INSERT INTO \"{}\" (_id) SELECT g FROM generate_series(1, {}) g;\n",
            table_id(n),
            50 + (n * 7919) % 1950
        ));
        if n % 250 == 249 {
            client.batch_execute(&sql).await.expect("create tables");
            sql.clear();
            // A session that creates thousands of tables slows down as its catalog caches
            // grow (measured: from hundreds to 3 tables/s): start a fresh one each batch.
            client = demo::connect(write).await.expect("write role");
        }
    }
    client.batch_execute(&sql).await.expect("create tables");
}

/// A Zipf-like pick among `n` tables (rank r with weight 1/r).
fn zipf(n: usize, u: f64) -> usize {
    // Inverse of the continuous approximation H(x) ≈ ln(x) + γ.
    let h = (n as f64).ln() + 0.5772;
    let r = (u * h - 0.5772).exp();
    (r as usize).min(n - 1)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn run_mix(base: &str, tables: usize, conc: usize, seconds: u64) -> String {
    let client = reqwest::Client::new();
    let lat: Arc<Mutex<[Vec<f64>; 3]>> = Arc::new(Mutex::new(Default::default()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for w in 0..conc {
        let (client, lat, stop, errors) =
            (client.clone(), lat.clone(), stop.clone(), errors.clone());
        let base = base.to_string();
        tasks.push(tokio::spawn(async move {
            let mut seed = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(w as u64 + 1);
            let mut next = move || {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 11) as f64 / (1u64 << 53) as f64
            };
            while !stop.load(Ordering::Relaxed) {
                let id = table_id(zipf(tables, next()));
                let roll = next();
                let kind = if roll < 0.7 {
                    0
                } else if roll < 0.9 {
                    1
                } else {
                    2
                };
                let t0 = Instant::now();
                let resp = match kind {
                    0 => {
                        client
                            .post(format!("{base}/api/3/action/datastore_search"))
                            .json(&json!({"resource_id": id, "limit": 20}))
                            .send()
                            .await
                    }
                    1 => {
                        client
                            .post(format!("{base}/api/3/action/datastore_info"))
                            .json(&json!({"id": id}))
                            .send()
                            .await
                    }
                    _ => {
                        client
                            .get(format!("{base}/datastore/dump/{id}?limit=200"))
                            .send()
                            .await
                    }
                };
                let ok = match resp {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if !ok {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                lat.lock().unwrap()[kind].push(t0.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mut lat = lat.lock().unwrap().clone();
    let total: usize = lat.iter().map(Vec::len).sum();
    let mut all: Vec<f64> = lat.iter().flatten().copied().collect();
    all.sort_by(f64::total_cmp);
    let mut row = format!(
        "| {tables} | {:.0} | {:.1} | {:.1} |",
        total as f64 / seconds as f64,
        percentile(&all, 0.5),
        percentile(&all, 0.99)
    );
    for l in lat.iter_mut() {
        l.sort_by(f64::total_cmp);
        row.push_str(&format!(
            " {:.1} / {:.1} ({}) |",
            percentile(l, 0.5),
            percentile(l, 0.99),
            l.len()
        ));
    }
    row.push_str(&format!(" {} |", errors.load(Ordering::Relaxed)));
    row
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let sizes: Vec<usize> = args
        .first()
        .map(|s| s.split(',').map(|x| x.parse().expect("sizes")).collect())
        .unwrap_or_else(|| vec![1000, 10000]);
    let conc: usize = args
        .get(1)
        .map(|s| s.parse().expect("concurrency"))
        .unwrap_or(8);
    let seconds: u64 = args
        .get(2)
        .map(|s| s.parse().expect("seconds"))
        .unwrap_or(15);

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/portal-scale");
    let demo_args = DemoArgs {
        data_dir: dir.clone(),
        pg_port: 54339,
        rows: 1000,
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let (cluster, mut settings) = demo::prepare(&demo_args).await.expect("cluster");
    let (writer_url, _) = demo::create_ckan_databases(
        &demo::Server::of_cluster(&cluster),
        &demo::CkanNames::default(),
    )
    .await
    .expect("CKAN's roles");
    settings.pool_size = 16;

    let existing: i64 = demo::connect(&writer_url)
        .await
        .unwrap()
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE '%-5ca1-4000-8000-000000000000'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut have = existing as usize;
    println!(
        "| tables | mixed req/s (c={conc}) | p50 ms | p99 ms | search p50 / p99 ms (n) | info p50 / p99 ms (n) | dump p50 / p99 ms (n) | errors |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for n in sizes {
        if have < n {
            let t0 = Instant::now();
            add_tables(&writer_url, have, n).await;
            eprintln!(
                "built tables {have}..{n} in {:.0} s",
                t0.elapsed().as_secs_f64()
            );
            have = n;
        }
        // A fresh server per size: cold caches, then a warm-up of the same length.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let app = Application::build(settings.clone(), listener).unwrap();
        let base = format!("http://127.0.0.1:{}", app.port);
        let handle = app.server.handle();
        tokio::spawn(app.server);
        run_mix(&base, n, conc, seconds).await;
        println!("{}", run_mix(&base, n, conc, seconds).await);
        handle.stop(true).await;
    }
    cluster.stop();
}
