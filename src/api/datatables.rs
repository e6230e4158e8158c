//! `POST /datatables/ajax/<resource_view_id>`: the DataTables view's server-side endpoint, as
//! CKAN 2.12's `ckanext/datatablesview/blueprint.py::ajax` answers it. The view (its resource,
//! `filters`, `show_fields`) is read from CKAN's `resource_view` table; the two searches CKAN
//! makes per draw (unfiltered total, filtered page) run through our `datastore_search`, so the
//! caller's access, the totals cache and CKAN's parameter rules all apply.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use crate::app::AppState;
use crate::auth::credentials::Presented;
use crate::auth::Endpoint;
use crate::error::ApiError;
use crate::pyjson;
use crate::python::{self, PyInt};

/// CKAN's `ESTIMATION_THRESHOLD` (ignored by CKAN 2.12's search, sent anyway).
const ESTIMATION_THRESHOLD: i64 = 100_000;

/// Flask's answers where CKAN's view crashes: a form key missing (`BadRequestKeyError`: 400),
/// anything else uncaught (500). Both are HTML pages; clients act on the status.
fn page(status: StatusCode) -> HttpResponse {
    let title = status.canonical_reason().unwrap_or("Error");
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head><title>{title}</title></head>\n<body><h1>{title}</h1></body>\n</html>\n"
        ))
}

/// The view's answer: JSON text returned from a Flask view, hence `text/html`.
fn answer(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(pyjson::to_string(body))
}

enum Failure {
    /// A form key CKAN reads with `request.form[...]` is missing.
    MissingKey,
    /// An uncaught exception in CKAN's view.
    Crash(String),
}

pub async fn ajax(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let who = Presented::from_headers(req.headers(), &state.access.settings, false, false, true);
    match draw(&state, &path.into_inner(), &req, &body, &who).await {
        Ok(resp) => resp,
        Err(Failure::MissingKey) => page(StatusCode::BAD_REQUEST),
        Err(Failure::Crash(why)) => {
            tracing::info!(%why, "datatables: answered 500 as CKAN does");
            page(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// `request.form` as Flask builds it: only a form-encoded body counts; the first value wins.
fn form(req: &HttpRequest, body: &[u8]) -> Vec<(String, String)> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return Vec::new();
    }
    form_urlencoded::parse(body).into_owned().collect()
}

/// Python's `int()` of a form value (its ValueError is uncaught in CKAN's view).
fn py_int(v: &str) -> Result<PyInt, Failure> {
    python::int(v).map_err(|_| Failure::Crash(format!("int({v:?})")))
}

async fn draw(
    state: &AppState,
    view_id: &str,
    req: &HttpRequest,
    body: &[u8],
    who: &Presented,
) -> Result<HttpResponse, Failure> {
    // resource_view_show: an unknown view or one the caller may not see is uncaught in CKAN.
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
    let config: Map<String, Value> = serde_json::from_str(&config).unwrap_or_default();

    let form = form(req, body);
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let need = |k: &str| get(k).ok_or(Failure::MissingKey);
    let draw = py_int(need("draw")?)?;
    let global = need("search[value]")?.to_string();
    let offset = py_int(need("start")?)?;
    let limit = py_int(need("length")?)?;
    let view_filters = config.get("filters").cloned().unwrap_or(json!({}));
    let user_filters = user_filters(req.query_string(), &form);
    let filters = merge_filters(&view_filters, &user_filters);

    // The unfiltered total (with the view's own filters).
    let mut unfiltered = Map::new();
    unfiltered.insert("resource_id".into(), json!(resource_id));
    unfiltered.insert("limit".into(), json!(0));
    unfiltered.insert("filters".into(), view_filters.clone());
    unfiltered.insert(
        "total_estimation_threshold".into(),
        json!(ESTIMATION_THRESHOLD),
    );
    let unfiltered = match crate::api::search::handle(state, unfiltered, who).await {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| Failure::Crash(format!("search result: {e}")))?,
        Err(ApiError::NotFound(_)) => {
            return Ok(answer(
                StatusCode::NOT_FOUND,
                &json!({"error": "Object not found"}),
            ))
        }
        Err(ApiError::Forbidden(_)) => {
            return Ok(answer(
                StatusCode::FORBIDDEN,
                &json!({"error": "Not Authorized"}),
            ))
        }
        Err(e) => return Err(Failure::Crash(format!("unfiltered search: {e}"))),
    };
    let mut cols: Vec<String> = unfiltered["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["id"].as_str().map(str::to_string))
        .collect();
    if let Some(Value::Array(show)) = config.get("show_fields") {
        cols.retain(|c| show.iter().any(|s| s.as_str() == Some(c)));
    }

    let mut sort = Vec::new();
    for i in 0.. {
        let Some(col) = get(&format!("order[{i}][column]")) else {
            break;
        };
        let n = py_int(col)?.saturating_i64();
        let dir = need(&format!("order[{i}][dir]"))?;
        // Python indexing: negative counts from the end.
        let idx = if n < 0 { cols.len() as i64 + n } else { n };
        let name = usize::try_from(idx)
            .ok()
            .and_then(|i| cols.get(i))
            .ok_or_else(|| Failure::Crash(format!("order column {n}")))?;
        sort.push(format!(
            "{name} {}",
            if dir == "desc" { "desc" } else { "asc" }
        ));
    }

    let mut colsearch = Map::new();
    for i in 0.. {
        let Some(v) = get(&format!("columns[{i}][search][value]")) else {
            break;
        };
        if !v.is_empty() {
            let k = need(&format!("columns[{i}][name]"))?;
            let word = python::re_sub_outside_alnum_dash(v);
            colsearch.insert(k.to_string(), json!(format!("{word}:*")));
        }
    }
    let q = if !colsearch.is_empty() {
        pyjson::to_string(&Value::Object(colsearch))
    } else if !global.is_empty() {
        format!("{}:*", python::re_sub_outside_alnum_dash(&global))
    } else {
        String::new()
    };

    let mut search = Map::new();
    search.insert("q".into(), json!(q));
    search.insert("resource_id".into(), json!(resource_id));
    search.insert("plain".into(), json!(false));
    search.insert("language".into(), json!("simple"));
    search.insert("offset".into(), offset.to_json());
    search.insert("limit".into(), limit.to_json());
    search.insert("sort".into(), json!(sort.join(", ")));
    search.insert("filters".into(), filters);
    search.insert(
        "total_estimation_threshold".into(),
        json!(ESTIMATION_THRESHOLD),
    );
    let page = match crate::api::search::handle(state, search, who).await {
        Ok(bytes) => serde_json::from_slice::<Value>(&bytes)
            .map_err(|e| Failure::Crash(format!("search result: {e}")))?,
        Err(_) => {
            return Ok(answer(
                StatusCode::BAD_REQUEST,
                &json!({"error": format!("Invalid search query... {q}")}),
            ))
        }
    };
    let null_label = state.settings.datatables_null_label.clone();
    let data: Vec<Value> = page["records"]
        .as_array()
        .into_iter()
        .flatten()
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
    Ok(answer(
        StatusCode::OK,
        &json!({
            "draw": draw.to_json(),
            "recordsTotal": unfiltered.get("total").cloned().unwrap_or(json!(0)),
            "recordsFiltered": page.get("total").cloned().unwrap_or(json!(0)),
            "data": data,
            "total_was_estimated": unfiltered.get("total_was_estimated").cloned().unwrap_or(json!(false)),
        }),
    ))
}

/// `POST /datatables/filtered-download/<resource_view_id>`: CKAN's `filtered_download` — the
/// view's current search, sort, filters and visible columns turned into a redirect to
/// `/datastore/dump/<resource id>` (which we serve too).
pub async fn filtered_download(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let who = Presented::from_headers(req.headers(), &state.access.settings, false, false, true);
    match download_location(&state, &path.into_inner(), &req, &body, &who).await {
        Ok(location) => {
            let body = format!(
                "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: <a href=\"{0}\">{0}</a>. If not, click the link.\n",
                python::html_escape(&location)
            );
            HttpResponse::Found()
                .content_type("text/html; charset=utf-8")
                .insert_header(("Location", location))
                .insert_header(("Cache-Control", "public, max-age=0, must-revalidate"))
                .insert_header(("Vary", "Cookie"))
                .body(body)
        }
        Err(Failure::MissingKey) => page(StatusCode::BAD_REQUEST),
        Err(Failure::Crash(why)) => {
            tracing::info!(%why, "datatables download: answered 500 as CKAN does");
            page(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

async fn download_location(
    state: &AppState,
    view_id: &str,
    req: &HttpRequest,
    body: &[u8],
    who: &Presented,
) -> Result<String, Failure> {
    let form = form(req, body);
    let get = |k: &str| {
        form.iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let params: Value = serde_json::from_str(get("params").ok_or(Failure::MissingKey)?)
        .map_err(|e| Failure::Crash(format!("params: {e}")))?;
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
    let config: Map<String, Value> = serde_json::from_str(&config).unwrap_or_default();
    let crash = |what: &str| Failure::Crash(format!("params: {what}"));
    let search_text = params["search"]["value"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| crash("search.value"))?;
    let view_filters = config.get("filters").cloned().unwrap_or(json!({}));
    let filters = merge_filters(&view_filters, &user_filters(req.query_string(), &form));

    let mut unfiltered = Map::new();
    unfiltered.insert("resource_id".into(), json!(resource_id));
    unfiltered.insert("limit".into(), json!(0));
    unfiltered.insert("filters".into(), view_filters);
    let unfiltered = crate::api::search::handle(state, unfiltered, who)
        .await
        .map_err(|e| Failure::Crash(format!("unfiltered search: {e}")))?;
    let unfiltered: Value = serde_json::from_slice(&unfiltered)
        .map_err(|e| Failure::Crash(format!("search result: {e}")))?;
    let mut cols: Vec<String> = unfiltered["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f["id"].as_str().map(str::to_string))
        .collect();
    if let Some(Value::Array(show)) = config.get("show_fields") {
        cols.retain(|c| show.iter().any(|s| s.as_str() == Some(c)));
    }
    let mut sort = Vec::new();
    for order in params["order"].as_array().ok_or_else(|| crash("order"))? {
        let n = match &order["column"] {
            Value::Number(n) => n.as_i64().ok_or_else(|| crash("order column"))?,
            Value::String(s) => py_int(s)?.saturating_i64(),
            _ => return Err(crash("order column")),
        };
        let idx = if n < 0 { cols.len() as i64 + n } else { n };
        let name = usize::try_from(idx)
            .ok()
            .and_then(|i| cols.get(i))
            .ok_or_else(|| crash("order column out of range"))?;
        let dir = if order["dir"] == json!("desc") {
            "desc"
        } else {
            "asc"
        };
        sort.push(format!("{name} {dir}"));
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
            let word = python::re_sub_outside_alnum_dash(v);
            colsearch.insert(k.to_string(), json!(format!("{word}:*")));
        }
    }
    let q = if !colsearch.is_empty() {
        pyjson::to_string(&Value::Object(colsearch))
    } else if !search_text.is_empty() {
        format!("{}:*", python::re_sub_outside_alnum_dash(&search_text))
    } else {
        String::new()
    };
    let format = get("format").ok_or(Failure::MissingKey)?;
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
        python::quote(&resource_id, "")
    ))
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
