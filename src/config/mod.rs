//! Configuration, decided in one place.
//!
//! Every setting can come from (highest priority first) a command-line flag, an environment
//! variable, a TOML file (`--config`), or the CKAN site's own ini file (`--ckan-ini`), so a CKAN
//! operator needs no new settings: the same keys CKAN reads give the same behaviour here.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub mod ckan_ini;
pub mod error;

pub use ckan_ini::{normalize_db_url, parse_ckan_bool, CkanIni};
pub use error::ConfigError;

/// Flags and environment variables shared by every subcommand that talks to a database.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file (see config/ckan-datastore.example.toml).
    #[arg(long, env = "CKAN_DATASTORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// A CKAN site's ini file; the DataStore settings are read from it.
    #[arg(long, env = "CKAN_INI")]
    pub ckan_ini: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "CKAN_DATASTORE_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// DataStore read-only database URL (CKAN: ckan.datastore.read_url).
    #[arg(long, env = "CKAN_DATASTORE_READ_URL")]
    pub read_url: Option<String>,
    /// DataStore write-role URL (CKAN: ckan.datastore.write_url). Only used to read CKAN's
    /// `_table_stats`, which tells exactly when CKAN wrote to a table (see docs/totals.md).
    #[arg(long, env = "CKAN_DATASTORE_WRITE_URL")]
    pub write_url: Option<String>,
    /// Public URL of the CKAN site, used in the `help` links (CKAN: ckan.site_url).
    #[arg(long, env = "CKAN_SITE_URL")]
    pub site_url: Option<String>,
    /// Default page size (CKAN: ckan.datastore.search.rows_default).
    #[arg(long, env = "CKAN_DATASTORE_ROWS_DEFAULT")]
    pub rows_default: Option<i64>,
    /// Maximum page size; larger limits are clamped (CKAN: ckan.datastore.search.rows_max).
    #[arg(long, env = "CKAN_DATASTORE_ROWS_MAX")]
    pub rows_max: Option<i64>,
    /// Default text-search configuration (CKAN: ckan.datastore.default_fts_lang).
    #[arg(long, env = "CKAN_DATASTORE_DEFAULT_FTS_LANG")]
    pub default_fts_lang: Option<String>,
    /// Milliseconds in timestamp output (CKAN: ckan.datastore.ms_in_timestamp).
    #[arg(long, env = "CKAN_DATASTORE_MS_IN_TIMESTAMP", num_args = 0..=1, default_missing_value = "true")]
    pub ms_in_timestamp: Option<bool>,
    /// Statement timeout for searches, in milliseconds (CKAN hard-codes 60000).
    #[arg(long, env = "CKAN_DATASTORE_STATEMENT_TIMEOUT_MS")]
    pub statement_timeout_ms: Option<u64>,
    /// Maximum number of pooled database connections.
    #[arg(long, env = "CKAN_DATASTORE_POOL_SIZE")]
    pub pool_size: Option<usize>,
    /// How stale a cached total may be after a write that bypasses CKAN, in milliseconds
    /// (0: totals are always exact; see docs/totals.md).
    #[arg(long, env = "CKAN_DATASTORE_TOTALS_MAX_STALENESS_MS")]
    pub totals_max_staleness_ms: Option<u64>,
    /// Memory bound of the totals cache, in bytes of keys.
    #[arg(long, env = "CKAN_DATASTORE_TOTALS_CACHE_BYTES")]
    pub totals_cache_bytes: Option<u64>,
    /// Honour `total_estimation_threshold` as CKAN ≤ 2.11 did: above the threshold, the planner's
    /// estimate instead of a count, with `total_was_estimated` (CKAN 2.12 ignores it).
    #[arg(long, env = "CKAN_DATASTORE_HONOUR_TOTAL_ESTIMATION", num_args = 0..=1, default_missing_value = "true")]
    pub honour_total_estimation: Option<bool>,
    /// Connections reserved for dumps (each streaming dump holds one).
    #[arg(long, env = "CKAN_DATASTORE_DUMP_POOL_SIZE")]
    pub dump_pool_size: Option<usize>,
    /// Compress dumps (gzip/zstd) for clients that accept it.
    #[arg(long, env = "CKAN_DATASTORE_DUMP_COMPRESSION")]
    pub dump_compression: Option<bool>,
    /// Serve every table to every caller, checking nothing (same as `--access-control public`).
    #[arg(long, env = "CKAN_DATASTORE_ALL_TABLES_PUBLIC", num_args = 0..=1, default_missing_value = "true")]
    pub all_tables_public: Option<bool>,
    /// Who may read what: `ckan-db` (CKAN's main database; the default when one is known),
    /// `ckan-api` (ask CKAN for every request) or `public` (everything, to everyone).
    #[arg(long, env = "CKAN_DATASTORE_ACCESS_CONTROL")]
    pub access_control: Option<crate::auth::config::AccessMode>,
    /// CKAN's main database, as the least-privilege role of src/sql_assets/authz_role.sql
    /// (default: `sqlalchemy.url` from the CKAN ini).
    #[arg(long, env = "CKAN_DATASTORE_CKAN_DB_URL")]
    pub ckan_db_url: Option<String>,
    /// CKAN's own URL, asked about callers only CKAN can identify (default: the site URL).
    #[arg(long, env = "CKAN_DATASTORE_CKAN_API_URL")]
    pub ckan_api_url: Option<String>,
    /// Reuse a decision that grants an anonymous caller access for this long (default 0).
    #[arg(long, env = "CKAN_DATASTORE_AUTH_GRANT_CACHE_MS")]
    pub auth_grant_cache_ms: Option<u64>,
    /// Reuse a denial for this long (default 0; denials can only delay access).
    #[arg(long, env = "CKAN_DATASTORE_AUTH_DENY_CACHE_MS")]
    pub auth_deny_cache_ms: Option<u64>,
}

/// The TOML file: the same keys as the flags, in snake_case.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    ckan_ini: Option<PathBuf>,
    listen: Option<String>,
    read_url: Option<String>,
    write_url: Option<String>,
    site_url: Option<String>,
    rows_default: Option<i64>,
    rows_max: Option<i64>,
    default_fts_lang: Option<String>,
    ms_in_timestamp: Option<bool>,
    statement_timeout_ms: Option<u64>,
    pool_size: Option<usize>,
    all_tables_public: Option<bool>,
    totals_max_staleness_ms: Option<u64>,
    totals_cache_bytes: Option<u64>,
    totals_cache_ttl_secs: Option<u64>,
    honour_total_estimation: Option<bool>,
    dump_compression: Option<bool>,
    dump_pool_size: Option<usize>,
    default_fts_index_field_types: Option<Vec<String>>,
    public_table_search: Option<Vec<String>>,
    access_control: Option<String>,
    ckan_db_url: Option<String>,
    ckan_api_url: Option<String>,
    auth_grant_cache_ms: Option<u64>,
    auth_deny_cache_ms: Option<u64>,
    /// Plugins in `ckan.plugins` the operator has checked leave authorization alone.
    auth_neutral_plugins: Option<Vec<String>>,
    sqlsearch_enabled: Option<bool>,
    sqlsearch_allowed_functions_file: Option<PathBuf>,
}

/// The settings in force, after merging every source.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub read_url: String,
    /// CKAN's write role, if configured: read-only use of `_table_stats`.
    pub write_url: Option<String>,
    pub site_url: String,
    pub rows_default: i64,
    pub rows_max: i64,
    pub default_fts_lang: String,
    pub ms_in_timestamp: bool,
    pub statement_timeout_ms: u64,
    pub pool_size: usize,
    /// Who may read what (auth/config.rs).
    pub access: crate::auth::config::AccessSettings,
    /// `datastore_search_sql` served (CKAN: ckan.datastore.sqlsearch.enabled, off by default).
    pub sqlsearch_enabled: bool,
    /// Its function allowlist (CKAN: ckan.datastore.sqlsearch.allowed_functions_file; None:
    /// the list CKAN 2.12.0 ships).
    pub sqlsearch_allowed_functions_file: Option<PathBuf>,
    /// What the DataTables view shows for NULL (CKAN: ckan.datatables.null_label, default "").
    pub datatables_null_label: String,
    /// Column types with their own full-text index (CKAN: ckan.datastore.default_fts_index_field_types).
    pub default_fts_index_field_types: Vec<String>,
    /// Tables searchable without a resource (CKAN: ckan.datastore.public_table_search).
    pub public_table_search: Vec<String>,
    /// Longest a cached total may lag a write that bypasses CKAN (0: always exact).
    pub totals_max_staleness_ms: u64,
    pub totals_cache_bytes: u64,
    pub totals_cache_ttl_secs: u64,
    /// `total_estimation_threshold` as CKAN ≤ 2.11 (off: as CKAN 2.12, ignored).
    pub honour_total_estimation: bool,
    /// Compress dumps when the client accepts gzip/zstd.
    pub dump_compression: bool,
    /// Connections reserved for streaming dumps.
    pub dump_pool_size: usize,
}

impl Settings {
    /// Defaults for everything but the database, as CKAN 2.12 ships them.
    pub fn with_read_url(read_url: impl Into<String>) -> Settings {
        Settings {
            listen: "127.0.0.1:8800".parse().expect("valid default address"),
            read_url: read_url.into(),
            write_url: None,
            site_url: "http://127.0.0.1:5000".into(),
            rows_default: 100,
            rows_max: 32000,
            default_fts_lang: "english".into(),
            ms_in_timestamp: true,
            statement_timeout_ms: 60_000,
            pool_size: 16,
            access: crate::auth::config::AccessSettings::public(),
            sqlsearch_enabled: false,
            sqlsearch_allowed_functions_file: None,
            datatables_null_label: String::new(),
            default_fts_index_field_types: Vec::new(),
            public_table_search: vec!["_table_metadata".into()],
            totals_max_staleness_ms: 3000,
            totals_cache_bytes: 64 * 1024 * 1024,
            totals_cache_ttl_secs: 3600,
            honour_total_estimation: false,
            dump_compression: true,
            dump_pool_size: 8,
        }
    }

    /// Merges flags/env, the TOML file and the CKAN ini, in that order of priority.
    pub fn load(args: &ConfigArgs) -> Result<Settings, ConfigError> {
        let file = match &args.config {
            Some(path) => read_toml(path)?,
            None => FileConfig::default(),
        };
        let ini_path = args.ckan_ini.clone().or_else(|| file.ckan_ini.clone());
        let ini = match &ini_path {
            Some(path) => CkanIni::read(path)?,
            None => CkanIni::default(),
        };

        let read_url = args
            .read_url
            .clone()
            .or(file.read_url)
            .or_else(|| ini.get("ckan.datastore.read_url"))
            .ok_or_else(|| ConfigError::Missing {
                key: "read_url".into(),
                hint: "pass --read-url, set CKAN_DATASTORE_READ_URL, or point --ckan-ini at the \
                       CKAN site's ini"
                    .into(),
            })?;
        let mut s = Settings::with_read_url(normalize_db_url(&read_url));
        let _: tokio_postgres::Config = s.read_url.parse().map_err(|e| ConfigError::Invalid {
            key: "read_url".into(),
            message: format!("not a PostgreSQL URL: {e}"),
        })?;

        if let Some(w) = args
            .write_url
            .clone()
            .or(file.write_url)
            .or_else(|| ini.get("ckan.datastore.write_url"))
        {
            let w = normalize_db_url(&w);
            let _: tokio_postgres::Config = w.parse().map_err(|e| ConfigError::Invalid {
                key: "write_url".into(),
                message: format!("not a PostgreSQL URL: {e}"),
            })?;
            s.write_url = Some(w);
        }
        if let Some(listen) = args.listen {
            s.listen = listen;
        } else if let Some(listen) = file.listen {
            s.listen = listen.parse().map_err(|e| ConfigError::Invalid {
                key: "listen".into(),
                message: format!("{e}"),
            })?;
        }
        if let Some(site) = args
            .site_url
            .clone()
            .or(file.site_url)
            .or_else(|| ini.get("ckan.site_url"))
        {
            s.site_url = site.trim_end_matches('/').to_string();
        }
        s.rows_default = pick_int(
            args.rows_default,
            file.rows_default,
            &ini,
            "ckan.datastore.search.rows_default",
        )?
        .unwrap_or(s.rows_default);
        s.rows_max = pick_int(
            args.rows_max,
            file.rows_max,
            &ini,
            "ckan.datastore.search.rows_max",
        )?
        .unwrap_or(s.rows_max);
        if s.rows_default < 0 || s.rows_max < 0 {
            return Err(ConfigError::Invalid {
                key: "ckan.datastore.search.rows_default / rows_max".into(),
                message: "must not be negative".into(),
            });
        }
        if let Some(lang) = args
            .default_fts_lang
            .clone()
            .or(file.default_fts_lang)
            .or_else(|| ini.get("ckan.datastore.default_fts_lang"))
        {
            s.default_fts_lang = lang;
        }
        s.ms_in_timestamp = match args.ms_in_timestamp.or(file.ms_in_timestamp) {
            Some(b) => b,
            None => match ini.get("ckan.datastore.ms_in_timestamp") {
                Some(v) => parse_ckan_bool("ckan.datastore.ms_in_timestamp", &v)?,
                None => s.ms_in_timestamp,
            },
        };
        if let Some(t) = args.statement_timeout_ms.or(file.statement_timeout_ms) {
            s.statement_timeout_ms = t;
        }
        if let Some(p) = args.pool_size.or(file.pool_size) {
            if p == 0 {
                return Err(ConfigError::Invalid {
                    key: "pool_size".into(),
                    message: "must be at least 1".into(),
                });
            }
            s.pool_size = p;
        }
        if let Some(v) = args
            .totals_max_staleness_ms
            .or(file.totals_max_staleness_ms)
        {
            s.totals_max_staleness_ms = v;
        }
        if let Some(v) = args.totals_cache_bytes.or(file.totals_cache_bytes) {
            s.totals_cache_bytes = v;
        }
        s.honour_total_estimation = args
            .honour_total_estimation
            .or(file.honour_total_estimation)
            .unwrap_or(false);
        if let Some(v) = args.dump_pool_size.or(file.dump_pool_size) {
            if v == 0 {
                return Err(ConfigError::Invalid {
                    key: "dump_pool_size".into(),
                    message: "must be at least 1".into(),
                });
            }
            s.dump_pool_size = v;
        }
        if let Some(v) = args.dump_compression.or(file.dump_compression) {
            s.dump_compression = v;
        }
        if let Some(v) = file.totals_cache_ttl_secs {
            s.totals_cache_ttl_secs = v;
        }
        s.sqlsearch_enabled = match file.sqlsearch_enabled {
            Some(b) => b,
            None => match ini.get("ckan.datastore.sqlsearch.enabled") {
                Some(v) => parse_ckan_bool("ckan.datastore.sqlsearch.enabled", &v)?,
                None => false,
            },
        };
        s.sqlsearch_allowed_functions_file = file.sqlsearch_allowed_functions_file.or_else(|| {
            ini.get("ckan.datastore.sqlsearch.allowed_functions_file")
                .map(PathBuf::from)
        });
        if let Some(label) = ini.get("ckan.datatables.null_label") {
            s.datatables_null_label = label;
        }
        let mode = match (args.access_control, &file.access_control) {
            (Some(m), _) => Some(m),
            (None, Some(m)) => Some(m.parse().map_err(|message| ConfigError::Invalid {
                key: "access_control".into(),
                message,
            })?),
            (None, None) => None,
        };
        let all_public = args.all_tables_public.or(file.all_tables_public) == Some(true);
        s.access = crate::auth::config::load(
            &ini,
            crate::auth::config::AccessOverrides {
                mode: if all_public {
                    Some(crate::auth::config::AccessMode::Public)
                } else {
                    mode
                },
                ckan_db_url: args.ckan_db_url.clone().or(file.ckan_db_url),
                ckan_api_url: args.ckan_api_url.clone().or(file.ckan_api_url),
                auth_neutral_plugins: file.auth_neutral_plugins.unwrap_or_default(),
                grant_cache_ms: args.auth_grant_cache_ms.or(file.auth_grant_cache_ms),
                deny_cache_ms: args.auth_deny_cache_ms.or(file.auth_deny_cache_ms),
            },
            &s.site_url,
        )?;
        if let Some(types) = file.default_fts_index_field_types.or_else(|| {
            ini.get("ckan.datastore.default_fts_index_field_types")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
        }) {
            s.default_fts_index_field_types = types;
        }
        if let Some(tables) = file.public_table_search.or_else(|| {
            ini.get("ckan.datastore.public_table_search")
                .map(|v| v.split_whitespace().map(str::to_string).collect())
        }) {
            s.public_table_search = tables;
        }
        Ok(s)
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

fn pick_int(
    flag: Option<i64>,
    file: Option<i64>,
    ini: &CkanIni,
    key: &str,
) -> Result<Option<i64>, ConfigError> {
    if let Some(v) = flag.or(file) {
        return Ok(Some(v));
    }
    match ini.get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::Invalid {
                key: key.into(),
                message: format!("expected an integer, got {v:?}"),
            }),
    }
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
}
