//! `datastore_search`: parse the request, run the search service, render CKAN's result object.

use serde_json::{json, Map, Value};

use crate::auth::credentials::Presented;
use crate::error::ApiError;
use crate::object_writer::ObjectWriter;
use crate::search::execute::Records;
use crate::search::params::SearchParams;
use crate::search::plan::NextPage;
use crate::service::search::{search, SearchAnswer};
use crate::state::AppState;

pub async fn handle(
    state: &AppState,
    data: Map<String, Value>,
    who: &Presented,
) -> Result<Vec<u8>, ApiError> {
    let params = SearchParams::parse(&data, &state.settings)?;
    let answer = search(state, &params, who).await?;
    Ok(render(&params, &answer))
}

/// The result object, keys in CKAN's order: echoed parameters sorted by name, then
/// `filterops`, `records`, `fields`, `total`, `next_page`.
pub fn render(params: &SearchParams, answer: &SearchAnswer) -> Vec<u8> {
    let plan = &answer.plan;
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
    match &answer.records {
        Records::Json(Some(text)) if text != "[]" => w.raw("records", text.as_bytes()),
        Records::Json(_) => w.raw("records", b"[]"),
        Records::Delimited(bytes) => w.string("records", &String::from_utf8_lossy(bytes)),
    }
    if params.fields.is_none() {
        w.value("fields", &field_list);
    }
    if let Some(t) = answer.total {
        w.value("total", &json!(t));
    }
    if let Some(e) = answer.total_was_estimated {
        w.value("total_was_estimated", &json!(e));
    }
    if let (Some(np), Some(id)) = (plan.next_page, &answer.next_id) {
        let op = if np == NextPage::Lt { "lt" } else { "gt" };
        w.raw(
            "next_page",
            format!("{{\"_id\": {{\"{op}\": {id}}}}}").as_bytes(),
        );
    }
    w.finish()
}
