//! A drop-in server for the read side of CKAN's DataStore API (`datastore_search`,
//! `datastore_info`, `datastore_search_sql`, `/datastore/dump`, the DataTables view's ajax and
//! filtered download), answering byte for byte as CKAN 2.12 does, from CKAN's own tables.

pub mod api;
pub mod app;
pub mod auth;
pub mod catalog;
pub mod ckan_schema;
pub mod config;
pub mod datatables;
pub mod db;
pub mod db_size;
pub mod demo;
pub mod doctor;
pub mod dump;
pub mod error;
pub mod http_compat;
pub mod object_writer;
pub mod pgcluster;
pub mod pyjson;
pub mod python;
pub mod search;
pub mod search_sql;
pub mod service;
pub mod sql;
pub mod state;
