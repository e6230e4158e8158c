//! The integration tests: one binary, real PostgreSQL, our real server.

mod goldens;
mod harness;
