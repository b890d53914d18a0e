//! The rooms' history in NATS JetStream: one stream over the history
//! subjects (`{prefix}.h.{room in hex}`), at most `lines` messages per
//! subject, created by shopd when missing.
//!
//! Offsets are per room and contiguous: a stream sequence counts across
//! every room, so each stored line carries its room offset in a header,
//! and is published with `Nats-Expected-Last-Subject-Sequence` set to the
//! room's last stored sequence this instance knows (optimistic
//! concurrency). When another instance stored a line first, the server
//! refuses; this instance reads the room's last message (its sequence and
//! offset) and tries again with the next offset. So no two lines of a
//! room get one offset and none is skipped, whichever instance stores it.
//!
//! The history subjects are not the live subjects: a publish the stream
//! refuses would still reach the live subscribers, twice with the retry.
//!
//! The epoch of every room is the stream's creation time: the same on
//! every instance, and new when the stream was lost and made again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::consumer::DeliverPolicy;
use async_nats::jetstream::consumer::push::{Ordered, OrderedConfig};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{
    Config, DiscardPolicy, LastRawMessageErrorKind, StorageType, Stream,
};
use async_nats::jetstream::{self, Context};
use async_nats::{Client, HeaderMap};
use bytes::Bytes;

use super::wire::OFFSET_HEADER;

/// How long one JetStream request may take before it counts as failed
/// (the line then goes out live only).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Most tries to store one line while other instances keep storing first.
const STORE_TRIES: usize = 16;

/// What the history stream keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JournalOptions {
    /// Lines kept per room (the stream's per-subject limit).
    pub lines: usize,
    /// Bytes the whole stream keeps at most; the oldest lines go first.
    pub max_bytes: u64,
    /// Copies of the stream across a NATS cluster.
    pub replicas: usize,
}

/// What was being done when JetStream failed, for the errors metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JournalOp {
    /// Finding or creating the stream.
    Stream,
    /// Reading a room's kept lines, or its last one.
    Read,
    /// Storing a line.
    Publish,
    /// Following a room's new lines.
    Follow,
}

impl JournalOp {
    /// Every operation, in the order of the counters.
    pub const ALL: [JournalOp; 4] = [
        JournalOp::Stream,
        JournalOp::Read,
        JournalOp::Publish,
        JournalOp::Follow,
    ];

    /// The `op` label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            JournalOp::Stream => "stream",
            JournalOp::Read => "read",
            JournalOp::Publish => "publish",
            JournalOp::Follow => "follow",
        }
    }
}

/// The last stored line of a room that this instance knows: its stream
/// sequence and its offset (0 and 0: none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Cursor {
    pub(crate) seq: u64,
    pub(crate) offset: u64,
}

impl Cursor {
    /// Moves to a later stored line; an earlier one changes nothing.
    pub(crate) fn advance(&mut self, seq: u64, offset: u64) {
        if seq > self.seq {
            self.seq = seq;
            self.offset = offset;
        }
    }
}

/// The history stream; shared by the bus's rooms.
pub(crate) struct Journal {
    context: Context,
    config: Config,
    errors: [AtomicU64; JournalOp::ALL.len()],
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("stream", &self.config.name)
            .finish_non_exhaustive()
    }
}

/// A room's lines from the stream: the kept ones first, then new ones.
pub(crate) struct Follow {
    /// The stream's epoch.
    pub(crate) epoch: Arc<str>,
    /// Messages already in the stream for the room when following began.
    pub(crate) pending: u64,
    /// The messages, in stream order.
    pub(crate) messages: Ordered,
}

/// Why a line was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lost {
    /// This line only (JetStream slow, down, or refusing it).
    Line,
    /// The stream was gone; it has been made again.
    Stream,
}

/// The name of the stream for subjects under `prefix`: `SHOPD_CHAT_HISTORY`
/// for `shopd.chat` (stream names hold no dots).
pub(super) fn stream_name(prefix: &str) -> String {
    let mut name: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    name.push_str("_HISTORY");
    name
}

/// The offset a stored message carries, if any.
pub(super) fn offset_of(headers: Option<&HeaderMap>) -> Option<u64> {
    headers?.get(OFFSET_HEADER)?.as_str().parse().ok()
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    /// The stream of history subjects `{history_prefix}.*` on `client`.
    pub(super) fn new(
        client: Client,
        prefix: &str,
        history_prefix: &str,
        options: JournalOptions,
    ) -> Journal {
        let mut context = jetstream::new(client);
        context.set_timeout(REQUEST_TIMEOUT);
        let config = Config {
            name: stream_name(prefix),
            subjects: vec![format!("{history_prefix}.*")],
            max_messages_per_subject: i64::try_from(options.lines).unwrap_or(i64::MAX),
            max_bytes: i64::try_from(options.max_bytes).unwrap_or(i64::MAX),
            num_replicas: options.replicas.max(1),
            discard: DiscardPolicy::Old,
            storage: StorageType::File,
            ..Config::default()
        };
        Journal {
            context,
            config,
            errors: Default::default(),
        }
    }

    /// Counts a failure of `op` and logs it.
    pub(super) fn failed(&self, op: JournalOp, error: &dyn std::fmt::Display) {
        self.errors[op as usize].fetch_add(1, Ordering::Relaxed);
        tracing::warn!(op = op.label(), error = %error, stream = self.config.name, "chat history in JetStream failed");
    }

    /// Failures so far, in the order of [`JournalOp::ALL`].
    pub(super) fn errors(&self) -> [u64; JournalOp::ALL.len()] {
        JournalOp::ALL.map(|op| self.errors[op as usize].load(Ordering::Relaxed))
    }

    /// The stream, created when missing, and its epoch.
    pub(super) async fn stream(&self) -> Result<(Stream, Arc<str>), ()> {
        let stream = self
            .context
            .get_or_create_stream(self.config.clone())
            .await
            .map_err(|err| self.failed(JournalOp::Stream, &err))?;
        let created = stream.cached_info().created;
        let epoch = format!("{:x}", created.unix_timestamp_nanos().max(0)).into();
        Ok((stream, epoch))
    }

    /// Follows `subject` from its first kept line (`from` none) or from
    /// stream sequence `from`.
    pub(super) async fn follow(&self, subject: &str, from: Option<u64>) -> Result<Follow, ()> {
        let (stream, epoch) = self.stream().await?;
        let deliver_policy = match from {
            None => DeliverPolicy::All,
            Some(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
        };
        let config = OrderedConfig {
            deliver_subject: self.context.client().new_inbox(),
            filter_subject: subject.to_owned(),
            deliver_policy,
            ..OrderedConfig::default()
        };
        let consumer = match stream.create_consumer(config).await {
            Ok(consumer) => consumer,
            Err(err) => {
                self.failed(JournalOp::Read, &err);
                return Err(());
            }
        };
        let pending = consumer.cached_info().num_pending;
        match consumer.messages().await {
            Ok(messages) => Ok(Follow {
                epoch,
                pending,
                messages,
            }),
            Err(err) => {
                self.failed(JournalOp::Read, &err);
                Err(())
            }
        }
    }

    /// Stores `envelope` as the next line of the room on `subject`, above
    /// offset `floor` at least; returns its offset. `cursor` is the room's
    /// last stored line as this instance knows it, and is kept up to date.
    pub(super) async fn store(
        &self,
        subject: &str,
        envelope: &Bytes,
        cursor: &Mutex<Cursor>,
        floor: u64,
    ) -> Result<u64, Lost> {
        for _ in 0..STORE_TRIES {
            let known = *lock(cursor);
            let offset = known.offset.max(floor) + 1;
            let publish = PublishMessage::build()
                .payload(envelope.clone())
                .header(OFFSET_HEADER, offset.to_string().as_str())
                .expected_last_subject_sequence(known.seq);
            let acked = match self.context.send_publish(subject.to_owned(), publish).await {
                Ok(ack) => ack.await,
                Err(err) => Err(err),
            };
            match acked {
                Ok(ack) => {
                    lock(cursor).advance(ack.sequence, offset);
                    return Ok(offset);
                }
                Err(err) if err.kind() == PublishErrorKind::StreamNotFound => {
                    // Lost (deleted, or its servers' storage gone): made
                    // again, under a new epoch the room's follower reads.
                    self.failed(JournalOp::Publish, &err);
                    let _ = self.stream().await;
                    return Err(Lost::Stream);
                }
                Err(err) if err.kind() == PublishErrorKind::WrongLastSequence => {
                    let last = self.last(subject).await.map_err(|()| Lost::Line)?;
                    let mut cursor = lock(cursor);
                    if last.seq == 0 {
                        // The room has no stored line (the stream is new):
                        // offsets go on from the highest this instance knew.
                        *cursor = Cursor {
                            seq: 0,
                            offset: cursor.offset,
                        };
                    } else {
                        *cursor = last;
                    }
                }
                Err(err) => {
                    self.failed(JournalOp::Publish, &err);
                    return Err(Lost::Line);
                }
            }
        }
        self.failed(JournalOp::Publish, &"other instances kept storing first");
        Err(Lost::Line)
    }

    /// The room's last stored line on `subject`.
    async fn last(&self, subject: &str) -> Result<Cursor, ()> {
        let stream = self
            .context
            .get_stream_no_info(&self.config.name)
            .await
            .map_err(|err| {
                self.failed(JournalOp::Read, &err);
            })?;
        match stream.get_last_raw_message_by_subject(subject).await {
            Ok(message) => Ok(Cursor {
                seq: message.sequence,
                offset: offset_of(Some(&message.headers)).unwrap_or(0),
            }),
            Err(err) if err.kind() == LastRawMessageErrorKind::NoMessageFound => {
                Ok(Cursor::default())
            }
            Err(err) => {
                self.failed(JournalOp::Read, &err);
                Err(())
            }
        }
    }
}

/// The secret of resume tokens kept in JetStream under `prefix`, shared by
/// every instance on the bus: the first instance stores a random one in a
/// stream of one message that refuses a second; every instance reads the
/// one stored; in `replicas` copies. `None` when JetStream cannot be
/// reached.
pub(super) async fn shared_secret(
    client: Client,
    prefix: &str,
    replicas: usize,
) -> Option<Vec<u8>> {
    let mut context = jetstream::new(client);
    context.set_timeout(REQUEST_TIMEOUT);
    let subject = format!("{prefix}.token-secret");
    let name = stream_name(prefix).replace("_HISTORY", "_TOKEN_SECRET");
    let config = Config {
        name,
        subjects: vec![subject.clone()],
        max_messages: 1,
        num_replicas: replicas.max(1),
        discard: DiscardPolicy::New,
        storage: StorageType::File,
        ..Config::default()
    };
    let stream = match context.get_or_create_stream(config).await {
        Ok(stream) => stream,
        Err(err) => {
            tracing::warn!(error = %err, "cannot keep the chat token secret in JetStream");
            return None;
        }
    };
    let fresh = crate::chat::random_secret();
    let publish = PublishMessage::build()
        .payload(Bytes::from(fresh))
        .expected_last_subject_sequence(0);
    // Refused when another instance stored one first: then that one is read.
    if let Ok(ack) = context.send_publish(subject.clone(), publish).await {
        let _ = ack.await;
    }
    match stream.get_last_raw_message_by_subject(&subject).await {
        Ok(message) if message.payload.len() >= 16 => Some(message.payload.to_vec()),
        Ok(_) => None,
        Err(err) => {
            tracing::warn!(error = %err, "cannot read the chat token secret from JetStream");
            None
        }
    }
}
