//! `GET /healthz` and `GET /metrics`.

use actix_web::{web, HttpResponse};

use crate::state::AppState;

/// Prometheus text exposition of the server's counters.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    use std::sync::atomic::Ordering::Relaxed;
    let t = &state.totals;
    let (open, idle) = state.pool.connections();
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
         ckan_datastore_auth_denials_total {}\n\
         # HELP ckan_datastore_db_connections Open search connections (all lanes).\n\
         # TYPE ckan_datastore_db_connections gauge\n\
         ckan_datastore_db_connections {}\n\
         # HELP ckan_datastore_db_connections_idle Idle search connections (all lanes).\n\
         # TYPE ckan_datastore_db_connections_idle gauge\n\
         ckan_datastore_db_connections_idle {}\n\
         # HELP ckan_datastore_db_connections_retired_total Search connections replaced for their age or the tables they read.\n\
         # TYPE ckan_datastore_db_connections_retired_total counter\n\
         ckan_datastore_db_connections_retired_total {}\n",
        t.stats.hits.load(Relaxed),
        t.stats.misses.load(Relaxed),
        t.stats.invalidations.load(Relaxed),
        t.entries(),
        state.access.stats.db_checks.load(Relaxed),
        state.access.db_statements(),
        state.access.stats.ckan_probes.load(Relaxed),
        state.access.stats.denials.load(Relaxed),
        open,
        idle,
        state.pool.retired(),
    );
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(body)
}

pub async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.pool.any().await {
        Ok(client) => match client.simple_query("SELECT 1").await {
            Ok(_) => HttpResponse::Ok()
                .content_type("text/plain; charset=utf-8")
                .body("ok"),
            Err(e) => HttpResponse::ServiceUnavailable().body(format!("database: {e}")),
        },
        Err(e) => HttpResponse::ServiceUnavailable().body(format!("pool: {e}")),
    }
}
