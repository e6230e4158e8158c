//! `datastore_search`: parameters → plan → SQL → response.

pub mod execute;
pub mod filters;
pub mod params;
pub mod plan;
pub mod statement;
pub mod totals;
