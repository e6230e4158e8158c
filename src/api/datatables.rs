//! The DataTables view's two endpoints, as CKAN's blueprint answers them: the form and query
//! string to `datatables::draw` / `datatables::download_location`, their outcomes to HTTP.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use crate::auth::credentials::{Presented, Surface};
use crate::datatables::{self, Draw, Failure, ViewRequest};
use crate::state::AppState;

use super::errors::{datatables_json, datatables_page};

fn view_request<'a>(req: &'a HttpRequest, body: &[u8]) -> ViewRequest<'a> {
    let ct = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    ViewRequest::new(ct, body, req.query_string())
}

fn failure(f: Failure, what: &str) -> HttpResponse {
    match f {
        Failure::MissingKey => datatables_page(StatusCode::BAD_REQUEST),
        Failure::Crash(why) => {
            tracing::info!(%why, "{what}: answered 500 as CKAN does");
            datatables_page(StatusCode::INTERNAL_SERVER_ERROR)
        }
    }
}

/// `POST /datatables/ajax/<resource_view_id>`.
pub async fn ajax(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let who = Presented::from_headers(req.headers(), &state.access.settings, Surface::DataTables);
    let request = view_request(&req, &body);
    match datatables::draw(&state, &path.into_inner(), &request, &who).await {
        Ok(Draw::Data(v)) => datatables_json(StatusCode::OK, &v),
        Ok(Draw::NotFound) => {
            datatables_json(StatusCode::NOT_FOUND, &json!({"error": "Object not found"}))
        }
        Ok(Draw::NotAuthorized) => {
            datatables_json(StatusCode::FORBIDDEN, &json!({"error": "Not Authorized"}))
        }
        Ok(Draw::InvalidSearch(msg)) => {
            datatables_json(StatusCode::BAD_REQUEST, &json!({ "error": msg }))
        }
        Err(f) => failure(f, "datatables"),
    }
}

/// `POST /datatables/filtered-download/<resource_view_id>`: a redirect to the dump.
pub async fn filtered_download(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let who = Presented::from_headers(req.headers(), &state.access.settings, Surface::DataTables);
    let request = view_request(&req, &body);
    match datatables::download_location(&state, &path.into_inner(), &request, &who).await {
        Ok(location) => {
            let body = format!(
                "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: <a href=\"{0}\">{0}</a>. If not, click the link.\n",
                crate::python::html_escape(&location)
            );
            HttpResponse::Found()
                .content_type("text/html; charset=utf-8")
                .insert_header(("Location", location))
                .insert_header(("Cache-Control", "public, max-age=0, must-revalidate"))
                .insert_header(("Vary", "Cookie"))
                .body(body)
        }
        Err(f) => failure(f, "datatables download"),
    }
}
