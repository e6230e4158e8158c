//! The DataTables view (CKAN 2.12's `ckanext/datatablesview/blueprint.py`), as domain logic
//! shared by its two endpoints: the view's configuration from CKAN's `resource_view` table (and
//! the caller's right to see it), the view's filters merged with the user's, the column list,
//! sort and full-text query built from DataTables' parameters, and the two searches CKAN makes
//! per draw run through the search service, so the caller's access, the totals cache and CKAN's
//! parameter rules all apply. `api/datatables.rs` turns the outcomes into HTTP answers.

use serde_json::{json, Map, Value};

use crate::auth::credentials::Presented;
use crate::auth::Endpoint;
use crate::error::ApiError;
use crate::pyjson;
use crate::python::{self, PyInt};
use crate::search::execute::Records;
use crate::search::params::SearchParams;
use crate::service::search::{search, SearchAnswer};
use crate::state::AppState;

/// CKAN's `ESTIMATION_THRESHOLD` (ignored by CKAN 2.12's search, sent anyway).
const ESTIMATION_THRESHOLD: i64 = 100_000;

/// Where CKAN's view fails with an uncaught exception.
pub enum Failure {
    /// A form key CKAN reads with `request.form[...]` is missing (Flask: 400).
    MissingKey,
    /// Anything else uncaught (500).
    Crash(String),
}

/// `request.form` as Flask builds it (only a form-encoded body counts; the first value wins),
/// plus the query string for the view's user filters.
pub struct ViewRequest<'a> {
    pub form: Vec<(String, String)>,
    pub query: &'a str,
}

impl<'a> ViewRequest<'a> {
    pub fn new(content_type: Option<&str>, body: &[u8], query: &'a str) -> ViewRequest<'a> {
        let form = match content_type {
            Some(ct) if ct.starts_with("application/x-www-form-urlencoded") => {
                form_urlencoded::parse(body).into_owned().collect()
            }
            _ => Vec::new(),
        };
        ViewRequest { form, query }
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.form
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    fn need(&self, k: &str) -> Result<&str, Failure> {
        self.get(k).ok_or(Failure::MissingKey)
    }
}

/// What a draw answers (the adapter adds the status and CKAN's bodies for the refusals).
pub enum Draw {
    Data(Value),
    /// The view's resource has no DataStore table: 404 `{"error": "Object not found"}`.
    NotFound,
    /// 403 `{"error": "Not Authorized"}`.
    NotAuthorized,
    /// The page search failed: 400 `{"error": "Invalid search query... <q>"}`.
    InvalidSearch(String),
}

/// A DataTables view: its resource and configuration.
struct View {
    resource_id: String,
    config: Map<String, Value>,
}

impl View {
    /// CKAN's `resource_view_show`: an unknown view, or one the caller may not see, is an
    /// uncaught exception in CKAN.
    async fn load(state: &AppState, view_id: &str, who: &Presented) -> Result<View, Failure> {
        let (resource_id, config) = state
            .access
            .resource_view(view_id)
            .await
            .map_err(Failure::Crash)?
            .ok_or_else(|| Failure::Crash("no such datatables view".into()))?;
        if !state.access.is_public() {
            state
                .access
                .decide(who, &resource_id, &resource_id, Endpoint::Search)
                .await
                .map_err(|_| Failure::Crash("resource_view_show not authorized".into()))?;
        }
        let config = serde_json::from_str(&config).unwrap_or_default();
        Ok(View {
            resource_id,
            config,
        })
    }

    fn filters(&self) -> Value {
        self.config.get("filters").cloned().unwrap_or(json!({}))
    }

    /// The view's own filters tightened by the user's.
    fn merged_filters(&self, req: &ViewRequest) -> Value {
        merge_filters(&self.filters(), &user_filters(req.query, &req.form))
    }

    /// The search CKAN runs for the unfiltered total: the view's filters only, no rows.
    fn unfiltered_search(&self, estimation: bool) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert("resource_id".into(), json!(self.resource_id));
        m.insert("limit".into(), json!(0));
        m.insert("filters".into(), self.filters());
        if estimation {
            m.insert(
                "total_estimation_threshold".into(),
                json!(ESTIMATION_THRESHOLD),
            );
        }
        m
    }

    /// The table's field ids (from the unfiltered search), restricted to `show_fields`.
    fn columns(&self, unfiltered: &SearchAnswer) -> Vec<String> {
        let mut cols: Vec<String> = unfiltered
            .plan
            .result_fields
            .iter()
            .filter_map(|f| f["id"].as_str().map(str::to_string))
            .collect();
        if let Some(Value::Array(show)) = self.config.get("show_fields") {
            cols.retain(|c| show.iter().any(|s| s.as_str() == Some(c)));
        }
        cols
    }
}

/// Parses `data` as `datastore_search` would and runs it for `who`.
async fn run_search(
    state: &AppState,
    data: Map<String, Value>,
    who: &Presented,
) -> Result<SearchAnswer, ApiError> {
    let params = SearchParams::parse(&data, &state.settings)?;
    search(state, &params, who).await
}

/// `"<name> asc|desc"` for a DataTables order item (column index, direction); negative indexes
/// count from the end, as Python's do.
fn sort_clause(cols: &[String], n: i64, desc: bool) -> Option<String> {
    let idx = if n < 0 { cols.len() as i64 + n } else { n };
    let name = usize::try_from(idx).ok().and_then(|i| cols.get(i))?;
    Some(format!("{name} {}", if desc { "desc" } else { "asc" }))
}

/// CKAN's `q`: per-column prefix searches as a JSON object when any column has one, else the
/// global search as a prefix query, else empty.
fn full_text_query(column_searches: &Map<String, Value>, global: &str) -> String {
    if !column_searches.is_empty() {
        pyjson::to_string(&Value::Object(column_searches.clone()))
    } else if !global.is_empty() {
        prefix_word(global)
    } else {
        String::new()
    }
}

/// The page search CKAN runs for a draw or a download.
fn page_search(resource_id: &str, q: &str, sort: &[String], filters: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("q".into(), json!(q));
    m.insert("resource_id".into(), json!(resource_id));
    m.insert("plain".into(), json!(false));
    m.insert("language".into(), json!("simple"));
    m.insert("sort".into(), json!(sort.join(", ")));
    m.insert("filters".into(), filters);
    m
}

/// `POST /datatables/ajax/<view id>`: one draw.
pub async fn draw(
    state: &AppState,
    view_id: &str,
    req: &ViewRequest<'_>,
    who: &Presented,
) -> Result<Draw, Failure> {
    let view = View::load(state, view_id, who).await?;
    let draw = py_int(req.need("draw")?)?;
    let global = req.need("search[value]")?.to_string();
    let offset = py_int(req.need("start")?)?;
    let limit = py_int(req.need("length")?)?;
    let filters = view.merged_filters(req);

    let unfiltered = match run_search(state, view.unfiltered_search(true), who).await {
        Ok(a) => a,
        Err(ApiError::NotFound(_)) => return Ok(Draw::NotFound),
        Err(ApiError::Forbidden(_)) => return Ok(Draw::NotAuthorized),
        Err(e) => return Err(Failure::Crash(format!("unfiltered search: {e}"))),
    };
    let cols = view.columns(&unfiltered);

    let mut sort = Vec::new();
    for i in 0.. {
        let Some(col) = req.get(&format!("order[{i}][column]")) else {
            break;
        };
        let n = py_int(col)?.saturating_i64();
        let dir = req.need(&format!("order[{i}][dir]"))?;
        sort.push(
            sort_clause(&cols, n, dir == "desc")
                .ok_or_else(|| Failure::Crash(format!("order column {n}")))?,
        );
    }
    let mut colsearch = Map::new();
    for i in 0.. {
        let Some(v) = req.get(&format!("columns[{i}][search][value]")) else {
            break;
        };
        if !v.is_empty() {
            let k = req.need(&format!("columns[{i}][name]"))?;
            colsearch.insert(k.to_string(), json!(prefix_word(v)));
        }
    }
    let q = full_text_query(&colsearch, &global);

    let mut page = page_search(&view.resource_id, &q, &sort, filters);
    page.insert("offset".into(), offset.to_json());
    page.insert("limit".into(), limit.to_json());
    page.insert(
        "total_estimation_threshold".into(),
        json!(ESTIMATION_THRESHOLD),
    );
    let page = match run_search(state, page, who).await {
        Ok(a) => a,
        Err(_) => return Ok(Draw::InvalidSearch(format!("Invalid search query... {q}"))),
    };
    let rows: Vec<Value> = match &page.records {
        Records::Json(Some(text)) => serde_json::from_str(text)
            .map_err(|e| Failure::Crash(format!("search records: {e}")))?,
        _ => Vec::new(),
    };
    let null_label = &state.settings.datatables_null_label;
    let data: Vec<Value> = rows
        .iter()
        .map(|row| {
            let mut record = Map::new();
            for c in &cols {
                let text = match row.get(c) {
                    None => String::new(),
                    Some(Value::Null) => null_label.clone(),
                    Some(v) => python::str_of(v),
                };
                record.insert(c.clone(), json!(python::html_escape(&text)));
            }
            let id = row.get("_id").map(python::str_of).unwrap_or_default();
            record.insert("DT_RowId".into(), json!(format!("row{id}")));
            Value::Object(record)
        })
        .collect();
    Ok(Draw::Data(json!({
        "draw": draw.to_json(),
        "recordsTotal": unfiltered.total.unwrap_or(0),
        "recordsFiltered": page.total.unwrap_or(0),
        "data": data,
        "total_was_estimated": unfiltered.total_was_estimated.unwrap_or(false),
    })))
}

/// `POST /datatables/filtered-download/<view id>`: CKAN's `filtered_download` — the view's
/// current search, sort, filters and visible columns as the `/datastore/dump/<resource id>`
/// URL to redirect to.
pub async fn download_location(
    state: &AppState,
    view_id: &str,
    req: &ViewRequest<'_>,
    who: &Presented,
) -> Result<String, Failure> {
    let params: Value = serde_json::from_str(req.get("params").ok_or(Failure::MissingKey)?)
        .map_err(|e| Failure::Crash(format!("params: {e}")))?;
    let view = View::load(state, view_id, who).await?;
    let crash = |what: &str| Failure::Crash(format!("params: {what}"));
    let search_text = params["search"]["value"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| crash("search.value"))?;
    let filters = view.merged_filters(req);
    let unfiltered = run_search(state, view.unfiltered_search(false), who)
        .await
        .map_err(|e| Failure::Crash(format!("unfiltered search: {e}")))?;
    let cols = view.columns(&unfiltered);
    let mut sort = Vec::new();
    for order in params["order"].as_array().ok_or_else(|| crash("order"))? {
        let n = match &order["column"] {
            Value::Number(n) => n.as_i64().ok_or_else(|| crash("order column"))?,
            Value::String(s) => py_int(s)?.saturating_i64(),
            _ => return Err(crash("order column")),
        };
        sort.push(
            sort_clause(&cols, n, order["dir"] == json!("desc"))
                .ok_or_else(|| crash("order column out of range"))?,
        );
    }
    let visible = params["visible"]
        .as_array()
        .ok_or_else(|| crash("visible"))?;
    let cols: Vec<&String> = cols
        .iter()
        .zip(visible)
        .filter(|(_, v)| python::truthy(v))
        .map(|(c, _)| c)
        .collect();
    let mut colsearch = Map::new();
    for column in params["columns"]
        .as_array()
        .ok_or_else(|| crash("columns"))?
    {
        if let Some(v) = column["search"]["value"].as_str().filter(|v| !v.is_empty()) {
            let k = column["name"]
                .as_str()
                .ok_or_else(|| crash("column name"))?;
            colsearch.insert(k.to_string(), json!(prefix_word(v)));
        }
    }
    let q = full_text_query(&colsearch, &search_text);
    let format = req.get("format").ok_or(Failure::MissingKey)?;
    let fields: Vec<&str> = cols.iter().map(|c| c.as_str()).collect();
    let query = [
        ("q", q),
        ("plain", "False".to_string()),
        ("language", "simple".to_string()),
        ("sort", sort.join(",")),
        ("filters", pyjson::to_string(&filters)),
        ("format", format.to_string()),
        ("fields", fields.join(",")),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", python::quote_plus(v)))
    .collect::<Vec<_>>()
    .join("&");
    Ok(format!(
        "{}/datastore/dump/{}?{query}",
        state.settings.site_url,
        // `url_for`'s path segment (UUID resource ids need no quoting either way).
        python::quote(&view.resource_id, "")
    ))
}

/// Python's `int()` of a form value (its ValueError is uncaught in CKAN's view).
fn py_int(v: &str) -> Result<PyInt, Failure> {
    python::int(v).map_err(|_| Failure::Crash(format!("int({v:?})")))
}

/// CKAN's prefix-search word: `re.sub(r'[^0-9a-zA-Z\-]+', '_', v) + ':*'`.
fn prefix_word(v: &str) -> String {
    format!("{}:*", python::re_sub_outside_alnum_dash(v))
}
/// CKAN's `decode_view_request_filters`: `filters=field:value|field:value` from the query
/// string, or from the form when it has one; each part percent-decoded again; values deduplicated.
fn user_filters(query: &str, form: &[(String, String)]) -> Map<String, Value> {
    let mut out = Map::new();
    let raw = form
        .iter()
        .find(|(k, _)| k == "filters")
        .map(|(_, v)| v.clone())
        .or_else(|| {
            form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "filters")
                .map(|(_, v)| v.into_owned())
        });
    let Some(raw) = raw.filter(|r| !r.is_empty()) else {
        return out;
    };
    for part in raw.split('|') {
        let (k, v) = part.split_once(':').unwrap_or((part, ""));
        let (k, v) = (python::unquote(k), json!(python::unquote(v)));
        if let Value::Array(values) = out.entry(k).or_insert_with(|| Value::Array(Vec::new())) {
            if !values.contains(&v) {
                values.push(v);
            }
        }
    }
    out
}

/// CKAN's `merge_filters`: user filters may only tighten the view's own.
fn merge_filters(view: &Value, user: &Map<String, Value>) -> Value {
    let mut filters = view.as_object().cloned().unwrap_or_default();
    for (k, uv) in user {
        let merged = match view.get(k) {
            None => uv.clone(),
            // `user_filters[k] in view_filters[k]`: the user's list is one element of the view's.
            Some(Value::Array(vv)) if vv.contains(uv) => uv.clone(),
            Some(vv) => {
                let mut both = uv.as_array().cloned().unwrap_or_default();
                both.extend(vv.as_array().cloned().unwrap_or_default());
                Value::Array(both)
            }
        };
        filters.insert(k.clone(), merged);
    }
    Value::Object(filters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ckan_helpers() {
        let u = user_filters("filters=a%3A1%7Ca%3A2%7Cb%3Ax%7Ca%3A1", &[]);
        assert_eq!(
            Value::Object(u.clone()),
            json!({"a": ["1", "2"], "b": ["x"]})
        );
        assert_eq!(
            merge_filters(&json!({"a": ["1"], "c": ["z"]}), &u),
            json!({"a": ["1", "2", "1"], "c": ["z"], "b": ["x"]})
        );
    }
}
