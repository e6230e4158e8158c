//! How `total` is computed. This is the single place the count query is decided, so a totals
//! cache can take it over.
//!
//! CKAN 2.12 counts with `count(*)` over the same FROM/WHERE (and DISTINCT select list) when
//! the search has a WHERE clause, is `distinct`, or targets a `_`-prefixed table; otherwise it
//! reads the cached row count in `_table_stats` through the *write* role. We only hold the read
//! role here, so the unfiltered total is an exact `count(*)` too: equal to CKAN's whenever
//! CKAN's cached value is current.

use crate::search::plan::Plan;
use crate::search::statement::Pieces;

/// A scalar subquery (without the surrounding parentheses) giving the total for `plan`.
pub fn count_sql(plan: &Plan, p: &Pieces) -> String {
    if p.where_.is_empty() && !plan.distinct && !plan.table.id.starts_with('_') {
        return format!("SELECT count(*) FROM {}", crate::sql::ident(&plan.table.id));
    }
    let distinct = if plan.distinct { "DISTINCT" } else { "" };
    format!(
        "SELECT count(*) FROM (SELECT {distinct} {} FROM {} {}) as t",
        p.select, p.from, p.where_
    )
}
