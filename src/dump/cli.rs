//! `ckan-datastore dump`: one resource to a file or stdout, straight from the database (with
//! the server's configuration, through the same dump engine and search service as
//! `/datastore/dump`) or from any CKAN site's
//! `/datastore/dump` over HTTP (ours or CKAN's own). A progress bar on a terminal, none when
//! piped; exit codes a script can rely on; `--resume` for csv/tsv sorted by `_id`.

use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

use crate::auth::credentials::Presented;
use crate::config::{ConfigArgs, Settings};
use crate::dump::engine::{produce, DumpFailure};
use crate::search::params::SearchParams;
use crate::service::search::search;
use crate::state::AppState;

/// Exit codes of `ckan-datastore dump`.
pub mod exit {
    pub const OK: u8 = 0;
    /// Bad arguments or configuration.
    pub const USAGE: u8 = 2;
    /// No such resource (HTTP 404).
    pub const NOT_FOUND: u8 = 3;
    /// The site rejected the parameters (HTTP 400).
    pub const BAD_REQUEST: u8 = 4;
    /// The server or the database failed (HTTP 5xx, connection errors, a cut stream).
    pub const SERVER: u8 = 5;
    /// Writing the output failed.
    pub const IO: u8 = 6;
}

#[derive(Debug, Clone, clap::Args)]
pub struct DumpArgs {
    /// The resource id (or alias) to dump.
    pub resource_id: String,
    /// csv, tsv, json or xml.
    #[arg(long, default_value = "csv")]
    pub format: String,
    /// Start with a UTF-8 byte-order mark.
    #[arg(long)]
    pub bom: bool,
    /// Full-text query (text, or a JSON object for per-column search).
    #[arg(long)]
    pub q: Option<String>,
    #[arg(long)]
    pub plain: Option<bool>,
    #[arg(long)]
    pub language: Option<String>,
    /// Filters as JSON, e.g. '{"country": "NL"}'.
    #[arg(long)]
    pub filters: Option<String>,
    /// Comma-separated field names.
    #[arg(long)]
    pub fields: Option<String>,
    /// Sort, e.g. "year desc" (default `_id`).
    #[arg(long)]
    pub sort: Option<String>,
    #[arg(long)]
    pub distinct: bool,
    #[arg(long)]
    pub offset: Option<i64>,
    #[arg(long)]
    pub limit: Option<i64>,
    /// Output file (default: standard output).
    #[arg(short = 'o', long)]
    pub output: Option<PathBuf>,
    /// Dump from this CKAN site over HTTP (e.g. https://data.example.org) instead of the
    /// database.
    #[arg(long)]
    pub url: Option<String>,
    /// API token sent as the Authorization header (HTTP mode).
    #[arg(long, env = "CKAN_API_TOKEN")]
    pub api_token: Option<String>,
    /// Continue an interrupted csv/tsv dump in --output (sorted by `_id`): keeps the rows
    /// already there and fetches only the rest.
    #[arg(long)]
    pub resume: bool,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// A failure with its exit code.
pub struct Failure(pub u8, pub String);

type ByteStream = std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, String>>>>;

impl DumpArgs {
    fn query(&self, resume_after: Option<i64>) -> Result<String, Failure> {
        let mut q = form_urlencoded::Serializer::new(String::new());
        q.append_pair("format", &self.format);
        if self.bom && resume_after.is_none() {
            q.append_pair("bom", "true");
        }
        let mut filters = match &self.filters {
            Some(f) => serde_json::from_str::<Value>(f)
                .map_err(|e| Failure(exit::USAGE, format!("--filters: {e}")))?,
            None => json!({}),
        };
        if let Some(last) = resume_after {
            let Value::Object(m) = &mut filters else {
                return Err(Failure(
                    exit::USAGE,
                    "--resume needs --filters to be a JSON object".into(),
                ));
            };
            if m.contains_key("_id") {
                return Err(Failure(
                    exit::USAGE,
                    "--resume cannot be combined with an _id filter".into(),
                ));
            }
            m.insert("_id".into(), json!({"gt": last}));
        }
        if filters != json!({}) {
            q.append_pair("filters", &filters.to_string());
        }
        for (k, v) in [
            ("q", &self.q),
            ("language", &self.language),
            ("fields", &self.fields),
            ("sort", &self.sort),
        ] {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
        if let Some(p) = self.plain {
            q.append_pair("plain", &p.to_string());
        }
        if self.distinct {
            q.append_pair("distinct", "true");
        }
        if let Some(o) = self.offset {
            q.append_pair("offset", &o.to_string());
        }
        if let Some(l) = self.limit {
            q.append_pair("limit", &l.to_string());
        }
        Ok(q.finish())
    }

    /// The datastore_search body that counts what the dump will hold (for the ETA).
    fn count_body(&self) -> Value {
        let mut b = json!({"resource_id": self.resource_id, "limit": 0});
        if let Some(f) = &self.filters {
            if let Ok(v) = serde_json::from_str::<Value>(f) {
                b["filters"] = v;
            }
        }
        if let Some(q) = &self.q {
            b["q"] = serde_json::from_str::<Value>(q)
                .ok()
                .filter(Value::is_object)
                .unwrap_or(json!(q));
        }
        if let Some(l) = &self.language {
            b["language"] = json!(l);
        }
        if let Some(p) = self.plain {
            b["plain"] = json!(p);
        }
        b
    }
}

/// Reads the `_id` of the last complete row of a csv/tsv file and cuts off a partial last line.
fn resume_point(path: &PathBuf, delimiter: u8) -> Result<Option<(i64, u64)>, Failure> {
    let io = |e: std::io::Error| Failure(exit::IO, format!("{}: {e}", path.display()));
    let mut f = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let len = f.metadata().map_err(io)?.len();
    let tail_len = len.min(1 << 20);
    f.seek(SeekFrom::Start(len - tail_len)).map_err(io)?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).map_err(io)?;
    let Some(last_nl) = tail.iter().rposition(|b| *b == b'\n') else {
        return Ok(None);
    };
    // Drop a partial last row.
    let keep = len - tail_len + last_nl as u64 + 1;
    f.set_len(keep).map_err(io)?;
    let body = &tail[..last_nl];
    let line_start = body
        .iter()
        .rposition(|b| *b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let line = &body[line_start..];
    let first = line.split(|b| *b == delimiter).next().unwrap_or_default();
    match std::str::from_utf8(first)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
    {
        Some(id) => Ok(Some((id, keep))),
        // Only the header so far: start again from the beginning.
        None => Ok(None),
    }
}

pub async fn run(args: DumpArgs) -> Result<(), Failure> {
    let delimiter = match args.format.as_str() {
        "csv" => Some(b','),
        "tsv" => Some(b'\t'),
        "json" | "xml" => None,
        other => {
            return Err(Failure(
                exit::USAGE,
                format!("--format: unknown format {other:?}"),
            ))
        }
    };
    let mut resume_after = None;
    if args.resume {
        let (Some(d), Some(path)) = (delimiter, &args.output) else {
            return Err(Failure(
                exit::USAGE,
                "--resume needs --output and csv or tsv".into(),
            ));
        };
        if args.sort.as_deref().is_some_and(|s| s.trim() != "_id")
            || args.offset.is_some()
            || args.limit.is_some()
        {
            return Err(Failure(
                exit::USAGE,
                "--resume needs the default _id order and no --offset/--limit".into(),
            ));
        }
        if args
            .fields
            .as_deref()
            .is_some_and(|f| !f.trim_start().starts_with("_id"))
        {
            return Err(Failure(
                exit::USAGE,
                "--resume needs _id as the first field".into(),
            ));
        }
        resume_after = resume_point(path, d)?.map(|(id, _)| id);
    }
    let query = args.query(resume_after)?;

    let (stream, total): (ByteStream, Option<u64>) = match &args.url {
        Some(base) => http_stream(&args, base, &query).await?,
        None => db_stream(&args, &query).await?,
    };

    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => {
            let f = if resume_after.is_some() {
                std::fs::OpenOptions::new().append(true).open(path)
            } else {
                std::fs::File::create(path)
            }
            .map_err(|e| Failure(exit::IO, format!("{}: {e}", path.display())))?;
            Box::new(std::io::BufWriter::with_capacity(256 * 1024, f))
        }
        None => Box::new(std::io::BufWriter::with_capacity(
            256 * 1024,
            std::io::stdout().lock(),
        )),
    };
    let bar = if !args.quiet && std::io::stderr().is_terminal() {
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} rows {msg} [{elapsed_precise}, ETA {eta}] {per_sec}",
            )
            .expect("template"),
        );
        bar.enable_steady_tick(Duration::from_millis(200));
        Some(bar)
    } else {
        None
    };
    let mut stream = stream;
    let mut bytes = 0u64;
    let mut skip_header = resume_after.is_some();
    while let Some(chunk) = stream.next().await {
        let mut chunk =
            chunk.map_err(|e| Failure(exit::SERVER, format!("the dump was cut short: {e}")))?;
        if skip_header {
            // A resumed csv/tsv continues the file: drop the new header line.
            if let Some(p) = chunk.iter().position(|b| *b == b'\n') {
                chunk = chunk.slice(p + 1..);
                skip_header = false;
            } else {
                continue;
            }
        }
        out.write_all(&chunk)
            .map_err(|e| Failure(exit::IO, format!("write: {e}")))?;
        bytes += chunk.len() as u64;
        if let Some(bar) = &bar {
            bar.inc(chunk.iter().filter(|b| **b == b'\n').count() as u64);
            bar.set_message(format!("{:.1} MB", bytes as f64 / 1e6));
        }
    }
    out.flush()
        .map_err(|e| Failure(exit::IO, format!("write: {e}")))?;
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(())
}

async fn http_stream(
    args: &DumpArgs,
    base: &str,
    query: &str,
) -> Result<(ByteStream, Option<u64>), Failure> {
    let base = base.trim_end_matches('/');
    let client = reqwest::Client::builder()
        .build()
        .map_err(|e| Failure(exit::USAGE, format!("http client: {e}")))?;
    let with_token = |r: reqwest::RequestBuilder| match &args.api_token {
        Some(t) => r.header("Authorization", t),
        None => r,
    };
    let total = match with_token(client.post(format!("{base}/api/3/action/datastore_search")))
        .json(&args.count_body())
        .send()
        .await
    {
        Ok(r) => r
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["result"]["total"].as_u64()),
        Err(_) => None,
    };
    let url = format!("{base}/datastore/dump/{}?{query}", args.resource_id);
    let resp = with_token(client.get(&url))
        .send()
        .await
        .map_err(|e| Failure(exit::SERVER, format!("{url}: {e}")))?;
    let status = resp.status().as_u16();
    if status != 200 {
        let text = resp.text().await.unwrap_or_default();
        let code = match status {
            404 => exit::NOT_FOUND,
            400 => exit::BAD_REQUEST,
            _ => exit::SERVER,
        };
        return Err(Failure(
            code,
            format!("{url}: HTTP {status} {}", first_line(&text)),
        ));
    }
    let stream = resp.bytes_stream().map(|r| r.map_err(|e| e.to_string()));
    Ok((Box::pin(stream), total))
}

fn first_line(text: &str) -> String {
    text.lines()
        .find(|l| !l.trim().is_empty() && !l.contains('<'))
        .unwrap_or("")
        .chars()
        .take(200)
        .collect()
}

async fn db_stream(args: &DumpArgs, query: &str) -> Result<(ByteStream, Option<u64>), Failure> {
    // Whoever holds the database's credentials reads every table: no access check here.
    let mut config = args.config.clone();
    config.all_tables_public = Some(true);
    let settings = Settings::load(&config)
        .map_err(|e| Failure(exit::USAGE, format!("configuration error: {e}")))?;
    let state = AppState::new(settings).map_err(|e| Failure(exit::USAGE, e))?;
    // The total for the progress bar: the same search, counted (no rows).
    let count = args.count_body().as_object().cloned().unwrap_or_default();
    let total = match SearchParams::parse(&count, &state.settings) {
        Ok(params) => search(&state, &params, &Presented::default())
            .await
            .ok()
            .and_then(|a| a.total)
            .and_then(|t| u64::try_from(t).ok()),
        Err(_) => None,
    };
    match produce(&state, &args.resource_id, query, &Presented::default()).await {
        Ok(d) => Ok((
            Box::pin(d.body.map(|r| r.map_err(|e| e.to_string()))),
            total,
        )),
        Err(DumpFailure::NotFound) => Err(Failure(
            exit::NOT_FOUND,
            format!("resource {} not found", args.resource_id),
        )),
        Err(DumpFailure::BadRequest(m)) => Err(Failure(exit::BAD_REQUEST, m)),
        Err(DumpFailure::Internal(m)) => Err(Failure(exit::SERVER, m)),
        Err(DumpFailure::Unavailable) => {
            Err(Failure(exit::SERVER, "access check unavailable".into()))
        }
    }
}
