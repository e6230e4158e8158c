//! CKAN ini keys that change what CKAN answers on the paths we serve but that we do not read,
//! and `ckan.datastore.*` keys we do not know. `doctor` reports the ones a site's ini sets, so
//! an operator learns of a difference before a client does.

use super::ckan_ini::CkanIni;

/// A key CKAN 2.12 reads on our paths and we do not.
pub struct Unhonoured {
    pub key: &'static str,
    /// Whether this value makes CKAN answer differently from us (the defaults do not).
    pub differs: fn(&str) -> bool,
    /// What CKAN does with it that we do not.
    pub effect: &'static str,
    /// What an operator can do about it.
    pub fix: &'static str,
}

fn truthy(v: &str) -> bool {
    super::parse_ckan_bool("", v).unwrap_or(false)
}

fn not_blank(v: &str) -> bool {
    !v.trim().is_empty()
}

/// The keys, one row each.
pub const UNHONOURED: &[Unhonoured] = &[
    Unhonoured {
        key: "ckan.cors.origin_allow_all",
        differs: truthy,
        effect: "CKAN adds CORS headers (Access-Control-Allow-Origin: *) to API answers; \
                 ckan-datastore sends none, so browsers on other origins cannot read its answers",
        fix: "add the headers in nginx's ckan-datastore locations (add_header)",
    },
    Unhonoured {
        key: "ckan.cors.origin_whitelist",
        differs: not_blank,
        effect: "CKAN echoes a listed Origin in Access-Control-Allow-Origin; ckan-datastore \
                 sends no CORS headers",
        fix: "add the headers in nginx's ckan-datastore locations (add_header)",
    },
    Unhonoured {
        key: "ckan.root_path",
        differs: not_blank,
        effect: "CKAN serves under a path prefix; ckan-datastore answers only the root paths \
                 (/api/3/action/…)",
        fix: "rewrite the prefixed DataStore paths to the root ones in nginx before proxying",
    },
    Unhonoured {
        key: "ckan.cache_expires",
        differs: |v| v.trim() != "0",
        effect: "CKAN's Cache-Control max-age; ckan-datastore always sends CKAN's default \
                 `public, max-age=0, must-revalidate`",
        fix: "set the header in nginx's ckan-datastore locations if caches should keep answers",
    },
    Unhonoured {
        key: "ckan.locale_default",
        differs: |v| !matches!(v.trim(), "en" | ""),
        effect: "CKAN translates its validation messages; ckan-datastore answers CKAN's English \
                 ones",
        fix: "none in ckan-datastore: clients reading error texts see English",
    },
];

/// `ckan.datastore.*` keys that only CKAN's write side reads (nothing we answer depends on them).
const WRITE_SIDE: &[&str] = &[
    "ckan.datastore.default_fts_index_method",
    "ckan.datastore.background_calculate_record_count_delay",
];

/// One key of the ini that we do not honour, with why it matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub key: String,
    pub effect: String,
    pub fix: String,
}

/// The keys `ini` sets that we do not honour: the table's (when their value differs from
/// CKAN's default) and any `ckan.datastore.*` key neither the settings table nor `WRITE_SIDE`
/// knows (e.g. `ckan.datastore.sqlalchemy.pool_size`: our pools have their own settings).
pub fn findings(ini: &CkanIni) -> Vec<Finding> {
    let mut out = Vec::new();
    for u in UNHONOURED {
        if let Some(v) = ini.get(u.key) {
            if (u.differs)(&v) {
                out.push(Finding {
                    key: u.key.into(),
                    effect: u.effect.into(),
                    fix: u.fix.into(),
                });
            }
        }
    }
    let read = |k: &str| super::TABLE.iter().any(|row| row.ini == Some(k));
    for key in ini.keys() {
        if key.starts_with("ckan.datastore.") && !read(key) && !WRITE_SIDE.contains(&key) {
            let (effect, fix) = if key.starts_with("ckan.datastore.sqlalchemy.") {
                (
                    "CKAN's DataStore connection pool option, not read by ckan-datastore",
                    "size ckan-datastore's pools with pool_size, dump_pool_size and \
                     conn_max_lifetime_secs",
                )
            } else {
                (
                    "not read by ckan-datastore",
                    "check that it does not change what the DataStore read API answers",
                )
            };
            out.push(Finding {
                key: key.into(),
                effect: effect.into(),
                fix: fix.into(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_what_changes_answers_and_what_it_does_not_know() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckan.ini");
        std::fs::write(
            &path,
            "[app:main]\nckan.cors.origin_allow_all = true\nckan.cache_expires = 0\n\
             ckan.locale_default = en\nckan.root_path = /data/{{LANG}}\n\
             ckan.datastore.read_url = postgresql://x@h/d\n\
             ckan.datastore.search.rows_max = 10\n\
             ckan.datastore.default_fts_index_method = gist\n\
             ckan.datastore.sqlalchemy.pool_size = 20\nckan.datastore.sql_mode = strict\n",
        )
        .unwrap();
        let ini = CkanIni::read(&path).unwrap();
        let keys: Vec<String> = findings(&ini).into_iter().map(|f| f.key).collect();
        assert_eq!(
            keys,
            [
                "ckan.cors.origin_allow_all",
                "ckan.root_path",
                "ckan.datastore.sql_mode",
                "ckan.datastore.sqlalchemy.pool_size"
            ]
        );
        assert!(findings(&CkanIni::default()).is_empty());
    }
}
