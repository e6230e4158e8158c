//! Runs a search plan: one prepared statement for `objects` / `lists`; for `csv` / `tsv` the
//! COPY (which takes no parameters, so it cannot be prepared) and its prepared companion query
//! are pipelined on one connection (one round trip for both).

use bytes::Bytes;
use futures_util::TryStreamExt;

use crate::db::Conn;
use crate::error::{from_db_error, ApiError};
use crate::search::params::RecordsFormat;
use crate::search::plan::Plan;
use crate::search::statement::{copy_companion, copy_statement, page_statement, TotalSql};

/// Records as PostgreSQL produced them.
#[derive(Debug)]
pub enum Records {
    /// JSON array text for objects/lists, spliced verbatim (`None`: no rows).
    Json(Option<String>),
    /// COPY csv/tsv text, sent as a JSON string.
    Delimited(Bytes),
}

#[derive(Debug)]
pub struct Outcome {
    pub records: Records,
    /// JSON text of the next-page `_id`, when the plan asked for it and the page is not empty.
    pub next_id: Option<String>,
    /// The total's columns, when the statement was asked for them.
    pub total: Option<TotalColumns>,
    /// The table fingerprint at the time the statement ran.
    pub fingerprint: String,
    /// The statement's snapshot.
    pub snapshot: String,
}

/// The statement's answer about the total, to be settled against the cache (`totals.rs`).
#[derive(Debug)]
pub struct TotalColumns {
    /// `None` when the cached total was proven current and not recounted.
    pub counted: Option<i64>,
    pub snapshot: String,
    pub marker: Option<String>,
}

impl TotalColumns {
    fn read(col: Option<usize>, row: &tokio_postgres::Row) -> Option<TotalColumns> {
        let col = col?;
        Some(TotalColumns {
            counted: row.get(col),
            snapshot: row.get(col + 1),
            marker: row.get(col + 2),
        })
    }
}

/// Why a run did not produce an outcome.
pub enum RunError {
    /// The caller's mistake or a database error, already classified.
    Api(ApiError),
    /// A database error worth retrying once with fresh metadata.
    Db(ApiError),
}

/// Runs the plan's statement(s) on `client`; `total` says what to do about the total.
pub async fn run(
    client: &Conn,
    plan: &Plan,
    requested: &str,
    total: Option<&TotalSql>,
) -> Result<Outcome, RunError> {
    match plan.format {
        RecordsFormat::Objects | RecordsFormat::Lists => {
            let st = page_statement(plan, requested, total).map_err(RunError::Api)?;
            let params = st.binder.typed_params();
            let row = client
                .query_cached(&st.sql, &params)
                .await
                .map_err(|e| RunError::Db(from_db_error(&e, &st.sql)))?
                .into_iter()
                .next()
                .ok_or_else(|| {
                    RunError::Api(ApiError::Internal("page statement returned no row".into()))
                })?;
            Ok(Outcome {
                records: Records::Json(row.get(0)),
                next_id: st.next_col.and_then(|c| row.get(c)),
                fingerprint: row.get(st.fingerprint_col),
                snapshot: row.get(st.fingerprint_col + 1),
                total: TotalColumns::read(st.total_col, &row),
            })
        }
        RecordsFormat::Csv | RecordsFormat::Tsv => {
            let copy_sql = copy_statement(plan).map_err(RunError::Api)?;
            let companion = copy_companion(plan, requested, total).map_err(RunError::Api)?;
            let params = companion.binder.typed_params();
            let copy = async {
                let stream = client.copy_out(copy_sql.as_str()).await?;
                let chunks: Vec<Bytes> = stream.try_collect().await?;
                Ok::<_, tokio_postgres::Error>(chunks.concat())
            };
            let other = client.query_cached(&companion.sql, &params);
            let (copied, rows) = tokio::join!(copy, other);
            // CKAN runs COPY on the raw driver cursor: any database error there is a 500.
            let copied = copied.map_err(|e| {
                tracing::info!(sql = %copy_sql, error = %e, "COPY failed");
                RunError::Db(ApiError::CkanCrash(e.to_string()))
            })?;
            let rows = rows.map_err(|e| RunError::Db(from_db_error(&e, &companion.sql)))?;
            let row = rows.into_iter().next().ok_or_else(|| {
                RunError::Api(ApiError::Internal("companion returned no row".into()))
            })?;
            let empty = copied.is_empty();
            Ok(Outcome {
                records: Records::Delimited(Bytes::from(copied)),
                next_id: if empty {
                    None
                } else {
                    companion.next_col.and_then(|c| row.get(c))
                },
                fingerprint: row.get(companion.fingerprint_col),
                snapshot: row.get(companion.fingerprint_col + 1),
                total: TotalColumns::read(companion.total_col, &row),
            })
        }
    }
}
