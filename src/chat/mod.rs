//! Chat rooms over WebSocket at `/chat/{chat_name}`.
//!
//! Everyone connected under the same percent-decoded name is in one room.
//! Each text a member sends reaches every other member of the room as
//! `{user name} :: {text}`; the server sends nothing else.
//!
//! # Layout
//!
//! - this file: the [`Rooms`] handle and the [`route`] that upgrades;
//! - `rooms`: the registry, rooms and members, delivery into the members'
//!   bounded queues;
//! - `session`: one socket, a reader loop plus a forwarder task;
//! - `close`: close codes and the signal that asks a session to close;
//! - `names`: random user names;
//! - `page/`: the chat page's HTML, CSS and JavaScript, which
//!   `http::chat_page` serves at `GET /chat`.
//!
//! # Bounds
//!
//! Each member has an outgoing queue of `queue_len` lines. Delivery never
//! waits: a member whose queue is full is closed with 1008 and the room
//! goes on. Texts over `max_message_bytes` close with 1009 and binary
//! messages with 1003. Shutdown closes every connection with 1001.

mod close;
mod names;
mod rooms;
mod session;

use std::sync::Arc;
use std::time::Duration;

use percent_encoding::percent_decode_str;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::{Reply, Response};
use warp::ws::Ws;

use close::CloseReason;
use rooms::Registry;
use session::Session;

/// Longest [`Rooms::shutdown`] waits for the sessions to end.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);

/// Chat figures for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatStats {
    /// Rooms with at least one member.
    pub rooms: u64,
    /// Open chat connections.
    pub connections: u64,
    /// Messages received from members since start.
    pub messages: u64,
}

/// The registry of chat rooms; a cheap handle.
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    max_message_bytes: usize,
    queue_len: usize,
    /// Connections beyond this many are closed with 1013 right after the
    /// upgrade (an HTTP refusal would be a 5xx).
    max_connections: u64,
    /// Cancelled by [`Rooms::shutdown`]; every session watches it.
    stop: CancellationToken,
    /// Every session and forwarder, so shutdown can wait for them.
    tasks: TaskTracker,
}

impl Default for Rooms {
    /// The default limits: 64 KiB messages, 1024 queued lines per member,
    /// 10,000 connections.
    fn default() -> Self {
        Rooms::new(64 * 1024, 1024, 10_000)
    }
}

impl Rooms {
    /// An empty registry. Texts over `max_message_bytes` close with 1009;
    /// a member with `queue_len` lines waiting for it is closed with 1008;
    /// a connection beyond `max_connections` is closed at once with 1013.
    pub fn new(max_message_bytes: usize, queue_len: usize, max_connections: usize) -> Rooms {
        Rooms {
            inner: Arc::new(Inner {
                registry: Arc::default(),
                max_message_bytes,
                queue_len: queue_len.max(1),
                max_connections: max_connections as u64,
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Current rooms, members and messages, for the metrics.
    pub fn stats(&self) -> ChatStats {
        self.inner.registry.stats()
    }

    /// Closes every chat connection with 1001 and waits, a few seconds at
    /// most, for the sessions to end. Connections upgraded afterwards are
    /// closed with 1001 at once.
    pub async fn shutdown(&self) {
        self.inner.stop.cancel();
        self.inner.tasks.close();
        if tokio::time::timeout(SHUTDOWN_WAIT, self.inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.stats().connections,
                "chat connections still open after {SHUTDOWN_WAIT:?}; dropping them"
            );
        }
    }

    /// Joins room `room_name` and finishes the upgrade.
    ///
    /// The member joins before the 101 reply goes out: once a client's
    /// handshake completes, it receives every line sent after that. Should
    /// the upgrade fail, the session is dropped and so leaves the room.
    fn accept(&self, room_name: &str, ws: Ws) -> Response {
        let inner = &self.inner;
        // Checked before joining; concurrent joins may overshoot by a few.
        let full = inner.registry.stats().connections >= inner.max_connections;
        let (membership, inbox) = inner.registry.join(room_name, inner.queue_len);
        if full {
            membership.closer().close(CloseReason::TRY_AGAIN_LATER);
        }
        let session = Session {
            membership,
            inbox,
            max_message_bytes: inner.max_message_bytes,
            stop: inner.stop.clone(),
            tasks: inner.tasks.clone(),
        };
        // Held by the session from now on, so shutdown also waits for
        // upgrades still in flight.
        let token = inner.tasks.token();
        // tungstenite stops reading at this cap and reports an error, after
        // which the client's close answer cannot be read; up to the cap we
        // read whole messages and check the real limit ourselves, for a
        // clean close handshake.
        let cap = inner
            .max_message_bytes
            .saturating_mul(2)
            .max(inner.max_message_bytes.saturating_add(1));
        ws.max_message_size(cap)
            .max_frame_size(cap)
            .on_upgrade(move |socket| async move {
                session.run(socket).await;
                drop(token);
            })
            .into_response()
    }
}

/// `GET /chat/{chat_name}` (WebSocket upgrade): joins the room named by the
/// percent-decoded `chat_name`.
///
/// Any other path, or this one without upgrade headers, is rejected, so the
/// API after it answers (404 for a plain GET, as FastAPI does).
pub fn route(rooms: Rooms) -> BoxedFilter<(Response,)> {
    // The path first: other paths leave at once, before any header check.
    warp::path("chat")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::ws())
        .map(move |raw_name: String, ws: Ws| rooms.accept(&room_name(&raw_name), ws))
        .boxed()
}

/// The room a path segment names: percent-decoded, with invalid UTF-8
/// replaced as Starlette's `unquote` does, so every spelling of a name
/// lands in the same room.
fn room_name(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_names_are_percent_decoded() {
        assert_eq!(room_name("lobby"), "lobby");
        assert_eq!(room_name("caf%C3%A9%20au%20lait"), "café au lait");
        assert_eq!(room_name("caf%c3%a9%20au%20lait"), "café au lait");
        assert_eq!(room_name("a+b"), "a+b");
        assert_eq!(room_name("a%2520b"), "a%20b", "decoded once");
        assert_eq!(room_name("%F0%9F%90%B1"), "🐱");
        assert_eq!(room_name("bad%FF"), "bad\u{FFFD}");
    }
}
