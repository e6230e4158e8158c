//! Reading a CKAN site's own ini file, as CKAN reads it, and CKAN's ways of spelling values.

use std::path::Path;

use super::error::ConfigError;

/// CKAN's `asbool`: true/yes/on/y/t/1 and false/no/off/n/f/0, case-insensitive.
pub fn parse_ckan_bool(key: &str, value: &str) -> Result<bool, ConfigError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "t" | "1" => Ok(true),
        "false" | "no" | "off" | "n" | "f" | "0" => Ok(false),
        _ => Err(ConfigError::Invalid {
            key: key.into(),
            message: format!("expected a boolean, got {value:?}"),
        }),
    }
}

/// SQLAlchemy URLs may name a driver (`postgresql+psycopg2://`); libpq-style clients do not.
pub fn normalize_db_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest))
            if scheme.starts_with("postgresql+") || scheme.starts_with("postgres+") =>
        {
            format!("postgresql://{rest}")
        }
        _ => url.to_string(),
    }
}

/// The `[app:main]` section of a CKAN ini file, read as CKAN's `CKANConfigLoader` reads it:
/// Python's `ConfigParser` with case-preserving keys, `[DEFAULT]` values inherited, and
/// `%(name)s` interpolation (from the section, `[DEFAULT]`, `here`, `__file__` and `CKAN_*`
/// environment variables). Generated ini files rely on it: `string:%(SECRET_KEY)s`.
#[derive(Debug, Default)]
pub struct CkanIni {
    raw: std::collections::HashMap<String, String>,
    /// The file read (None: no ini was given).
    pub path: Option<std::path::PathBuf>,
}

impl CkanIni {
    pub fn read(path: &Path) -> Result<CkanIni, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let abs = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let here = abs
            .parent()
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| ".".into());
        let mut defaults: std::collections::HashMap<String, String> = std::env::vars()
            .filter(|(k, _)| k.starts_with("CKAN_"))
            .collect();
        defaults.insert("__file__".into(), abs.display().to_string());
        defaults.insert("here".into(), here);
        let mut main = std::collections::HashMap::new();
        #[derive(PartialEq)]
        enum Section {
            Default,
            Main,
            Other,
        }
        let mut section = Section::Other;
        let mut last_key: Option<String> = None;
        for (lineno, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if trimmed.starts_with('[') {
                if !trimmed.ends_with(']') {
                    return Err(ConfigError::Parse {
                        path: path.into(),
                        message: format!("line {}: unterminated section header", lineno + 1),
                    });
                }
                section = match &trimmed[1..trimmed.len() - 1] {
                    "DEFAULT" => Section::Default,
                    "app:main" => Section::Main,
                    _ => Section::Other,
                };
                last_key = None;
                continue;
            }
            if section == Section::Other {
                continue;
            }
            let target = if section == Section::Main {
                &mut main
            } else {
                &mut defaults
            };
            // configparser continuation lines are indented.
            if raw.starts_with([' ', '\t']) {
                if let Some(k) = &last_key {
                    if let Some(v) = target.get_mut(k) {
                        v.push('\n');
                        v.push_str(trimmed);
                        continue;
                    }
                }
            }
            let Some((k, v)) = trimmed.split_once(['=', ':']) else {
                return Err(ConfigError::Parse {
                    path: path.into(),
                    message: format!("line {}: expected `key = value`", lineno + 1),
                });
            };
            let key = k.trim().to_string();
            target.insert(key.clone(), v.trim().to_string());
            last_key = Some(key);
        }
        for (k, v) in defaults {
            main.entry(k).or_insert(v);
        }
        Ok(CkanIni {
            raw: main,
            path: Some(path.to_path_buf()),
        })
    }

    /// The keys set in `[app:main]` (and inherited from `[DEFAULT]`), sorted.
    pub fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.raw.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }

    /// The value with `%(name)s` expanded, or None when unset or empty.
    pub fn get(&self, key: &str) -> Option<String> {
        self.interpolated(key)
            .ok()
            .flatten()
            .filter(|v| !v.is_empty())
    }

    /// The value even when empty (for lists, where empty means "none" rather than "default").
    pub fn get_present(&self, key: &str) -> Result<Option<String>, ConfigError> {
        self.interpolated(key)
    }

    /// Like `get`, but a broken interpolation is an error naming the key.
    pub fn get_checked(&self, key: &str) -> Result<Option<String>, ConfigError> {
        Ok(self.interpolated(key)?.filter(|v| !v.is_empty()))
    }

    fn interpolated(&self, key: &str) -> Result<Option<String>, ConfigError> {
        let Some(raw) = self.raw.get(key) else {
            return Ok(None);
        };
        let mut out = String::new();
        self.expand(key, raw, 0, &mut out)?;
        Ok(Some(out))
    }

    /// configparser's BasicInterpolation: `%%` is a percent sign, `%(name)s` another option.
    fn expand(
        &self,
        key: &str,
        value: &str,
        depth: usize,
        out: &mut String,
    ) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::Invalid {
            key: key.into(),
            message,
        };
        if depth > 10 {
            return Err(bad("interpolation nested too deeply".into()));
        }
        let mut rest = value;
        while let Some(i) = rest.find('%') {
            out.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(r) = rest.strip_prefix('%') {
                out.push('%');
                rest = r;
            } else if let Some(r) = rest.strip_prefix('(') {
                let Some(close) = r.find(")s") else {
                    return Err(bad(format!("bad interpolation syntax in {value:?}")));
                };
                let name = &r[..close];
                let Some(v) = self.raw.get(name) else {
                    return Err(bad(format!("refers to `{name}`, which is not set")));
                };
                self.expand(key, v, depth + 1, out)?;
                rest = &r[close + 2..];
            } else {
                return Err(bad(format!(
                    "'%' must be followed by '%' or '(' in {value:?}"
                )));
            }
        }
        out.push_str(rest);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_like_configparser() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckan.ini");
        std::fs::write(
            &path,
            "[DEFAULT]\nbase = postgresql://u:p@h\n[other]\nSECRET_KEY = wrong\n\
             [app:main]\nSECRET_KEY = k%%1\nsecret = string:%(SECRET_KEY)s\n\
             url = %(base)s/db\nstorage = %(here)s/files\nbroken = %(nope)s\n",
        )
        .unwrap();
        let ini = CkanIni::read(&path).unwrap();
        assert_eq!(ini.get("secret").as_deref(), Some("string:k%1"));
        assert_eq!(ini.get("url").as_deref(), Some("postgresql://u:p@h/db"));
        let here = dir.path().canonicalize().unwrap();
        assert_eq!(
            ini.get("storage"),
            Some(format!("{}/files", here.display()))
        );
        let err = ini.get_checked("broken").unwrap_err();
        assert!(err.to_string().contains("broken"), "{err}");
    }
}
