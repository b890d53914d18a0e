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

use std::fmt;
use std::fmt::Write as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, Event, Subject, Subscriber};
use bytes::{BufMut, Bytes, BytesMut};
use futures_util::StreamExt;
use rand::RngExt;
use serde::Deserialize;

use super::deliver::Line;

/// First byte of every envelope; another value is another format.
const ENVELOPE_VERSION: u8 = 1;
/// Envelope bytes before the line: the version and the instance id.
const ENVELOPE_BYTES: usize = 1 + 8;
/// Bytes a line may take beyond its text: the longest user name with its
/// instance tag (under 40 bytes) and the ` :: ` separator, rounded up.
const NAME_BYTES: usize = 64;
/// Longest wait for the bus to confirm a new subscription before the
/// member's upgrade goes ahead anyway.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);
/// Longest a start-up connection attempt to one node may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Room names longer than this (in bytes) are hashed into their subject.
const SUBJECT_NAME_BYTES: usize = 256;
/// At most one slow-consumer log line per this period.
const SLOW_LOG_EVERY: Duration = Duration::from_secs(10);

/// The NATS servers of `--chat-bus`: one or more `nats://` URLs, comma
/// separated, of one cluster. Shown with any password replaced by `***`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BusUrls(Vec<String>);

impl BusUrls {
    /// The URLs as given, passwords included: only for connecting.
    fn expose(&self) -> &[String] {
        &self.0
    }
}

impl FromStr for BusUrls {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let urls: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Err("expected one or more nats:// URLs, comma separated".into());
        }
        for url in &urls {
            if !url.starts_with("nats://") {
                // Not echoed: it may hold a password.
                return Err("each chat bus URL must start with nats://".into());
            }
            url.parse::<async_nats::ServerAddr>()
                .map_err(|err| format!("{}: {err}", redact(url)))?;
        }
        Ok(BusUrls(urls))
    }
}

impl TryFrom<String> for BusUrls {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl fmt::Display for BusUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.0.iter().map(|url| redact(url)).collect();
        f.write_str(&shown.join(","))
    }
}

impl fmt::Debug for BusUrls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BusUrls({self})")
    }
}

/// `url` with the password of its user part replaced by `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => format!("{scheme}://{name}:***@{host}"),
            // A lone token is a secret too.
            None => format!("{scheme}://***@{host}"),
        },
        None => url.to_owned(),
    }
}

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
            // The server answers a flush only after it has our SUB.
            match tokio::time::timeout(SUBSCRIBE_WAIT, self.inner.client.flush()).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::debug!(error = %err, "chat bus flush failed"),
                Err(_) => tracing::debug!("chat bus flush timed out"),
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

/// `prefix.HEX`: the room name's UTF-8 bytes in lower-case hex (subjects
/// cannot hold `.`, `*`, `>` or spaces). Names over 256 bytes keep their
/// first 256 bytes and add a 64-bit FNV-1a hash of the whole name, so
/// subjects stay short.
fn subject(prefix: &str, room_name: &str) -> String {
    let bytes = room_name.as_bytes();
    let mut out =
        String::with_capacity(prefix.len() + 2 + 2 * bytes.len().min(SUBJECT_NAME_BYTES) + 17);
    out.push_str(prefix);
    out.push('.');
    for byte in &bytes[..bytes.len().min(SUBJECT_NAME_BYTES)] {
        let _ = write!(out, "{byte:02x}");
    }
    if bytes.is_empty() {
        out.push('_');
    }
    if bytes.len() > SUBJECT_NAME_BYTES {
        let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        let _ = write!(out, "-{hash:016x}");
    }
    out
}

/// The envelope of `line` from `instance`.
fn seal(instance: u64, line: &Line) -> Bytes {
    let mut envelope = BytesMut::with_capacity(ENVELOPE_BYTES + line.bytes().len());
    envelope.put_u8(ENVELOPE_VERSION);
    envelope.put_u64(instance);
    envelope.put_slice(line.bytes());
    envelope.freeze()
}

/// The line in `envelope`, unless it is this instance's own (`instance`)
/// or not a valid envelope.
fn open(envelope: &Bytes, instance: u64) -> Option<Line> {
    if envelope.len() < ENVELOPE_BYTES || envelope[0] != ENVELOPE_VERSION {
        return None;
    }
    let sender = u64::from_be_bytes(envelope[1..ENVELOPE_BYTES].try_into().ok()?);
    if sender == instance {
        return None;
    }
    Line::from_utf8(envelope.slice(ENVELOPE_BYTES..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_room_name_becomes_one_valid_subject() {
        assert_eq!(subject("shopd.chat", "lobby"), "shopd.chat.6c6f626279");
        let odd = subject("shopd.chat", "a.b *> c");
        assert_eq!(odd, "shopd.chat.612e62202a3e2063");
        assert_ne!(subject("p", "café"), subject("p", "cafe"));
        let long_a = "x".repeat(300);
        let long_b = format!("{}y", "x".repeat(299));
        assert_ne!(subject("p", &long_a), subject("p", &long_b));
        assert!(subject("p", &long_a).len() < 600);
        for name in ["lobby", "a.b *> c", &long_a, "🐱"] {
            let tail = subject("p", name);
            let tail = tail.strip_prefix("p.").expect("under the prefix");
            assert!(
                tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'),
                "{tail}"
            );
        }
    }

    #[test]
    fn an_envelope_carries_the_line_and_hides_its_own_instances_lines() {
        let line = Line::new("ann", "hi :: there");
        let envelope = seal(7, &line);
        assert_eq!(open(&envelope, 8), Some(line));
        assert_eq!(open(&envelope, 7), None, "our own line");
        assert_eq!(open(&Bytes::from_static(b"\x02abcdefgh"), 8), None);
        assert_eq!(open(&Bytes::from_static(b"\x01"), 8), None);
    }

    #[test]
    fn bus_urls_are_nats_urls_shown_without_passwords() {
        let urls: BusUrls = "nats://a:1, nats://user:s3cret@b:2".parse().unwrap();
        assert_eq!(urls.expose().len(), 2);
        let shown = format!("{urls} {urls:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("nats://a:1,nats://user:***@b:2"), "{shown}");
        assert!("http://a:1".parse::<BusUrls>().is_err());
        assert!(" , ".parse::<BusUrls>().is_err());
    }
}
