//! The harness names the suites were written against, kept working: each
//! one is the single implementation in [`crate::support`] (start shopd
//! with `TestApp::builder()` there).
#![allow(dead_code, unused_imports)] // Not every suite uses every name.

use shopd::Settings;
use tempfile::TempDir;

use crate::pg::TestDatabase;
pub use crate::process::{ShopdProcess, shopd_command, spawn_process};
pub(crate) use crate::support::backend_tests;
pub use crate::support::{Backend, TestApp, detail, issues, require_tool, scratch, test_settings};

/// shopd with default settings on a fresh temp dir and a free port.
pub async fn spawn_app() -> TestApp {
    TestApp::builder().spawn().await
}

/// shopd with settings changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::builder().configure(configure).spawn().await
}

/// shopd over an existing data directory (e.g. to restart on it).
pub async fn spawn_app_in(dir: TempDir, configure: impl FnOnce(&mut Settings)) -> TestApp {
    TestApp::builder()
        .in_dir(dir)
        .configure(configure)
        .spawn()
        .await
}

/// shopd over `store`, e.g. a double that fails on purpose.
pub async fn spawn_app_on<S: shopd::store::Store>(store: S) -> TestApp {
    TestApp::builder().spawn_on(store).await
}

/// shopd on PostgreSQL database `database`, settings changed by `configure`.
pub async fn spawn_pg_app(
    database: TestDatabase,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    TestApp::builder()
        .postgres(database)
        .configure(configure)
        .spawn()
        .await
}
