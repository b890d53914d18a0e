//! Idempotency keys as both backends keep them: a key, the fingerprint of
//! the request that first ran with it, when it expires, and the answer
//! that request got ([`Kept`]). A backend stores the record in the same
//! transaction as the change it answers, so after a crash either both are
//! there or neither; it stores none for a write that failed.
//!
//! The answer is plain data (status, the headers that matter, body bytes):
//! the HTTP layer renders it ([`Keyed::answer`]) and replays it; the store
//! only keeps the bytes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Store;

/// Expired keys removed per store call: small, so a prune never holds
/// the store long.
pub const PRUNE_BATCH: usize = 256;

/// The format of a stored record; a later one gets a new byte.
const FORMAT_V1: u8 = 1;

/// An answer as kept for replays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    /// The HTTP status.
    pub status: u16,
    /// The `Location` header, if the answer had one.
    pub location: Option<String>,
    /// The `ETag` header, if the answer had one.
    pub etag: Option<String>,
    /// The body (JSON), empty for a 304.
    pub body: Vec<u8>,
}

impl Kept {
    /// The 304 of a write to a deleted item: no headers, no body.
    #[must_use]
    pub fn not_modified() -> Kept {
        Kept {
            status: 304,
            location: None,
            etag: None,
            body: Vec::new(),
        }
    }
}

/// A key as a write carries it to the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// The client's key (1-255 visible ASCII characters).
    pub key: String,
    /// SHA-256 of the method, route template, path ids and body.
    pub fingerprint: [u8; 32],
    /// Unix seconds after which the key may run again.
    pub expires: u64,
}

/// A write's key and how to render the answer to keep with it, from the
/// value the write produced.
#[derive(Debug, Clone)]
pub struct Keyed<T> {
    /// The key.
    pub key: IdempotencyKey,
    /// The answer a value of the write gets.
    pub answer: fn(&T) -> Kept,
}

impl<T> Keyed<T> {
    /// The record to keep when the write produced `value`.
    #[must_use]
    pub fn record(&self, value: &T) -> KeptRecord {
        self.record_of((self.answer)(value))
    }

    /// The record to keep for `answer`.
    #[must_use]
    pub fn record_of(&self, answer: Kept) -> KeptRecord {
        KeptRecord {
            fingerprint: self.key.fingerprint,
            expires: self.key.expires,
            answer,
        }
    }
}

/// What is stored under a key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptRecord {
    /// The fingerprint of the request that ran.
    pub fingerprint: [u8; 32],
    /// Unix seconds after which the key may run again.
    pub expires: u64,
    /// The answer it got.
    pub answer: Kept,
}

/// A stored record that does not read.
#[derive(Debug, thiserror::Error)]
#[error("kept idempotency record does not read: {0}")]
pub struct KeptCodecError(String);

impl KeptRecord {
    /// The record's bytes: a format byte, then bincode.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_V1];
        // Plain data of bounded size: encoding cannot fail.
        let _ = bincode::serde::encode_into_std_write(self, &mut out, bincode::config::standard());
        out
    }

    /// Reads bytes written by [`KeptRecord::encode`].
    ///
    /// # Errors
    /// When the bytes are not such a record.
    pub fn decode(bytes: &[u8]) -> Result<KeptRecord, KeptCodecError> {
        match bytes.split_first() {
            Some((&FORMAT_V1, rest)) => {
                bincode::serde::decode_from_slice(rest, bincode::config::standard())
                    .map(|(record, _)| record)
                    .map_err(|err| KeptCodecError(err.to_string()))
            }
            Some((version, _)) => Err(KeptCodecError(format!("unknown format {version}"))),
            None => Err(KeptCodecError("empty".into())),
        }
    }

    /// Whether the key still holds at `now` (unix seconds).
    #[must_use]
    pub fn live_at(&self, now: u64) -> bool {
        self.expires > now
    }
}

/// What one step of pruning did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Expired keys removed.
    pub removed: usize,
    /// Whether expired keys may remain beyond this step.
    pub more: bool,
}

/// Unix seconds now.
#[must_use]
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Removes expired keys from `store` forever, in batches of
/// [`PRUNE_BATCH`] with a pause between them, every `ttl` (at most a
/// minute, at least a second); run it as a task and abort it at shutdown.
/// A failed round is logged and tried again next time.
pub async fn prune_expired<S: Store>(store: S, ttl: Duration) {
    let every = ttl.clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        loop {
            match store.prune_kept(now(), PRUNE_BATCH).await {
                Ok(Pruned { more: true, .. }) => {
                    // More may wait: let requests through first.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok(Pruned { more: false, .. }) => break,
                Err(err) => {
                    tracing::warn!(error = %crate::error_chain(&err), "pruning expired idempotency keys failed");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_as_written() {
        let record = KeptRecord {
            fingerprint: [7; 32],
            expires: 1_900_000_000,
            answer: Kept {
                status: 201,
                location: Some("/item/3".into()),
                etag: Some("\"abc\"".into()),
                body: br#"{"id":3}"#.to_vec(),
            },
        };
        let bytes = record.encode();
        assert_eq!(KeptRecord::decode(&bytes).unwrap(), record);
        assert!(KeptRecord::decode(&bytes[..3]).is_err());
        assert!(KeptRecord::decode(&[9]).is_err());
        assert!(record.live_at(1_899_999_999));
        assert!(!record.live_at(1_900_000_000));
    }
}
