//! Item operations: each change a compare-and-swap of one record through
//! the write gate, retried on a race.

use std::sync::atomic::Ordering;

use super::codec::{self, ItemRecord};
use super::index::{self, Candidates};
use super::records::KeptFor;
use super::{SledStore, backend};
use crate::domain::etag::{self, Condition};
use crate::domain::{Id, Item, ItemFilter, ItemPatch, NewItem, PriceRange, Resource};
use crate::store::{Kept, KeptAnswer, KeptRecord, Keyed, StoreError, StoreResult, page};

impl SledStore {
    /// The record of item `id`.
    pub(super) fn read_item(&self, id: Id) -> StoreResult<ItemRecord> {
        let bytes = self
            .inner
            .records
            .get(Resource::Item, id)?
            .ok_or(StoreError::ItemNotFound(id))?;
        codec::decode(&bytes).map_err(backend)
    }

    /// Changes an item atomically (compare-and-swap, retried on a race),
    /// durably on return.
    /// `precondition` is checked against the very record the swap replaces,
    /// so two writers holding the same ETag cannot both win. With `keyed`,
    /// the swap and the key's answer are one transaction, in the writer
    /// thread's batch (durable when it returns), also when `change`
    /// changes nothing (a delete of a deleted item) or refuses with
    /// [`StoreError::ItemDeleted`] (a 304, kept as such): the record is
    /// then written back as it was, so the key is kept only if it still
    /// holds that.
    async fn update_item(
        &self,
        id: Id,
        precondition: Option<&Condition>,
        keyed: Option<&Keyed<Item>>,
        change: impl Fn(&mut ItemRecord) -> StoreResult<bool>,
    ) -> StoreResult<ItemRecord> {
        let records = &self.inner.records;
        loop {
            let old = records
                .get(Resource::Item, id)?
                .ok_or(StoreError::ItemNotFound(id))?;
            let mut record: ItemRecord = codec::decode(&old).map_err(backend)?;
            if let Some(condition) = precondition {
                let current = etag::of(&item_of(id, record.clone()));
                if !condition.matches_strongly(&current) {
                    return Err(StoreError::PreconditionFailed(id));
                }
            }
            let Some(keyed) = keyed else {
                if !change(&mut record)? {
                    // A delete of a deleted item: that delete may still be
                    // in flight.
                    self.inner.committer.durable().await?;
                    return Ok(record);
                }
                let new = codec::encode(&record).map_err(backend)?;
                if records.swap(Resource::Item, id, old, &new)? {
                    self.inner.committer.durable().await?;
                    return Ok(record);
                }
                continue;
            };
            let (outcome, answer) = match change(&mut record) {
                Err(StoreError::ItemDeleted(_)) => (
                    Err(StoreError::ItemDeleted(id)),
                    keyed.record_of(Kept::not_modified()),
                ),
                changed => {
                    changed?;
                    let answer = keyed.record(&item_of(id, record.clone()));
                    (Ok(record.clone()), answer)
                }
            };
            let new = codec::encode(&record).map_err(backend)?;
            let entry = (keyed.key.key.as_bytes().to_vec(), answer.encode());
            let writer = &self.inner.cart_writer;
            if writer
                .put((Resource::Item, id), Some(old), new, entry)
                .await?
            {
                self.inner.disk.touch();
                return outcome;
            }
        }
    }
}

/// The API value of record `record` of item `id`.
fn item_of(id: Id, record: ItemRecord) -> Item {
    Item {
        id,
        name: record.name,
        price: record.price,
        deleted: record.deleted,
    }
}

/// [`Store::create_item`](crate::store::Store::create_item).
pub(super) async fn create(
    store: &SledStore,
    item: NewItem,
    keyed: Option<&Keyed<Item>>,
) -> StoreResult<Item> {
    let record = ItemRecord {
        name: item.name,
        price: item.price,
        deleted: false,
    };
    let bytes = codec::encode(&record).map_err(backend)?;
    let kept = keyed.map(|keyed| {
        // Kept as the item it created, rendered at replay as the route
        // renders it (see `crate::store::idempotency`).
        let (fingerprint, expires) = (keyed.key.fingerprint, keyed.key.expires);
        let answer = record.clone();
        let kept: KeptFor = Box::new(move |id| {
            KeptRecord {
                fingerprint,
                expires,
                answer: KeptAnswer::CreatedItem(item_of(id, answer)),
            }
            .encode_whole()
        });
        (keyed.key.key.as_str(), kept)
    });
    let id = store.insert_new(Resource::Item, bytes, kept).await?;
    Ok(item_of(id, record))
}

/// [`Store::item`](crate::store::Store::item).
pub(super) fn get(store: &SledStore, id: Id) -> StoreResult<Item> {
    Ok(item_of(id, store.read_item(id)?))
}

/// [`Store::items`](crate::store::Store::items): from the price index
/// when that is cheaper (see [`index::budget`]), else by walking the items
/// in id order until the page is full.
pub(super) fn list(store: &SledStore, filter: ItemFilter) -> StoreResult<Vec<Item>> {
    let accepts = |item: &Item| filter.accepts(item.price, item.deleted);
    if filter.price != PriceRange::default() {
        let candidates = {
            let indexes = store.inner.records.indexes();
            let budget = index::budget(filter.page, indexes.item_count());
            indexes.items_priced(filter.price, filter.show_deleted, budget)
        };
        if let Candidates::All(mut ids) = candidates {
            ids.sort_unstable();
            // Read again: an item may have changed since the index said so.
            let items = ids.into_iter().map(|id| get(store, id));
            return page(items, filter.page, accepts);
        }
    }
    let items = store.inner.records.iter(Resource::Item).map(|entry| {
        let (id, value) = entry?;
        let record: ItemRecord = codec::decode(&value).map_err(backend)?;
        Ok(item_of(id, record))
    });
    page(items, filter.page, accepts)
}

/// [`Store::replace_item`](crate::store::Store::replace_item).
pub(super) async fn replace(
    store: &SledStore,
    id: Id,
    item: NewItem,
    precondition: Option<&Condition>,
    keyed: Option<&Keyed<Item>>,
) -> StoreResult<Item> {
    let record = store
        .update_item(id, precondition, keyed, |record| {
            if record.deleted {
                return Err(StoreError::ItemDeleted(id));
            }
            record.name.clone_from(&item.name);
            record.price = item.price;
            Ok(true)
        })
        .await?;
    Ok(item_of(id, record))
}

/// [`Store::patch_item`](crate::store::Store::patch_item).
pub(super) async fn patch(
    store: &SledStore,
    id: Id,
    patch: ItemPatch,
    precondition: Option<&Condition>,
    keyed: Option<&Keyed<Item>>,
) -> StoreResult<Item> {
    let record = store
        .update_item(id, precondition, keyed, |record| {
            if record.deleted {
                return Err(StoreError::ItemDeleted(id));
            }
            patch.clone().apply(&mut record.name, &mut record.price);
            Ok(true)
        })
        .await?;
    Ok(item_of(id, record))
}

/// [`Store::delete_item`](crate::store::Store::delete_item).
pub(super) async fn delete(
    store: &SledStore,
    id: Id,
    precondition: Option<&Condition>,
    keyed: Option<&Keyed<Item>>,
) -> StoreResult<Item> {
    let deleted_now = std::sync::atomic::AtomicBool::new(false);
    let record = store
        .update_item(id, precondition, keyed, |record| {
            let changes = !record.deleted;
            record.deleted = true;
            deleted_now.store(changes, Ordering::Relaxed);
            Ok(changes)
        })
        .await?;
    if deleted_now.load(Ordering::Relaxed) {
        store.inner.live_items.fetch_sub(1, Ordering::Relaxed);
    }
    Ok(item_of(id, record))
}
