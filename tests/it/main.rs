//! The integration tests: one binary, real PostgreSQL, our real server.

mod ddl;
mod freshness;
mod goldens;
mod harness;
