//! `GET /datastore/dump/<id>`: the request's credentials and query string to the dump engine
//! (`dump/engine.rs`), its failures to CKAN's HTML pages.

use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::credentials::{Presented, Surface};
use crate::dump::engine::{produce, DumpFailure};
use crate::state::AppState;

use super::errors::html_page;

pub async fn dump(
    req: HttpRequest,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> HttpResponse {
    let rid = path.into_inner();
    // Dumps are not API routes: cookies always count and `callback` means nothing.
    let who = Presented::from_headers(req.headers(), &state.access.settings, Surface::Dump);
    match produce(&state, &rid, req.query_string(), &who).await {
        Err(DumpFailure::BadRequest(m)) => html_page(StatusCode::BAD_REQUEST, &m),
        Err(DumpFailure::Unavailable) => html_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Access to this resource cannot be checked right now",
        ),
        Err(DumpFailure::NotFound) => {
            html_page(StatusCode::NOT_FOUND, "DataStore resource not found")
        }
        Err(DumpFailure::Internal(detail)) => {
            tracing::info!(detail, "dump answered 500 as CKAN does");
            html_page(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
        }
        Ok(dump) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "application/octet-stream"))
            .insert_header((
                "Content-disposition",
                format!("attachment; filename=\"{}\"", dump.filename),
            ))
            .insert_header((header::CACHE_CONTROL, "public, max-age=0, must-revalidate"))
            .insert_header((header::VARY, "Cookie"))
            .streaming(dump.body),
    }
}
