//! shopd's integration tests: real HTTP and WebSockets against a real
//! server on port 0 over a fresh data directory per test.
// Test fixtures build strings for clarity, not speed; the UI's file names
// are lower case.
#![allow(
    clippy::format_push_string,
    clippy::format_collect,
    clippy::case_sensitive_file_extension_comparisons
)]

mod alerts;
mod backup;
mod balancer;
mod browser;
mod carts;
mod chat;
mod chat_bus;
mod chat_page;
mod chat_page_resume;
mod chat_resume;
mod chat_stream;
mod chat_takeover;
mod check;
mod clients;
mod cluster;
mod conditional;
mod cors;
mod damage;
mod deploy;
mod doc_links;
mod drain;
mod exposition;
mod failing_store;
mod full_disk;
mod helpers;
mod idempotency;
mod items;
mod limits;
mod list_filters;
mod lists;
mod metrics;
mod nats;
mod openapi;
mod operator;
mod pg;
mod postgres;
mod process;
mod prometheus_e2e;
mod raw;
mod readme;
mod robustness;
mod rolling;
mod rolling_chat;
mod routing;
mod storefront;
mod support;
mod unix_tools;
