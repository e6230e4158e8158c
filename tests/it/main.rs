//! The integration tests: one binary, real PostgreSQL, our real server.

mod access;
mod browser;
mod cli;
mod ddl;
mod doctor;
mod dumps;
mod freshness;
mod goldens;
mod harness;
mod hostile;
mod nginx;
mod openapi;
mod package;
mod portal_scale;
mod search_sql;
mod search_sql_limits;
mod timeouts;
mod tls;
mod totals;
