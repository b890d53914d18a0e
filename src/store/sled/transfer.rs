//! Whole-store transfer: the consistent snapshot an export reads while
//! writes go on (through the gate of `snapshot.rs`), and the import of one
//! into an empty store.

use std::sync::atomic::Ordering;

use super::codec::{self, CartRecord, ItemRecord};
use super::manifest::Records;
use super::snapshot::Kind;
use super::{SledStore, backend};
use crate::store::export::{ExportCart, ExportItem, ExportLine, Snapshot};
use crate::store::{StoreError, StoreResult};

impl SledStore {
    /// Reads every record as of one moment while writes go on (see
    /// `snapshot.rs`). Blocking: run it off the async threads.
    pub(super) fn read_snapshot(&self) -> StoreResult<Snapshot> {
        let _one_at_a_time = self
            .inner
            .exporting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = std::time::Instant::now();
        let (capture, (next_item_id, next_cart_id)) = self
            .inner
            .gate
            .open(|| (self.inner.item_ids.peek(), self.inner.cart_ids.peek()));
        let opened = started.elapsed();
        let read = || -> StoreResult<Snapshot> {
            let mut snapshot = Snapshot {
                next_item_id,
                next_cart_id,
                ..Snapshot::default()
            };
            for entry in self.inner.items.range(..codec::key(next_item_id)) {
                let (key, now) = entry.map_err(backend)?;
                let id = codec::id_of(&key).map_err(backend)?;
                let Some(bytes) = capture.before(Kind::Item, id).unwrap_or(Some(now)) else {
                    continue;
                };
                let record: ItemRecord = codec::decode(&bytes).map_err(backend)?;
                snapshot.items.push(ExportItem {
                    id,
                    name: record.name,
                    price: record.price,
                    deleted: record.deleted,
                });
            }
            for entry in self.inner.carts.range(..codec::key(next_cart_id)) {
                let (key, now) = entry.map_err(backend)?;
                let id = codec::id_of(&key).map_err(backend)?;
                let Some(bytes) = capture.before(Kind::Cart, id).unwrap_or(Some(now)) else {
                    continue;
                };
                let record: CartRecord = codec::decode(&bytes).map_err(backend)?;
                snapshot.carts.push(ExportCart {
                    id,
                    lines: record
                        .lines
                        .iter()
                        .map(|line| ExportLine {
                            item: line.item,
                            quantity: line.quantity,
                        })
                        .collect(),
                });
            }
            Ok(snapshot)
        };
        let snapshot = read();
        let closing = std::time::Instant::now();
        self.inner.gate.close();
        let closed = closing.elapsed();
        if let Ok(snapshot) = &snapshot {
            // Writers wait only while the gate opens and closes.
            tracing::info!(
                items = snapshot.items.len(),
                carts = snapshot.carts.len(),
                millis = started.elapsed().as_millis() as u64,
                open_micros = opened.as_micros() as u64,
                close_micros = closed.as_micros() as u64,
                "snapshot taken"
            );
        }
        snapshot
    }
}

/// [`Store::import`](crate::store::Store::import): only into an empty store.
pub(super) async fn import(store: &SledStore, snapshot: Snapshot) -> StoreResult<()> {
    let (items, carts) = (store.inner.items.len(), store.inner.carts.len());
    if items > 0 || carts > 0 {
        return Err(StoreError::NotEmpty {
            items: items as u64,
            carts: carts as u64,
        });
    }
    let mut batch = sled::Batch::default();
    let mut live = 0;
    for item in &snapshot.items {
        let record = ItemRecord {
            name: item.name.clone(),
            price: item.price,
            deleted: item.deleted,
        };
        live += u64::from(!item.deleted);
        batch.insert(
            &codec::key(item.id),
            codec::encode(&record).map_err(backend)?,
        );
    }
    store.inner.items.apply_batch(batch).map_err(backend)?;
    for item in &snapshot.items {
        store.inner.ledger.stored(Records::Items, item.id);
    }
    let mut batch = sled::Batch::default();
    for cart in &snapshot.carts {
        let record = CartRecord {
            lines: cart
                .lines
                .iter()
                .map(|line| codec::LineRecord {
                    item: line.item,
                    quantity: line.quantity,
                })
                .collect(),
        };
        batch.insert(
            &codec::key(cart.id),
            codec::encode(&record).map_err(backend)?,
        );
    }
    store.inner.carts.apply_batch(batch).map_err(backend)?;
    for cart in &snapshot.carts {
        store.inner.ledger.stored(Records::Carts, cart.id);
    }
    store.inner.item_ids.advance_to(snapshot.next_item_id)?;
    store.inner.cart_ids.advance_to(snapshot.next_cart_id)?;
    store.inner.live_items.fetch_add(live, Ordering::Relaxed);
    store
        .inner
        .cart_count
        .fetch_add(snapshot.carts.len() as u64, Ordering::Relaxed);
    store.inner.committer.durable().await
}
