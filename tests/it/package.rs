//! The Debian package, deployed as the README says: `dpkg -i`, the unit checked with
//! `systemd-analyze` (these machines run no systemd, so the unit is verified, not started),
//! the shipped role SQL run on CKAN's main database, the unit's own `ExecStart` line run as
//! the unit's user against the test database, the installed nginx snippets included in
//! Debian's nginx, one request per path through it, and `doctor` green, as that user too.
//!
//! Ignored by default: it installs the package system-wide and needs root.
//! `scripts/test-deb.sh` builds the release package and runs it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::doctor::{line, run, site_ini};
use crate::harness::db;
use crate::nginx::{check_each_path, free_port, stand_in_ckan, start_nginx_with};

const CONFIG: &str = "/etc/ckan-datastore/ckan-datastore.toml";
const SNIPPETS: &str = "/etc/nginx/snippets";

/// Runs a command that must succeed; its stdout.
fn must(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The value of `key=` in the unit's `[Service]` section.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    unit.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

/// Kills the server started from the unit's line when the test ends, however it ends.
struct Served(std::process::Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "installs the .deb system-wide (root): scripts/test-deb.sh builds and runs it"]
async fn the_deb_installs_and_its_unit_serves_the_test_database() {
    let deb = std::env::var("CKAN_DATASTORE_DEB")
        .expect("CKAN_DATASTORE_DEB: the .deb to install (scripts/test-deb.sh sets it)");
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "dpkg -i needs root"
    );
    must("dpkg", &["-i", &deb]);

    // What it installed, and which of it dpkg keeps as the administrator's.
    let files = must("dpkg", &["-L", "ckan-datastore"]);
    for f in [
        "/usr/bin/ckan-datastore",
        CONFIG,
        "/etc/nginx/snippets/ckan-datastore-upstream.conf",
        "/etc/nginx/snippets/ckan-datastore-locations.conf",
        "/usr/share/ckan-datastore/authz_role.sql",
    ] {
        assert!(files.lines().any(|l| l == f), "{f} not installed:\n{files}");
    }
    let conffiles = must("dpkg-query", &["-W", "-f=${Conffiles}", "ckan-datastore"]);
    for f in [CONFIG, "/etc/nginx/snippets/ckan-datastore-locations.conf"] {
        assert!(conffiles.contains(f), "{f} is not a conffile: {conffiles}");
    }
    let unit_path = files
        .lines()
        .find(|l| l.ends_with("/ckan-datastore.service"))
        .expect("a systemd unit");

    // The unprivileged user the maintainer script made, who alone may read the config.
    let user = nix::unistd::User::from_name("ckan-datastore")
        .unwrap()
        .expect("postinst creates the ckan-datastore user");
    assert!(user.uid.as_raw() < 1000, "a system user: {user:?}");
    assert!(user.shell.ends_with("nologin"), "{user:?}");
    let meta = std::fs::metadata(CONFIG).unwrap();
    assert_eq!((meta.uid(), meta.gid()), (0, user.gid.as_raw()));
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);

    // The unit: valid, hardened, run as that user.
    let verify = Command::new("systemd-analyze")
        .args(["verify", unit_path])
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let complaints = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && complaints.trim().is_empty(),
        "systemd-analyze verify {unit_path}: {complaints}"
    );
    // Exposure on systemd's 0–100 scale (printed as 0.0–10.0): 20 is "OK" with room; the unit
    // scores 12 (its network access and host root directory are what a server needs).
    must(
        "systemd-analyze",
        &["security", "--offline=yes", "--threshold=20", unit_path],
    );
    let unit = std::fs::read_to_string(unit_path).unwrap();
    assert_eq!(unit_value(&unit, "User"), "ckan-datastore");
    let exec: Vec<&str> = unit_value(&unit, "ExecStart").split_whitespace().collect();
    assert!(exec.contains(&CONFIG), "{exec:?}");

    // README step 2 with the shipped file (harmless to re-run on the harness's role).
    let db = db();
    let main = ckan_datastore::demo::connect(&db.main_admin).await.unwrap();
    main.batch_execute(
        &std::fs::read_to_string("/usr/share/ckan-datastore/authz_role.sql").unwrap(),
    )
    .await
    .expect("the shipped authz_role.sql");
    crate::access::fixtures().await;

    // The site: an ini for the test database, read by the service user; nginx in front.
    let (listen, nginx_port) = (free_port(), free_port());
    let ckan = stand_in_ckan().await;
    let front = format!("http://127.0.0.1:{nginx_port}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let ini = site_ini(dir.path(), &front, "");
    std::fs::set_permissions(&ini, std::fs::Permissions::from_mode(0o644)).unwrap();
    // The installed config names /etc/ckan/default/ckan.ini; the environment (which beats it)
    // points at the test's ini instead, as an `Environment=` line of a drop-in would.
    let listen_addr = format!("127.0.0.1:{listen}");
    let ckan_url = format!("http://127.0.0.1:{ckan}");
    let env = [
        ("CKAN_INI", ini.to_str().unwrap()),
        ("CKAN_DATASTORE_LISTEN", listen_addr.as_str()),
        ("CKAN_DATASTORE_CKAN_API_URL", ckan_url.as_str()),
    ];
    let as_user = |program: &str| {
        let mut c = Command::new(program);
        c.uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .current_dir("/");
        c
    };
    let log = dir.path().join("serve.log");
    let mut serve = as_user(exec[0]);
    serve
        .args(&exec[1..])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let _served = Served(serve.spawn().unwrap());
    let started = Instant::now();
    let health = format!("http://{listen_addr}/healthz");
    loop {
        if let Ok(r) = reqwest::get(&health).await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the unit's ExecStart did not serve: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_nginx, _ndir, front) =
        start_nginx_with(Path::new(SNIPPETS), nginx_port, listen, ckan).await;
    check_each_path(&front).await;

    let mut doctor = as_user(exec[0]);
    doctor.args(["doctor", "--config", CONFIG]);
    let (code, report) = run(doctor).await;
    assert_eq!(code, 0, "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert!(line(&report, "ckan_db_url").starts_with("ok"), "{report}");
    assert!(
        line(&report, "ckan_api_url").contains("CKAN 2.12.0"),
        "{report}"
    );
    drop(_served);

    must("dpkg", &["--purge", "ckan-datastore"]);
    assert!(!Path::new("/usr/bin/ckan-datastore").exists());
}
