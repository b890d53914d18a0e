//! Whole-store transfer: the consistent export written, in chunks, while
//! writes go on (through the gate of `snapshot.rs`), and the import of one
//! into an empty store.

use std::sync::atomic::Ordering;

use super::codec::{self, CartRecord, ItemRecord};
use super::{SledStore, backend};
use crate::domain::Resource;
use crate::store::export::{
    ExportCart, ExportCounts, ExportItem, ExportLine, ExportWriter, Snapshot,
};
use crate::store::stream::{CHUNK_BYTES, Chunks};
use crate::store::{StoreError, StoreResult};

impl SledStore {
    /// Writes every record as of one moment, in the export format, to
    /// `out` in chunks while writes go on (see `snapshot.rs`). Blocking:
    /// run it on the scan pool. Memory: the chunks in flight and the
    /// before-images of records changed while it runs, not the store.
    pub(super) fn write_export(&self, out: &Chunks) -> StoreResult<ExportCounts> {
        let _one_at_a_time = self
            .inner
            .exporting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let started = std::time::Instant::now();
        let records = &self.inner.records;
        let (capture, (next_item_id, next_cart_id)) =
            records.open_capture(|| (self.inner.item_ids.peek(), self.inner.cart_ids.peek()));
        let opened = started.elapsed();
        let write = || -> StoreResult<ExportCounts> {
            let buffer = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8);
            let mut writer =
                ExportWriter::start(buffer, next_item_id, next_cart_id).map_err(backend)?;
            for entry in records.below(Resource::Item, next_item_id) {
                let (id, now) = entry?;
                let Some(bytes) = capture.before(Resource::Item, id).unwrap_or(Some(now)) else {
                    continue;
                };
                let record: ItemRecord = codec::decode(&bytes).map_err(backend)?;
                writer
                    .item(&ExportItem {
                        id,
                        name: record.name,
                        price: record.price,
                        deleted: record.deleted,
                    })
                    .map_err(backend)?;
                if Chunks::is_due(writer.out_mut()) {
                    out.send_blocking(writer.out_mut())?;
                }
            }
            for entry in records.below(Resource::Cart, next_cart_id) {
                let (id, now) = entry?;
                let Some(bytes) = capture.before(Resource::Cart, id).unwrap_or(Some(now)) else {
                    continue;
                };
                let record: CartRecord = codec::decode(&bytes).map_err(backend)?;
                let lines = record.lines.iter().map(|line| ExportLine {
                    item: line.item,
                    quantity: line.quantity,
                });
                writer
                    .cart(&ExportCart {
                        id,
                        lines: lines.collect(),
                    })
                    .map_err(backend)?;
                if Chunks::is_due(writer.out_mut()) {
                    out.send_blocking(writer.out_mut())?;
                }
            }
            let (mut rest, counts) = writer.finish().map_err(backend)?;
            out.send_blocking(&mut rest)?;
            Ok(counts)
        };
        let written = write();
        let closing = std::time::Instant::now();
        records.close_capture();
        let closed = closing.elapsed();
        if let Ok(counts) = &written {
            // Writers wait only while the gate opens and closes.
            tracing::info!(
                items = counts.items,
                carts = counts.carts,
                millis = started.elapsed().as_millis() as u64,
                open_micros = opened.as_micros() as u64,
                close_micros = closed.as_micros() as u64,
                "snapshot taken"
            );
        }
        written
    }
}

/// [`Store::import`](crate::store::Store::import): only into an empty store.
pub(super) async fn import(store: &SledStore, snapshot: Snapshot) -> StoreResult<()> {
    let records = &store.inner.records;
    let (items, carts) = (records.count(Resource::Item), records.count(Resource::Cart));
    if items > 0 || carts > 0 {
        return Err(StoreError::NotEmpty {
            items: items as u64,
            carts: carts as u64,
        });
    }
    let mut live = 0;
    let mut items = Vec::with_capacity(snapshot.items.len());
    for item in &snapshot.items {
        let record = ItemRecord {
            name: item.name.clone(),
            price: item.price,
            deleted: item.deleted,
        };
        live += u64::from(!item.deleted);
        items.push((item.id, codec::encode(&record).map_err(backend)?));
    }
    records.load(Resource::Item, &items)?;
    for item in &snapshot.items {
        store.inner.ledger.stored(Resource::Item, item.id);
    }
    let mut carts = Vec::with_capacity(snapshot.carts.len());
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
        carts.push((cart.id, codec::encode(&record).map_err(backend)?));
    }
    records.load(Resource::Cart, &carts)?;
    for cart in &snapshot.carts {
        store.inner.ledger.stored(Resource::Cart, cart.id);
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
