//! Building and running the HTTP server: binding (port 0 in tests), serving.

use std::net::TcpListener;
use std::time::Duration;

use actix_http::HttpService;
use actix_server::Server;
use actix_service::{fn_service, map_config, IntoServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::{web, App};

use crate::config::Settings;
use crate::http_compat::RequestTargetEncoder;
use crate::state::AppState;

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
                    .wrap_fn(|req, srv| {
                        use actix_service::Service;
                        use futures_util::future::{ready, Either};
                        // One of our probes came back to us: refuse it, never ask again.
                        match req.headers().get(crate::auth::ckan_api::PROBE_HEADER) {
                            Some(from) => {
                                let from = from.to_str().unwrap_or("").to_string();
                                let resp = crate::auth::ckan_api::loop_refusal(&from, req.path());
                                Either::Left(ready(Ok(req.into_response(resp))))
                            }
                            None => Either::Right(srv.call(req)),
                        }
                    })
                    .app_data(state.clone())
                    .configure(|cfg| crate::api::configure(cfg, compress_dumps));
                let http = HttpService::build()
                    .keep_alive(Duration::from_secs(5))
                    .client_request_timeout(Duration::from_secs(5))
                    .local_addr(addr)
                    // Each connection's socket, for handlers that must notice a client that left
                    // while they wait (`api::disconnect`).
                    .on_connect_ext(
                        |io: &RequestTargetEncoder<actix_rt::net::TcpStream>, data| {
                            crate::api::disconnect::remember(io.get_ref(), data)
                        },
                    )
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
