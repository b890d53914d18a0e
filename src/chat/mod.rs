//! Chat rooms over WebSocket at `/chat/{chat_name}`.
//!
//! Everyone connected under the same percent-decoded name is in one room.
//! Each text a member sends reaches every other member of the room as
//! `{user name} :: {text}`; the server sends nothing else. A member that
//! negotiates the subprotocol `shopd.chat.v1` gets JSON frames instead,
//! with offsets, the room's history and a token to resume with (see
//! `protocol` and docs/chat-resume.md).
//!
//! # Layout
//!
//! - this file: the [`Rooms`] handle and the [`route`] that upgrades;
//! - `rooms`: the registry, rooms and members;
//! - `deliver`: a line into a room's members' bounded queues, with flow
//!   control; fed by members here and by the bus alike;
//! - `pace`: the per-member rate limit;
//! - `session`: one socket, a reader loop plus a forwarder task;
//! - `bus`: rooms spanning instances over NATS (optional);
//! - `close`: close codes and the signal that asks a session to close;
//! - `upgrade`: the WebSocket handshake, with small per-connection buffers;
//! - `names`: random user names;
//! - `history`: each room's last lines, their offsets and epoch (`disk`:
//!   kept in the data directory on the embedded store);
//! - `protocol`: the JSON frames and the resume query; `token`: resume
//!   tokens;
//! - `page/`: the chat page's HTML, CSS and JavaScript, which
//!   `http::chat_page` serves at `GET /chat`.
//!
//! # Bounds and flow control
//!
//! Each member has an outgoing queue of `queue_len` lines. When a room
//! mate's queue is full, the sender's reader waits for room (it reads no
//! more frames meanwhile), so a fast sender slows down to the pace of the
//! room's readers instead of getting them dropped. A member whose queue
//! stays full while it makes no progress reading for `stall_timeout` is
//! closed with 1008 and the sender goes on. Each member may send `rate`
//! lines a second (`burst` at once); beyond that its reads pause too.
//! Texts over `max_message_bytes` close with 1009 and binary messages with
//! 1003. Shutdown closes every connection with 1001.

mod bus;
mod close;
mod deliver;
mod history;
mod names;
mod options;
mod pace;
mod protocol;
mod rooms;
mod session;
mod token;
mod upgrade;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

pub use bus::{Bus, BusError, BusStats, BusUrls, JournalOp, JournalOptions};
use close::CloseReason;
pub use close::DROP_REASONS;
use history::{History, Since};
pub use history::{HistoryLimits, HistoryStats};
pub use options::{ChatOptions, configured_secret};
use pace::Pace;
use protocol::{ResumeQuery, Welcome};
use rooms::Registry;
use session::{Render, Session};
use token::Refusal;
pub use token::{SecretError, Tokens, database_secret, kept_secret, random_secret, read_secret};
use upgrade::Handshake;

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
    /// Members closed by shopd since start, in the order of
    /// [`DROP_REASONS`].
    pub dropped: [u64; DROP_REASONS.len()],
    /// The chat bus's figures, when there is a bus.
    pub bus: Option<BusStats>,
    /// The history's figures.
    pub history: HistoryStats,
}

/// The registry of chat rooms; a cheap handle.
#[derive(Clone)]
pub struct Rooms {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Arc<Registry>,
    /// Connections beyond `max_connections` are closed with 1013 right
    /// after the upgrade (an HTTP refusal would be a 5xx).
    options: ChatOptions,
    /// Cancelled by [`Rooms::shutdown`]; every session watches it.
    stop: CancellationToken,
    /// Every session and forwarder, so shutdown can wait for them.
    tasks: TaskTracker,
}

impl Default for Rooms {
    /// The default limits (see [`ChatOptions`]).
    fn default() -> Self {
        Rooms::with_options(ChatOptions::default())
    }
}

impl Rooms {
    /// An empty registry with the default flow control. Texts over
    /// `max_message_bytes` close with 1009; each member has `queue_len`
    /// lines of queue; a connection beyond `max_connections` is closed at
    /// once with 1013.
    #[must_use]
    pub fn new(max_message_bytes: usize, queue_len: usize, max_connections: usize) -> Rooms {
        Rooms::with_options(ChatOptions {
            max_message_bytes,
            queue_len,
            max_connections,
            ..ChatOptions::default()
        })
    }

    /// An empty registry with `options`; history in memory only.
    #[must_use]
    pub fn with_options(options: ChatOptions) -> Rooms {
        let history = History::in_memory(options.history);
        Rooms::with_history(options, history)
    }

    /// A registry with `options` whose history is kept in `data_dir` and
    /// read back from it.
    pub fn persistent(options: ChatOptions, data_dir: &std::path::Path) -> std::io::Result<Rooms> {
        let history = History::persistent(options.history, data_dir)?;
        Ok(Rooms::with_history(options, history))
    }

    fn with_history(mut options: ChatOptions, history: History) -> Rooms {
        options.queue_len = options.queue_len.max(1);
        Rooms {
            inner: Arc::new(Inner {
                registry: Arc::new(Registry::new(options.stall_timeout, history)),
                options,
                stop: CancellationToken::new(),
                tasks: TaskTracker::new(),
            }),
        }
    }

    /// Joins this instance's rooms to the other instances' on `bus`. Call
    /// before serving; false if a bus was already attached.
    #[must_use]
    pub fn attach_bus(&self, bus: Bus) -> bool {
        self.inner.registry.attach_bus(bus)
    }

    /// The attached bus, if any.
    #[must_use]
    pub fn bus(&self) -> Option<&Bus> {
        self.inner.registry.bus()
    }

    /// Current rooms, members and messages, for the metrics.
    #[must_use]
    pub fn stats(&self) -> ChatStats {
        let mut stats = self.inner.registry.stats();
        stats.history = self.inner.registry.history().stats();
        stats
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
        let registry = Arc::clone(&self.inner.registry);
        let _ = tokio::task::spawn_blocking(move || registry.history().close()).await;
    }

    /// Joins room `room_name` and finishes the upgrade.
    ///
    /// The member joins, and with a bus the room's subscription is live,
    /// before the 101 reply goes out: once a client's handshake completes,
    /// it receives every line sent after that. Should the upgrade fail,
    /// the session is dropped and so leaves the room.
    async fn accept(self, room_name: String, handshake: Handshake) -> Response {
        let inner = &self.inner;
        let options = &inner.options;
        // tungstenite stops reading at this cap and reports an error, after
        // which the client's close answer cannot be read; up to the cap we
        // read whole messages and check the real limit ourselves, for a
        // clean close handshake.
        let cap = options
            .max_message_bytes
            .saturating_mul(2)
            .max(options.max_message_bytes.saturating_add(1));
        // Tracked from now on, so shutdown also waits for upgrades still
        // in flight.
        let tasks = inner.tasks.clone();
        let spawn = move |upgrade| {
            tasks.spawn(upgrade);
        };
        let json = handshake.json;
        // Plain members' queries are ignored, as they always were.
        let query = if json {
            ResumeQuery::parse(&handshake.query)
        } else {
            Some(ResumeQuery::default())
        };
        let checked = query.ok_or(CloseReason::BAD_RESUME).and_then(|query| {
            let wanted = match &query.resume {
                None => None,
                Some(token) => Some(options.tokens.check(&room_name, token).map_err(
                    |refusal| match refusal {
                        Refusal::Invalid => CloseReason::BAD_RESUME,
                        Refusal::Expired => CloseReason::EXPIRED,
                    },
                )?),
            };
            Ok((query, wanted))
        });
        let (query, wanted) = match checked {
            Ok(checked) => checked,
            Err(reason) => {
                // Refused before joining: nothing of the room is sent.
                inner.registry.drops().count(reason);
                return handshake.accept(cap, spawn, move |socket| session::refuse(socket, reason));
            }
        };
        // Checked before joining; concurrent joins may overshoot by a few.
        // A resume that takes over a connection here adds none, so it is
        // let in; any other join beyond the limit is refused before it
        // joins, so it closes nobody else's connection.
        let full = inner.registry.stats().connections >= options.max_connections as u64;
        let replaces = || {
            wanted
                .as_deref()
                .is_some_and(|name| inner.registry.has_member(&room_name, name))
        };
        if full && !replaces() {
            let reason = CloseReason::TRY_AGAIN_LATER;
            inner.registry.drops().count(reason);
            return handshake.accept(cap, spawn, move |socket| session::refuse(socket, reason));
        }
        let (membership, inbox) =
            inner
                .registry
                .join_as(&room_name, options.queue_len, wanted.as_deref(), json);
        membership.link().await;
        if wanted.is_some() {
            membership.claim().await;
        }
        let (render, prelude) = if json {
            self.introduce(&membership, &query, wanted.is_some())
        } else {
            (Render::Plain, Vec::new())
        };
        let session = Session {
            membership,
            inbox,
            max_message_bytes: options.max_message_bytes,
            pace: Pace::new(options.rate_per_sec, options.rate_burst),
            stop: inner.stop.clone(),
            tasks: inner.tasks.clone(),
            render,
            prelude,
        };
        handshake.accept(cap, spawn, move |socket| session.run(socket))
    }

    /// A JSON member's welcome and the history it asked for, and how its
    /// lines are rendered after them.
    fn introduce(
        &self,
        membership: &rooms::Membership,
        query: &ResumeQuery,
        resuming: bool,
    ) -> (Render, Vec<String>) {
        let since = match (resuming, query.since, query.epoch.as_deref()) {
            (true, Some(since), epoch) => Since::Resume {
                since,
                epoch: epoch.unwrap_or_default(),
            },
            (false, Some(since), _) => Since::Offset(since),
            (_, None, _) => Since::Nothing,
        };
        let catchup = membership.catch_up(since);
        let name = membership.name();
        let token = self
            .inner
            .options
            .tokens
            .issue(membership.room_name(), name);
        let mut prelude = Vec::with_capacity(1 + catchup.lines.len());
        prelude.push(protocol::welcome(&Welcome {
            kind: "welcome",
            name,
            epoch: &catchup.epoch,
            offset: catchup.latest,
            token: &token,
            resumed: catchup.resumed,
        }));
        prelude.extend(
            catchup
                .lines
                .iter()
                .map(|line| protocol::json_line(line, name)),
        );
        let render = Render::Json {
            me: name.into(),
            floor: catchup.latest,
        };
        (render, prelude)
    }
}

/// `GET /chat/{chat_name}` (WebSocket upgrade): joins the room named by the
/// percent-decoded `chat_name`.
///
/// Any other path, or this one without upgrade headers, is rejected, so the
/// API after it answers (404 for a plain GET, as FastAPI does).
#[must_use]
pub fn route(rooms: Rooms) -> BoxedFilter<(Response,)> {
    // The path first: other paths leave at once, before any header check.
    warp::path("chat")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(upgrade::request())
        .then(move |raw_name: String, handshake: Handshake| {
            rooms.clone().accept(room_name(&raw_name), handshake)
        })
        .boxed()
}

/// The room a path segment names: percent-decoded, so every spelling of a
/// name lands in the same room.
fn room_name(segment: &str) -> String {
    crate::domain::percent_decoded(segment).into_owned()
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
