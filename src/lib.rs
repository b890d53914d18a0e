//! shopd: a small online shop's backend in one binary — items and carts
//! over HTTP (persisted in sled), chat rooms over WebSocket, and Prometheus
//! metrics under the names of prometheus-fastapi-instrumentator.
//!
//! # Layout
//!
//! A request flows `http` (route, extract, validate) -> `store` (sled trees,
//! transactions) -> `domain` value -> JSON reply; any failure becomes an
//! [`http::ApiError`], which alone maps to statuses.
//!
//! - [`config`]: flags, `SHOPD_*` environment, `config.toml`, defaults.
//! - [`app`]: builds shopd from settings and serves it until shutdown.
//! - [`domain`]: items, carts, filters, validation; pure.
//! - [`store`]: the [`store::Store`] trait, its sled (embedded, default)
//!   and PostgreSQL backends, and the export format.
//! - [`http`]: routes per resource, errors, extraction, the connection loop.
//! - [`chat`]: rooms and one session task per socket.
//! - [`metrics`]: the recorder and the `/metrics` route.
//! - [`shutdown`]: the stop signal.
//! - [`transfer`]: `shopd export` and `shopd import`.

pub mod app;
pub mod chat;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod shutdown;
pub mod store;
pub mod transfer;

pub use app::{App, AppError, bind};
pub use config::{Cli, Command, ServeArgs, Settings};

/// `err` and its causes in one line, `outer: inner: innermost`, for logs
/// and start-up failures. A cause whose text the message already ends with
/// (many errors print their source in their own message) is not repeated.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.ends_with(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}
