//! `datastore_search_sql` (docs/ckan-spec/ckan-datastore.md §7, docs/ckan-spec/ckan-auth.md §4), done safely: CKAN 2.12's
//! parse-and-allowlist checks with PostgreSQL's own parser, its per-table permission check
//! (resources found by id only), and more: the query runs on the read role only, on
//! connections that are read-only by default with `search_path` pinned to `public`, under the
//! statement timeout, re-serialized from its parse tree and wrapped in `LIMIT rows_max + 1`.
//! This module holds the parts: `sanitize` (parse and allowlist), `render` (psycopg2's value
//! rendering), `callers` (the per-caller concurrency limit) and the action's state;
//! `service/sql.rs` runs a query through them.

pub mod callers;
pub mod records;
pub mod render;
pub mod sanitize;

use sanitize::Functions;

/// The action's state: its function allowlist (None: the action is off, as in CKAN by default).
pub struct SqlSearch {
    pub functions: Functions,
    pub pool: crate::db::Pool,
    /// Queries running per caller (`sqlsearch_max_per_caller`).
    pub callers: callers::PerCaller,
}
