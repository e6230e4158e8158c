//! The error every configuration step returns: it names the offending key so the operator knows
//! what to fix. Its own module so that both the CKAN ini reader and the access settings
//! (`auth/config.rs`) can use it without importing `config` back.

use std::path::PathBuf;

/// Configuration errors name the offending key so the operator knows what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid value for `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("missing setting `{key}` (or `ckan.datastore.read_url` in the CKAN ini): {hint}")]
    Missing { key: String, hint: String },
}
