//! `ckan-datastore demo`: a private PostgreSQL cluster holding a CKAN-shaped DataStore with a
//! sample table, and the server in front of it. Also used by the tests to build the same
//! databases.

use std::path::PathBuf;

use serde_json::json;
use tokio_postgres::NoTls;

use crate::ckan_schema::{create_table_sql, read_role_limits_sql, set_permissions_sql, FieldDef};
use crate::pgcluster::PgCluster;

/// CKAN's usual role and database names (the oracle and CKAN's docs use these).
pub const WRITE_ROLE: &str = "ckan_default";
pub const READ_ROLE: &str = "datastore_default";
pub const MAIN_DB: &str = "ckan_default";
pub const DATASTORE_DB: &str = "datastore_default";

/// The demo's sample resource.
pub const SAMPLE_RESOURCE: &str = "5e0c3c6e-8c1f-4d2e-9a57-2f1c7a8b9d01";
pub const SAMPLE_ALIAS: &str = "demo-sample";

/// A database error with PostgreSQL's own message (tokio-postgres' Display says only "db error").
fn pg(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

pub async fn connect(conninfo: &str) -> Result<tokio_postgres::Client, String> {
    let (client, conn) = tokio_postgres::connect(conninfo, NoTls)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "setup connection closed");
        }
    });
    Ok(client)
}

/// How to reach a PostgreSQL server as a superuser: a private cluster's socket, or any server
/// given by URL (the tests accept one in the environment).
#[derive(Debug, Clone)]
pub struct Server {
    /// Host name or unix-socket directory.
    pub host: String,
    pub port: u16,
    pub superuser: String,
    pub password: Option<String>,
}

impl Server {
    pub fn of_cluster(cluster: &PgCluster) -> Server {
        Server {
            host: cluster.socket_dir.display().to_string(),
            port: cluster.port,
            superuser: "postgres".into(),
            password: None,
        }
    }

    /// From a superuser URL or conninfo string.
    pub fn from_url(url: &str) -> Result<Server, String> {
        let config: tokio_postgres::Config = crate::config::normalize_db_url(url)
            .parse()
            .map_err(|e| format!("{e}"))?;
        let host = match config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        Ok(Server {
            host,
            port: config.get_ports().first().copied().unwrap_or(5432),
            superuser: config.get_user().unwrap_or("postgres").to_string(),
            password: config
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        })
    }

    /// A conninfo string for `user` (password = role name for CKAN's roles, as CKAN's docs
    /// set them up) on `dbname`.
    pub fn conninfo(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
        let mut s = format!(
            "host={} port={} user={} dbname={}",
            quote(&self.host),
            self.port,
            quote(user),
            quote(dbname)
        );
        if let Some(p) = password {
            s.push_str(&format!(" password={}", quote(p)));
        }
        s
    }

    pub fn superuser_conninfo(&self, dbname: &str) -> String {
        self.conninfo(&self.superuser, self.password.as_deref(), dbname)
    }
}

/// Names of CKAN's databases and roles.
#[derive(Debug, Clone)]
pub struct CkanNames {
    pub main_db: String,
    pub datastore_db: String,
    pub write_role: String,
    pub read_role: String,
}

impl Default for CkanNames {
    fn default() -> Self {
        CkanNames {
            main_db: MAIN_DB.into(),
            datastore_db: DATASTORE_DB.into(),
            write_role: WRITE_ROLE.into(),
            read_role: READ_ROLE.into(),
        }
    }
}

/// Creates CKAN's roles and databases and runs `datastore set-permissions`, as a CKAN install
/// does. Idempotent. Returns (write conninfo, read conninfo).
pub async fn create_ckan_databases(
    server: &Server,
    names: &CkanNames,
) -> Result<(String, String), String> {
    let su = connect(&server.superuser_conninfo("postgres")).await?;
    for role in [&names.write_role, &names.read_role] {
        su.batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
             CREATE ROLE \"{role}\" LOGIN PASSWORD '{role}'; END IF; END $$;"
        ))
        .await
        .map_err(|e| format!("create role {role}: {}", pg(e)))?;
    }
    for db in [&names.main_db, &names.datastore_db] {
        let exists = su
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[db])
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        if !exists {
            su.batch_execute(&format!(
                "CREATE DATABASE \"{db}\" OWNER \"{}\" ENCODING 'UTF8' TEMPLATE template0",
                names.write_role
            ))
            .await
            .map_err(|e| format!("create database {db}: {}", pg(e)))?;
        }
    }
    let ds = connect(&server.superuser_conninfo(&names.datastore_db)).await?;
    ds.batch_execute(&set_permissions_sql(
        &names.main_db,
        &names.datastore_db,
        &names.write_role,
        &names.write_role,
        &names.read_role,
    ))
    .await
    .map_err(|e| format!("set-permissions: {}", pg(e)))?;
    // What README's deployment steps have a superuser run too.
    ds.batch_execute(&read_role_limits_sql(&names.read_role))
        .await
        .map_err(|e| format!("read_role_limits.sql: {}", pg(e)))?;
    Ok((
        server.conninfo(
            &names.write_role,
            Some(&names.write_role),
            &names.datastore_db,
        ),
        server.conninfo(
            &names.read_role,
            Some(&names.read_role),
            &names.datastore_db,
        ),
    ))
}

/// The sample table's fields, as a `datastore_create` call would give them.
pub fn sample_fields() -> Vec<FieldDef> {
    let f = |id: &str, t: &str| FieldDef {
        id: id.into(),
        type_: t.into(),
        info: None,
    };
    let mut fields = vec![
        f("id", "int"),
        f("name", "text"),
        f("city", "text"),
        f("category", "text"),
        f("price", "numeric"),
        f("quantity", "int8"),
        f("rating", "float8"),
        f("created", "timestamp"),
        f("day", "date"),
        f("available", "bool"),
        f("tags", "text[]"),
        f("meta", "json"),
        f("description", "text"),
    ];
    fields[4].info =
        Some(json!({"label": "Price", "notes": "Unit price in euros", "type_override": ""}));
    fields
}

/// Creates the sample table with `rows` deterministic, realistic rows (skipped if it exists).
pub async fn create_sample_table(write_conninfo: &str, rows: i64) -> Result<bool, String> {
    let db = connect(write_conninfo).await?;
    let exists = db
        .query_opt(
            "SELECT 1 FROM pg_class WHERE relname = $1",
            &[&SAMPLE_RESOURCE],
        )
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    if exists {
        return Ok(false);
    }
    let mut sql = create_table_sql(
        SAMPLE_RESOURCE,
        &sample_fields(),
        &["id".into()],
        &[SAMPLE_ALIAS.into()],
    )
    .join(";\n");
    sql.push(';');
    db.batch_execute(&sql)
        .await
        .map_err(|e| format!("create sample table: {}", pg(e)))?;
    let insert = format!(
        "WITH w AS (SELECT \
           ARRAY['apple','banana','cherry','kiwi','lemon','mango','olive','pear','plum','walnut','almond','fig'] AS fruit, \
           ARRAY['Lisbon','Utrecht','Porto','Ghent','Lyon','Turin','Leeds','Malmö','Kraków','Tartu','Zürich','Cork'] AS city, \
           ARRAY['fruit','nut','veg','dried','juice','preserve'] AS cat, \
           ARRAY['fresh','organic','ripe','crisp','sweet','tart','local','imported'] AS adj, \
           ARRAY['market','harbour','orchard','cooperative','farm shop','station'] AS place) \
         INSERT INTO \"{SAMPLE_RESOURCE}\" (id, name, city, category, price, quantity, rating, created, day, available, tags, meta, description) \
         SELECT g, \
           initcap(adj[1 + g % 8]) || ' ' || fruit[1 + (g * 7) % 12] || ' ' || g, \
           city[1 + (g * 5) % 12], cat[1 + (g * 3) % 6], \
           CASE WHEN g % 50 = 0 THEN NULL ELSE round(((g * 37) % 10000) / 100.0 + 0.5, 2) END, \
           (g::int8 * 7919) % 100000 - 500, \
           ((g * 13) % 1000) / 200.0, \
           timestamp '2024-01-01 08:00' + g * interval '17 minutes 3 seconds', \
           date '2023-01-01' + (g % 730)::int, \
           g % 3 <> 0, \
           ARRAY[fruit[1 + (g * 7) % 12], adj[1 + g % 8]], \
           ROW(format('{{\"batch\": %s, \"grade\": \"%s\"}}', g % 97, substr('ABC', 1 + g % 3, 1))::json, NULL)::nested, \
           CASE WHEN adj[1 + g % 8] ~ '^[aeiou]' THEN 'An ' ELSE 'A ' END || adj[1 + g % 8] || ' ' || fruit[1 + (g * 7) % 12] || ' from ' || city[1 + (g * 5) % 12] || \
           ' sold at the ' || place[1 + g % 6] || CASE WHEN g % 4 = 0 THEN ', harvested early this season' ELSE '' END \
         FROM generate_series(1, $1::int8::int4) AS g, w"
    );
    db.execute(insert.as_str(), &[&rows])
        .await
        .map_err(|e| format!("load sample rows: {}", pg(e)))?;
    db.batch_execute(&format!(
        "ANALYZE \"{SAMPLE_RESOURCE}\"; SELECT update_table_stats('{SAMPLE_RESOURCE}')"
    ))
    .await
    .map_err(|e| format!("analyze: {}", pg(e)))?;
    Ok(true)
}

/// Options of the `demo` command.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Directory of the demo's PostgreSQL cluster (created on first run, reused after).
    #[arg(
        long,
        env = "CKAN_DATASTORE_DEMO_DIR",
        default_value = ".ckan-datastore-demo"
    )]
    pub data_dir: PathBuf,
    /// Port of the demo's PostgreSQL (unix socket only).
    #[arg(long, default_value_t = 54329)]
    pub pg_port: u16,
    /// Rows in the sample table.
    #[arg(long, default_value_t = 100_000)]
    pub rows: i64,
    /// Address the server listens on.
    #[arg(long, default_value = "127.0.0.1:8800")]
    pub listen: std::net::SocketAddr,
}

/// Starts (or reuses) the cluster, makes sure the sample data is there, and returns the
/// settings to serve it with.
pub async fn prepare(args: &DemoArgs) -> Result<(PgCluster, crate::config::Settings), String> {
    let socket_dir = args.data_dir.join("socket");
    let cluster = PgCluster::start(&args.data_dir.join("pgdata"), &socket_dir, args.pg_port)?;
    let (write, read) =
        create_ckan_databases(&Server::of_cluster(&cluster), &CkanNames::default()).await?;
    if create_sample_table(&write, args.rows).await? {
        println!(
            "created sample table {SAMPLE_RESOURCE} with {} rows",
            args.rows
        );
    }
    let mut settings = crate::config::Settings::with_read_url(read);
    settings.listen = args.listen;
    settings.site_url = format!("http://{}", args.listen);
    settings.access = crate::auth::config::AccessSettings::public();
    Ok((cluster, settings))
}
