//! shopd's integration tests: real HTTP and WebSockets against a real
//! server on port 0 over a fresh data directory per test.

mod carts;
mod chat;
mod damage;
mod full_disk;
mod helpers;
mod items;
mod metrics;
mod openapi;
mod operator;
mod prometheus_e2e;
mod robustness;
