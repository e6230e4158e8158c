//! Access-control settings, read from the CKAN ini with CKAN's own keys and defaults
//! (`docs/access-control.md` lists them), plus the few that are ours.

use crate::config::ckan_ini::{normalize_db_url, parse_ckan_bool, CkanIni};
use crate::config::error::ConfigError;

use super::token::TokenVerifier;

/// How the server decides who may read a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessMode {
    /// Every table is readable by everyone (the demo, or sites with only public data).
    Public,
    /// Read CKAN's main database (strategy A), asking CKAN itself only for callers it alone can
    /// identify (session cookies) — the default against a CKAN site.
    CkanDb,
    /// Ask CKAN for every request (strategy B): for sites whose plugins change authorization.
    CkanApi,
}

impl std::str::FromStr for AccessMode {
    type Err = String;
    fn from_str(s: &str) -> Result<AccessMode, String> {
        match s {
            "public" => Ok(AccessMode::Public),
            "ckan-db" => Ok(AccessMode::CkanDb),
            "ckan-api" => Ok(AccessMode::CkanApi),
            _ => Err(format!(
                "expected one of ckan-db, ckan-api, public; got {s:?}"
            )),
        }
    }
}

/// Plugins of the CKAN 2.12.0 wheel that change nobody's read access (docs/ckan-spec/ckan-auth.md §6.1.1).
pub const AUTH_NEUTRAL_PLUGINS: &[&str] = &[
    "datastore",
    "datatables_view",
    "image_view",
    "text_view",
    "webpage_view",
    "video_view",
    "audio_view",
    "activity",
    "datapusher",
    "expire_api_token",
    "resource_proxy",
    "stats",
    "tracking",
    "tabledesigner",
    "multilingual_dataset",
    "multilingual_group",
    "multilingual_tag",
];

#[derive(Debug, Clone)]
pub struct AccessSettings {
    pub mode: AccessMode,
    /// CKAN's main database, as a least-privilege role (`src/sql_assets/authz_role.sql`).
    pub ckan_db_url: Option<String>,
    /// Where to ask CKAN (strategy B); defaults to `ckan.site_url`.
    pub ckan_api_url: Option<String>,
    /// `apitoken_header_name` (legacy `apikey_header_name`), default `Authorization`.
    pub token_header: String,
    /// Verifies API tokens (None: no key configured, every token is anonymous).
    pub verifier: Option<TokenVerifier>,
    pub allow_dataset_collaborators: bool,
    pub cascade_roles: Vec<String>,
    pub enable_cookie_auth_in_api: bool,
    pub session_cookie_name: String,
    pub remember_cookie_name: String,
    /// Plugins in `ckan.plugins` that are not known to leave authorization alone: when any
    /// is present (and not declared neutral by the operator) every request is asked of CKAN.
    pub unaudited_plugins: Vec<String>,
    /// How long a decision that *grants* access to an anonymous caller may be reused (0: never).
    pub grant_cache_ms: u64,
    /// How long a denial may be reused (0: never). Denials can only delay access.
    pub deny_cache_ms: u64,
}

impl AccessSettings {
    /// Every table public: no database of CKAN's, no key.
    pub fn public() -> AccessSettings {
        AccessSettings {
            mode: AccessMode::Public,
            ckan_db_url: None,
            ckan_api_url: None,
            token_header: "Authorization".into(),
            verifier: None,
            allow_dataset_collaborators: false,
            cascade_roles: vec!["admin".into()],
            enable_cookie_auth_in_api: true,
            session_cookie_name: "ckan".into(),
            remember_cookie_name: "remember_token".into(),
            unaudited_plugins: Vec::new(),
            grant_cache_ms: 0,
            deny_cache_ms: 0,
        }
    }

    /// Whether this request must be decided by CKAN itself whatever it carries.
    pub fn delegate_everything(&self) -> bool {
        self.mode == AccessMode::CkanApi || !self.unaudited_plugins.is_empty()
    }
}

/// Our own access settings, from flags/env/TOML: the `access` rows of the settings table in
/// `config/mod.rs`, which declares their flags, environment variables, TOML keys and defaults.
#[derive(Debug)]
pub struct AccessOverrides {
    /// Same as `access_control: Some(AccessMode::Public)`.
    pub all_tables_public: bool,
    /// None: `ckan-db` when CKAN's main database is known.
    pub access_control: Option<AccessMode>,
    /// None: `CKAN_SQLALCHEMY_URL`, else the ini's `sqlalchemy.url`, as CKAN reads them.
    pub ckan_db_url: Option<String>,
    /// None: the site URL.
    pub ckan_api_url: Option<String>,
    pub auth_grant_cache_ms: u64,
    pub auth_deny_cache_ms: u64,
    pub auth_neutral_plugins: Vec<String>,
}

/// Reads the CKAN keys (docs/ckan-spec/ckan-auth.md §6.1.1) from `ini`.
pub fn load(
    ini: &CkanIni,
    ov: AccessOverrides,
    site_url: &str,
) -> Result<AccessSettings, ConfigError> {
    let mut s = AccessSettings::public();
    let bool_key = |key: &str, default: bool| -> Result<bool, ConfigError> {
        match ini.get_checked(key)? {
            Some(v) => parse_ckan_bool(key, &v),
            None => Ok(default),
        }
    };
    // CKAN's CONFIG_FROM_ENV_VARS: CKAN_SQLALCHEMY_URL beats the ini.
    let main_db = std::env::var("CKAN_SQLALCHEMY_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .or(ini.get_checked("sqlalchemy.url")?);
    s.ckan_db_url = ov.ckan_db_url.or(main_db).map(|u| normalize_db_url(&u));
    if let Some(u) = &s.ckan_db_url {
        let _: tokio_postgres::Config = u.parse().map_err(|e| ConfigError::Invalid {
            key: "ckan_db_url".into(),
            message: format!("not a PostgreSQL URL: {e}"),
        })?;
    }
    s.ckan_api_url = Some(
        ov.ckan_api_url
            .unwrap_or_else(|| site_url.to_string())
            .trim_end_matches('/')
            .to_string(),
    );
    let mode = if ov.all_tables_public {
        Some(AccessMode::Public)
    } else {
        ov.access_control
    };
    s.mode = match mode {
        Some(m) => m,
        None if s.ckan_db_url.is_some() => AccessMode::CkanDb,
        None => {
            return Err(ConfigError::Missing {
                key: "ckan_db_url".into(),
                hint: "access control reads CKAN's main database: pass --ckan-db-url (a role \
                       made with src/sql_assets/authz_role.sql), or point --ckan-ini at the \
                       site's ini (sqlalchemy.url), or choose --access-control ckan-api / public"
                    .into(),
            })
        }
    };
    if s.mode == AccessMode::CkanDb && s.ckan_db_url.is_none() {
        return Err(ConfigError::Missing {
            key: "ckan_db_url".into(),
            hint: "--access-control ckan-db needs CKAN's main database".into(),
        });
    }
    s.token_header = ini
        .get_checked("apitoken_header_name")?
        .or(ini.get_checked("apikey_header_name")?)
        .unwrap_or_else(|| "Authorization".into());
    s.allow_dataset_collaborators = bool_key("ckan.auth.allow_dataset_collaborators", false)?;
    s.enable_cookie_auth_in_api = bool_key("ckan.auth.enable_cookie_auth_in_api", true)?;
    if let Some(v) = ini.get_present("ckan.auth.roles_that_cascade_to_sub_groups")? {
        s.cascade_roles = v.split_whitespace().map(str::to_string).collect();
    }
    if let Some(v) = ini.get_checked("SESSION_COOKIE_NAME")? {
        s.session_cookie_name = v;
    }
    if let Some(v) = ini.get_checked("REMEMBER_COOKIE_NAME")? {
        s.remember_cookie_name = v;
    }
    let plugins = ini.get_checked("ckan.plugins")?.unwrap_or_default();
    s.unaudited_plugins = plugins
        .split_whitespace()
        .filter(|p| !AUTH_NEUTRAL_PLUGINS.contains(p))
        .filter(|p| !ov.auth_neutral_plugins.iter().any(|n| n == p))
        .map(str::to_string)
        .collect();
    s.grant_cache_ms = ov.auth_grant_cache_ms;
    s.deny_cache_ms = ov.auth_deny_cache_ms;
    if s.mode != AccessMode::Public {
        s.verifier = token_verifier(ini)?;
    }
    Ok(s)
}

/// CKAN's `_get_secret(encode=False)` and `api_token.jwt.algorithm`.
fn token_verifier(ini: &CkanIni) -> Result<Option<TokenVerifier>, ConfigError> {
    const KEY: &str = "api_token.jwt.decode.secret";
    let secret_key = ini
        .get_checked("SECRET_KEY")?
        .or(ini.get_checked("beaker.session.secret")?);
    let spec = match (ini.get_checked(KEY)?, secret_key) {
        (Some(v), _) => v,
        (None, Some(k)) => format!("string:{k}"),
        // No key at all: CKAN itself refuses to start (SECRET_KEY is required).
        (None, None) => return Ok(None),
    };
    let invalid = |message: String| ConfigError::Invalid {
        key: KEY.into(),
        message,
    };
    let Some((kind, value)) = spec.split_once(':') else {
        return Err(invalid(
            "must be `string:<secret>` or `file:<path>` (CKAN fails on every token otherwise)"
                .into(),
        ));
    };
    let value = if kind == "file" {
        // The whole file, untrimmed, as Python's `read()` gives it.
        std::fs::read_to_string(value).map_err(|e| invalid(format!("cannot read {value}: {e}")))?
    } else {
        value.to_string()
    };
    if value.is_empty() {
        return Err(invalid("the secret is empty".into()));
    }
    let algorithm = ini
        .get_checked("api_token.jwt.algorithm")?
        .unwrap_or_else(|| "HS256".into());
    TokenVerifier::new(&algorithm, &value)
        .map(Some)
        .map_err(|e| ConfigError::Invalid {
            key: "api_token.jwt.algorithm / api_token.jwt.decode.secret".into(),
            message: e,
        })
}
