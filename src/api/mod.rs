//! HTTP routes: thin handlers that read like CKAN's action API.

pub mod datatables;
pub mod dump;
pub mod envelope;
pub mod info;
pub mod request_data;
pub mod search;

use actix_web::http::Method;
use actix_web::{web, HttpRequest, HttpResponse};

use crate::app::AppState;
use crate::auth::credentials::Presented;
use crate::error::ApiError;
use envelope::Envelope;
use request_data::{extract, jsonp_callback, ExtractError};

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
                .route(web::route().to(dump::method_not_allowed)),
        )
        .route(
            "/datatables/ajax/{view_id}",
            web::post().to(datatables::ajax),
        )
        .route(
            "/datatables/filtered-download/{view_id}",
            web::post().to(datatables::filtered_download),
        )
        .route("/healthz", web::get().to(health))
        .route("/metrics", web::get().to(metrics))
        .default_service(web::to(dump::not_found_page));
}

/// Prometheus text exposition of the server's counters.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    use std::sync::atomic::Ordering::Relaxed;
    let t = &state.totals;
    let body = format!(
        "# HELP ckan_datastore_totals_cache_hits_total Totals answered from the cache.\n\
         # TYPE ckan_datastore_totals_cache_hits_total counter\n\
         ckan_datastore_totals_cache_hits_total {}\n\
         # HELP ckan_datastore_totals_cache_misses_total Totals counted by PostgreSQL.\n\
         # TYPE ckan_datastore_totals_cache_misses_total counter\n\
         ckan_datastore_totals_cache_misses_total {}\n\
         # HELP ckan_datastore_totals_cache_invalidations_total Cached totals found stale and recounted.\n\
         # TYPE ckan_datastore_totals_cache_invalidations_total counter\n\
         ckan_datastore_totals_cache_invalidations_total {}\n\
         # HELP ckan_datastore_totals_cache_entries Entries in the totals cache.\n\
         # TYPE ckan_datastore_totals_cache_entries gauge\n\
         ckan_datastore_totals_cache_entries {}\n\
         # HELP ckan_datastore_auth_db_checks_total Access checks read from CKAN's database.\n\
         # TYPE ckan_datastore_auth_db_checks_total counter\n\
         ckan_datastore_auth_db_checks_total {}\n\
         # HELP ckan_datastore_auth_db_statements_total Statements those checks took (checks arriving together share one).\n\
         # TYPE ckan_datastore_auth_db_statements_total counter\n\
         ckan_datastore_auth_db_statements_total {}\n\
         # HELP ckan_datastore_auth_ckan_probes_total Access checks asked of CKAN itself.\n\
         # TYPE ckan_datastore_auth_ckan_probes_total counter\n\
         ckan_datastore_auth_ckan_probes_total {}\n\
         # HELP ckan_datastore_auth_denials_total Requests refused by access control.\n\
         # TYPE ckan_datastore_auth_denials_total counter\n\
         ckan_datastore_auth_denials_total {}\n",
        t.stats.hits.load(Relaxed),
        t.stats.misses.load(Relaxed),
        t.stats.invalidations.load(Relaxed),
        t.entries(),
        state.access.stats.db_checks.load(Relaxed),
        state.access.db_statements(),
        state.access.stats.ckan_probes.load(Relaxed),
        state.access.stats.denials.load(Relaxed),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.pool.get().await {
        Ok(client) => match client.simple_query("SELECT 1").await {
            Ok(_) => HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body("ok"),
            Err(e) => HttpResponse::ServiceUnavailable().body(format!("database: {e}")),
        },
        Err(e) => HttpResponse::ServiceUnavailable().body(format!("pool: {e}")),
    }
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
        return env.error(&ApiError::BadRequest(format!(
            "Action name not known: {name}"
        )));
    }
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok());
    let data = match extract(method == Method::POST, query, content_type, &body) {
        Ok(d) => d,
        Err(ExtractError::Api(e)) => return env.error(&e),
        Err(ExtractError::UnsupportedMediaType) => return envelope::unsupported_media_type(),
    };
    let who = Presented::from_headers(
        req.headers(),
        &state.access.settings,
        true,
        data.had_callback,
        method == Method::POST,
    );
    let result = match name.as_str() {
        "datastore_search" => search::handle(&state, data.data, &who).await,
        "datastore_search_sql" => match &state.sql_search {
            Some(s) => crate::search_sql::handle(&state, s, data.data, &who).await,
            None => unreachable!("checked above"),
        },
        _ => info::handle(&state, data.data, &who).await,
    };
    match result {
        Ok(bytes) => {
            if method == Method::GET {
                env.callback = jsonp_callback(query);
            }
            env.success(&bytes)
        }
        Err(e) => env.error(&e),
    }
}

/// A pooled connection, or CKAN's 500 when the database cannot be reached.
pub async fn connection(state: &AppState) -> Result<deadpool_postgres::Object, ApiError> {
    state
        .pool
        .get()
        .await
        .map_err(|e| ApiError::Internal(format!("database pool: {e}")))
}
