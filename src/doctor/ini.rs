//! The CKAN ini: plugins that change who may read what, and keys we do not honour.

use super::report::Check;
use crate::auth::config::AccessMode;
use crate::config::unhonoured::findings;
use crate::config::{CkanIni, Settings};

/// `ckan.plugins`: CKAN must serve the DataStore itself (or we would answer what CKAN does not),
/// and plugins not known to leave read access alone send every request to CKAN.
pub fn plugins(settings: &Settings, ini: &CkanIni) -> Check {
    const NAME: &str = "ckan.plugins";
    if ini.path.is_none() {
        return Check::skip(
            NAME,
            "no CKAN ini (--ckan-ini): the site's plugins are unknown",
        );
    }
    let listed = ini.get("ckan.plugins").unwrap_or_default();
    if !listed.split_whitespace().any(|p| p == "datastore") {
        return Check::fail(
            NAME,
            "does not list `datastore`: CKAN itself serves no DataStore API, ckan-datastore would",
            "add datastore to ckan.plugins, or do not route the DataStore paths to ckan-datastore",
        );
    }
    if settings.access.mode == AccessMode::Public {
        return Check::skip(NAME, "access control is public: plugins are not consulted");
    }
    let unaudited = &settings.access.unaudited_plugins;
    if unaudited.is_empty() {
        return Check::ok(
            NAME,
            "only plugins that leave read access alone: access decided from CKAN's database",
        );
    }
    Check::warn(
        NAME,
        format!(
            "lists {}, which may change who can read what: every request is asked of CKAN \
             (slower)",
            unaudited.join(", ")
        ),
        "once you have checked a plugin changes no read access (docs/access-control.md), list \
         it in auth_neutral_plugins in the TOML file",
    )
}

/// The ini keys that change CKAN's answers on our paths and that we do not honour.
pub fn unhonoured_keys(ini: &CkanIni) -> Vec<Check> {
    const NAME: &str = "ini keys";
    if ini.path.is_none() {
        return vec![Check::skip(NAME, "no CKAN ini (--ckan-ini)")];
    }
    let found = findings(ini);
    if found.is_empty() {
        return vec![Check::ok(
            NAME,
            "every key set that changes the DataStore read API is honoured",
        )];
    }
    found
        .into_iter()
        .map(|f| Check::warn(f.key, f.effect, f.fix))
        .collect()
}
