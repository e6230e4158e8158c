//! `ckan-datastore doctor`, the binary, against the test database and a site made of Debian's
//! nginx (with the shipped files), our server and a stand-in for CKAN: green when everything
//! is as the README says, and each deliberate mistake caught on its own line, naming the
//! setting to fix.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::{db, spawn_app};
use crate::nginx::{free_port, stand_in_ckan, start_nginx};

/// A CKAN ini for the test database, the site at `site_url`.
pub fn site_ini(dir: &Path, site_url: &str, extra: &str) -> PathBuf {
    let db = db();
    let path = dir.join("ckan.ini");
    std::fs::write(
        &path,
        format!(
            "[app:main]\nuse = egg:ckan\nSECRET_KEY = doctor-test-secret\n\
             ckan.site_url = {site_url}\nckan.plugins = datastore datatables_view\n\
             ckan.datastore.read_url = {}\nckan.datastore.write_url = {}\n\
             sqlalchemy.url = {}\n{extra}\n",
            db.read, db.write, db.main_authz
        ),
    )
    .unwrap();
    path
}

/// `doctor` with `args` and nothing from the environment that could configure it.
pub fn doctor(program: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(program);
    c.arg("doctor").args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("CKAN_") {
            c.env_remove(k);
        }
    }
    c.envs(env.iter().copied());
    c
}

/// Runs a prepared `doctor` command off the runtime's threads (the servers it checks run
/// on them): (exit code, stdout).
pub async fn run(mut c: Command) -> (i32, String) {
    let out = tokio::task::spawn_blocking(move || c.output().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // Shown with --nocapture: what an operator would read.
    println!("{stdout}");
    (out.status.code().unwrap_or(-1), stdout)
}

/// The line of the check named `name` (after its status, padded to 4, and two spaces).
pub fn line<'a>(report: &'a str, name: &str) -> &'a str {
    report
        .lines()
        .find(|l| {
            l.get(6..)
                .is_some_and(|rest| rest.starts_with(&format!("{name} ")))
        })
        .unwrap_or_else(|| panic!("no `{name}` line in:\n{report}"))
}

fn binary() -> PathBuf {
    env!("CARGO_BIN_EXE_ckan-datastore").into()
}

#[tokio::test]
async fn doctor_is_green_on_a_site_set_up_as_the_readme_says() {
    crate::access::fixtures().await;
    let app = spawn_app().await;
    let ours: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let ckan = stand_in_ckan().await;
    let (_nginx, _ndir, front) = start_nginx(free_port(), ours, ckan).await;
    let dir = tempfile::tempdir().unwrap();
    let ini = site_ini(
        dir.path(),
        &front,
        "ckan.datastore.sqlsearch.enabled = true",
    );
    let ckan_url = format!("http://127.0.0.1:{ckan}");
    let args = [
        "--ckan-ini",
        ini.to_str().unwrap(),
        "--ckan-api-url",
        &ckan_url,
    ];
    let (code, report) = run(doctor(&binary(), &args, &[])).await;
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert!(line(&report, "read_url").starts_with("ok"), "{report}");
    assert!(line(&report, "read_url").contains("read-only"), "{report}");
    assert!(line(&report, "write_url").starts_with("ok"), "{report}");
    // The test database's read role carries the shipped read_role_limits.sql.
    let limits = line(&report, "read role limits");
    assert!(
        limits.starts_with("ok") && limits.contains("temp_file_limit"),
        "{report}"
    );
    let main = line(&report, "ckan_db_url");
    assert!(
        main.starts_with("ok") && main.contains("nothing else"),
        "{report}"
    );
    assert!(
        line(&report, "ckan_api_url").contains("CKAN 2.12.0"),
        "{report}"
    );
    assert!(line(&report, "ckan.plugins").starts_with("ok"), "{report}");
    assert!(line(&report, "ini keys").starts_with("ok"), "{report}");
    for path in ckan_datastore::api::SERVED_PATHS {
        let l = line(&report, &format!("route {path}"));
        assert!(
            l.starts_with("ok") && l.contains("answered by ckan-datastore"),
            "{l}"
        );
    }
    let l = line(&report, "route /api/3/action/status_show");
    assert!(l.starts_with("ok") && l.contains("CKAN's side"), "{l}");
}

/// Every mistake of the issue at once, each caught on its own line with the setting to fix:
/// the probe URL is nginx (the loop), the read URL is the write role, the main database role
/// is a superuser, the site URL skips nginx, the ini enables CORS and an unaudited plugin.
#[tokio::test]
async fn doctor_names_the_setting_of_each_mistake() {
    crate::access::fixtures().await;
    let app = spawn_app().await;
    let ours: u16 = app.base.rsplit(':').next().unwrap().parse().unwrap();
    let ckan = stand_in_ckan().await;
    let (_nginx, _ndir, front) = start_nginx(free_port(), ours, ckan).await;
    let dir = tempfile::tempdir().unwrap();
    let ckan_url = format!("http://127.0.0.1:{ckan}");
    let ini = site_ini(
        dir.path(),
        &ckan_url,
        "ckan.cors.origin_allow_all = true\nckan.datastore.sqlalchemy.pool_size = 20\n\
         ckan.datastore.sqlsearch.enabled = true\n",
    );
    let text = std::fs::read_to_string(&ini).unwrap().replace(
        "datastore datatables_view",
        "datastore datatables_view spatial_query",
    );
    std::fs::write(&ini, text).unwrap();
    let db = db();
    let args = [
        "--ckan-ini",
        ini.to_str().unwrap(),
        // The README's old step 3: CKAN asked at the public URL, i.e. nginx, i.e. us.
        "--ckan-api-url",
        &front,
        "--read-url",
        &db.write,
        "--ckan-db-url",
        &db.main_admin,
    ];
    let (code, report) = run(doctor(&binary(), &args, &[])).await;
    assert_eq!(code, 1, "{report}");
    // The write role, used as the read URL here, has no temp_file_limit.
    let limits = line(&report, "read role limits");
    assert!(
        limits.starts_with("WARN") && limits.contains("read_role_limits.sql"),
        "{report}"
    );
    let probe = line(&report, "ckan_api_url");
    assert!(probe.starts_with("FAIL"), "{report}");
    assert!(
        probe.contains("`ckan_api_url`") && probe.contains("--ckan-api-url"),
        "{probe}"
    );
    let read = line(&report, "read_url");
    assert!(
        read.starts_with("FAIL") && read.contains("may create tables"),
        "{read}"
    );
    let main = line(&report, "ckan_db_url");
    assert!(
        main.starts_with("WARN") && main.contains("superuser") && main.contains("authz_role.sql"),
        "{main}"
    );
    let plugins = line(&report, "ckan.plugins");
    assert!(
        plugins.starts_with("WARN") && plugins.contains("spatial_query"),
        "{plugins}"
    );
    assert!(
        line(&report, "ckan.cors.origin_allow_all").starts_with("WARN"),
        "{report}"
    );
    assert!(
        line(&report, "ckan.datastore.sqlalchemy.pool_size").contains("pool_size"),
        "{report}"
    );
    for path in ckan_datastore::api::SERVED_PATHS {
        let l = line(&report, &format!("route {path}"));
        assert!(
            l.starts_with("FAIL") && l.contains("ckan-datastore-locations.conf"),
            "{l}"
        );
    }
    assert!(line(&report, "route /api/3/action/status_show").starts_with("ok"));

    // A configuration that cannot load: exit status 2, one line naming the key.
    let (code, report) = run(doctor(&binary(), &["--read-url", "not a url"], &[])).await;
    assert_eq!(code, 2, "{report}");
    assert!(
        report.starts_with("FAIL") && report.contains("read_url"),
        "{report}"
    );
}
