//! The one way a test starts shopd, and what every suite needs around it.
//!
//! - [`app`]: `TestApp::builder()` (zero2prod's `spawn_app` with a settings
//!   builder): shopd in this process on port 0, on the embedded store in a
//!   fresh temp dir or on a fresh PostgreSQL database, with or without a
//!   chat bus. The chat suites start it the same way, so every request and
//!   every chat goes through shopd's own connection loop.
//! - [`port::free_port`] for the programs that cannot listen on port 0
//!   (NATS, Prometheus, chromedriver), [`poll::eventually`] for every wait,
//!   [`ws::join`] for every chat member, [`skip::skip`] for every test that
//!   cannot run here (loud, and a failure when `CI` is set).
//!
//! Beside it: `crate::process` runs the built binary (signals, exit codes),
//! `crate::pg` and `crate::nats` start PostgreSQL and NATS servers.
//! `crate::helpers` keeps the names the suites were written against, as
//! re-exports of these.
#![allow(dead_code)] // Not every suite uses every helper.

pub mod app;
pub mod poll;
pub mod port;
pub mod reply;
pub mod skip;
pub mod ws;

pub(crate) use app::backend_tests;
pub use app::{Backend, TestApp, test_settings};
pub use poll::{GUARD, eventually};
pub use port::free_port;
pub use reply::{detail, issues, scratch};
pub use skip::{require_tool, skip};
pub use ws::{WsClient, join};
