//! A private PostgreSQL cluster started from the machine's own binaries (initdb + pg_ctl), on a
//! unix socket only, for the demo and the tests. When running as root, PostgreSQL refuses to
//! start, so the cluster runs as the `postgres` system user.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A running (or reusable) cluster under a directory we own.
#[derive(Debug)]
pub struct PgCluster {
    pub data_dir: PathBuf,
    pub socket_dir: PathBuf,
    pub port: u16,
    bin_dir: PathBuf,
    run_as: Option<(u32, u32)>,
}

/// Server settings that match a stock Debian CKAN database (they shape the output bytes).
const SERVER_OPTIONS: &str = "-c listen_addresses='' -c TimeZone=Etc/UTC -c DateStyle='ISO, MDY' \
    -c default_text_search_config=pg_catalog.english -c fsync=off -c synchronous_commit=off \
    -c full_page_writes=off -c max_connections=200";

/// Where the PostgreSQL server binaries are: `$PG_BIN_DIR`, the newest
/// `/usr/lib/postgresql/<v>/bin`, or `initdb` on the PATH.
pub fn find_bin_dir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = Path::new(dir).join("initdb");
        if p.exists() {
            return Ok(p
                .canonicalize()
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| dir.into()));
        }
    }
    Err(
        "PostgreSQL server binaries not found (initdb). Install them (Debian: apt-get install \
         postgresql) or set PG_BIN_DIR."
            .into(),
    )
}

fn postgres_user() -> Result<Option<(u32, u32)>, String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Ok(None);
    }
    match nix::unistd::User::from_name("postgres") {
        Ok(Some(u)) => Ok(Some((u.uid.as_raw(), u.gid.as_raw()))),
        _ => Err("running as root needs a `postgres` system user to run PostgreSQL as".into()),
    }
}

impl PgCluster {
    /// Initialises `data_dir` if it holds no cluster yet, then starts it on `port` with its
    /// socket in `socket_dir`. Reuses a cluster that is already running there.
    pub fn start(data_dir: &Path, socket_dir: &Path, port: u16) -> Result<PgCluster, String> {
        PgCluster::start_with(data_dir, socket_dir, port, "")
    }

    /// As `start`, with extra server options (`-c name=value …`, after ours so they win).
    pub fn start_with(
        data_dir: &Path,
        socket_dir: &Path,
        port: u16,
        extra_options: &str,
    ) -> Result<PgCluster, String> {
        let bin_dir = find_bin_dir()?;
        let run_as = postgres_user()?;
        std::fs::create_dir_all(data_dir).map_err(|e| format!("{}: {e}", data_dir.display()))?;
        std::fs::create_dir_all(socket_dir)
            .map_err(|e| format!("{}: {e}", socket_dir.display()))?;
        let cluster = PgCluster {
            data_dir: data_dir.canonicalize().map_err(|e| e.to_string())?,
            socket_dir: socket_dir.canonicalize().map_err(|e| e.to_string())?,
            port,
            bin_dir,
            run_as,
        };
        if let Some((uid, gid)) = run_as {
            for d in [&cluster.data_dir, &cluster.socket_dir] {
                std::os::unix::fs::chown(d, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", d.display()))?;
            }
        }
        if !cluster.data_dir.join("PG_VERSION").exists() {
            let mut ok = false;
            for locale in ["C.UTF-8", "C"] {
                let out = cluster
                    .command("initdb")
                    .args(["-D"])
                    .arg(&cluster.data_dir)
                    .args([
                        "-U",
                        "postgres",
                        "--auth=trust",
                        "-E",
                        "UTF8",
                        "--locale",
                        locale,
                    ])
                    .output()
                    .map_err(|e| format!("initdb: {e}"))?;
                if out.status.success() {
                    ok = true;
                    break;
                }
                tracing::warn!(locale, stderr = %String::from_utf8_lossy(&out.stderr), "initdb failed");
            }
            if !ok {
                return Err("initdb failed (see log above)".into());
            }
        }
        if !cluster.is_running() {
            let log = cluster.data_dir.join("server.log");
            let out = cluster
                .command("pg_ctl")
                .arg("-D")
                .arg(&cluster.data_dir)
                .arg("-l")
                .arg(&log)
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "{SERVER_OPTIONS} -p {} -k {} {extra_options}",
                    port,
                    cluster.socket_dir.display()
                ))
                .arg("start")
                .output()
                .map_err(|e| format!("pg_ctl: {e}"))?;
            if !out.status.success() {
                let tail = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "pg_ctl start failed: {}{}\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr),
                    tail.lines()
                        .rev()
                        .take(20)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
        }
        Ok(cluster)
    }

    /// The uid/gid the server runs as, when we are root (files it must own).
    pub fn run_as(&self) -> Option<(u32, u32)> {
        self.run_as
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin_dir.join(program));
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
            // HOME of root is not readable by postgres; keep tools from looking there.
            c.env("HOME", &self.data_dir);
        }
        c.current_dir(&self.data_dir);
        c
    }

    pub fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("status")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    /// A libpq-style connection string for `user` on `dbname` over the socket.
    pub fn conninfo(&self, user: &str, password: Option<&str>, dbname: &str) -> String {
        let mut s = format!(
            "host={} port={} user={user} dbname={dbname}",
            self.socket_dir.display(),
            self.port
        );
        if let Some(p) = password {
            s.push_str(&format!(" password={p}"));
        }
        s
    }

    /// The shell command that stops this server, as whoever runs it must type it.
    pub fn stop_command(&self) -> String {
        let pg_ctl = format!(
            "{} -D {} -m fast stop",
            self.bin_dir.join("pg_ctl").display(),
            self.data_dir.display()
        );
        match self.run_as {
            Some(_) => format!("runuser -u postgres -- {pg_ctl}"),
            None => pg_ctl,
        }
    }

    /// Stops the server (fast shutdown).
    pub fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }
}
