//! Building and running the HTTP server: shared state, binding (port 0 in tests), serving.

use std::net::TcpListener;
use std::time::Duration;

use actix_http::HttpService;
use actix_server::Server;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::{web, App};

use crate::catalog::Catalog;
use crate::config::Settings;
use crate::http_compat::RequestTargetEncoder;
use crate::search::totals::TotalsCache;

/// State shared by every request.
pub struct AppState {
    pub settings: Settings,
    pub pool: deadpool_postgres::Pool,
    pub catalog: Catalog,
    pub totals: TotalsCache,
    /// Connections for dumps (kept apart from `pool`: a dump holds one for its whole duration).
    pub dump_pool: deadpool_postgres::Pool,
    /// CKAN's write role, for `_table_stats` only (None when not configured).
    pub write_pool: Option<deadpool_postgres::Pool>,
    /// Who may read what.
    pub access: crate::auth::Access,
    /// `datastore_search_sql`, when enabled.
    pub sql_search: Option<crate::search_sql::SqlSearch>,
}

impl AppState {
    /// The pools (connected lazily) and empty caches for `settings`.
    pub fn new(settings: Settings) -> Result<AppState, String> {
        let pool = crate::db::pool(&settings)?;
        let write_pool = crate::db::write_pool(&settings)?;
        let dump_pool = crate::db::dump_pool(&settings)?;
        let access =
            crate::auth::Access::new(settings.access.clone(), crate::db::ckan_db_pool(&settings)?);
        let totals = TotalsCache::new(
            settings.totals_cache_bytes,
            Duration::from_secs(settings.totals_cache_ttl_secs),
            Duration::from_millis(settings.totals_max_staleness_ms),
            write_pool.is_some(),
        );
        let sql_search = match settings.sqlsearch_enabled {
            false => None,
            true => {
                let text = match &settings.sqlsearch_allowed_functions_file {
                    None => crate::search_sql::sanitize::DEFAULT_ALLOWED_FUNCTIONS.to_string(),
                    Some(p) => std::fs::read_to_string(p).map_err(|e| {
                        format!(
                            "ckan.datastore.sqlsearch.allowed_functions_file {}: {e}",
                            p.display()
                        )
                    })?,
                };
                Some(crate::search_sql::SqlSearch {
                    functions: crate::search_sql::sanitize::Functions::from_text(&text),
                    pool: crate::db::sql_search_pool(&settings)?,
                })
            }
        };
        Ok(AppState {
            settings,
            pool,
            catalog: Catalog::default(),
            totals,
            write_pool,
            dump_pool,
            access,
            sql_search,
        })
    }
}

/// A bound, not yet awaited server.
pub struct Application {
    pub port: u16,
    pub server: Server,
}

impl Application {
    /// Binds `listener` and prepares the server; the database is reached lazily.
    pub fn build(settings: Settings, listener: TcpListener) -> std::io::Result<Application> {
        let compress_dumps = settings.dump_compression;
        let state = web::Data::new(AppState::new(settings).map_err(std::io::Error::other)?);
        let addr = listener.local_addr()?;
        let port = addr.port();
        // actix-web's HttpServer, but with each connection's request lines passed through
        // `RequestTargetEncoder` first (see `http_compat`).
        let server = Server::build()
            .listen("ckan-datastore", listener, move || {
                let app = App::new()
                    .app_data(state.clone())
                    .configure(|cfg| crate::api::configure(cfg, compress_dumps));
                let http = HttpService::build()
                    .keep_alive(Duration::from_secs(5))
                    .client_request_timeout(Duration::from_secs(5))
                    .local_addr(addr)
                    .h1(map_config(
                        app.into_factory().map_err(|e| e.error_response()),
                        // Host/scheme only matter for URL generation, which we never do.
                        |_| AppConfig::default(),
                    ));
                fn_service(|io: actix_rt::net::TcpStream| async move {
                    let peer = io.peer_addr().ok();
                    let _ = io.set_nodelay(true);
                    Ok((RequestTargetEncoder::new(io), peer))
                })
                .and_then(http)
            })?
            .run();
        Ok(Application { port, server })
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
