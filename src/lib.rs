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
//! Every module, one line each (`main.rs` is the binary: flags, logging, run):
//!
//! - [`config`]: flags, `SHOPD_*` environment, `config.toml`, defaults,
//!   grouped by concern ([`config::Server`], `Limits`, `Storage`, `Chat`,
//!   `Admin`, `Backup`, `Log`).
//!   - `keys`: the one list of settings; `value`: reading and checking a
//!     value; `layers`: where it came from; `cli`: the commands and their
//!     flags; `secret`: the admin token.
//! - [`app`]: builds shopd from settings and serves it until shutdown.
//! - [`domain`]: items, carts, filters, validation, path-segment decoding; pure.
//!   - `item`, `cart`: the values; `validate`: bodies and ids, pydantic-style issues.
//! - [`store`]: the [`store::Store`] trait and its backends.
//!   - `idempotency`: the answers kept with `Idempotency-Key`s (what both
//!     backends store, and the background pruning of expired keys).
//!   - `export`: the NDJSON export format; `stream`: how an export leaves a
//!     store, in bounded chunks; `stats`: store sizes for `/metrics`;
//!     `scan`: the bounded pool where scans and exports run, off the runtime.
//!   - `sled`: the embedded default (`items`, `carts`, `transfer`: the
//!     operations; `records`: the one write gate; `index`: in-memory price
//!     and cart-total indexes; `cart_writer`: the writer thread's batched
//!     transactions (adds, keyed writes); `codec`, `ids`, `durability`,
//!     `snapshot`, `open`, `check`, `manifest`).
//!   - `postgres`: PostgreSQL (`items`, `carts`: the SQL of each; `kept`:
//!     idempotency keys; `client`: pooled connection with retries;
//!     `schema`, `errors`, `transfer`,
//!     `url`: the password-hiding database URL).
//! - [`http`]: the route table, handlers, errors, extraction, the connection loop.
//!   - `routes`: **the route table**, every route declared once (method,
//!     path template, handler, OpenAPI operation, metrics label, guard);
//!     routing, 405's `Allow`, the `handler` label and the document all
//!     come from it.
//!   - `router`: routes each request by the table inside one warp filter
//!     (`template`: how a path fits a template; `call`: what a handler gets).
//!   - `layers`: what wraps every route once, the place for a new
//!     cross-cutting layer (`measure`: the request metrics; `access`: the
//!     access log, a queue and its own writer thread; `cors`: CORS headers
//!     and preflights; `rate`: the request rate per client; `idempotency`:
//!     `Idempotency-Key` on writes: check, in flight, replay).
//!   - `client`: who a request comes from (the peer, or what a trusted
//!     proxy forwards); `chat_origin`: which pages may open a chat.
//!   - `items`, `carts`, `health`, `admin`, `metrics`, `chat_page`, `docs`:
//!     the handlers, one file per resource.
//!   - `error`: the one status mapping and the error replies' docs;
//!     `extract`: body and path ids; `query`: list filters; `reply`: bodies.
//!   - `openapi`: the API document, from the table and the running settings.
//!   - `server`: the connection loop; `watch`: per-connection deadlines
//!     (`socket`: the watched socket, hyper's error replies given a body;
//!     `peers`: open connections per address).
//! - [`chat`]: rooms over WebSocket.
//!   - `rooms`: the registry; `session`: one task per socket; `deliver`:
//!     flow control; `pace`: rate limit; `close`: close reasons; `names`:
//!     user names; `bus`: rooms across instances over NATS (`wire`: the
//!     envelope and subjects; `urls`: the `--chat-bus` value; `events`:
//!     the connection's state; `link`: a room's subscription and relay;
//!     `journal`: the history stream in JetStream, offsets stored with
//!     optimistic concurrency, the shared token secret; `follow`: a room's
//!     lines read back from the stream, in one order on every instance).
//!   - `upgrade`: the WebSocket handshake, with sized buffers.
//!   - `history`: each room's last lines, offsets and epoch (`disk`: kept
//!     in the data directory); `protocol`: the `shopd.chat.v1` frames and
//!     the resume query; `token`: signed resume tokens.
//! - [`metrics`]: the recorder and its rendering; `names`: the families;
//!   `process`: `process_*` from `/proc`.
//! - [`open_files`]: raises the open-file limit to what the settings need.
//! - [`ops`]: the streaming export (`export`: to a response or a file) and
//!   scheduled backups (`backup`: the scheduler; `files`: the backup
//!   directory, names, fsync and pruning).
//! - [`shutdown`]: the stop signals and the drain before a stop.
//! - [`transfer`]: `shopd export` and `shopd import`.

pub mod app;
pub mod chat;
pub mod config;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod open_files;
pub mod ops;
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
