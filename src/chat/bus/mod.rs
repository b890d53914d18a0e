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
//! With history on, the rooms' lines are also kept in NATS JetStream
//! (`journal`): a member's line is stored there first, numbered with the
//! room's next offset, and each instance with members in the room
//! delivers it from there (`follow`), in the same order everywhere. While
//! JetStream cannot take a line, it goes out live as above (and the gap
//! in the offsets tells a resume it is incomplete).
//!
//! A member that resumes with its token closes its older connection on
//! every instance: its instance sends a claim (its name and when it
//! joined) on the room's subject, and the instance holding an older
//! connection of that name closes it (see `link`).
//!
//! Here: the connection and its events, storing and publishing lines;
//! `link`: a room's subscription and relay; `wire`: the envelope and the
//! subjects; `urls`: the `--chat-bus` value; `journal`: the history
//! stream; `follow`: a room's lines from it.

mod events;
mod follow;
mod journal;
mod link;
mod urls;
mod wire;

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, RequestErrorKind, Subject};
use rand::RngExt;

use super::deliver::Line;

use self::events::State;
use self::journal::{Journal, Lost};
pub use self::journal::{JournalOp, JournalOptions};
use self::link::{Answer, history_prefix, relay};
pub(crate) use self::link::{Inbox, RoomLink};
pub use self::urls::BusUrls;
pub(crate) use self::wire::Claim;
use self::wire::{ENVELOPE_BYTES, STORED_BYTES, seal, seal_claim, seal_stored, subject};

/// Bytes a line may take beyond its text: the longest user name with its
/// instance tag (under 40 bytes) and the ` :: ` separator, rounded up.
const NAME_BYTES: usize = 64;
/// Bytes of the headers of a stored line: the offset and the expected
/// last sequence, with their names and framing.
const HEADER_BYTES: usize = 112;
/// Longest wait for the bus to confirm a new subscription before the
/// member's upgrade goes ahead anyway.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);
/// Longest a start-up connection attempt to one node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// JetStream failures by operation (in the order of
    /// [`JournalOp::ALL`]), when the history is kept there.
    pub history_errors: Option<[u64; JournalOp::ALL.len()]>,
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
    /// The rooms' history stream, when history is on.
    journal: Option<Arc<Journal>>,
    /// The resume tokens' secret kept in JetStream, if it could be.
    token_secret: Option<Vec<u8>>,
    /// The URLs, redacted, for messages.
    shown: String,
    state: Arc<State>,
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
    /// `{prefix}.{room name in hex}`; with `history`, the rooms' lines
    /// are kept in a JetStream stream over `{prefix}.h.{room name in hex}`
    /// (made now if missing; when JetStream cannot be reached, chat goes
    /// on live and each room tries again).
    pub async fn connect(
        urls: &BusUrls,
        prefix: &str,
        max_message_bytes: usize,
        history: Option<JournalOptions>,
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
        let overhead = if history.is_some() {
            STORED_BYTES + HEADER_BYTES + NAME_BYTES
        } else {
            ENVELOPE_BYTES + NAME_BYTES
        };
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
        let prefix = prefix.trim_end_matches('.').to_owned();
        let journal = history.map(|options| {
            Arc::new(Journal::new(
                client.clone(),
                &prefix,
                &history_prefix(&prefix),
                options,
            ))
        });
        if let Some(journal) = &journal
            && journal.stream().await.is_ok()
        {
            tracing::info!(bus = %shown, "chat history kept in JetStream");
        }
        let replicas = history.map_or(1, |options| options.replicas);
        let token_secret = journal::shared_secret(client.clone(), &prefix, replicas).await;
        Ok(Bus {
            inner: Arc::new(Inner {
                client,
                instance,
                tag,
                prefix,
                journal,
                token_secret,
                shown,
                state,
            }),
        })
    }

    /// The secret of resume tokens that every instance on the bus shares
    /// (kept in JetStream), if JetStream could keep it.
    #[must_use]
    pub fn token_secret(&self) -> Option<&[u8]> {
        self.inner.token_secret.as_deref()
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
            history_errors: self.inner.journal.as_ref().map(|journal| journal.errors()),
        }
    }

    /// Whether the client is connected to a node now.
    pub(crate) fn connected(&self) -> bool {
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
                let answer = Answer {
                    client: self.inner.client.clone(),
                    subject: subject.clone(),
                };
                Some(tokio::spawn(relay(
                    subscriber,
                    room.clone(),
                    instance,
                    stall,
                    answer,
                )))
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
        let follower = match &self.inner.journal {
            Some(journal) => Some(
                follow::start(
                    Arc::clone(journal),
                    wire::subject(&history_prefix(&self.inner.prefix), room_name),
                    room,
                    self.inner.instance,
                    stall,
                )
                .await,
            ),
            None => None,
        };
        RoomLink {
            subject,
            relay,
            follower,
        }
    }

    /// Stores `line`, said by member `member`, as the room's next line in
    /// the history stream; returns its offset, above `floor` (the room's
    /// latest offset here). The room's follower delivers it, here too.
    /// `None` when the room's lines are not followed now or JetStream
    /// failed: the caller sends it live instead.
    pub(crate) async fn store(
        &self,
        link: &RoomLink,
        line: &Line,
        member: u64,
        floor: u64,
    ) -> Option<u64> {
        let journal = self.inner.journal.as_ref()?;
        let follower = link.follower.as_ref()?;
        if !follower.live.load(Ordering::Relaxed) || !self.connected() {
            return None;
        }
        let envelope = seal_stored(self.inner.instance, member, line);
        let _turn = follower.storing.lock().await;
        match journal
            .store(&follower.subject, &envelope, &follower.cursor, floor)
            .await
        {
            Ok(offset) => Some(offset),
            Err(lost) => {
                if lost == Lost::Stream {
                    follower.restart();
                }
                None
            }
        }
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

    /// Tells the other instances that member `name` connected at
    /// `joined` with a resume token, so they close its older connections
    /// in the room. Dropped while the bus is down: then only this
    /// instance's connections are closed.
    pub(crate) async fn claim(&self, link: &RoomLink, name: &str, joined: u64) {
        if !self.connected() {
            return;
        }
        let envelope = seal_claim(self.inner.instance, joined, name);
        if let Err(err) = self
            .inner
            .client
            .publish(link.subject.clone(), envelope)
            .await
        {
            tracing::debug!(error = %err, "chat claim not published");
        }
    }
}
