//! "Run one search": the `datastore_search` service shared by the action API, the DataTables
//! view and the dump command. From parsed parameters and the caller to a typed answer: the
//! table's existence, the access check alongside the page, the plan, the total (cached and
//! proven current, estimated, or counted), and a retry when the table's metadata changed
//! under us. Rendering the answer is the caller's business.

use std::time::Duration;

use serde_json::{json, Map};

use crate::auth::credentials::Presented;
use crate::auth::Endpoint;
use crate::catalog::TableId;
use crate::db::CancelOnDrop;
use crate::error::ApiError;
use crate::search::execute::{run, Records, RunError};
use crate::search::params::SearchParams;
use crate::search::plan::{plan, Plan};
use crate::search::totals::{estimate, settle_total, TotalPlan};
use crate::service::gate::read_checked;
use crate::state::AppState;

/// A search's answer, before rendering.
#[derive(Debug)]
pub struct SearchAnswer {
    /// The plan it was answered from (the table read, its fields, the next-page rule).
    pub plan: Plan,
    /// The records as PostgreSQL produced them.
    pub records: Records,
    /// JSON text of the `_id` for `next_page`, when the plan offers one and the page is not empty.
    pub next_id: Option<String>,
    pub total: Option<i64>,
    /// `total_was_estimated`, when the caller sent `total_estimation_threshold` and the
    /// server honours it.
    pub total_was_estimated: Option<bool>,
}

/// Runs the search `params` describes for the caller `who`.
pub async fn search(
    state: &AppState,
    params: &SearchParams,
    who: &Presented,
) -> Result<SearchAnswer, ApiError> {
    let rid = params.resource_id.as_str();
    // `public_table_search` tables (`_table_metadata`) are readable by anyone, as in CKAN.
    let direct = state.settings.public_table_search.iter().any(|t| t == rid);
    // A page abandoned because access was denied is usually over within milliseconds.
    let mut client =
        CancelOnDrop::with_grace(state.connection(rid).await?, Duration::from_millis(20));
    if direct {
        let out = answer(state, params, &client, true).await;
        client.release();
        return out;
    }
    let table = state
        .catalog
        .get(&client, rid, false)
        .await?
        .ok_or_else(|| not_found(rid, false))?
        .id
        .clone();
    let work = async {
        let a = answer(state, params, &client, false).await?;
        let served = a.plan.table.id.clone();
        Ok((a, served))
    };
    match read_checked(&state.access, who, rid, &table, Endpoint::Search, work).await {
        Err((denial, table)) => Err(denial.api_error(&table)),
        Ok(out) => {
            client.release();
            out
        }
    }
}

fn not_found(rid: &str, direct: bool) -> ApiError {
    ApiError::NotFound(Some(if direct {
        format!("DataStore table \"{rid}\" was not found.")
    } else {
        format!("Resource \"{rid}\" was not found.")
    }))
}

/// The page (and total) for `params`, read from the table the request names now.
async fn answer(
    state: &AppState,
    params: &SearchParams,
    client: &crate::db::Object,
    direct: bool,
) -> Result<SearchAnswer, ApiError> {
    let rid = params.resource_id.as_str();
    let mut retried = false;
    loop {
        let table = state
            .catalog
            .get(client, rid, direct)
            .await?
            .ok_or_else(|| not_found(rid, direct))?;
        if params.empty_id {
            let mut m = Map::new();
            m.insert(
                "message".into(),
                json!("Missing id, can not get Resource object"),
            );
            return Err(ApiError::Validation(m));
        }
        let mut plan = plan(params, table.clone(), &state.settings)?;
        // CKAN ≤ 2.11's total_estimation_threshold, when the operator asked for it: above the
        // threshold the planner's estimate stands in for the count.
        let mut estimated = None;
        if let (Some(threshold), true) = (params.total_estimation_threshold, plan.include_total) {
            let estimate = estimate(client, &plan).await?;
            if estimate >= threshold {
                plan.include_total = false;
                estimated = Some(estimate);
            }
        }
        let total_plan = match plan.include_total {
            true => Some(TotalPlan::new(&state.totals, &plan)?),
            false => None,
        };
        let total_sql = total_plan
            .as_ref()
            .map(|tp| tp.sql(state.totals.max_staleness));
        let result = run(client, &plan, rid, total_sql.as_ref()).await;
        match result {
            Ok(out) if out.fingerprint == table.fingerprint || retried => {
                if out.fingerprint == table.fingerprint {
                    table.prove(&out.snapshot);
                }
                let total = match (total_plan, out.total) {
                    (Some(tp), Some(cols)) => {
                        let wp = state.write_pool.as_ref();
                        Some(settle_total(&state.totals, client, wp, tp, cols).await?)
                    }
                    _ => None,
                };
                let (total, total_was_estimated) = match estimated {
                    Some(e) => (Some(e), Some(true)),
                    None => (
                        total,
                        params.total_estimation_threshold.and(total).map(|_| false),
                    ),
                };
                return Ok(SearchAnswer {
                    plan,
                    records: out.records,
                    next_id: out.next_id,
                    total,
                    total_was_estimated,
                });
            }
            // The table changed since we cached its metadata: answer from fresh metadata.
            Ok(_) => {
                tracing::debug!(resource = rid, "metadata changed; reloading");
                forget(state, rid, &table.id).await;
            }
            Err(RunError::Db(err)) if !retried => {
                // Retry only if the failure came from stale metadata.
                state.catalog.invalidate(rid).await;
                match state.catalog.get(client, rid, direct).await {
                    Ok(Some(fresh)) if fresh.fingerprint == table.fingerprint => return Err(err),
                    // The check itself failed: the original error is the answer.
                    Err(_) => return Err(err),
                    // Changed or gone: answer again from fresh metadata.
                    Ok(_) => {}
                }
            }
            Err(RunError::Db(err)) | Err(RunError::Api(err)) => return Err(err),
        }
        retried = true;
    }
}

/// Drops what is cached about `rid` and its table.
async fn forget(state: &AppState, rid: &str, table: &TableId) {
    state.catalog.invalidate(rid).await;
    state.totals.forget_table(table);
}
