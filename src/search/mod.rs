//! The `datastore_search` pipeline, one module per step: `params` (CKAN's schema → a typed
//! request), `plan` (the table's real columns → a typed plan: outputs, filter tree, ORDER BY,
//! next page), `filters` (the `filters` grammar and its WHERE clause), `statement` (every SQL
//! text, as pure functions of the plan), `totals` (the cache of totals and the rules that prove
//! an entry current), `execute` (running a statement on a connection). `service/search.rs`
//! strings them together.

pub mod execute;
pub mod filters;
pub mod params;
pub mod plan;
pub mod statement;
#[cfg(test)]
mod statement_tests;
pub mod totals;
