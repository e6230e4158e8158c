//! HTTP routes: thin adapters that read like CKAN's HTTP API — extract the request's
//! parameters and credentials, call a service (`service/`, `dump/engine.rs`, `datatables`),
//! render its answer or its error (`errors.rs`).

pub mod datatables;
pub mod disconnect;
pub mod dump;
pub mod envelope;
pub mod errors;
pub mod health;
pub mod info;
pub mod request_data;
pub mod search;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::auth::credentials::{Presented, Surface};
use crate::error::ApiError;
use crate::state::AppState;
use envelope::Envelope;
use errors::action_error;
use request_data::{extract, jsonp_callback, ExtractError};

/// One path of each shape the routes below answer for CKAN (what nginx's
/// `ckan-datastore-locations.conf` must send us), as `doctor` asks the site URL for them.
pub const SERVED_PATHS: &[&str] = &[
    "/api/3/action/datastore_search",
    "/api/action/datastore_search",
    "/api/3/action/datastore_info",
    "/api/action/datastore_info",
    "/api/3/action/datastore_search_sql",
    "/api/action/datastore_search_sql",
    "/datastore/dump/ckan-datastore-doctor",
    "/datatables/ajax/ckan-datastore-doctor",
    "/datatables/filtered-download/ckan-datastore-doctor",
];

/// A path that must stay with CKAN (an nginx that sends everything to us fails on it).
pub const CKAN_ONLY_PATH: &str = "/api/3/action/status_show";

pub fn configure(cfg: &mut web::ServiceConfig, compress_dumps: bool) {
    cfg.app_data(web::PayloadConfig::new(16 * 1024 * 1024))
        .route("/api/3/action/{name}", web::route().to(action))
        .route("/api/action/{name}", web::route().to(action))
        .service(
            web::resource("/datastore/dump/{id}")
                // gzip/zstd when the client asks (Accept-Encoding), streamed; see BENCHMARKS.md.
                .wrap(actix_web::middleware::Condition::new(
                    compress_dumps,
                    actix_web::middleware::Compress::default(),
                ))
                .route(web::get().to(dump::dump))
                .route(web::head().to(dump::dump))
                .route(web::route().to(errors::dump_method_not_allowed)),
        )
        .route(
            "/datatables/ajax/{view_id}",
            web::post().to(datatables::ajax),
        )
        .route(
            "/datatables/filtered-download/{view_id}",
            web::post().to(datatables::filtered_download),
        )
        .route("/healthz", web::get().to(health::health))
        .route("/metrics", web::get().to(health::metrics))
        .default_service(web::to(errors::not_found_page));
}

/// `/api/3/action/<name>`: the read actions we serve, everything else as CKAN answers an
/// unknown action.
async fn action(
    req: HttpRequest,
    name: web::Path<String>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let name = name.into_inner();
    let method = req.method().clone();
    if method == Method::OPTIONS {
        return HttpResponse::Ok()
            .insert_header(("Allow", "HEAD, POST, GET, OPTIONS"))
            .finish();
    }
    if method != Method::GET && method != Method::POST && method != Method::HEAD {
        return HttpResponse::MethodNotAllowed()
            .insert_header(("Allow", "HEAD, POST, GET, OPTIONS"))
            .finish();
    }
    let query = req.query_string();
    let mut env = Envelope {
        help: state.settings.help_url(&name),
        callback: None,
    };
    let served = match name.as_str() {
        "datastore_search" | "datastore_info" => true,
        "datastore_search_sql" => state.sql_search.is_some(),
        _ => false,
    };
    if !served {
        return action_error(
            &env.help,
            &ApiError::BadRequest(format!("Action name not known: {name}")),
        );
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let data = match extract(method == Method::POST, query, content_type, &body) {
        Ok(d) => d,
        Err(ExtractError::Api(e)) => return action_error(&env.help, &e),
        Err(ExtractError::UnsupportedMediaType) => return errors::unsupported_media_type(),
    };
    let who = Presented::from_headers(
        req.headers(),
        &state.access.settings,
        Surface::Action {
            jsonp: data.had_callback,
            post: method == Method::POST,
        },
    );
    // In parts: a large `datastore_search_sql` answer is sent without being copied.
    let one = |r: Result<Vec<u8>, ApiError>| r.map(|v| vec![bytes::Bytes::from(v)]);
    let result = match name.as_str() {
        "datastore_search" => one(search::handle(&state, data.data, &who).await),
        "datastore_search_sql" => match &state.sql_search {
            // A query can run for minutes: one whose client has left is cancelled.
            Some(s) => {
                let address = req.peer_addr().map(|a| a.ip());
                let work = crate::service::sql::search_sql(&state, s, data.data, &who, address);
                match disconnect::unless_gone(&req, work).await {
                    Some(result) => result,
                    None => {
                        tracing::info!("datastore_search_sql: client gone, query cancelled");
                        // Nobody reads it; nginx's "client closed request".
                        return HttpResponse::new(
                            actix_web::http::StatusCode::from_u16(499)
                                .unwrap_or(actix_web::http::StatusCode::BAD_REQUEST),
                        );
                    }
                }
            }
            None => Err(ApiError::BadRequest(format!(
                "Action name not known: {name}"
            ))),
        },
        _ => one(info::handle(&state, data.data, &who).await),
    };
    match result {
        Ok(parts) => {
            if method == Method::GET {
                env.callback = jsonp_callback(query);
            }
            env.success_parts(parts)
        }
        Err(e) => action_error(&env.help, &e),
    }
}
