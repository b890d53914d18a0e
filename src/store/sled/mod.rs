//! The embedded backend: sled trees `items` and `carts` keyed by big-endian
//! id, plus `meta` for id reservations; the data directory is locked by one
//! process at a time.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

mod cart_writer;
mod codec;
mod durability;
mod ids;
mod snapshot;

use cart_writer::CartWriter;
use codec::{CartRecord, ItemRecord};
use durability::{Committer, DiskSync};

pub use durability::Durability;
use ids::IdGen;
use snapshot::{Gate, Kind};

use super::export::{ExportCart, ExportItem, ExportLine, Snapshot};
use super::{LineState, Store, StoreError, StoreResult, StoreStats, page, priced_cart};
use crate::domain::{Cart, CartFilter, Id, Item, ItemFilter, ItemPatch, NewItem};

/// Why the store could not be opened; each message names the path.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory cannot be created or written.
    #[error("data directory {path}: {source}")]
    Unusable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Another process holds the data directory.
    #[error(
        "data directory {path} is in use by another shopd process (lock file {lock}); stop it or choose another --data-dir"
    )]
    Locked { path: PathBuf, lock: PathBuf },
    /// sled refused to open or read its files.
    #[error("data directory {path}: cannot open the database: {source}")]
    Database {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
}

/// Items and carts in sled. A cheap handle: clones share one database.
#[derive(Clone)]
pub struct SledStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    items: sled::Tree,
    carts: sled::Tree,
    item_ids: IdGen,
    cart_ids: IdGen,
    disk: Arc<DiskSync>,
    committer: Committer,
    cart_writer: CartWriter,
    /// Writers pass it around each change; an export captures through it.
    gate: Arc<Gate>,
    /// One export at a time.
    exporting: std::sync::Mutex<()>,
    /// The flusher and cart writer threads, joined when the store goes.
    threads: Vec<std::thread::JoinHandle<()>>,
    live_items: AtomicU64,
    cart_count: AtomicU64,
    /// Held open for its lock for as long as the store lives.
    _lock: File,
}

fn backend(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::backend(err)
}

impl SledStore {
    /// Opens (creating if needed) the store in `dir`, locking it.
    pub fn open(
        dir: &Path,
        durability: Durability,
        flush_every_ms: u64,
    ) -> Result<Self, OpenError> {
        let unusable = |source| OpenError::Unusable {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(unusable)?;
        let lock = lock_dir(dir)?;
        let sled_dir = dir.join("sled");
        let database = |source| OpenError::Database {
            path: dir.to_path_buf(),
            source,
        };
        let db = sled::Config::new()
            .path(&sled_dir)
            .flush_every_ms(match durability {
                Durability::Sync => None,
                Durability::Periodic => Some(flush_every_ms.max(1)),
            })
            .open()
            .map_err(|e| database(backend(e)))?;
        let open_tree = |name: &str| db.open_tree(name).map_err(|e| database(backend(e)));
        let (items, carts, meta) = (open_tree("items")?, open_tree("carts")?, open_tree("meta")?);
        let disk = Arc::new(DiskSync::new(db.clone(), &sled_dir).map_err(unusable)?);
        let reserve = durability == Durability::Periodic;
        let ids =
            |tree, key| IdGen::open(tree, &meta, key, disk.clone(), reserve).map_err(database);
        let (item_ids, cart_ids) = (ids(&items, "next_item_id")?, ids(&carts, "next_cart_id")?);
        let (committer, flusher) = Committer::start(durability, disk.clone()).map_err(unusable)?;
        let syncs_adds = (durability == Durability::Sync).then(|| disk.clone());
        let gate = Arc::new(Gate::default());
        let (cart_writer, writer) =
            CartWriter::start(items.clone(), carts.clone(), syncs_adds, gate.clone())
                .map_err(unusable)?;
        let live_items = count_live_items(&items).map_err(database)?;
        let cart_count = carts.len() as u64;
        Ok(SledStore {
            inner: Arc::new(Inner {
                db,
                items,
                carts,
                item_ids,
                cart_ids,
                disk,
                committer,
                cart_writer,
                gate,
                exporting: std::sync::Mutex::new(()),
                threads: flusher.into_iter().chain([writer]).collect(),
                live_items: AtomicU64::new(live_items),
                cart_count: AtomicU64::new(cart_count),
                _lock: lock,
            }),
        })
    }

    fn read_item(&self, id: Id) -> StoreResult<ItemRecord> {
        let bytes = self
            .inner
            .items
            .get(codec::key(id))
            .map_err(backend)?
            .ok_or(StoreError::ItemNotFound(id))?;
        codec::decode(&bytes).map_err(backend)
    }

    /// Changes a live item atomically (compare-and-swap, retried on a race).
    fn update_item(
        &self,
        id: Id,
        change: impl Fn(&mut ItemRecord) -> StoreResult<bool>,
    ) -> StoreResult<ItemRecord> {
        let key = codec::key(id);
        let pass = self.inner.gate.pass();
        loop {
            let old = self
                .inner
                .items
                .get(key)
                .map_err(backend)?
                .ok_or(StoreError::ItemNotFound(id))?;
            let mut record: ItemRecord = codec::decode(&old).map_err(backend)?;
            if !change(&mut record)? {
                return Ok(record);
            }
            let new = codec::encode(&record).map_err(backend)?;
            pass.keep(Kind::Item, id, Some(&old));
            let swapped = self
                .inner
                .items
                .compare_and_swap(key, Some(old), Some(new))
                .map_err(backend)?;
            if swapped.is_ok() {
                return Ok(record);
            }
        }
    }

    /// The cart as `record` holds it, with its items' current state.
    fn cart_view(&self, id: Id, record: &CartRecord) -> StoreResult<Cart> {
        let lines = record
            .lines
            .iter()
            .map(|line| {
                let item = self.read_item(line.item)?;
                Ok(LineState {
                    item: line.item,
                    quantity: line.quantity,
                    name: item.name,
                    price: item.price,
                    deleted: item.deleted,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(priced_cart(id, lines))
    }
}

impl SledStore {
    /// Reads every record as of one moment while writes go on (see
    /// `snapshot.rs`). Blocking: run it off the async threads.
    fn read_snapshot(&self) -> StoreResult<Snapshot> {
        let _one_at_a_time = self
            .inner
            .exporting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (capture, (next_item_id, next_cart_id)) = self
            .inner
            .gate
            .open(|| (self.inner.item_ids.peek(), self.inner.cart_ids.peek()));
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
        self.inner.gate.close();
        snapshot
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

fn lock_dir(dir: &Path) -> Result<File, OpenError> {
    let path = dir.join("shopd.lock");
    let unusable = |source| OpenError::Unusable {
        path: dir.to_path_buf(),
        source,
    };
    let mut file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(unusable)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            return Err(OpenError::Locked {
                path: dir.to_path_buf(),
                lock: path,
            });
        }
        Err(std::fs::TryLockError::Error(source)) => return Err(unusable(source)),
    }
    // The pid is for people; the lock itself is what keeps others out.
    file.set_len(0).map_err(unusable)?;
    writeln!(file, "{}", std::process::id()).map_err(unusable)?;
    Ok(file)
}

fn count_live_items(items: &sled::Tree) -> StoreResult<u64> {
    let mut live = 0;
    for entry in items {
        let (_, value) = entry.map_err(backend)?;
        let record: ItemRecord = codec::decode(&value).map_err(backend)?;
        live += u64::from(!record.deleted);
    }
    Ok(live)
}

fn item_of(id: Id, record: ItemRecord) -> Item {
    Item {
        id,
        name: record.name,
        price: record.price,
        deleted: record.deleted,
    }
}

impl Store for SledStore {
    async fn create_item(&self, item: NewItem) -> StoreResult<Item> {
        let record = ItemRecord {
            name: item.name,
            price: item.price,
            deleted: false,
        };
        let bytes = codec::encode(&record).map_err(backend)?;
        // The id and the insert under one pass: an export sees both or
        // neither (ids from its moment on are left out).
        let pass = self.inner.gate.pass();
        let id = self.inner.item_ids.next()?;
        self.inner
            .items
            .insert(codec::key(id), bytes)
            .map_err(backend)?;
        drop(pass);
        self.inner.live_items.fetch_add(1, Ordering::Relaxed);
        self.inner.committer.durable().await?;
        Ok(item_of(id, record))
    }

    async fn item(&self, id: Id) -> StoreResult<Item> {
        Ok(item_of(id, self.read_item(id)?))
    }

    async fn items(&self, filter: ItemFilter) -> StoreResult<Vec<Item>> {
        let items = self.inner.items.iter().map(|entry| {
            let (key, value) = entry.map_err(backend)?;
            let record: ItemRecord = codec::decode(&value).map_err(backend)?;
            Ok(item_of(codec::id_of(&key).map_err(backend)?, record))
        });
        page(items, filter.page, |item| {
            filter.accepts(item.price, item.deleted)
        })
    }

    async fn replace_item(&self, id: Id, item: NewItem) -> StoreResult<Item> {
        let record = self.update_item(id, |record| {
            if record.deleted {
                return Err(StoreError::ItemDeleted(id));
            }
            record.name.clone_from(&item.name);
            record.price = item.price;
            Ok(true)
        })?;
        self.inner.committer.durable().await?;
        Ok(item_of(id, record))
    }

    async fn patch_item(&self, id: Id, patch: ItemPatch) -> StoreResult<Item> {
        let record = self.update_item(id, |record| {
            if record.deleted {
                return Err(StoreError::ItemDeleted(id));
            }
            patch.clone().apply(&mut record.name, &mut record.price);
            Ok(true)
        })?;
        self.inner.committer.durable().await?;
        Ok(item_of(id, record))
    }

    async fn delete_item(&self, id: Id) -> StoreResult<Item> {
        let deleted_now = std::sync::atomic::AtomicBool::new(false);
        let record = self.update_item(id, |record| {
            let changes = !record.deleted;
            record.deleted = true;
            deleted_now.store(changes, Ordering::Relaxed);
            Ok(changes)
        })?;
        if deleted_now.load(Ordering::Relaxed) {
            self.inner.live_items.fetch_sub(1, Ordering::Relaxed);
        }
        // Also when it was deleted already: that delete may still be in flight.
        self.inner.committer.durable().await?;
        Ok(item_of(id, record))
    }

    async fn create_cart(&self) -> StoreResult<Id> {
        let bytes = codec::encode(&CartRecord::default()).map_err(backend)?;
        let pass = self.inner.gate.pass();
        let id = self.inner.cart_ids.next()?;
        self.inner
            .carts
            .insert(codec::key(id), bytes)
            .map_err(backend)?;
        drop(pass);
        self.inner.cart_count.fetch_add(1, Ordering::Relaxed);
        self.inner.committer.durable().await?;
        Ok(id)
    }

    async fn cart(&self, id: Id) -> StoreResult<Cart> {
        let bytes = self
            .inner
            .carts
            .get(codec::key(id))
            .map_err(backend)?
            .ok_or(StoreError::CartNotFound(id))?;
        let record: CartRecord = codec::decode(&bytes).map_err(backend)?;
        self.cart_view(id, &record)
    }

    async fn carts(&self, filter: CartFilter) -> StoreResult<Vec<Cart>> {
        let carts = self.inner.carts.iter().map(|entry| {
            let (key, value) = entry.map_err(backend)?;
            let id = codec::id_of(&key).map_err(backend)?;
            let record: CartRecord = codec::decode(&value).map_err(backend)?;
            self.cart_view(id, &record)
        });
        page(carts, filter.page, |cart| filter.accepts(cart))
    }

    async fn add_to_cart(&self, cart: Id, item: Id, max_lines: usize) -> StoreResult<Cart> {
        // Durable on return: in `sync` mode the cart writer syncs each batch.
        let record = self.inner.cart_writer.add(cart, item, max_lines).await?;
        // Priced outside the transaction: the cart as this add left it, with
        // its items' current names and prices.
        self.cart_view(cart, &record)
    }

    async fn stats(&self) -> StoreResult<StoreStats> {
        // Counted as the store changes: exact and cheap in one process.
        Ok(StoreStats {
            items: self.inner.live_items.load(Ordering::Relaxed),
            carts: self.inner.cart_count.load(Ordering::Relaxed),
            storage_bytes: self.inner.db.size_on_disk().ok(),
        })
    }

    async fn snapshot(&self) -> StoreResult<Snapshot> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read_snapshot())
            .await
            .map_err(backend)?
    }

    async fn import(&self, snapshot: Snapshot) -> StoreResult<()> {
        let (items, carts) = (self.inner.items.len(), self.inner.carts.len());
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
        self.inner.items.apply_batch(batch).map_err(backend)?;
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
        self.inner.carts.apply_batch(batch).map_err(backend)?;
        self.inner.item_ids.advance_to(snapshot.next_item_id)?;
        self.inner.cart_ids.advance_to(snapshot.next_cart_id)?;
        self.inner.live_items.fetch_add(live, Ordering::Relaxed);
        self.inner
            .cart_count
            .fetch_add(snapshot.carts.len() as u64, Ordering::Relaxed);
        self.inner.committer.durable().await
    }

    async fn ping(&self) -> StoreResult<()> {
        // In-process: it answers while shopd runs.
        Ok(())
    }

    async fn close(&self) -> StoreResult<()> {
        self.inner.item_ids.close()?;
        self.inner.cart_ids.close()?;
        let disk = self.inner.disk.clone();
        tokio::task::spawn_blocking(move || disk.sync())
            .await
            .map_err(backend)?
            .map_err(backend)
    }
}
