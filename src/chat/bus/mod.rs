//! The chat bus: rooms that span several shopd instances, over NATS.
//!
//! Each instance subscribes to a room's subject while it has members in
//! that room, and unsubscribes when its last one leaves. A line goes to
//! the sender's local room mates directly and to the bus once, wrapped in
//! an envelope that names the sending instance; an instance ignores its
//! own lines coming back, so nobody gets a line twice and the sender gets
//! no echo. Lines from other instances enter the same delivery path as
//! local ones (see `deliver`).
//!
//! Core NATS delivers at most once and in order per publisher: one
//! sender's lines keep their order everywhere (an instance publishes over
//! one connection, a sender's lines one after the other); lines sent while
//! the bus is down are not delivered to other instances. The client
//! reconnects by itself, to any node of the cluster it was given or has
//! learned, and resubscribes.
//!
//! Here: the connection, subscriptions and the relay; `wire`: the envelope
//! and the subjects; `urls`: the `--chat-bus` value.

mod urls;
mod wire;

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, RequestErrorKind, Subject, Subscriber};
use futures_util::StreamExt;
use rand::RngExt;

use super::deliver::Line;

pub use self::urls::BusUrls;
use self::wire::{ENVELOPE_BYTES, open, seal, subject};

/// Bytes a line may take beyond its text: the longest user name with its
/// instance tag (under 40 bytes) and the ` :: ` separator, rounded up.
const NAME_BYTES: usize = 64;
/// Longest wait for the bus to confirm a new subscription before the
/// member's upgrade goes ahead anyway.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);
/// Longest a start-up connection attempt to one node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// At most one slow-consumer log line per this period.
const SLOW_LOG_EVERY: Duration = Duration::from_secs(10);

/// Why the bus could not be joined at start-up.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// No node answered.
    #[error("cannot connect to the chat bus (NATS at {urls}): {message}")]
    Connect { urls: String, message: String },
    /// A chat line would not fit in one NATS message.
    #[error(
        "setting chat_max_message_bytes: {max} bytes do not fit in one message of the chat bus \
         (NATS at {urls} takes at most {payload} bytes, of which {overhead} go to the envelope \
         and the sender's name); lower chat_max_message_bytes to at most {fits} or raise the \
         NATS servers' max_payload"
    )]
    TooBig {
        urls: String,
        max: usize,
        payload: usize,
        overhead: usize,
        fits: usize,
    },
}

/// The bus's figures, for the metrics and `/readyz`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Whether the client is connected to a node now.
    pub connected: bool,
    /// Bus messages dropped because this instance did not take them fast
    /// enough (slow-consumer events) since start.
    pub slow_consumers: u64,
}

/// A connection to the chat bus; a cheap handle.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    /// Marks this instance's envelopes.
    instance: u64,
    /// Ends this instance's user names, so they differ from every other
    /// instance's without asking anyone.
    tag: String,
    prefix: String,
    /// The URLs, redacted, for messages.
    shown: String,
    state: Arc<State>,
}

/// Kept up to date by the client's event callback.
#[derive(Default)]
struct State {
    connected: AtomicBool,
    slow_consumers: AtomicU64,
    /// Milliseconds since start of the last slow-consumer log line, plus one.
    slow_logged: AtomicU64,
    started: std::sync::OnceLock<std::time::Instant>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("urls", &self.inner.shown)
            .field("tag", &self.inner.tag)
            .finish_non_exhaustive()
    }
}

impl Bus {
    /// Connects to one of `urls` and checks that lines of up to
    /// `max_message_bytes` fit in the servers' messages. Subjects are
    /// `{prefix}.{room name in hex}`.
    pub async fn connect(
        urls: &BusUrls,
        prefix: &str,
        max_message_bytes: usize,
    ) -> Result<Bus, BusError> {
        let shown = urls.to_string();
        let state = Arc::new(State::default());
        let _ = state.started.set(std::time::Instant::now());
        let events = Arc::clone(&state);
        let named = shown.clone();
        let options = ConnectOptions::new()
            .name("shopd")
            // The envelope check below stays for servers that ignore it.
            .no_echo()
            .connection_timeout(CONNECT_TIMEOUT)
            .event_callback(move |event| {
                events.on_event(&event, &named);
                std::future::ready(())
            });
        let client = options
            .connect(urls.expose())
            .await
            .map_err(|err| BusError::Connect {
                urls: shown.clone(),
                message: err.to_string(),
            })?;
        state.connected.store(true, Ordering::Relaxed);
        let payload = client.server_info().max_payload;
        let overhead = ENVELOPE_BYTES + NAME_BYTES;
        if max_message_bytes.saturating_add(overhead) > payload {
            return Err(BusError::TooBig {
                urls: shown,
                max: max_message_bytes,
                payload,
                overhead,
                fits: payload.saturating_sub(overhead),
            });
        }
        let instance: u64 = rand::rng().random();
        let tag = format!("{:06x}", instance & 0x00ff_ffff);
        tracing::info!(urls = %shown, tag, "connected to the chat bus");
        Ok(Bus {
            inner: Arc::new(Inner {
                client,
                instance,
                tag,
                prefix: prefix.trim_end_matches('.').to_owned(),
                shown,
                state,
            }),
        })
    }

    /// The bus's URLs, passwords hidden.
    #[must_use]
    pub fn describe(&self) -> &str {
        &self.inner.shown
    }

    /// Connection state and slow-consumer count.
    #[must_use]
    pub fn stats(&self) -> BusStats {
        BusStats {
            connected: self.connected(),
            slow_consumers: self.inner.state.slow_consumers.load(Ordering::Relaxed),
        }
    }

    fn connected(&self) -> bool {
        self.inner.state.connected.load(Ordering::Relaxed)
    }

    /// The tag that ends this instance's user names.
    pub(crate) fn tag(&self) -> &str {
        &self.inner.tag
    }

    /// The subject of room `room_name`.
    pub(crate) fn subject(&self, room_name: &str) -> String {
        subject(&self.inner.prefix, room_name)
    }

    /// Subscribes to room `room_name`'s subject and feeds what arrives into
    /// `room`. Returns once the server has confirmed the subscription (or
    /// after a short wait, when the bus is down: local chat goes on).
    pub(crate) async fn link(
        &self,
        room_name: &str,
        room: Weak<impl Inbox>,
        stall: Duration,
    ) -> RoomLink {
        let subject = Subject::from(self.subject(room_name));
        let relay = match self.inner.client.subscribe(subject.clone()).await {
            Ok(subscriber) => {
                let instance = self.inner.instance;
                Some(tokio::spawn(relay(subscriber, room, instance, stall)))
            }
            Err(err) => {
                tracing::warn!(error = %err, bus = %self.inner.shown, "cannot subscribe to a chat room on the bus");
                None
            }
        };
        if self.connected() {
            // A round trip, so a line published anywhere after the join is
            // heard: a flush returns once our SUB is written, not once the
            // server has it. The server takes one connection's commands in
            // order, so its answer to a request sent after the SUB comes
            // after the SUB is in. Nothing listens on a fresh inbox: the
            // answer is "no responders" (NATS 2.2 and later; older servers
            // never answer, so they get the flush alone).
            let client = &self.inner.client;
            let confirmed = if client.server_info().headers {
                let probe = client.request(client.new_inbox(), bytes::Bytes::new());
                match tokio::time::timeout(SUBSCRIBE_WAIT, probe).await {
                    Ok(Err(err)) if err.kind() != RequestErrorKind::NoResponders => {
                        Err(err.to_string())
                    }
                    Ok(_) => Ok(()),
                    Err(_) => Err("timed out".to_owned()),
                }
            } else {
                match tokio::time::timeout(SUBSCRIBE_WAIT, client.flush()).await {
                    Ok(result) => result.map_err(|err| err.to_string()),
                    Err(_) => Err("timed out".to_owned()),
                }
            };
            if let Err(err) = confirmed {
                tracing::debug!(error = %err, "chat bus subscription not confirmed");
            }
        }
        RoomLink { subject, relay }
    }

    /// Publishes `line` to the room's subject for the other instances.
    /// Dropped while the bus is down (delivery across instances is
    /// at-most-once).
    pub(crate) async fn publish(&self, link: &RoomLink, line: &Line) {
        if !self.connected() {
            return;
        }
        let envelope = seal(self.inner.instance, line);
        if let Err(err) = self
            .inner
            .client
            .publish(link.subject.clone(), envelope)
            .await
        {
            tracing::debug!(error = %err, "chat line not published");
        }
    }
}

impl State {
    /// Follows the connection and counts slow-consumer events; logs each
    /// outage once.
    fn on_event(&self, event: &Event, urls: &str) {
        match event {
            Event::Connected => {
                if !self.connected.swap(true, Ordering::Relaxed) {
                    tracing::info!(bus = urls, "chat bus connected");
                }
            }
            Event::Disconnected | Event::Closed => {
                if self.connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        bus = urls,
                        "chat bus disconnected: chat goes on within this instance; reconnecting"
                    );
                }
            }
            Event::SlowConsumer(_)
            | Event::ServerError(async_nats::ServerError::SlowConsumer(_)) => {
                let total = self.slow_consumers.fetch_add(1, Ordering::Relaxed) + 1;
                let now = self
                    .started
                    .get()
                    .map_or(0, |start| start.elapsed().as_millis() as u64)
                    + 1;
                let last = self.slow_logged.load(Ordering::Relaxed);
                let due =
                    last == 0 || now.saturating_sub(last) >= SLOW_LOG_EVERY.as_millis() as u64;
                if due
                    && self
                        .slow_logged
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        bus = urls,
                        dropped = total,
                        "chat bus slow consumer: lines from other instances dropped"
                    );
                }
            }
            other => tracing::debug!(bus = urls, event = %other, "chat bus event"),
        }
    }
}

/// A room's subscription on the bus; dropping it unsubscribes.
#[derive(Debug)]
pub(crate) struct RoomLink {
    subject: Subject,
    relay: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for RoomLink {
    fn drop(&mut self) {
        // Dropping the relay's subscriber sends the UNSUB.
        if let Some(relay) = &self.relay {
            relay.abort();
        }
    }
}

/// Where the lines of other instances go: a room of this instance.
pub(crate) trait Inbox: Send + Sync + 'static {
    /// Delivers `line` to every local member, waiting at most `stall` on
    /// a full queue.
    fn deliver_remote(&self, line: &Line, stall: Duration) -> impl Future<Output = ()> + Send;
}

/// Feeds the lines of other instances into `room` until it is gone.
async fn relay(mut subscriber: Subscriber, room: Weak<impl Inbox>, instance: u64, stall: Duration) {
    while let Some(message) = subscriber.next().await {
        let Some(line) = open(&message.payload, instance) else {
            continue;
        };
        let Some(room) = room.upgrade() else {
            break;
        };
        room.deliver_remote(&line, stall).await;
    }
}
