//! Idempotency keys as both backends keep them: a key, the fingerprint of
//! the request that first ran with it, when it expires, and the answer
//! that request got ([`Kept`]). A backend stores the record in the same
//! transaction as the change it answers, so after a crash either both are
//! there or neither; it stores none for a write that failed.
//!
//! The answer is plain data (status, the headers that matter, body bytes):
//! the HTTP layer renders it ([`Keyed::answer`]) and replays it; the store
//! only keeps the bytes. One answer is kept as what it was rendered from
//! instead: a created item ([`KeptAnswer::CreatedItem`]), so a store can
//! keep the key in the statement that draws the item's id (the id is kept
//! beside the record, not in it), and the HTTP layer renders it at replay
//! with the function that rendered the first answer. The embedded store
//! keeps it that way too, id included ([`KeptRecord::encode_whole`]): a
//! keyed create then renders nothing for its key, and keeps about a fifth
//! of the bytes. It keeps a created cart as its id
//! ([`KeptAnswer::CreatedCart`]) the same way: a record that holds the
//! whole created record can bring it back should a crash lose it (see
//! `sled::records::insert_new_keyed`).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::Store;
use crate::domain::{Id, Item};

/// Expired keys removed per store call: small, so a prune never holds
/// the store long.
pub const PRUNE_BATCH: usize = 256;

/// The format of a stored record; a later one gets a new byte.
/// Version 1: fingerprint, expiry and the rendered answer.
const FORMAT_V1: u8 = 1;
/// Version 2: fingerprint, expiry and a created item's name and price; its
/// id is kept beside the record.
const FORMAT_CREATED_ITEM: u8 = 2;
/// Version 3: fingerprint, expiry and a created item's id, name and price,
/// for a store that keeps nothing beside the record (the embedded one).
const FORMAT_CREATED_ITEM_WHOLE: u8 = 3;
/// Version 4: fingerprint, expiry and a created cart's id (the embedded
/// store).
const FORMAT_CREATED_CART: u8 = 4;

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
            answer: KeptAnswer::Sent(answer),
        }
    }
}

/// What is stored under a key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeptRecord {
    /// The fingerprint of the request that ran.
    pub fingerprint: [u8; 32],
    /// Unix seconds after which the key may run again.
    pub expires: u64,
    /// The answer it got.
    pub answer: KeptAnswer,
}

/// A kept answer: as sent, or what it was rendered from.
#[derive(Debug, Clone, PartialEq)]
pub enum KeptAnswer {
    /// The answer as it was sent.
    Sent(Kept),
    /// The answer to `POST /item` that created this item, rendered at
    /// replay as the route rendered it.
    CreatedItem(Item),
    /// The answer to `POST /cart` that created the cart with this id,
    /// rendered at replay as the route rendered it.
    CreatedCart(Id),
}

/// Format 1 as stored.
#[derive(Serialize, Deserialize)]
struct SentV1 {
    fingerprint: [u8; 32],
    expires: u64,
    answer: Kept,
}

/// Format 2 as stored (the item's id is kept beside it).
#[derive(Serialize, Deserialize)]
struct CreatedItemV2 {
    fingerprint: [u8; 32],
    expires: u64,
    name: String,
    price: f64,
}

/// Format 4 as stored.
#[derive(Serialize, Deserialize)]
struct CreatedCartV4 {
    fingerprint: [u8; 32],
    expires: u64,
    id: Id,
}

/// Format 3 as stored (`S`: the name, borrowed to write, owned to read).
#[derive(Serialize, Deserialize)]
struct CreatedItemV3<S> {
    fingerprint: [u8; 32],
    expires: u64,
    id: Id,
    name: S,
    price: f64,
}

/// A stored record that does not read.
#[derive(Debug, thiserror::Error)]
#[error("kept idempotency record does not read: {0}")]
pub struct KeptCodecError(String);

impl KeptRecord {
    /// The record's bytes: a format byte, then bincode. A created item's
    /// id is not in them: keep it beside them, and give it back to
    /// [`KeptRecord::decode_with_item`].
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let config = bincode::config::standard();
        // Plain data of bounded size: encoding cannot fail.
        match &self.answer {
            KeptAnswer::Sent(answer) => {
                let mut out = vec![FORMAT_V1];
                let stored = SentV1 {
                    fingerprint: self.fingerprint,
                    expires: self.expires,
                    answer: answer.clone(),
                };
                let _ = bincode::serde::encode_into_std_write(&stored, &mut out, config);
                out
            }
            KeptAnswer::CreatedItem(item) => {
                let mut out = vec![FORMAT_CREATED_ITEM];
                let stored = CreatedItemV2 {
                    fingerprint: self.fingerprint,
                    expires: self.expires,
                    name: item.name.clone(),
                    price: item.price,
                };
                let _ = bincode::serde::encode_into_std_write(&stored, &mut out, config);
                out
            }
            KeptAnswer::CreatedCart(id) => {
                let mut out = vec![FORMAT_CREATED_CART];
                let stored = CreatedCartV4 {
                    fingerprint: self.fingerprint,
                    expires: self.expires,
                    id: *id,
                };
                let _ = bincode::serde::encode_into_std_write(&stored, &mut out, config);
                out
            }
        }
    }

    /// The record's bytes with everything in them: as
    /// [`KeptRecord::encode`], but a created item's id is in them too (so
    /// [`KeptRecord::decode`] reads them), for a store that keeps nothing
    /// beside the record. A created item is kept as what it was rendered
    /// from, not rendered: smaller, and nothing to render for a write.
    #[must_use]
    pub fn encode_whole(&self) -> Vec<u8> {
        let KeptAnswer::CreatedItem(item) = &self.answer else {
            return self.encode();
        };
        let mut out = Vec::with_capacity(64 + item.name.len());
        out.push(FORMAT_CREATED_ITEM_WHOLE);
        let stored = CreatedItemV3 {
            fingerprint: self.fingerprint,
            expires: self.expires,
            id: item.id,
            name: item.name.as_str(),
            price: item.price,
        };
        // Plain data of bounded size: encoding cannot fail.
        let _ =
            bincode::serde::encode_into_std_write(&stored, &mut out, bincode::config::standard());
        out
    }

    /// Reads bytes written by [`KeptRecord::encode`] of an answer as sent,
    /// or by [`KeptRecord::encode_whole`].
    ///
    /// # Errors
    /// When the bytes are not such a record (a created item's record needs
    /// its id: [`KeptRecord::decode_with_item`]).
    pub fn decode(bytes: &[u8]) -> Result<KeptRecord, KeptCodecError> {
        KeptRecord::decode_with_item(bytes, None)
    }

    /// Reads bytes written by [`KeptRecord::encode`], with the id kept
    /// beside them when the answer is a created item.
    ///
    /// # Errors
    /// When the bytes are not such a record, or a created item's comes
    /// without its id.
    pub fn decode_with_item(bytes: &[u8], item: Option<Id>) -> Result<KeptRecord, KeptCodecError> {
        let config = bincode::config::standard();
        let unread = |err: bincode::error::DecodeError| KeptCodecError(err.to_string());
        match bytes.split_first() {
            Some((&FORMAT_V1, rest)) => {
                let (stored, _): (SentV1, usize) =
                    bincode::serde::decode_from_slice(rest, config).map_err(unread)?;
                Ok(KeptRecord {
                    fingerprint: stored.fingerprint,
                    expires: stored.expires,
                    answer: KeptAnswer::Sent(stored.answer),
                })
            }
            Some((&FORMAT_CREATED_ITEM, rest)) => {
                let id =
                    item.ok_or_else(|| KeptCodecError("a created item without its id".into()))?;
                let (stored, _): (CreatedItemV2, usize) =
                    bincode::serde::decode_from_slice(rest, config).map_err(unread)?;
                Ok(KeptRecord {
                    fingerprint: stored.fingerprint,
                    expires: stored.expires,
                    answer: KeptAnswer::CreatedItem(Item {
                        id,
                        name: stored.name,
                        price: stored.price,
                        deleted: false,
                    }),
                })
            }
            Some((&FORMAT_CREATED_ITEM_WHOLE, rest)) => {
                let (stored, _): (CreatedItemV3<String>, usize) =
                    bincode::serde::decode_from_slice(rest, config).map_err(unread)?;
                Ok(KeptRecord {
                    fingerprint: stored.fingerprint,
                    expires: stored.expires,
                    answer: KeptAnswer::CreatedItem(Item {
                        id: stored.id,
                        name: stored.name,
                        price: stored.price,
                        deleted: false,
                    }),
                })
            }
            Some((&FORMAT_CREATED_CART, rest)) => {
                let (stored, _): (CreatedCartV4, usize) =
                    bincode::serde::decode_from_slice(rest, config).map_err(unread)?;
                Ok(KeptRecord {
                    fingerprint: stored.fingerprint,
                    expires: stored.expires,
                    answer: KeptAnswer::CreatedCart(stored.id),
                })
            }
            Some((version, _)) => Err(KeptCodecError(format!("unknown format {version}"))),
            None => Err(KeptCodecError("empty".into())),
        }
    }

    /// Whether `bytes` are the record of a create kept whole (a created
    /// item's in format 3, a created cart's), read from their first byte
    /// only: such a record holds all of the record the create wrote.
    #[must_use]
    pub fn holds_a_create(bytes: &[u8]) -> bool {
        matches!(
            bytes.first(),
            Some(&(FORMAT_CREATED_ITEM_WHOLE | FORMAT_CREATED_CART))
        )
    }

    /// Whether the record in `bytes` (as [`KeptRecord::encode`] wrote
    /// them) still holds at `now`, read from its head only (the
    /// fingerprint and the expiry, first in every format); a record that
    /// does not read holds nothing.
    #[must_use]
    pub fn bytes_live_at(bytes: &[u8], now: u64) -> bool {
        let Some((
            &(FORMAT_V1 | FORMAT_CREATED_ITEM | FORMAT_CREATED_ITEM_WHOLE | FORMAT_CREATED_CART),
            rest,
        )) = bytes.split_first()
        else {
            return false;
        };
        let head: Result<(([u8; 32], u64), usize), _> =
            bincode::serde::decode_from_slice(rest, bincode::config::standard());
        head.is_ok_and(|((_, expires), _)| expires > now)
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
            answer: KeptAnswer::Sent(Kept {
                status: 201,
                location: Some("/item/3".into()),
                etag: Some("\"abc\"".into()),
                body: br#"{"id":3}"#.to_vec(),
            }),
        };
        let bytes = record.encode();
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(KeptRecord::decode(&bytes).unwrap(), record);
        assert_eq!(
            KeptRecord::decode_with_item(&bytes, Some(9)).unwrap(),
            record
        );
        assert!(KeptRecord::decode(&bytes[..3]).is_err());
        assert!(KeptRecord::decode(&[9]).is_err());
        assert!(record.live_at(1_899_999_999));
        assert!(!record.live_at(1_900_000_000));
    }

    #[test]
    fn whether_a_record_holds_reads_from_its_head_in_every_format() {
        let sent = KeptRecord {
            fingerprint: [7; 32],
            expires: 1_900_000_000,
            answer: KeptAnswer::Sent(Kept::not_modified()),
        };
        let created = KeptRecord {
            answer: KeptAnswer::CreatedItem(Item {
                id: 1,
                name: "Tea".into(),
                price: 2.5,
                deleted: false,
            }),
            ..sent.clone()
        };
        let cart = KeptRecord {
            answer: KeptAnswer::CreatedCart(4),
            ..sent.clone()
        };
        for bytes in [
            sent.encode(),
            created.encode(),
            created.encode_whole(),
            cart.encode(),
        ] {
            assert!(KeptRecord::bytes_live_at(&bytes, 1_899_999_999));
            assert!(!KeptRecord::bytes_live_at(&bytes, 1_900_000_000));
            assert!(!KeptRecord::bytes_live_at(&bytes[..20], 0), "cut short");
        }
        assert!(!KeptRecord::bytes_live_at(&[], 0));
        assert!(!KeptRecord::bytes_live_at(&[9; 64], 0), "unknown format");
    }

    #[test]
    fn a_created_cart_reads_back_with_its_id_and_counts_as_a_create_kept_whole() {
        let record = KeptRecord {
            fingerprint: [3; 32],
            expires: 1_900_000_000,
            answer: KeptAnswer::CreatedCart(42),
        };
        let bytes = record.encode();
        assert_eq!(bytes[0], FORMAT_CREATED_CART);
        assert_eq!(record.encode_whole(), bytes);
        assert_eq!(KeptRecord::decode(&bytes).unwrap(), record);
        assert!(KeptRecord::holds_a_create(&bytes));
        let item = KeptRecord {
            answer: KeptAnswer::CreatedItem(Item {
                id: 1,
                name: "Tea".into(),
                price: 2.5,
                deleted: false,
            }),
            ..record.clone()
        };
        assert!(KeptRecord::holds_a_create(&item.encode_whole()));
        assert!(
            !KeptRecord::holds_a_create(&item.encode()),
            "its id is beside it"
        );
        let sent = KeptRecord {
            answer: KeptAnswer::Sent(Kept::not_modified()),
            ..record
        };
        assert!(!KeptRecord::holds_a_create(&sent.encode()));
    }

    #[test]
    fn a_format_1_record_as_stored_still_reads() {
        // Bytes as the first format wrote them, before format 2 existed.
        let mut bytes = vec![1];
        bytes.extend([7; 32]);
        bytes.extend([252, 0x00, 0xb3, 0x3f, 0x71]); // 1_900_000_000, varint
        bytes.push(201);
        bytes.extend([1, 7]);
        bytes.extend(b"/item/3");
        bytes.push(0);
        bytes.extend([3]);
        bytes.extend(b"{}\n");
        let record = KeptRecord::decode(&bytes).unwrap();
        assert_eq!(record.fingerprint, [7; 32]);
        assert_eq!(record.expires, 1_900_000_000);
        assert_eq!(
            record.answer,
            KeptAnswer::Sent(Kept {
                status: 201,
                location: Some("/item/3".into()),
                etag: None,
                body: b"{}\n".to_vec(),
            })
        );
    }

    #[test]
    fn a_created_item_reads_back_with_the_id_kept_beside_it() {
        let record = KeptRecord {
            fingerprint: [5; 32],
            expires: 1_900_000_000,
            answer: KeptAnswer::CreatedItem(Item {
                id: 42,
                name: "Tea".into(),
                price: 2.5,
                deleted: false,
            }),
        };
        let bytes = record.encode();
        assert_eq!(bytes[0], FORMAT_CREATED_ITEM);
        assert_eq!(
            KeptRecord::decode_with_item(&bytes, Some(42)).unwrap(),
            record
        );
        assert!(KeptRecord::decode(&bytes).is_err(), "needs its id");
    }

    #[test]
    fn a_created_item_kept_whole_reads_back_with_its_id() {
        let record = KeptRecord {
            fingerprint: [5; 32],
            expires: 1_900_000_000,
            answer: KeptAnswer::CreatedItem(Item {
                id: 42,
                name: "Thé ✓".into(),
                price: 0.1,
                deleted: false,
            }),
        };
        let bytes = record.encode_whole();
        assert_eq!(bytes[0], FORMAT_CREATED_ITEM_WHOLE);
        assert_eq!(KeptRecord::decode(&bytes).unwrap(), record);
        // The id kept in the record wins over one given beside it.
        assert_eq!(
            KeptRecord::decode_with_item(&bytes, Some(7)).unwrap(),
            record
        );
        assert!(bytes.len() < 64, "{} bytes", bytes.len());
        // An answer as sent is kept as encode keeps it.
        let sent = KeptRecord {
            answer: KeptAnswer::Sent(Kept::not_modified()),
            ..record
        };
        assert_eq!(sent.encode_whole(), sent.encode());
    }
}
