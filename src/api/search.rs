//! `datastore_search`.

use serde_json::{json, Map, Value};

use crate::app::AppState;
use crate::auth::credentials::Presented;
use crate::auth::{gate, Endpoint};
use crate::db::CancelOnDrop;
use crate::error::ApiError;
use crate::search::execute::{run, Records, RunError};
use crate::search::params::SearchParams;
use crate::search::plan::{plan, NextPage, Plan};
use crate::search::totals::{estimate, read_tstats, recount, Settled};

use super::envelope::ObjectWriter;

pub async fn handle(
    state: &AppState,
    data: Map<String, Value>,
    who: &Presented,
) -> Result<Vec<u8>, ApiError> {
    let params = SearchParams::parse(&data, &state.settings)?;
    let rid = params.resource_id.as_str();
    // `public_table_search` tables (`_table_metadata`) are readable by anyone, as in CKAN.
    let direct = state.settings.public_table_search.iter().any(|t| t == rid);
    // A page abandoned because access was denied is usually over within milliseconds.
    let mut client = CancelOnDrop::with_grace(
        super::connection(state).await?,
        std::time::Duration::from_millis(20),
    );
    if direct || state.access.is_public() {
        let out = answer(state, &params, &client, direct).await;
        client.release();
        return out.map(|(bytes, _)| bytes);
    }
    // Existence first (CKAN: 404 before 403); then the access check runs alongside the page,
    // and the page is sent only once the check says yes.
    let checked = state
        .catalog
        .get(&***client, rid, false)
        .await?
        .ok_or_else(|| not_found(rid, false))?
        .id
        .clone();
    let verdict = state.access.decide(who, &checked, rid, Endpoint::Search);
    let (bytes, served) = match gate(verdict, answer(state, &params, &client, false)).await {
        Err(denial) => return Err(denial.api_error(&checked)),
        Ok(out) => {
            client.release();
            out?
        }
    };
    if served != checked {
        // An alias was retargeted while we answered: check the table actually read.
        state
            .access
            .decide(who, &served, rid, Endpoint::Search)
            .await
            .map_err(|d| d.api_error(&served))?;
    }
    Ok(bytes)
}

fn not_found(rid: &str, direct: bool) -> ApiError {
    ApiError::NotFound(Some(if direct {
        format!("DataStore table \"{rid}\" was not found.")
    } else {
        format!("Resource \"{rid}\" was not found.")
    }))
}

/// The page (and total) for `params`, and the id of the table it was read from.
async fn answer(
    state: &AppState,
    params: &SearchParams,
    client: &deadpool_postgres::Object,
    direct: bool,
) -> Result<(Vec<u8>, String), ApiError> {
    let rid = params.resource_id.as_str();
    let mut retried = false;
    loop {
        let table = state
            .catalog
            .get(&***client, rid, direct)
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
        // CKAN's `_table_stats` marker (write role) is read alongside the page, not after it.
        let tstats = async {
            match (&state.write_pool, plan.include_total) {
                (Some(wp), true) => read_tstats(wp, &table.id).await,
                _ => None,
            }
        };
        let (result, tstats) = tokio::join!(run(client, &plan, rid, &state.totals), tstats);
        match result {
            Ok(out) if out.fingerprint == table.fingerprint || retried => {
                let total = match out.total {
                    None => None,
                    Some(t) => Some(match t.settle(&state.totals, tstats.clone()) {
                        Settled::Total(n) => n,
                        Settled::Recount(tp) => {
                            let (n, snapshot, marker) = recount(client, &tp.key)
                                .await
                                .map_err(|e| crate::error::from_db_error(&e, &tp.key.sql))?;
                            tp.store(&state.totals, n, snapshot, marker, tstats);
                            n
                        }
                    }),
                };
                let (total, was_estimated) = match estimated {
                    Some(e) => (Some(e), Some(true)),
                    None => (
                        total,
                        params.total_estimation_threshold.and(total).map(|_| false),
                    ),
                };
                let bytes = render(
                    params,
                    &plan,
                    out.records,
                    out.next_id,
                    total,
                    was_estimated,
                );
                return Ok((bytes, plan.table.id.clone()));
            }
            // The table changed since we cached its metadata: answer from fresh metadata.
            Ok(_) => {
                tracing::debug!(resource = rid, "metadata changed; reloading");
                state.catalog.invalidate(rid).await;
                state.totals.forget_table(&table.id);
                state.totals.forget_table(&table.id);
            }
            Err(RunError::Db(err)) if !retried => {
                // Retry only if the failure came from stale metadata.
                state.catalog.invalidate(rid).await;
                match state.catalog.get(&***client, rid, direct).await {
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

/// The result object, keys in CKAN's order: echoed parameters sorted by name, then
/// `filterops`, `records`, `fields`, `total`, `next_page`.
fn render(
    params: &SearchParams,
    plan: &Plan,
    records: Records,
    next_id: Option<String>,
    total: Option<i64>,
    total_was_estimated: Option<bool>,
) -> Vec<u8> {
    let mut w = ObjectWriter::new();
    let field_list = Value::Array(plan.result_fields.clone());
    if let Some(d) = params.distinct {
        w.value("distinct", &json!(d));
    }
    if params.fields.is_some() {
        w.value("fields", &field_list);
    }
    if let Some(f) = &params.filters {
        w.value("filters", f);
    }
    if let Some(ft) = &params.full_text {
        w.value("full_text", &json!(ft));
    }
    w.value("include_next_page", &json!(params.include_next_page));
    w.value("include_total", &json!(params.include_total));
    if let Some(l) = &params.language {
        w.value("language", &json!(l));
    }
    w.value("limit", &json!(params.limit));
    if let Some(o) = &params.offset {
        w.value("offset", o);
    }
    if let Some(p) = params.plain {
        w.value("plain", &json!(p));
    }
    if let Some(q) = &params.q {
        w.value("q", q);
    }
    w.value("records_format", &json!(params.records_format.as_str()));
    w.value("resource_id", &json!(plan.table.id));
    if let Some(s) = &params.sort {
        w.value("sort", s);
    }
    if let Some(t) = params.total_estimation_threshold {
        w.value("total_estimation_threshold", &json!(t));
    }
    if let Some(f) = &plan.filter {
        w.value("filterops", &f.to_json());
    }
    match &records {
        Records::Json(Some(text)) if text != "[]" => w.raw("records", text.as_bytes()),
        Records::Json(_) => w.raw("records", b"[]"),
        Records::Delimited(bytes) => w.string("records", &String::from_utf8_lossy(bytes)),
    }
    if params.fields.is_none() {
        w.value("fields", &field_list);
    }
    if let Some(t) = total {
        w.value("total", &json!(t));
    }
    if let Some(e) = total_was_estimated {
        w.value("total_was_estimated", &json!(e));
    }
    if let (Some(np), Some(id)) = (plan.next_page, &next_id) {
        let op = if np == NextPage::Lt { "lt" } else { "gt" };
        w.raw(
            "next_page",
            format!("{{\"_id\": {{\"{op}\": {id}}}}}").as_bytes(),
        );
    }
    w.finish()
}
