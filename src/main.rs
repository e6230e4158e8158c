use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ckan_datastore::app::Application;
use ckan_datastore::config::{ConfigArgs, Settings};
use ckan_datastore::demo::{self, DemoArgs};

/// A fast, drop-in server for the read side of CKAN's DataStore API.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve CKAN's DataStore read API (datastore_search, datastore_info, datastore_search_sql,
    /// /datastore/dump, the DataTables view's ajax and filtered download) from its database.
    Serve(Box<ConfigArgs>),
    /// Check the configuration against the real site: one line per check with its fix.
    ///
    /// Checks the DataStore read role (reachable, read-only), the write role, CKAN's database
    /// role and the columns access control reads, the probe URL (CKAN, not us), ckan.plugins,
    /// ini keys not honoured, and which server answers each path at the site URL. Exit status
    /// 1 when a check fails, 2 on a configuration error.
    Doctor(Box<ConfigArgs>),
    /// Start a private PostgreSQL with a CKAN-shaped sample DataStore and serve it.
    Demo(DemoArgs),
    /// Dump one resource (csv/tsv/json/xml) from the database or from a CKAN site's URL.
    Dump(Box<ckan_datastore::dump::cli::DumpArgs>),
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn serve(settings: Settings) -> Result<(), String> {
    let listener = TcpListener::bind(settings.listen)
        .map_err(|e| format!("listen on {}: {e}", settings.listen))?;
    tracing::info!(listen = %settings.listen, site_url = %settings.site_url, "serving");
    // Access control may ask CKAN about cookie callers: check once that the probe URL is CKAN,
    // not us (through nginx), while the server starts answering.
    if settings.access.mode != ckan_datastore::auth::config::AccessMode::Public {
        if let Some(base) = settings.access.ckan_api_url.clone() {
            tokio::spawn(async move {
                let http = ckan_datastore::auth::ckan_api::client();
                match ckan_datastore::auth::ckan_api::check_probe_url(&http, &base).await {
                    Ok(what) => tracing::info!("probe URL for cookie callers: {what}"),
                    Err(why) => tracing::warn!(
                        "probe URL for cookie callers is wrong (logged-in users will get 503): {why}"
                    ),
                }
            });
        }
    }
    if settings.sqlsearch_enabled {
        let settings = settings.clone();
        tokio::spawn(async move {
            match ckan_datastore::db::read_role_temp_file_limit(&settings).await {
                Ok(None) => tracing::warn!(
                    "datastore_search_sql is on but the read role has no temp_file_limit: one \
                     query can fill the disk with temporary files; have a superuser run \
                     src/sql_assets/read_role_limits.sql (README, deployment step 2)"
                ),
                Ok(Some(limit)) => {
                    tracing::info!("datastore_search_sql: read role's temp_file_limit is {limit}")
                }
                Err(e) => tracing::warn!("could not read the read role's temp_file_limit: {e}"),
            }
        });
    }
    let app = Application::build(settings, listener).map_err(|e| e.to_string())?;
    app.run().await.map_err(|e| e.to_string())
}

async fn doctor(args: &ConfigArgs) -> ExitCode {
    let (settings, ini) = match Settings::load_with_ini(args) {
        Ok(loaded) => loaded,
        Err(e) => {
            println!("FAIL  configuration  {e}");
            return ExitCode::from(2);
        }
    };
    let checks = ckan_datastore::doctor::run(&settings, &ini).await;
    print!("{}", ckan_datastore::doctor::render(&checks));
    if ckan_datastore::doctor::passed(&checks) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[actix_web::main]
async fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
    if let Command::Dump(args) = cli.command {
        return match ckan_datastore::dump::cli::run(*args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(ckan_datastore::dump::cli::Failure(code, msg)) => {
                eprintln!("ckan-datastore dump: {msg}");
                ExitCode::from(code)
            }
        };
    }
    if let Command::Doctor(args) = cli.command {
        return doctor(&args).await;
    }
    let result = match cli.command {
        Command::Serve(args) => match Settings::load(&args) {
            Err(e) => Err(format!("configuration error: {e}")),
            Ok(s) => serve(s).await,
        },
        Command::Dump(_) | Command::Doctor(_) => unreachable!("handled above"),
        Command::Demo(args) => match demo::prepare(&args).await {
            Err(e) => Err(format!("demo: {e}")),
            Ok((cluster, settings)) => {
                let base = settings.site_url.clone();
                let r = demo::SAMPLE_RESOURCE;
                println!(
                    "\nckan-datastore demo on {base} (PostgreSQL in {})\n",
                    args.data_dir.display()
                );
                println!("Try:");
                println!("  curl '{base}/api/3/action/datastore_search?resource_id={r}&limit=5'");
                println!(
                    "  curl -H 'Content-Type: application/json' -d '{{\"resource_id\": \"{r}\", \"q\": \"ripe cherry\", \"fields\": [\"id\", \"name\", \"rank\"], \"limit\": 3}}' {base}/api/3/action/datastore_search"
                );
                println!(
                    "  curl '{base}/api/3/action/datastore_info?id={}'\n",
                    demo::SAMPLE_ALIAS
                );
                // The cluster runs with fsync=off: it must not outlive the demo unnoticed.
                println!(
                    "Ctrl-C stops the demo and its PostgreSQL. Should the demo be killed, stop \
                     PostgreSQL with:\n  {}\n",
                    cluster.stop_command()
                );
                let served = serve(settings).await;
                println!("stopping the demo's PostgreSQL");
                cluster.stop();
                served
            }
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ckan-datastore: {e}");
            ExitCode::FAILURE
        }
    }
}
