//! The embedded backend: sled trees `items` and `carts` keyed by big-endian
//! id, plus `meta` for id reservations; the data directory is locked by one
//! process at a time. Beside sled, the `manifest` file records how much the
//! store held, so damage is noticed at start-up (see `open.rs`). Every
//! change of an item or a cart goes through the write gate (`records.rs`).
//!
//! Here: the store handle, opening it and the [`Store`] impl, which hands
//! each call to `items`, `carts` or `transfer` (the streaming export, import).

use crate::domain::etag::Condition;
use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

mod cart_writer;
mod carts;
mod check;
mod codec;
mod durability;
mod ids;
mod index;
mod items;
mod manifest;
mod open;
mod records;
mod snapshot;
mod transfer;

use cart_writer::CartWriter;
use durability::{Committer, DiskSync};
use manifest::Ledger;
use records::{KeptEntry, KeptFor, Records};

pub use check::{CheckReport, ManifestState, Scan, Tally};
pub use durability::Durability;
use ids::{IdGen, IdHome};
pub use open::{OnDamage, OpenError, check};

use super::export::{ExportCounts, Snapshot};
use super::stream::{Chunks, ExportMode};
use super::{
    KeptRecord, Keyed, Pruned, Scans, Store, StoreError, StoreResult, StoreStats, idempotency,
};
use crate::domain::{Cart, CartFilter, Id, Item, ItemFilter, ItemPatch, NewItem, Resource};

/// Items and carts in sled. A cheap handle: clones share one database.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
    /// Where scans, exports and big carts run, off the async threads.
    scans: Scans,
}

/// A cart with more lines than this is priced off the async threads: each
/// line is one more read.
const BIG_CART: usize = 32;

struct Inner {
    db: sled::Db,
    /// The items and carts, behind the write gate.
    records: Arc<Records>,
    item_ids: IdGen,
    cart_ids: IdGen,
    disk: Arc<DiskSync>,
    ledger: Arc<Ledger>,
    durability: Durability,
    committer: Committer,
    cart_writer: CartWriter,
    /// One export at a time.
    exporting: std::sync::Mutex<()>,
    /// The flusher and cart writer threads, joined when the store goes.
    threads: Vec<std::thread::JoinHandle<()>>,
    live_items: AtomicU64,
    cart_count: AtomicU64,
    /// Held open for its lock for as long as the store lives; also tells
    /// the free space of the disk under the data directory.
    lock: File,
}

/// Bytes an unprivileged writer may still put on the file system holding
/// `file`, or `None` when the system will not say.
fn available_bytes(file: &File) -> Option<u64> {
    let stats = rustix::fs::fstatvfs(file).ok()?;
    Some(stats.f_bavail.saturating_mul(stats.f_frsize))
}

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(err)
}

/// What the write gate stores for `keyed` when the write produced `value`.
fn kept_entry<T>(keyed: &Keyed<T>, value: &T) -> KeptEntry {
    (
        keyed.key.key.as_bytes().to_vec(),
        keyed.record(value).encode(),
    )
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`, locking it; refuses
    /// a damaged one ([`OpenError::Damaged`]).
    pub fn open(
        dir: &Path,
        durability: Durability,
        flush_every_ms: u64,
    ) -> Result<Self, OpenError> {
        SledStore::open_with(dir, durability, flush_every_ms, OnDamage::Refuse)
    }

    /// Opens the store in `dir`, doing `on_damage` when it is damaged.
    pub fn open_with(
        dir: &Path,
        durability: Durability,
        flush_every_ms: u64,
        on_damage: OnDamage,
    ) -> Result<Self, OpenError> {
        let unusable = |source| OpenError::Unusable {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(unusable)?;
        let lock = open::lock_dir(dir)?;
        let every = flush_every_ms.max(1);
        let sled_every = (durability == Durability::Periodic).then_some(every);
        let opened = open::open_checked(dir, sled_every, on_damage)?;
        let database = |source| OpenError::Database {
            path: dir.to_path_buf(),
            source,
        };
        let (db, records, meta) = (opened.db, Arc::new(opened.records), opened.meta);
        let ledger = Arc::new(Ledger::start(dir, opened.start).map_err(unusable)?);
        let disk = DiskSync::new(
            db.clone(),
            &dir.join("sled"),
            meta.clone(),
            opened.start.sync,
            ledger.clone(),
        );
        let disk = Arc::new(disk.map_err(unusable)?);
        let ids = |resource, meta_key, floor| {
            let home = IdHome {
                meta: &meta,
                meta_key,
                disk: disk.clone(),
                ledger: ledger.clone(),
                resource,
            };
            let last = records.last_id(resource).map_err(database)?;
            IdGen::open(last, home, floor).map_err(database)
        };
        let item_ids = ids(Resource::Item, "next_item_id", opened.start.items.next)?;
        let cart_ids = ids(Resource::Cart, "next_cart_id", opened.start.carts.next)?;
        let (committer, flusher) =
            Committer::start(durability, Duration::from_millis(every), disk.clone())
                .map_err(unusable)?;
        let syncs_adds = (durability == Durability::Sync).then(|| disk.clone());
        let (cart_writer, writer) =
            CartWriter::start(records.clone(), syncs_adds).map_err(unusable)?;
        Ok(SledStore {
            inner: Arc::new(Inner {
                db,
                records,
                item_ids,
                cart_ids,
                disk,
                ledger,
                durability,
                committer,
                cart_writer,
                exporting: std::sync::Mutex::new(()),
                threads: vec![flusher, writer],
                live_items: AtomicU64::new(opened.scan.live_items),
                cart_count: AtomicU64::new(opened.scan.carts.count),
                lock,
            }),
            scans: Scans::default(),
        })
    }

    /// This store with scans, exports and big carts bounded by `scans`.
    #[must_use]
    pub fn with_scans(mut self, scans: Scans) -> Self {
        self.scans = scans;
        self
    }

    /// Runs `work` on the store in the bounded pool for long work.
    async fn off_runtime<T: Send + 'static>(
        &self,
        work: impl FnOnce(&SledStore) -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let store = self.clone();
        self.scans.run(move || work(&store)).await
    }

    /// Stores `bytes` as a new record of `resource` under a fresh id
    /// (through the write gate), notes the write in the manifest and
    /// counts it, then waits until the write is durable. With an
    /// idempotency key and the record `kept` renders for the id: the key,
    /// then the record, as two writes ([`Records::insert_new_keyed`]).
    ///
    /// Errors: with a key, [`StoreError::KeyTaken`] when a live answer is
    /// kept under it; then no id is used (ids stay dense, but for an id
    /// drawn while another create drew the next).
    async fn insert_new(
        &self,
        resource: Resource,
        bytes: Vec<u8>,
        kept: Option<(&str, KeptFor)>,
    ) -> StoreResult<Id> {
        let inner = &*self.inner;
        let (ids, count) = match resource {
            Resource::Item => (&inner.item_ids, &inner.live_items),
            Resource::Cart => (&inner.cart_ids, &inner.cart_count),
        };
        if let Some((key, kept)) = kept {
            // The key, then the record: see `Records::insert_new_keyed`.
            let id = inner.records.insert_new_keyed(
                (resource, ids),
                &bytes,
                (key.as_bytes(), kept),
                idempotency::now(),
            )?;
            inner.ledger.stored(resource, id);
            count.fetch_add(1, Ordering::Relaxed);
            inner.committer.durable().await?;
            return Ok(id);
        }
        let id = inner.records.insert_new(resource, ids, &bytes)?;
        inner.ledger.stored(resource, id);
        count.fetch_add(1, Ordering::Relaxed);
        inner.committer.durable().await?;
        Ok(id)
    }
}

impl Drop for Inner {
    /// Ends the helper threads before the fields (the database, then the
    /// directory lock) are dropped, so a new store can open the directory
    /// as soon as this one is gone.
    fn drop(&mut self) {
        self.committer = Committer::stopped();
        self.cart_writer = CartWriter::stopped();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Store for SledStore {
    async fn create_item(&self, item: NewItem, keyed: Option<Keyed<Item>>) -> StoreResult<Item> {
        items::create(self, item, keyed.as_ref()).await
    }

    async fn item(&self, id: Id) -> StoreResult<Item> {
        items::get(self, id)
    }

    async fn items(&self, filter: ItemFilter) -> StoreResult<Vec<Item>> {
        self.off_runtime(move |store| items::list(store, filter))
            .await
    }

    async fn replace_item(
        &self,
        id: Id,
        item: NewItem,
        precondition: Option<Condition>,
        keyed: Option<Keyed<Item>>,
    ) -> StoreResult<Item> {
        items::replace(self, id, item, precondition.as_ref(), keyed.as_ref()).await
    }

    async fn patch_item(
        &self,
        id: Id,
        patch: ItemPatch,
        precondition: Option<Condition>,
        keyed: Option<Keyed<Item>>,
    ) -> StoreResult<Item> {
        items::patch(self, id, patch, precondition.as_ref(), keyed.as_ref()).await
    }

    async fn delete_item(
        &self,
        id: Id,
        precondition: Option<Condition>,
        keyed: Option<Keyed<Item>>,
    ) -> StoreResult<Item> {
        items::delete(self, id, precondition.as_ref(), keyed.as_ref()).await
    }

    async fn create_cart(&self, keyed: Option<Keyed<Id>>) -> StoreResult<Id> {
        carts::create(self, keyed.as_ref()).await
    }

    async fn cart(&self, id: Id) -> StoreResult<Cart> {
        carts::get(self, id).await
    }

    async fn carts(&self, filter: CartFilter) -> StoreResult<Vec<Cart>> {
        self.off_runtime(move |store| carts::list(store, filter))
            .await
    }

    async fn add_to_cart(
        &self,
        cart: Id,
        item: Id,
        max_lines: usize,
        keyed: Option<Keyed<Cart>>,
    ) -> StoreResult<Cart> {
        carts::add(self, cart, item, max_lines, keyed).await
    }

    async fn kept(&self, key: &str) -> StoreResult<Option<KeptRecord>> {
        match self.inner.records.kept(key.as_bytes())? {
            Some(bytes) => KeptRecord::decode(&bytes).map(Some).map_err(backend),
            None => Ok(None),
        }
    }

    async fn prune_kept(&self, now: u64, batch: usize) -> StoreResult<Pruned> {
        let store = self.clone();
        // A walk of the tree: off the async threads.
        tokio::task::spawn_blocking(move || {
            store.inner.records.prune_kept(batch, |bytes| {
                // A record that does not read is of no use to a replay.
                KeptRecord::decode(bytes).map_or(true, |record| !record.live_at(now))
            })
        })
        .await
        .map_err(backend)?
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        // Counted as the store changes: exact and cheap in one process.
        Ok(StoreStats {
            items: self.inner.live_items.load(Ordering::Relaxed),
            carts: self.inner.cart_count.load(Ordering::Relaxed),
            idempotency_keys: self.inner.records.kept_count(),
            storage_bytes: self.inner.db.size_on_disk().ok(),
            available_bytes: available_bytes(&self.inner.lock),
        })
    }

    async fn export(&self, out: Chunks, _mode: ExportMode) -> StoreResult<Option<ExportCounts>> {
        // One process owns the data directory: no other instance to defer to.
        self.off_runtime(move |store| store.write_export(&out).map(Some))
            .await
    }

    async fn import(&self, snapshot: Snapshot) -> StoreResult<()> {
        transfer::import(self, snapshot).await
    }

    async fn ping(&self) -> StoreResult<()> {
        // In-process: it answers while shopd runs, unless storage failed.
        match self.inner.disk.failed() {
            None => Ok(()),
            Some(why) => Err(StoreError::backend(std::io::Error::other(format!(
                "storage failed ({why}); restart shopd once the disk has room"
            )))),
        }
    }

    async fn close(&self) -> StoreResult<()> {
        if let Some(why) = self.inner.disk.failed() {
            // sled writes nothing more; waiting for it would only delay exit.
            if self.inner.durability == Durability::Sync {
                tracing::warn!(
                    error = why,
                    "storage failed earlier; every acknowledged write was synced before it was acknowledged"
                );
                return Ok(());
            }
            return Err(StoreError::backend(std::io::Error::other(format!(
                "storage failed earlier ({why}): writes acknowledged in the last flush interval may be lost"
            ))));
        }
        self.inner.item_ids.close()?;
        self.inner.cart_ids.close()?;
        open::settle_keys(&self.inner.db).map_err(backend)?;
        let disk = self.inner.disk.clone();
        // Requests are drained: what is stored now is final.
        tokio::task::spawn_blocking(move || disk.final_sync())
            .await
            .map_err(backend)?
            .map_err(backend)
    }
}
