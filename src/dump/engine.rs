//! The dump engine: the whole dump from one statement (one snapshot), streamed under
//! backpressure in ~64 KB chunks; when the reader goes away the query is cancelled on the
//! server and the connection checked before it returns to the pool. Used by
//! `GET /datastore/dump/<id>` (`api/dump.rs`) and the `dump` command (`dump/cli.rs`).

use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};
use tokio_postgres::types::ToSql;

use crate::auth::credentials::Presented;
use crate::auth::{Denial, Endpoint};
use crate::db::CancelOnDrop;
use crate::dump::format::{self, DumpFormat, XmlRows};
use crate::dump::{parse, DumpParamError, DumpParams, PAGINATE_BY};
use crate::error::classify_db_error;
use crate::search::params::{RecordsFormat, SearchParams};
use crate::search::plan::plan;
use crate::search::statement::{copy_statement, dump_rows_statement};
use crate::service::gate::read_checked;
use crate::state::AppState;

const CHUNK: usize = 64 * 1024;

/// Why a dump could not start (CKAN's status for each: 400, 404, 500).
#[derive(Debug)]
pub enum DumpFailure {
    BadRequest(String),
    NotFound,
    Internal(String),
    /// Access could not be checked (CKAN or its database unreachable): 503.
    Unavailable,
}

/// A dump under way: its file name and its bytes.
pub struct Dump {
    pub filename: String,
    pub body: std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, StreamCut>>>>,
}

/// The stream ended early (a database error after the status was sent): all that is left is
/// to cut the response.
#[derive(Debug, thiserror::Error)]
#[error("dump failed mid-stream")]
pub struct StreamCut;

/// Validates the request, resolves the resource, starts the one statement and reads the first
/// chunk (so that CKAN's first-page errors become a status, not a cut stream).
pub async fn produce(
    state: &AppState,
    rid: &str,
    query: &str,
    who: &Presented,
) -> Result<Dump, DumpFailure> {
    let internal = |e: String| DumpFailure::Internal(e);
    let params = match parse(query) {
        Ok(p) => p,
        Err(DumpParamError::BadRequest(m)) => return Err(DumpFailure::BadRequest(m)),
        // CKAN crashes formatting its error for an unknown format.
        Err(DumpParamError::Internal) => return Err(internal("unknown dump format".into())),
    };
    let direct = state.settings.public_table_search.iter().any(|t| t == rid);
    if direct && state.access.is_public() {
        // CKAN checks resource_show on it for the (anonymous) caller: NotFound, then a 500.
        return Err(internal("public_table_search table has no resource".into()));
    }
    let client = state
        .dump_pool
        .get()
        .await
        .map_err(|e| internal(format!("database pool: {e}")))?;
    let table = match state.catalog.get(&client, rid, direct).await {
        Ok(Some(t)) => t,
        Ok(None) => return Err(DumpFailure::NotFound),
        Err(e) => return Err(internal(format!("{e}"))),
    };
    // The check runs while the dump starts; nothing is sent before it says yes. CKAN hides
    // refusals behind 404, and answers 500 for orphan tables and `_table_metadata` (no
    // resource row): those are 404 here too, as they are not the caller's fault.
    let table_id = table.id.clone();
    let work = async {
        let dump = start_dump(state, params, client, table).await?;
        Ok((dump, table_id.clone()))
    };
    match read_checked(&state.access, who, rid, &table_id, Endpoint::Dump, work).await {
        Ok(dump) => dump,
        Err((Denial::Unavailable(_), _)) => Err(DumpFailure::Unavailable),
        Err(_) => Err(DumpFailure::NotFound),
    }
}

async fn start_dump(
    state: &AppState,
    params: DumpParams,
    client: crate::db::Object,
    table: std::sync::Arc<crate::catalog::Table>,
) -> Result<Dump, DumpFailure> {
    let internal = |e: String| DumpFailure::Internal(e);
    let client = CancelOnDrop::new(client);
    // The first page CKAN would request, validated as datastore_search validates it.
    let records_format = match params.format {
        DumpFormat::Csv => RecordsFormat::Csv,
        DumpFormat::Tsv => RecordsFormat::Tsv,
        DumpFormat::Json => RecordsFormat::Lists,
        DumpFormat::Xml => RecordsFormat::Objects,
    };
    let mut first = params.search.clone();
    first.insert("resource_id".into(), json!(table.id.as_str()));
    first.insert(
        "limit".into(),
        json!(params.limit.map_or(PAGINATE_BY, |l| l.min(PAGINATE_BY))),
    );
    first.insert("offset".into(), json!(params.offset));
    first.insert("records_format".into(), json!(records_format.as_str()));
    first.insert("include_total".into(), json!(false));
    first.insert("include_next_page".into(), json!(true));
    let search =
        SearchParams::parse(&first, &state.settings).map_err(|e| internal(format!("{e}")))?;
    let mut plan =
        plan(&search, table.clone(), &state.settings).map_err(|e| internal(format!("{e}")))?;
    // One statement for every page.
    plan.limit = params.limit.unwrap_or(i64::MAX);
    plan.next_page = None;
    let field_ids: Vec<String> = plan
        .result_fields
        .iter()
        .map(|f| f["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let source = start(&client, &plan, params.format)
        .await
        .map_err(internal)?;
    let encoder = Encoder::new(&params, &plan.result_fields, &field_ids);
    let mut stream = DumpStream {
        guard: client,
        source: Some(source),
        encoder,
        pending: BytesMut::with_capacity(CHUNK * 2),
        finished: false,
    };
    // CKAN answers errors of its first page with a 500; later ones just cut the stream.
    stream.fill().await.map_err(internal)?;
    let first_chunk = stream.pending.split().freeze();
    let body = futures_util::stream::once(async move { Ok::<_, StreamCut>(first_chunk) })
        .chain(stream.into_stream())
        .filter(|r| std::future::ready(!matches!(r, Ok(b) if b.is_empty())));
    Ok(Dump {
        filename: format!("{}.{}", table.id, params.format.extension()),
        body: Box::pin(body),
    })
}

/// Where the rows come from.
enum Source {
    Copy(std::pin::Pin<Box<tokio_postgres::CopyOutStream>>),
    Rows(std::pin::Pin<Box<tokio_postgres::RowStream>>),
}

async fn start(
    client: &tokio_postgres::Client,
    plan: &crate::search::plan::Plan,
    format: DumpFormat,
) -> Result<Source, String> {
    let pg = |e: tokio_postgres::Error| classify_db_error(&e).1;
    match format {
        DumpFormat::Csv | DumpFormat::Tsv => {
            let sql = copy_statement(plan).map_err(|e| format!("{e}"))?;
            let s = client.copy_out(sql.as_str()).await.map_err(pg)?;
            Ok(Source::Copy(Box::pin(s)))
        }
        DumpFormat::Json | DumpFormat::Xml => {
            let (sql, binder) = dump_rows_statement(plan).map_err(|e| format!("{e}"))?;
            let params: Vec<&(dyn ToSql + Sync)> =
                binder.typed_params().into_iter().map(|(v, _)| v).collect();
            let types: Vec<tokio_postgres::types::Type> =
                binder.typed_params().into_iter().map(|(_, t)| t).collect();
            let stmt = client.prepare_typed(&sql, &types).await.map_err(pg)?;
            let s = client.query_raw(&stmt, params).await.map_err(pg)?;
            Ok(Source::Rows(Box::pin(s)))
        }
    }
}

/// Turns rows into the format's bytes.
struct Encoder {
    format: DumpFormat,
    opening: Option<Vec<u8>>,
    closing: &'static [u8],
    first_record: bool,
    xml: Option<XmlRows>,
}

impl Encoder {
    fn new(params: &DumpParams, fields: &[Value], field_ids: &[String]) -> Encoder {
        let mut opening = if params.bom {
            format::BOM.to_vec()
        } else {
            Vec::new()
        };
        let (closing, xml): (&'static [u8], _) = match params.format {
            DumpFormat::Csv => {
                opening.extend_from_slice(format::csv_header(field_ids, ',').as_bytes());
                (b"", None)
            }
            DumpFormat::Tsv => {
                opening.extend_from_slice(format::csv_header(field_ids, '\t').as_bytes());
                (b"", None)
            }
            DumpFormat::Json => {
                opening.extend_from_slice(&format::json_opening(&Value::Array(fields.to_vec())));
                (format::JSON_CLOSING, None)
            }
            DumpFormat::Xml => {
                opening.extend_from_slice(format::XML_OPENING);
                (format::XML_CLOSING, Some(XmlRows::new(field_ids)))
            }
        };
        // CKAN's writers hold the opening back until the first page is written, and with
        // `limit=0` no page is ever written: the opening (and BOM) is lost.
        let opening = if params.limit == Some(0) {
            None
        } else {
            Some(opening)
        };
        Encoder {
            format: params.format,
            opening,
            closing,
            first_record: true,
            xml,
        }
    }

    fn record(&mut self, out: &mut BytesMut, text: &str) -> Result<(), String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("record JSON: {e}"))?;
        let mut buf = Vec::with_capacity(text.len() + 8);
        match self.format {
            DumpFormat::Json => {
                buf.extend_from_slice(if self.first_record {
                    b"\n    "
                } else {
                    b",\n    "
                });
                format::write_compact(&mut buf, &v);
            }
            _ => self.xml.as_ref().expect("xml encoder").write(&mut buf, &v),
        }
        self.first_record = false;
        out.extend_from_slice(&buf);
        Ok(())
    }
}

struct DumpStream {
    guard: CancelOnDrop,
    source: Option<Source>,
    encoder: Encoder,
    pending: BytesMut,
    finished: bool,
}

impl DumpStream {
    /// Pulls rows until a chunk is ready or the source ends.
    async fn fill(&mut self) -> Result<(), String> {
        if let Some(op) = self.encoder.opening.take() {
            self.pending.extend_from_slice(&op);
        }
        while self.pending.len() < CHUNK {
            let Some(source) = self.source.as_mut() else {
                break;
            };
            let next = match source {
                Source::Copy(s) => s.next().await.map(|r| r.map(Item::Bytes)),
                Source::Rows(s) => s.next().await.map(|r| r.map(Item::Row)),
            };
            match next {
                Some(Ok(Item::Bytes(b))) => self.pending.extend_from_slice(&b),
                Some(Ok(Item::Row(row))) => {
                    let text: &str = row.get(0);
                    self.encoder.record(&mut self.pending, text)?;
                }
                Some(Err(e)) => return Err(classify_db_error(&e).1),
                None => {
                    self.source = None;
                    self.pending.extend_from_slice(self.encoder.closing);
                    self.finished = true;
                    self.guard.release();
                }
            }
        }
        Ok(())
    }

    fn into_stream(self) -> impl Stream<Item = Result<Bytes, StreamCut>> {
        futures_util::stream::unfold(self, |mut st| async move {
            if st.finished && st.pending.is_empty() {
                return None;
            }
            match st.fill().await {
                Ok(()) => {
                    let chunk = st.pending.split().freeze();
                    Some((Ok(chunk), st))
                }
                Err(e) => {
                    // Status and part of the body are sent: all that is left is to cut it.
                    tracing::warn!(error = %e, "dump failed mid-stream");
                    st.finished = true;
                    st.pending.clear();
                    Some((Err(StreamCut), st))
                }
            }
        })
    }
}

enum Item {
    Bytes(Bytes),
    Row(tokio_postgres::Row),
}
