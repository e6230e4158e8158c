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
//!   cargo bench --bench portal_scale -- long 30000 8 20        # tables, concurrency, minutes
//!
//! The long run reads tables picked uniformly (a crawler's pattern: the worst case for
//! PostgreSQL's per-backend catalog caches), and prints, every 30 s, the sum and largest of our
//! backends' private memory (`RssAnon` of each backend whose `application_name` is ours: the
//! catalog caches live there, shared buffers do not), the connections opened meanwhile
//! (recycling), and the window's latencies; at the end, the latencies of the requests made
//! while a connection was being replaced against the run's p99.
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

/// Our backends (pid, start as Unix seconds) and their private memory in kB (`RssAnon`).
async fn our_backends(db: &tokio_postgres::Client) -> Vec<(i32, f64, u64)> {
    let rows = db
        .query(
            "SELECT pid, extract(epoch FROM backend_start)::float8 FROM pg_stat_activity \
             WHERE application_name = $1",
            &[&ckan_datastore::db::APPLICATION_NAME],
        )
        .await
        .expect("pg_stat_activity");
    rows.iter()
        .map(|r| {
            let pid: i32 = r.get(0);
            let kb = std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|st| {
                    st.lines()
                        .find(|l| l.starts_with("RssAnon:"))
                        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
                })
                .unwrap_or(0);
            (pid, r.get(1), kb)
        })
        .collect()
}

/// `n / sum MB / largest MB` of our backends' private memory.
fn memory_cell(backends: &[(i32, f64, u64)]) -> String {
    let sum: u64 = backends.iter().map(|b| b.2).sum();
    let max = backends.iter().map(|b| b.2).max().unwrap_or(0);
    format!(
        "{} / {:.0} / {:.0}",
        backends.len(),
        sum as f64 / 1024.0,
        max as f64 / 1024.0
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// One request's kind (0 search, 1 info, 2 dump), start (seconds since the run began) and
/// latency in ms.
type Sample = (usize, f64, f64);

/// Runs the mix from `conc` workers until `stop`, appending every request to `log`.
fn spawn_mix(
    base: &str,
    tables: usize,
    conc: usize,
    uniform: bool,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Sample>>>,
    errors: Arc<std::sync::atomic::AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let client = reqwest::Client::new();
    let began = Instant::now();
    (0..conc)
        .map(|w| {
            let (client, log, stop, errors) =
                (client.clone(), log.clone(), stop.clone(), errors.clone());
            let base = base.to_string();
            tokio::spawn(async move {
                let mut seed = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(w as u64 + 1);
                let mut next = move || {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    (seed >> 11) as f64 / (1u64 << 53) as f64
                };
                while !stop.load(Ordering::Relaxed) {
                    let pick = next();
                    let n = if uniform {
                        ((pick * tables as f64) as usize).min(tables - 1)
                    } else {
                        zipf(tables, pick)
                    };
                    let kind = request_kind(next());
                    let t0 = Instant::now();
                    let ok = send(&client, &base, kind, &table_id(n)).await;
                    if !ok {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    let start = t0.duration_since(began).as_secs_f64();
                    let ms = t0.elapsed().as_secs_f64() * 1000.0;
                    log.lock().unwrap().push((kind, start, ms));
                }
            })
        })
        .collect()
}

/// 70% searches, 20% `datastore_info`, 10% small dumps.
fn request_kind(roll: f64) -> usize {
    if roll < 0.7 {
        0
    } else if roll < 0.9 {
        1
    } else {
        2
    }
}

/// One request of `kind` for table `id`: whether it answered 2xx, whole.
async fn send(client: &reqwest::Client, base: &str, kind: usize, id: &str) -> bool {
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
    match resp {
        Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
        Err(_) => false,
    }
}

/// Seconds of the long run counted as the server's cold start.
const WARM_UP: f64 = 30.0;

/// The long run: `minutes` of uniform reads over `tables` tables, a row every 30 s.
async fn run_long(
    base: &str,
    db: &tokio_postgres::Client,
    tables: usize,
    conc: usize,
    minutes: u64,
) {
    let log = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let began_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let began = Instant::now();
    let tasks = spawn_mix(
        base,
        tables,
        conc,
        true,
        stop.clone(),
        log.clone(),
        errors.clone(),
    );
    println!(
        "| minute | req/s | p50 ms | p99 ms | max ms | connections opened | our backends: n / RssAnon sum MB / largest MB |"
    );
    println!("|---|---|---|---|---|---|---|");
    // Every backend we have seen: pid → start (seconds since the run began).
    let mut starts: std::collections::HashMap<i32, f64> = Default::default();
    let mut peak_sum = 0u64;
    let mut peak_max = 0u64;
    let mut done = 0usize;
    let end = Duration::from_secs(minutes * 60);
    let mut window = 1u64;
    while began.elapsed() < end {
        // Poll often enough to see every connection (each lives for many seconds).
        tokio::time::sleep(Duration::from_secs(2)).await;
        let backends = our_backends(db).await;
        for b in &backends {
            starts.entry(b.0).or_insert(b.1 - began_unix);
        }
        peak_sum = peak_sum.max(backends.iter().map(|b| b.2).sum());
        peak_max = peak_max.max(backends.iter().map(|b| b.2).max().unwrap_or(0));
        if began.elapsed() >= Duration::from_secs(30 * window) {
            let t = began.elapsed().as_secs_f64();
            let lat = log.lock().unwrap();
            let mut w: Vec<f64> = lat[done..].iter().map(|s| s.2).collect();
            let count = w.len();
            done = lat.len();
            drop(lat);
            w.sort_by(f64::total_cmp);
            let opened_in_window = starts.values().filter(|&&s| s > t - 30.0 && s <= t).count();
            println!(
                "| {:.1} | {:.0} | {:.1} | {:.1} | {:.1} | {} | {} |",
                t / 60.0,
                count as f64 / 30.0,
                percentile(&w, 0.5),
                percentile(&w, 0.99),
                w.last().copied().unwrap_or(f64::NAN),
                opened_in_window,
                memory_cell(&backends)
            );
            window += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let log = log.lock().unwrap();
    // The first window is the server's cold start (every connection and cache filled at
    // once): reported on its own, not as recycling.
    let cold_max = log
        .iter()
        .filter(|s| s.1 < WARM_UP)
        .map(|s| s.2)
        .fold(f64::NAN, f64::max);
    let log: Vec<Sample> = log.iter().filter(|s| s.1 >= WARM_UP).copied().collect();
    let mut all: Vec<f64> = log.iter().map(|s| s.2).collect();
    all.sort_by(f64::total_cmp);
    let p99 = percentile(&all, 0.99);
    // Requests in flight within 0.5 s of a connection being opened: their worst against p99.
    let near: Vec<f64> = log
        .iter()
        .filter(|s| {
            starts
                .values()
                .any(|&b| b >= WARM_UP && s.1 - 0.5 <= b && b <= s.1 + s.2 / 1000.0 + 0.5)
        })
        .map(|s| s.2)
        .collect();
    let near_max = near.iter().copied().fold(f64::NAN, f64::max);
    println!();
    println!("cold start (first {WARM_UP} s): slowest request {cold_max:.1} ms");
    println!(
        "after it: {} requests ({} errors in the whole run), {} connections opened; p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        all.len(),
        errors.load(Ordering::Relaxed),
        starts.values().filter(|&&b| b >= WARM_UP).count(),
        percentile(&all, 0.5),
        p99,
        all.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "requests within 0.5 s of a connection opening: {}, slowest {near_max:.1} ms (run p99 {p99:.1} ms), {} over the p99",
        near.len(),
        near.iter().filter(|&&l| l > p99).count()
    );
    println!(
        "our backends' private memory: peak sum {:.0} MB, peak largest {:.0} MB",
        peak_sum as f64 / 1024.0,
        peak_max as f64 / 1024.0
    );
}

async fn run_mix(base: &str, tables: usize, conc: usize, seconds: u64) -> String {
    let lat: Arc<Mutex<[Vec<f64>; 3]>> = Arc::new(Mutex::new(Default::default()));
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let tasks = spawn_mix(
        base,
        tables,
        conc,
        false,
        stop.clone(),
        log.clone(),
        errors.clone(),
    );
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    for (kind, _, ms) in log.lock().unwrap().iter() {
        lat.lock().unwrap()[*kind].push(*ms);
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
    let mut args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let long = args.first().is_some_and(|a| a == "long");
    if long {
        args.remove(0);
    }
    let sizes: Vec<usize> = args
        .first()
        .map(|s| s.split(',').map(|x| x.parse().expect("sizes")).collect())
        .unwrap_or_else(|| if long { vec![30000] } else { vec![1000, 10000] });
    let conc: usize = args
        .get(1)
        .map(|s| s.parse().expect("concurrency"))
        .unwrap_or(8);
    // Seconds per measured window; minutes for the long run.
    let duration: u64 = args
        .get(2)
        .map(|s| s.parse().expect("duration"))
        .unwrap_or(if long { 20 } else { 15 });

    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/portal-scale");
    let demo_args = DemoArgs {
        data_dir: dir.clone(),
        pg_port: 54339,
        rows: 1000,
        listen: "127.0.0.1:0".parse().unwrap(),
    };
    let (cluster, mut settings) = demo::prepare(&demo_args).await.expect("cluster");
    let server = demo::Server::of_cluster(&cluster);
    let names = demo::CkanNames::default();
    let (writer_url, _) = demo::create_ckan_databases(&server, &names)
        .await
        .expect("CKAN's roles");
    settings.pool_size = 16;
    // The superuser sees every session's row in pg_stat_activity (the write role, only its own).
    let db = demo::connect(&server.superuser_conninfo(&names.datastore_db))
        .await
        .unwrap();

    let existing: i64 = db
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE '%-5ca1-4000-8000-000000000000'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut have = existing as usize;
    if !long {
        println!(
            "| tables | mixed req/s (c={conc}) | p50 ms | p99 ms | search p50 / p99 ms (n) | info p50 / p99 ms (n) | dump p50 / p99 ms (n) | errors | our backends: n / RssAnon sum MB / largest MB |"
        );
        println!("|---|---|---|---|---|---|---|---|---|");
    }
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
        if long {
            eprintln!(
                "long run: {n} tables, c={conc}, {duration} min, conn_max_tables {}, conn_max_lifetime_secs {}",
                settings.conn_max_tables, settings.conn_max_lifetime_secs
            );
            run_long(&base, &db, n, conc, duration).await;
        } else {
            run_mix(&base, n, conc, duration).await;
            let row = run_mix(&base, n, conc, duration).await;
            println!("{row} {} |", memory_cell(&our_backends(&db).await));
        }
        handle.stop(true).await;
    }
    cluster.stop();
}
