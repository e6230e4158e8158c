//! The machinery behind the settings table in `config/mod.rs`.
//!
//! [`settings_table!`] turns one declaration per setting into everything that used to name it
//! separately: the clap flag and its environment variable (`ConfigArgs`), the TOML key
//! (`FileConfig`), the CKAN ini key, the default, the checks, and the merge that walks the sources
//! in priority order. [`Value`] says how each type is read from each source.
//!
//! A row of the table:
//!
//! ```text
//! /// Doc comment: the flag's `--help` text and the `Settings` field's documentation.
//! name: Type {
//!     flag: "--name" (extra clap arguments, optional), env: "ENV_VAR",   // optional, together
//!     toml: name,                                  // optional: the TOML key
//!     ini: "ckan.key",                             // optional: the CKAN ini key
//!     default: expr,                               // optional: else Type's Default (None, ...)
//!     required: "hint",                            // optional: no default, missing is an error
//!     check: fn(&str, Type) -> Result<Type, _>,    // optional: applied to a value that was set
//!     after: fn(&Dest) -> Result<(), _>,           // optional: run once the row is merged
//! }
//! ```
//!
//! The entries come in that order, each ending with a comma. The sources are tried flag, then
//! environment variable (clap merges the two), then TOML, then CKAN ini; the first that has a
//! value wins. Rows are merged in table order, required rows first, so errors come in that order.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::ckan_ini::{parse_ckan_bool, CkanIni};
use super::error::ConfigError;
use crate::auth::config::AccessMode;

/// How a setting's type is read from each source: clap parses the flag and its environment
/// variable into `Flag`, serde the TOML value into `Toml`; the CKAN ini gives a string.
pub trait Value: Sized {
    type Flag;
    type Toml;
    fn from_flag(v: Self::Flag) -> Self;
    /// `key` is the TOML key, for the error.
    fn from_toml(key: &str, v: Self::Toml) -> Result<Self, ConfigError>;
    /// `key` is the CKAN ini key, for the error.
    fn from_ini(key: &str, v: String) -> Result<Self, ConfigError>;
}

/// Types read the same way from the flag and the TOML file; `from_ini` reads the ini's string.
macro_rules! value_as_is {
    ($($t:ty => $from_ini:path;)*) => {$(
        impl Value for $t {
            type Flag = $t;
            type Toml = $t;
            fn from_flag(v: $t) -> $t {
                v
            }
            fn from_toml(_key: &str, v: $t) -> Result<$t, ConfigError> {
                Ok(v)
            }
            fn from_ini(key: &str, v: String) -> Result<$t, ConfigError> {
                $from_ini(key, v)
            }
        }
    )*};
}

value_as_is! {
    String => string;
    PathBuf => path;
    bool => boolean;
    i64 => integer;
    u64 => integer;
    usize => integer;
    Vec<String> => list;
}

fn string(_key: &str, v: String) -> Result<String, ConfigError> {
    Ok(v)
}

fn path(_key: &str, v: String) -> Result<PathBuf, ConfigError> {
    Ok(PathBuf::from(v))
}

fn boolean(key: &str, v: String) -> Result<bool, ConfigError> {
    parse_ckan_bool(key, &v)
}

fn integer<T: std::str::FromStr>(key: &str, v: String) -> Result<T, ConfigError> {
    v.trim().parse().map_err(|_| ConfigError::Invalid {
        key: key.into(),
        message: format!("expected an integer, got {v:?}"),
    })
}

/// Whitespace-separated, as CKAN's `aslist`.
fn list(_key: &str, v: String) -> Result<Vec<String>, ConfigError> {
    Ok(v.split_whitespace().map(str::to_string).collect())
}

/// Types the TOML file spells as a string, checked when the setting is merged (clap checks the
/// flag's when it parses the command line); `$message` words the parse error.
macro_rules! value_from_str {
    ($($t:ty => $message:path;)*) => {$(
        impl Value for $t {
            type Flag = $t;
            type Toml = String;
            fn from_flag(v: $t) -> $t {
                v
            }
            fn from_toml(key: &str, v: String) -> Result<$t, ConfigError> {
                v.parse().map_err(|e| ConfigError::Invalid {
                    key: key.into(),
                    message: $message(e),
                })
            }
            fn from_ini(key: &str, v: String) -> Result<$t, ConfigError> {
                Self::from_toml(key, v)
            }
        }
    )*};
}

value_from_str! {
    SocketAddr => display;
    AccessMode => std::convert::identity;
}

fn display(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A setting without a default: None until a source sets it.
impl<T: Value> Value for Option<T> {
    type Flag = T::Flag;
    type Toml = T::Toml;
    fn from_flag(v: T::Flag) -> Option<T> {
        Some(T::from_flag(v))
    }
    fn from_toml(key: &str, v: T::Toml) -> Result<Option<T>, ConfigError> {
        T::from_toml(key, v).map(Some)
    }
    fn from_ini(key: &str, v: String) -> Result<Option<T>, ConfigError> {
        T::from_ini(key, v).map(Some)
    }
}

/// The value of the highest-priority source that has one: the flag (or its environment
/// variable), the TOML file (with its key), then the CKAN ini (with the key to look up; an
/// empty or broken value there counts as unset, as `CkanIni::get` says).
pub fn layered<T: Value>(
    flag: Option<T::Flag>,
    toml: Option<(&str, T::Toml)>,
    ini: Option<(&CkanIni, &str)>,
) -> Result<Option<T>, ConfigError> {
    if let Some(v) = flag {
        return Ok(Some(T::from_flag(v)));
    }
    if let Some((key, v)) = toml {
        return T::from_toml(key, v).map(Some);
    }
    match ini.and_then(|(ini, key)| Some((key, ini.get(key)?))) {
        Some((key, v)) => T::from_ini(key, v).map(Some),
        None => Ok(None),
    }
}

/// `--name` as clap's `long` wants it (evaluated at compile time: a flag without `--` does not
/// build).
pub const fn long(flag: &'static str) -> &'static str {
    match flag.as_bytes() {
        [b'-', b'-', rest @ ..] => match std::str::from_utf8(rest) {
            Ok(name) => name,
            Err(_) => panic!("flag is not UTF-8"),
        },
        _ => panic!("a flag starts with `--`"),
    }
}

/// One row of the table, as data (the README's table is checked against these, and `doctor`
/// tells the CKAN ini keys read from those it does not).
#[derive(Debug)]
pub struct Row {
    pub name: &'static str,
    pub flag: Option<&'static str>,
    pub env: Option<&'static str>,
    pub toml: Option<&'static str>,
    pub ini: Option<&'static str>,
}

/// See the module documentation. Three groups of rows: `sources` (where the other settings
/// come from: flags and TOML keys only, read by `Settings::load` itself), `settings` (the fields
/// of `Settings`, plus the `derived` fields no source sets) and `access` (the fields of
/// `auth::config::AccessOverrides`, which `auth::config::load` completes from the CKAN ini).
macro_rules! settings_table {
    (
        sources { $($sources:tt)* }
        settings { $($settings:tt)* }
        derived { $($derived:tt)* }
        access { $($access:tt)* }
    ) => {
        $crate::config::declare::settings_table!(@args [] $($sources)* $($settings)* $($access)*);
        $crate::config::declare::settings_table!(@file $($sources)* $($settings)* $($access)*);
        $crate::config::declare::settings_table!(@struct [$($derived)*] $($settings)*);
        $crate::config::declare::settings_table!(
            @merge Settings, settings_defaults, merge_settings, [$($derived)*] $($settings)*
        );
        $crate::config::declare::settings_table!(
            @merge AccessOverrides, access_defaults, merge_access, [] $($access)*
        );
    };

    // `ConfigArgs`, one row at a time: a row with a flag adds a field.
    (@args [$($fields:tt)*]) => {
        /// Flags and environment variables shared by every subcommand that talks to a database.
        #[derive(Debug, Clone, Default, clap::Args)]
        pub struct ConfigArgs {
            $($fields)*
        }
    };
    (@args [$($fields:tt)*]
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty {
            flag: $flag:literal $(($($arg:tt)*))?, env: $env:literal,
            $($body:tt)*
        }
        $($rest:tt)*
    ) => {
        $crate::config::declare::settings_table!(@args [
            $($fields)*
            $(#[doc = $doc])*
            #[arg(
                long = { const LONG: &str = $crate::config::declare::long($flag); LONG },
                env = $env $(, $($arg)*)?
            )]
            pub $name: Option<<$ty as $crate::config::declare::Value>::Flag>,
        ] $($rest)*);
    };
    (@args [$($fields:tt)*]
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty { $($body:tt)* }
        $($rest:tt)*
    ) => {
        $crate::config::declare::settings_table!(@args [$($fields)*] $($rest)*);
    };

    // The TOML file's struct, and the table as data for tests.
    (@file $(
        $(#[doc = $doc:literal])*
        $name:ident: $ty:ty {
            $(flag: $flag:literal $(($($arg:tt)*))?, env: $env:literal,)?
            $(toml: $toml:ident,)?
            $(ini: $ini:literal,)?
            $(default: $default:expr,)?
            $(required: $hint:expr,)?
            $(check: $check:expr,)?
            $(after: $after:expr,)?
        }
    )*) => {
        /// The TOML file (`--config`): the table's TOML keys.
        #[derive(Debug, Default, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct FileConfig {
            $($( $toml: Option<<$ty as $crate::config::declare::Value>::Toml>, )?)*
        }

        /// Every row of the table, as data.
        pub const TABLE: &[$crate::config::declare::Row] = &[$(
            $crate::config::declare::Row {
                name: stringify!($name),
                flag: $crate::config::declare::settings_table!(@str $($flag)?),
                env: $crate::config::declare::settings_table!(@str $($env)?),
                toml: $crate::config::declare::settings_table!(@key $($toml)?),
                ini: $crate::config::declare::settings_table!(@str $($ini)?),
            },
        )*];
    };
    (@str) => { None };
    (@str $v:literal) => { Some($v) };
    (@key) => { None };
    (@key $v:ident) => { Some(stringify!($v)) };

    // `Settings` itself.
    (@struct [$( $(#[doc = $ddoc:literal])* $dname:ident: $dty:ty = $ddefault:expr, )*]
        $( $(#[doc = $doc:literal])* $name:ident: $ty:ty { $($body:tt)* } )*
    ) => {
        /// The settings in force, after merging every source.
        #[derive(Debug, Clone)]
        pub struct Settings {
            $( $(#[doc = $doc])* pub $name: $ty, )*
            $( $(#[doc = $ddoc])* pub $dname: $dty, )*
        }
    };

    // The defaults, and the merge of one group into its struct.
    (@merge $dest:ident, $defaults:ident, $merge:ident,
        [$( $(#[doc = $ddoc:literal])* $dname:ident: $dty:ty = $ddefault:expr, )*]
        $(
            $(#[doc = $doc:literal])*
            $name:ident: $ty:ty {
                $(flag: $flag:literal $(($($arg:tt)*))?, env: $env:literal,)?
                $(toml: $toml:ident,)?
                $(ini: $ini:literal,)?
                $(default: $default:expr,)?
                $(required: $hint:expr,)?
                $(check: $check:expr,)?
                $(after: $after:expr,)?
            }
        )*
    ) => {
        fn $defaults() -> $dest {
            $dest {
                $( $name: $crate::config::declare::settings_table!(@default $($default)?), )*
                $( $dname: $ddefault, )*
            }
        }

        fn $merge(
            args: &ConfigArgs,
            file: &mut FileConfig,
            ini: &$crate::config::ckan_ini::CkanIni,
        ) -> Result<$dest, $crate::config::error::ConfigError> {
            let _ = ini; // a group need not have CKAN ini keys
            let mut out = $defaults();
            $( $crate::config::declare::settings_table!(@row required, out, args, file, ini,
                $name: $ty, [$($hint)?] [$($flag)?] [$($toml)?] [$($ini)?] [$($check)?] [$($after)?]); )*
            $( $crate::config::declare::settings_table!(@row optional, out, args, file, ini,
                $name: $ty, [$($hint)?] [$($flag)?] [$($toml)?] [$($ini)?] [$($check)?] [$($after)?]); )*
            Ok(out)
        }
    };
    (@default) => { ::core::default::Default::default() };
    (@default $default:expr) => { $default };

    // One row of the merge: required rows in the first pass, the others in the second.
    (@row required, $out:ident, $args:ident, $file:ident, $ini:ident, $name:ident: $ty:ty,
        [] $($rest:tt)*) => {};
    (@row optional, $out:ident, $args:ident, $file:ident, $ini:ident, $name:ident: $ty:ty,
        [$hint:expr] $($rest:tt)*) => {};
    (@row $pass:ident, $out:ident, $args:ident, $file:ident, $ini:ident, $name:ident: $ty:ty,
        [$($hint:expr)?] [$($flag:literal)?] [$($toml:ident)?] [$($key:literal)?]
        [$($check:expr)?] [$($after:expr)?]
    ) => {
        match $crate::config::declare::layered::<$ty>(
            $crate::config::declare::settings_table!(@flag $args.$name $($flag)?),
            $crate::config::declare::settings_table!(@toml $file $($toml)?),
            $crate::config::declare::settings_table!(@ini $ini $($key)?),
        )? {
            Some(v) => {
                $( let v = $check(stringify!($name), v)?; )?
                $out.$name = v;
            }
            None => {
                $( return Err($crate::config::error::ConfigError::Missing {
                    key: stringify!($name).into(),
                    hint: $hint.into(),
                }); )?
            }
        }
        $( $after(&$out)?; )?
    };
    (@flag $args:ident . $name:ident) => { None };
    (@flag $args:ident . $name:ident $flag:literal) => { $args.$name.clone() };
    (@toml $file:ident) => { None };
    (@toml $file:ident $toml:ident) => { $file.$toml.take().map(|v| (stringify!($toml), v)) };
    (@ini $ini:ident) => { None };
    (@ini $ini:ident $key:literal) => { Some(($ini, $key)) };
}

pub(crate) use settings_table;
