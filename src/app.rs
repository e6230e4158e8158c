//! Building and running the HTTP server: shared state, binding (port 0 in tests), serving.

use std::net::TcpListener;

use actix_web::{dev::Server, web, App, HttpServer};

use crate::catalog::Catalog;
use crate::config::Settings;

/// State shared by every request.
pub struct AppState {
    pub settings: Settings,
    pub pool: deadpool_postgres::Pool,
    pub catalog: Catalog,
}

/// A bound, not yet awaited server.
pub struct Application {
    pub port: u16,
    pub server: Server,
}

impl Application {
    /// Binds `listener` and prepares the server; the database is reached lazily.
    pub fn build(settings: Settings, listener: TcpListener) -> std::io::Result<Application> {
        let pool = crate::db::pool(&settings).map_err(std::io::Error::other)?;
        let state = web::Data::new(AppState {
            settings,
            pool,
            catalog: Catalog::default(),
        });
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .configure(crate::api::configure)
        })
        .listen(listener)?
        .run();
        Ok(Application { port, server })
    }

    pub async fn run(self) -> std::io::Result<()> {
        self.server.await
    }
}
