//! The idempotency keys behind the write gate: read, counted, pruned, and
//! keyed creates rolled forward at open. They are written in
//! [`Records::transact`] with their change, or just before it
//! ([`Records::insert_new_keyed`]).

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use sled::IVec;

use super::{Records, backend};
use crate::domain::Resource;
use crate::store::sled::codec::{self, CartRecord, ItemRecord};
use crate::store::{KeptAnswer, KeptRecord};
use crate::store::{Pruned, StoreResult};

impl Records {
    /// The record kept under idempotency key `key`.
    pub(in super::super) fn kept(&self, key: &[u8]) -> StoreResult<Option<IVec>> {
        self.kept.get(key).map_err(backend)
    }

    /// How many idempotency keys are kept.
    pub(in super::super) fn kept_count(&self) -> u64 {
        self.kept_count.load(Ordering::Relaxed)
    }

    /// Removes up to `batch` kept keys for which `expired` holds, looking
    /// at no more than 16 times as many, from where the last call stopped
    /// (so every key is looked at in turn, however many live keys come
    /// first). Each is removed only if unchanged since it was read (a key
    /// run again meanwhile stays).
    pub(in super::super) fn prune_kept(
        &self,
        batch: usize,
        expired: impl Fn(&[u8]) -> bool,
    ) -> StoreResult<Pruned> {
        let mut cursor = self
            .prune_cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let from = match cursor.take() {
            Some(last) => std::ops::Bound::Excluded(last),
            None => std::ops::Bound::Unbounded,
        };
        let mut pruned = Pruned::default();
        let mut seen = 0;
        for entry in self
            .kept
            .range::<IVec, _>((from, std::ops::Bound::Unbounded))
        {
            let (key, value) = entry.map_err(backend)?;
            seen += 1;
            if expired(&value) {
                let gone = self
                    .kept
                    .compare_and_swap(&key, Some(value), None::<&[u8]>)
                    .map_err(backend)?;
                if gone.is_ok() {
                    self.kept_count.fetch_sub(1, Ordering::Relaxed);
                    pruned.removed += 1;
                }
            }
            if pruned.removed >= batch || seen >= batch.saturating_mul(16) {
                // Not at the end: the next call goes on after this key.
                *cursor = Some(key);
                pruned.more = true;
                break;
            }
        }
        Ok(pruned)
    }

    /// Writes the record of every keyed create whose key was stored but
    /// whose record was not: a crash between the two writes of
    /// [`Records::insert_new_keyed`]. Such a create was never answered,
    /// but its key says it ran, so a retry would be replayed: the record
    /// is written as the key holds it. Runs at open, before the records
    /// are read; how many records it wrote.
    pub(in super::super) fn roll_forward_creates(&self) -> StoreResult<u64> {
        let mut rolled = 0;
        for entry in &self.kept {
            let (_, value) = entry.map_err(backend)?;
            if !KeptRecord::holds_a_create(&value) {
                continue;
            }
            let Ok(kept) = KeptRecord::decode(&value) else {
                continue;
            };
            let (resource, id, bytes) = match kept.answer {
                KeptAnswer::CreatedItem(item) => {
                    let record = ItemRecord {
                        name: item.name,
                        price: item.price,
                        deleted: false,
                    };
                    (Resource::Item, item.id, codec::encode(&record))
                }
                KeptAnswer::CreatedCart(id) => {
                    (Resource::Cart, id, codec::encode(&CartRecord::default()))
                }
                KeptAnswer::Sent(_) => continue,
            };
            let tree = self.tree(resource);
            if tree.contains_key(codec::key(id)).map_err(backend)? {
                continue;
            }
            tree.insert(codec::key(id), bytes.map_err(backend)?)
                .map_err(backend)?;
            tracing::info!(
                ?resource,
                id,
                "rolled forward a keyed create a crash cut short"
            );
            rolled += 1;
        }
        Ok(rolled)
    }

    /// Counts `fresh` keys a committed [`Records::transact`] kept.
    pub(in super::super) fn note_kept(&self, fresh: u64) {
        self.kept_count.fetch_add(fresh, Ordering::Relaxed);
    }
}
