//! Configuration, decided in one place.
//!
//! Every setting can come from (highest priority first) a command-line flag, an environment
//! variable, a TOML file (`--config`), or the CKAN site's own ini file (`--ckan-ini`), so a CKAN
//! operator needs no new settings: the same keys CKAN reads give the same behaviour here.
//!
//! Each setting is declared once, in the table below: its flag and environment variable, its
//! TOML key, its CKAN ini key, its default and its checks. `declare.rs` turns the table into
//! [`ConfigArgs`], the TOML file's struct, [`Settings`] and the merge; the CKAN ini is read by
//! `ckan_ini.rs`, and the access-control keys CKAN itself defines by `auth/config.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use crate::auth::config::{AccessMode, AccessOverrides, AccessSettings};

pub mod ckan_ini;
pub mod declare;
pub mod error;
pub mod unhonoured;

pub use ckan_ini::{normalize_db_url, parse_ckan_bool, CkanIni};
pub use error::ConfigError;

declare::settings_table! {
    sources {
        /// TOML configuration file (config/ckan-datastore.example.toml; the Debian package's is
        /// /etc/ckan-datastore/ckan-datastore.toml).
        config: PathBuf { flag: "--config", env: "CKAN_DATASTORE_CONFIG", }
        /// A CKAN site's ini file; the DataStore settings are read from it.
        ckan_ini: PathBuf { flag: "--ckan-ini", env: "CKAN_INI", toml: ckan_ini, }
    }
    settings {
        /// Address to listen on.
        listen: SocketAddr {
            flag: "--listen", env: "CKAN_DATASTORE_LISTEN", toml: listen,
            default: SocketAddr::from(([127, 0, 0, 1], 8800)),
        }
        /// DataStore read-only database URL (CKAN: ckan.datastore.read_url).
        read_url: String {
            flag: "--read-url", env: "CKAN_DATASTORE_READ_URL", toml: read_url,
            ini: "ckan.datastore.read_url",
            required: "pass --read-url, set CKAN_DATASTORE_READ_URL, or point --ckan-ini at the \
                       CKAN site's ini",
            check: postgres_url,
        }
        /// DataStore write-role URL (CKAN: ckan.datastore.write_url). Only used to read CKAN's
        /// `_table_stats`, which tells exactly when CKAN wrote to a table (see docs/totals.md).
        write_url: Option<String> {
            flag: "--write-url", env: "CKAN_DATASTORE_WRITE_URL", toml: write_url,
            ini: "ckan.datastore.write_url",
            check: optional_postgres_url,
        }
        /// Public URL of the CKAN site, used in the `help` links (CKAN: ckan.site_url).
        site_url: String {
            flag: "--site-url", env: "CKAN_SITE_URL", toml: site_url, ini: "ckan.site_url",
            default: "http://127.0.0.1:5000".into(),
            check: without_trailing_slash,
        }
        /// Default page size (CKAN: ckan.datastore.search.rows_default).
        rows_default: i64 {
            flag: "--rows-default", env: "CKAN_DATASTORE_ROWS_DEFAULT", toml: rows_default,
            ini: "ckan.datastore.search.rows_default",
            default: 100,
        }
        /// Maximum page size; larger limits are clamped (CKAN: ckan.datastore.search.rows_max).
        rows_max: i64 {
            flag: "--rows-max", env: "CKAN_DATASTORE_ROWS_MAX", toml: rows_max,
            ini: "ckan.datastore.search.rows_max",
            default: 32000,
            after: rows_not_negative,
        }
        /// Default text-search configuration (CKAN: ckan.datastore.default_fts_lang).
        default_fts_lang: String {
            flag: "--default-fts-lang", env: "CKAN_DATASTORE_DEFAULT_FTS_LANG",
            toml: default_fts_lang, ini: "ckan.datastore.default_fts_lang",
            default: "english".into(),
        }
        /// Milliseconds in timestamp output (CKAN: ckan.datastore.ms_in_timestamp).
        ms_in_timestamp: bool {
            flag: "--ms-in-timestamp" (num_args = 0..=1, default_missing_value = "true"),
            env: "CKAN_DATASTORE_MS_IN_TIMESTAMP",
            toml: ms_in_timestamp, ini: "ckan.datastore.ms_in_timestamp",
            default: true,
        }
        /// Statement timeout for searches, in milliseconds (CKAN hard-codes 60000).
        statement_timeout_ms: u64 {
            flag: "--statement-timeout-ms", env: "CKAN_DATASTORE_STATEMENT_TIMEOUT_MS",
            toml: statement_timeout_ms,
            default: 60_000,
        }
        /// Maximum number of pooled search connections (in lanes of two by table: db/lanes.rs).
        pool_size: usize {
            flag: "--pool-size", env: "CKAN_DATASTORE_POOL_SIZE", toml: pool_size,
            default: 16,
            check: at_least_one,
        }
        /// How stale a cached total may be after a write that bypasses CKAN, in milliseconds
        /// (0: totals are always exact; see docs/totals.md).
        totals_max_staleness_ms: u64 {
            flag: "--totals-max-staleness-ms", env: "CKAN_DATASTORE_TOTALS_MAX_STALENESS_MS",
            toml: totals_max_staleness_ms,
            default: 3000,
        }
        /// Memory bound of the totals cache, in bytes of keys.
        totals_cache_bytes: u64 {
            flag: "--totals-cache-bytes", env: "CKAN_DATASTORE_TOTALS_CACHE_BYTES",
            toml: totals_cache_bytes,
            default: 64 * 1024 * 1024,
        }
        /// Honour `total_estimation_threshold` as CKAN ≤ 2.11 did: above the threshold, the planner's
        /// estimate instead of a count, with `total_was_estimated` (CKAN 2.12 ignores it).
        honour_total_estimation: bool {
            flag: "--honour-total-estimation" (num_args = 0..=1, default_missing_value = "true"),
            env: "CKAN_DATASTORE_HONOUR_TOTAL_ESTIMATION",
            toml: honour_total_estimation,
            default: false,
        }
        /// Retire a pooled connection this many seconds after it was opened (PgBouncer's
        /// `server_lifetime`): a PostgreSQL backend's catalog caches grow with every table it
        /// reads and never shrink. Each connection's lifetime is spread by up to 20% so that
        /// they are not all replaced at once.
        conn_max_lifetime_secs: u64 {
            flag: "--conn-max-lifetime-secs", env: "CKAN_DATASTORE_CONN_MAX_LIFETIME_SECS",
            toml: conn_max_lifetime_secs,
            default: 3600,
        }
        /// Retire a pooled connection once it has read this many distinct tables (~60 KB of
        /// backend memory each).
        conn_max_tables: usize {
            flag: "--conn-max-tables", env: "CKAN_DATASTORE_CONN_MAX_TABLES",
            toml: conn_max_tables,
            default: 1000,
            check: at_least_one,
        }
        /// Connections reserved for dumps (each streaming dump holds one).
        dump_pool_size: usize {
            flag: "--dump-pool-size", env: "CKAN_DATASTORE_DUMP_POOL_SIZE", toml: dump_pool_size,
            default: 8,
            check: at_least_one,
        }
        /// Compress dumps (gzip/zstd) for clients that accept it.
        dump_compression: bool {
            flag: "--dump-compression", env: "CKAN_DATASTORE_DUMP_COMPRESSION",
            toml: dump_compression,
            default: true,
        }
        /// How long a cached total is kept at most, in seconds.
        totals_cache_ttl_secs: u64 {
            toml: totals_cache_ttl_secs,
            default: 3600,
        }
        /// `datastore_search_sql` served (CKAN: ckan.datastore.sqlsearch.enabled, off by default).
        sqlsearch_enabled: bool {
            toml: sqlsearch_enabled, ini: "ckan.datastore.sqlsearch.enabled",
            default: false,
        }
        /// Its function allowlist (CKAN: ckan.datastore.sqlsearch.allowed_functions_file; None:
        /// the list CKAN 2.12.0 ships).
        sqlsearch_allowed_functions_file: Option<PathBuf> {
            toml: sqlsearch_allowed_functions_file,
            ini: "ckan.datastore.sqlsearch.allowed_functions_file",
        }
        /// `datastore_search_sql` queries one caller may run at once (the API token when it is
        /// valid, else the client's address); more answer 503 + Retry-After at once. Keep it
        /// below the endpoint's 4 connections so one caller cannot hold them all.
        sqlsearch_max_per_caller: usize {
            flag: "--sqlsearch-max-per-caller", env: "CKAN_DATASTORE_SQLSEARCH_MAX_PER_CALLER",
            toml: sqlsearch_max_per_caller,
            default: 2,
            check: at_least_one,
        }
        /// Largest `datastore_search_sql` answer, in bytes of JSON (CKAN has no bound): a query
        /// whose records would need more is stopped with a 409.
        sqlsearch_max_answer_bytes: usize {
            flag: "--sqlsearch-max-answer-bytes", env: "CKAN_DATASTORE_SQLSEARCH_MAX_ANSWER_BYTES",
            toml: sqlsearch_max_answer_bytes,
            default: 100 * 1024 * 1024,
            check: at_least_one,
        }
        /// What the DataTables view shows for NULL (CKAN: ckan.datatables.null_label, default "").
        datatables_null_label: String {
            ini: "ckan.datatables.null_label",
            default: String::new(),
        }
        /// Column types with their own full-text index (CKAN: ckan.datastore.default_fts_index_field_types).
        default_fts_index_field_types: Vec<String> {
            toml: default_fts_index_field_types, ini: "ckan.datastore.default_fts_index_field_types",
            default: Vec::new(),
        }
        /// Tables searchable without a resource (CKAN: ckan.datastore.public_table_search).
        public_table_search: Vec<String> {
            toml: public_table_search, ini: "ckan.datastore.public_table_search",
            default: vec!["_table_metadata".into()],
        }
    }
    derived {
        /// Who may read what (auth/config.rs, from the `access` rows and the CKAN ini).
        access: AccessSettings = AccessSettings::public(),
    }
    access {
        /// Serve every table to every caller, checking nothing (same as `--access-control public`).
        all_tables_public: bool {
            flag: "--all-tables-public" (num_args = 0..=1, default_missing_value = "true"),
            env: "CKAN_DATASTORE_ALL_TABLES_PUBLIC",
            toml: all_tables_public,
            default: false,
        }
        /// Who may read what: `ckan-db` (CKAN's main database; the default when one is known),
        /// `ckan-api` (ask CKAN for every request) or `public` (everything, to everyone).
        access_control: Option<AccessMode> {
            flag: "--access-control", env: "CKAN_DATASTORE_ACCESS_CONTROL", toml: access_control,
        }
        /// CKAN's main database, as the least-privilege role of src/sql_assets/authz_role.sql
        /// (default: `sqlalchemy.url` from the CKAN ini).
        ckan_db_url: Option<String> {
            flag: "--ckan-db-url", env: "CKAN_DATASTORE_CKAN_DB_URL", toml: ckan_db_url,
        }
        /// CKAN's own URL, asked about callers only CKAN can identify (default: the site URL).
        ckan_api_url: Option<String> {
            flag: "--ckan-api-url", env: "CKAN_DATASTORE_CKAN_API_URL", toml: ckan_api_url,
        }
        /// Reuse a decision that grants an anonymous caller access for this long (default 0).
        auth_grant_cache_ms: u64 {
            flag: "--auth-grant-cache-ms", env: "CKAN_DATASTORE_AUTH_GRANT_CACHE_MS",
            toml: auth_grant_cache_ms,
            default: 0,
        }
        /// Reuse a denial for this long (default 0; denials can only delay access).
        auth_deny_cache_ms: u64 {
            flag: "--auth-deny-cache-ms", env: "CKAN_DATASTORE_AUTH_DENY_CACHE_MS",
            toml: auth_deny_cache_ms,
            default: 0,
        }
        /// Plugins in `ckan.plugins` the operator has checked leave authorization alone.
        auth_neutral_plugins: Vec<String> {
            toml: auth_neutral_plugins,
            default: Vec::new(),
        }
    }
}

impl Settings {
    /// Defaults for everything but the database, as CKAN 2.12 ships them.
    pub fn with_read_url(read_url: impl Into<String>) -> Settings {
        Settings {
            read_url: read_url.into(),
            ..settings_defaults()
        }
    }

    /// Merges flags/env, the TOML file and the CKAN ini, in that order of priority.
    pub fn load(args: &ConfigArgs) -> Result<Settings, ConfigError> {
        Settings::load_with_ini(args).map(|(settings, _)| settings)
    }

    /// As `load`, also returning the CKAN ini it read (empty without one), for `doctor`.
    pub fn load_with_ini(args: &ConfigArgs) -> Result<(Settings, CkanIni), ConfigError> {
        let mut file = match &args.config {
            Some(path) => read_toml(path)?,
            None => FileConfig::default(),
        };
        let ini = match args.ckan_ini.clone().or_else(|| file.ckan_ini.take()) {
            Some(path) => CkanIni::read(&path)?,
            None => CkanIni::default(),
        };
        let mut s = merge_settings(args, &mut file, &ini)?;
        let access = merge_access(args, &mut file, &ini)?;
        s.access = crate::auth::config::load(&ini, access, &s.site_url)?;
        Ok((s, ini))
    }

    /// The `help` link CKAN puts in every action response.
    pub fn help_url(&self, action: &str) -> String {
        format!("{}/api/3/action/help_show?name={}", self.site_url, action)
    }
}

fn read_toml(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.into(),
        source,
    })?;
    toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.into(),
        message: e.to_string(),
    })
}

// The table's checks.

/// A PostgreSQL URL, without SQLAlchemy's driver (`postgresql+psycopg2://`).
fn postgres_url(key: &str, url: String) -> Result<String, ConfigError> {
    let url = normalize_db_url(&url);
    let _: tokio_postgres::Config = url.parse().map_err(|e| ConfigError::Invalid {
        key: key.into(),
        message: format!("not a PostgreSQL URL: {e}"),
    })?;
    Ok(url)
}

fn optional_postgres_url(key: &str, url: Option<String>) -> Result<Option<String>, ConfigError> {
    url.map(|url| postgres_url(key, url)).transpose()
}

fn without_trailing_slash(_key: &str, url: String) -> Result<String, ConfigError> {
    Ok(url.trim_end_matches('/').to_string())
}

fn at_least_one(key: &str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        return Err(ConfigError::Invalid {
            key: key.into(),
            message: "must be at least 1".into(),
        });
    }
    Ok(n)
}

fn rows_not_negative(s: &Settings) -> Result<(), ConfigError> {
    if s.rows_default < 0 || s.rows_max < 0 {
        return Err(ConfigError::Invalid {
            key: "ckan.datastore.search.rows_default / rows_max".into(),
            message: "must not be negative".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ckan_ini() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckan.ini");
        std::fs::write(
            &path,
            "[DEFAULT]\ndebug = false\n[app:main]\nuse = egg:ckan\n\
             ckan.site_url = http://example.org/\n\
             ckan.datastore.read_url = postgresql+psycopg2://ro:pw@db/datastore\n\
             ckan.datastore.search.rows_max = 500\nckan.datastore.ms_in_timestamp = false\n\
             sqlalchemy.url = postgresql://ckan:pw@db/ckan_default\n",
        )
        .unwrap();
        let args = ConfigArgs {
            ckan_ini: Some(path),
            ..Default::default()
        };
        let s = Settings::load(&args).unwrap();
        assert_eq!(s.site_url, "http://example.org");
        assert_eq!(s.read_url, "postgresql://ro:pw@db/datastore");
        assert_eq!(s.rows_max, 500);
        assert_eq!(s.rows_default, 100);
        assert!(!s.ms_in_timestamp);
        assert_eq!(
            s.access.ckan_db_url.as_deref(),
            Some("postgresql://ckan:pw@db/ckan_default")
        );
        assert_eq!(s.access.mode, crate::auth::config::AccessMode::CkanDb);
    }

    #[test]
    fn bad_values_name_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckan.ini");
        std::fs::write(
            &path,
            "[app:main]\nckan.datastore.read_url = postgresql://x@y/z\nckan.datastore.search.rows_max = lots\n",
        )
        .unwrap();
        let err = Settings::load(&ConfigArgs {
            ckan_ini: Some(path),
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().contains("ckan.datastore.search.rows_max"),
            "{err}"
        );
        let err = Settings::load(&ConfigArgs::default()).unwrap_err();
        assert!(err.to_string().contains("read_url"), "{err}");
    }

    /// `Settings::load` on a command line (`serve` and `flags`, plus `--config`/`--ckan-ini` for
    /// the files given) parsed by clap with exactly the environment variables `env` of the table
    /// set, as the binary would.
    fn load_from(
        flags: &[&str],
        env: &[(&str, &str)],
        toml: Option<&str>,
        ini: Option<&str>,
    ) -> Result<Settings, ConfigError> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            config: ConfigArgs,
        }
        static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let dir = tempfile::tempdir().unwrap();
        let mut argv = vec!["serve".to_string()];
        for (flag, text, name) in [
            ("--config", toml, "c.toml"),
            ("--ckan-ini", ini, "ckan.ini"),
        ] {
            if let Some(text) = text {
                let path = dir.path().join(name);
                std::fs::write(&path, text).unwrap();
                argv.extend([flag.to_string(), path.display().to_string()]);
            }
        }
        argv.extend(flags.iter().map(|f| f.to_string()));
        let _guard = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let names = TABLE.iter().filter_map(|row| row.env);
        let names: Vec<&str> = names.chain(["CKAN_SQLALCHEMY_URL"]).collect();
        let saved: Vec<_> = names.iter().map(|k| (*k, std::env::var_os(k))).collect();
        for k in &names {
            std::env::remove_var(k);
        }
        for (k, v) in env {
            assert!(names.contains(k), "{k} is not in the table");
            std::env::set_var(k, v);
        }
        let result = <Cli as clap::Parser>::try_parse_from(&argv)
            .map_err(|e| e.to_string())
            .map(|cli| Settings::load(&cli.config));
        for (k, v) in saved {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
        result.unwrap()
    }

    #[test]
    fn flag_beats_env_beats_toml_beats_ini_beats_default() {
        let ini = "[app:main]\nckan.datastore.read_url = postgresql://ini@h/d\n\
                   sqlalchemy.url = postgresql://ckan@h/ckan\n\
                   ckan.datastore.search.rows_max = 1\nckan.site_url = http://ini/\n\
                   ckan.datastore.ms_in_timestamp = no\n";
        let toml = "rows_max = 2\nsite_url = \"http://toml/\"\nms_in_timestamp = true\n\
                    auth_grant_cache_ms = 2\n";
        let env = [
            ("CKAN_DATASTORE_ROWS_MAX", "3"),
            ("CKAN_SITE_URL", "http://env/"),
            ("CKAN_DATASTORE_MS_IN_TIMESTAMP", "false"),
            ("CKAN_DATASTORE_AUTH_GRANT_CACHE_MS", "3"),
        ];
        let flags = [
            "--rows-max",
            "4",
            "--site-url",
            "http://flag/",
            "--ms-in-timestamp",
            "--auth-grant-cache-ms",
            "4",
        ];
        let got = |flags: &[&str], env, toml, ini| {
            let s = load_from(flags, env, toml, ini).unwrap();
            (
                s.rows_max,
                s.site_url,
                s.ms_in_timestamp,
                s.access.grant_cache_ms,
            )
        };
        let want = |rows, site: &str, ms, grant| (rows, site.to_string(), ms, grant);
        let (toml, ini) = (Some(toml), Some(ini));
        assert_eq!(
            got(&flags, &env, toml, ini),
            want(4, "http://flag", true, 4)
        );
        assert_eq!(got(&[], &env, toml, ini), want(3, "http://env", false, 3));
        assert_eq!(got(&[], &[], toml, ini), want(2, "http://toml", true, 2));
        assert_eq!(got(&[], &[], None, ini), want(1, "http://ini", false, 0));
        let bare = ["--read-url", "postgresql://x@h/d", "--all-tables-public"];
        assert_eq!(
            got(&bare, &[], None, None),
            want(32000, "http://127.0.0.1:5000", true, 0)
        );
    }

    #[test]
    fn a_bad_value_names_its_key_whatever_its_source() {
        fn err(
            flags: &[&str],
            env: &[(&str, &str)],
            toml: Option<&str>,
            ini: Option<&str>,
        ) -> String {
            load_from(flags, env, toml, ini).unwrap_err().to_string()
        }
        let read = "read_url = \"postgresql://x@h/d\"\nall_tables_public = true\n";
        let toml = |extra: &str| format!("{read}{extra}\n");
        let e = err(&[], &[], Some(&toml("listen = \"bogus\"")), None);
        assert!(e.contains("`listen`"), "{e}");
        let e = err(&[], &[], Some(&toml("write_url = \"::bad\"")), None);
        assert!(e.contains("`write_url`"), "{e}");
        let e = err(&[], &[], Some(&toml("rows_default = -1")), None);
        assert!(
            e.contains("`ckan.datastore.search.rows_default / rows_max`"),
            "{e}"
        );
        let e = err(&["--pool-size", "0"], &[], Some(read), None);
        assert!(e.contains("`pool_size`"), "{e}");
        let e = err(
            &[],
            &[("CKAN_DATASTORE_DUMP_POOL_SIZE", "0")],
            Some(read),
            None,
        );
        assert!(e.contains("`dump_pool_size`"), "{e}");
        let mode = "read_url = \"postgresql://x@h/d\"\naccess_control = \"nobody\"\n";
        let e = err(&[], &[], Some(mode), None);
        assert!(e.contains("`access_control`"), "{e}");
        let ini = "[app:main]\nckan.datastore.read_url = postgresql://x@h/d\n\
                   ckan.datastore.ms_in_timestamp = maybe\n";
        let e = err(&["--all-tables-public"], &[], None, Some(ini));
        assert!(e.contains("`ckan.datastore.ms_in_timestamp`"), "{e}");
        // A required setting is reported first, whatever else is wrong.
        let e = err(&[], &[], Some("listen = \"bogus\"\n"), None);
        assert!(e.starts_with("missing setting `read_url`"), "{e}");
    }

    /// README.md's Configuration table shows each row's flag, environment variable, TOML key and
    /// CKAN ini key, and no flag, variable or TOML key the table lacks.
    #[test]
    fn the_readme_shows_the_table() {
        let readme = include_str!("../../README.md");
        let section = readme.split("\n## Configuration\n").nth(1).unwrap();
        let section = section.split("\n## ").next().unwrap();
        let lines = section
            .lines()
            .filter(|l| l.starts_with("| `") || l.starts_with("| —"));
        let cells: Vec<Vec<&str>> = lines.map(|l| l.split('|').collect()).collect();
        let quoted = |s: &str| format!("`{s}`");
        for row in TABLE {
            let (column, name) = match (row.flag, row.toml, row.ini) {
                (Some(flag), _, _) => (1, flag),
                (None, Some(toml), _) => (2, toml),
                (None, None, Some(ini)) => (3, ini),
                (None, None, None) => panic!("{} has no source", row.name),
            };
            let line = cells.iter().find(|c| c[column].contains(&quoted(name)));
            let line = line.unwrap_or_else(|| panic!("README has no row for `{name}`"));
            for (column, name) in [(1, row.env), (2, row.toml), (3, row.ini)] {
                if let Some(name) = name {
                    assert!(
                        line[column].contains(&quoted(name)),
                        "README: `{name}` missing in {line:?}"
                    );
                }
            }
        }
        for line in &cells {
            let words = |column: usize| line[column].split('`').skip(1).step_by(2);
            for word in words(1) {
                let known = TABLE
                    .iter()
                    .any(|r| r.flag == Some(word) || r.env == Some(word));
                assert!(
                    known,
                    "README shows `{word}`, which the table does not declare"
                );
            }
            for word in words(2) {
                assert!(
                    TABLE.iter().any(|r| r.toml == Some(word)),
                    "README shows TOML key `{word}`"
                );
            }
        }
    }

    /// Every key the example TOML file shows (commented out or not) is one of the table's.
    #[test]
    fn the_example_toml_uses_the_tables_keys() {
        let example = include_str!("../../config/ckan-datastore.example.toml");
        let is_key = |k: &str| k.chars().all(|c| c.is_ascii_lowercase() || c == '_');
        let uncommented: Vec<&str> = example
            .lines()
            .map(|line| match line.strip_prefix("# ") {
                Some(kv) if kv.split_once(" = ").is_some_and(|(k, _)| is_key(k)) => kv,
                _ => line,
            })
            .collect();
        let file: FileConfig = toml::from_str(&uncommented.join("\n")).unwrap();
        assert!(file.ckan_ini.is_some() && file.auth_neutral_plugins.is_some());
    }
}
