//! TLS to PostgreSQL: a `read_url` with `sslmode=require` connects over TLS (libpq's semantics:
//! encrypted, certificate not verified). Checked on a cluster of its own that listens on TCP
//! with a self-signed certificate.

use ckan_datastore::app::Application;
use ckan_datastore::config::Settings;
use ckan_datastore::demo::{connect, create_ckan_databases, CkanNames, Server};
use ckan_datastore::pgcluster::PgCluster;

#[tokio::test]
async fn sslmode_require_connects_over_tls() {
    let dir = tempfile::Builder::new()
        .prefix("ckds-tls-")
        .tempdir_in("/tmp")
        .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (crt, key) = (certs.join("server.crt"), certs.join("server.key"));
    std::fs::write(&crt, cert.cert.pem()).unwrap();
    std::fs::write(&key, cert.signing_key.serialize_pem()).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = 40000 + (std::process::id() % 20000) as u16;
    let extra = format!(
        "-c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}",
        crt.display(),
        key.display()
    );
    // The server reads the key as its own user (`postgres` when we are root).
    if nix::unistd::Uid::effective().is_root() {
        let pg = nix::unistd::User::from_name("postgres")
            .unwrap()
            .expect("postgres user");
        for p in [&certs, &crt, &key] {
            std::os::unix::fs::chown(p, Some(pg.uid.as_raw()), Some(pg.gid.as_raw())).unwrap();
        }
    }
    let cluster = PgCluster::start_with(
        &dir.path().join("data"),
        &dir.path().join("s"),
        port,
        &extra,
    )
    .expect("cluster");
    let result = async {
        let (write, _) = create_ckan_databases(&Server::of_cluster(&cluster), &CkanNames::default()).await?;
        let w = connect(&write).await?;
        w.batch_execute(
            &ckan_datastore::ckan_schema::create_table_sql(
                "tls-table",
                &[ckan_datastore::ckan_schema::FieldDef { id: "a".into(), type_: "int".into(), info: None }],
                &[],
                &[],
            )
            .join(";"),
        )
        .await
        .map_err(|e| e.to_string())?;
        w.batch_execute("INSERT INTO \"tls-table\" (a) VALUES (1), (2)").await.map_err(|e| e.to_string())?;
        let mut settings = Settings::with_read_url(format!(
            "host=127.0.0.1 port={port} user=datastore_default password=datastore_default \
             dbname=datastore_default sslmode=require application_name=ckds-tls-test"
        ));
        settings.access = ckan_datastore::auth::config::AccessSettings::public();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let app = Application::build(settings, listener).map_err(|e| e.to_string())?;
        let base = format!("http://127.0.0.1:{}", app.port);
        tokio::spawn(app.run());
        let body: serde_json::Value = reqwest::Client::new()
            .post(format!("{base}/api/3/action/datastore_search"))
            .header("Content-Type", "application/json")
            .body(r#"{"resource_id": "tls-table"}"#)
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(body["result"]["total"], serde_json::json!(2), "{body}");
        let su = connect(&Server::of_cluster(&cluster).superuser_conninfo("postgres")).await?;
        let row = su
            .query_one(
                "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
                 WHERE a.application_name = 'ckds-tls-test'",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        let (n, all_tls): (i64, Option<bool>) = (row.get(0), row.get(1));
        assert!(n >= 1, "no connection from the server");
        assert_eq!(all_tls, Some(true), "a connection without TLS");
        Ok::<(), String>(())
    }
    .await;
    cluster.stop();
    result.unwrap();
}
