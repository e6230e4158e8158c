//! The binary's command line: refusals and configuration errors are clear and exit non-zero.

use std::process::Command;

fn run(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ckan-datastore"));
    c.args(args);
    for k in [
        "CKAN_DATASTORE_READ_URL",
        "CKAN_DATASTORE_ALL_TABLES_PUBLIC",
        "CKAN_INI",
        "CKAN_DATASTORE_CONFIG",
        "CKAN_SQLALCHEMY_URL",
        "CKAN_DATASTORE_CKAN_DB_URL",
        "CKAN_DATASTORE_ACCESS_CONTROL",
    ] {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn serve_refuses_without_a_way_to_check_access() {
    // No CKAN database known and no explicit mode: never serve private tables by default.
    let (code, err) = run(
        &["serve", "--read-url", "postgresql://x@127.0.0.1:1/db"],
        &[],
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("ckan_db_url") && err.contains("--ckan-db-url"),
        "{err}"
    );
    // A token key that CKAN could not use either.
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("ckan.ini");
    std::fs::write(
        &ini,
        "[app:main]\nSECRET_KEY = k\napi_token.jwt.decode.secret = nocolon\n\
         sqlalchemy.url = postgresql://a@127.0.0.1:1/ckan\n\
         ckan.datastore.read_url = postgresql://x@127.0.0.1:1/db\n",
    )
    .unwrap();
    let (code, err) = run(&["serve", "--ckan-ini", ini.to_str().unwrap()], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("api_token.jwt.decode.secret"), "{err}");
    assert!(!err.contains("nocolon"), "secrets are never echoed: {err}");
}

#[test]
fn bad_configuration_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("ckan.ini");
    std::fs::write(&ini, "[app:main]\nckan.datastore.read_url = postgresql://x@127.0.0.1:1/db\nckan.datastore.search.rows_max = lots\n").unwrap();
    let (code, err) = run(
        &[
            "serve",
            "--all-tables-public",
            "--ckan-ini",
            ini.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("ckan.datastore.search.rows_max"), "{err}");

    let (code, err) = run(&["serve", "--all-tables-public"], &[]);
    assert_ne!(code, 0);
    assert!(err.contains("read_url"), "{err}");

    let toml = dir.path().join("c.toml");
    std::fs::write(
        &toml,
        "read_url = \"postgresql://x@127.0.0.1:1/db\"\nrows_max = \"many\"\n",
    )
    .unwrap();
    let (code, err) = run(
        &[
            "serve",
            "--all-tables-public",
            "--config",
            toml.to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(err.contains("rows_max"), "{err}");
}

#[test]
fn dump_command_writes_ckans_bytes_and_resumes() {
    let db = crate::harness::db();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s.csv");
    let golden = std::fs::read(crate::harness::repo_path(
        "tests/golden/dumps/s_default.csv",
    ))
    .unwrap();
    let env = [("CKAN_DATASTORE_READ_URL", db.read.as_str())];
    let (code, err) = run(
        &[
            "dump",
            crate::harness::SAMPLE,
            "-o",
            out.to_str().unwrap(),
            "--quiet",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), golden);

    // Interrupted half-way (mid-row): --resume completes it to the same bytes.
    std::fs::write(&out, &golden[..golden.len() / 2]).unwrap();
    let (code, err) = run(
        &[
            "dump",
            crate::harness::SAMPLE,
            "-o",
            out.to_str().unwrap(),
            "--resume",
            "--quiet",
        ],
        &env,
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(std::fs::read(&out).unwrap(), golden);

    let (code, _) = run(
        &[
            "dump",
            "no-such-resource",
            "-o",
            out.to_str().unwrap(),
            "--quiet",
        ],
        &env,
    );
    assert_eq!(code, 3);
    let (code, _) = run(
        &["dump", crate::harness::SAMPLE, "--filters", "{", "--quiet"],
        &env,
    );
    assert_eq!(code, 2);
}

/// `serve --help` says everything it serves; `doctor` takes the same flags as `serve`.
#[test]
fn help_lists_what_is_served_and_doctor_takes_serves_flags() {
    let help = |cmd: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_ckan-datastore"))
            .args([cmd, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let serve = help("serve");
    for served in [
        "datastore_search,",
        "datastore_info",
        "datastore_search_sql",
        "/datastore/dump",
        "DataTables",
    ] {
        assert!(
            serve.contains(served),
            "serve --help lacks {served}:\n{serve}"
        );
    }
    let flags = |text: &str| -> Vec<String> {
        text.split_whitespace()
            .filter(|w| w.starts_with("--"))
            .map(|w| w.trim_end_matches([',', '.']).to_string())
            .collect()
    };
    let doctor = help("doctor");
    for flag in flags(&serve) {
        assert!(doctor.contains(&flag), "doctor --help lacks {flag}");
    }
    assert!(doctor.contains("one line per check"), "{doctor}");
}

/// The demo's PostgreSQL (fsync=off) does not outlive it: the demo says how to stop it should
/// it be killed, and stops it itself on Ctrl-C.
#[tokio::test]
async fn the_demo_stops_its_postgresql_when_it_exits() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("ckds-demo-")
        .tempdir_in("/tmp")
        .unwrap();
    // The `postgres` user runs the cluster when we are root.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("demo");
    let listen = format!("127.0.0.1:{}", crate::nginx::free_port());
    let pg_port = crate::nginx::free_port().to_string();
    let mut demo = Command::new(env!("CARGO_BIN_EXE_ckan-datastore"))
        .args([
            "demo",
            "--rows",
            "50",
            "--pg-port",
            &pg_port,
            "--listen",
            &listen,
        ])
        .arg("--data-dir")
        .arg(&data)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = demo.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let mut printed = Vec::new();
    let started = std::time::Instant::now();
    let health = format!("http://{listen}/healthz");
    while reqwest::get(&health)
        .await
        .map_or(true, |r| !r.status().is_success())
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "the demo did not serve: {:?}",
            rx.try_iter().collect::<Vec<_>>()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    printed.extend(rx.try_iter());
    let stop = printed
        .iter()
        .find(|l| l.contains("pg_ctl") && l.contains(" stop"))
        .unwrap_or_else(|| panic!("no stop command in {printed:?}"));
    assert!(
        stop.contains(&data.join("pgdata").display().to_string()),
        "{stop}"
    );
    let pid_file = data.join("pgdata").join("postmaster.pid");
    assert!(pid_file.exists());

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(demo.id() as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let status = tokio::task::spawn_blocking(move || demo.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    // pg_ctl stop -w returns once the server is gone, and the server removes its pid file last.
    assert!(!pid_file.exists(), "the demo's PostgreSQL still runs");
}
