//! The one write gate. The `items` and `carts` trees are fields of
//! [`Records`] and nothing else holds them once the store is open: the
//! rest of the store reads records through its read methods and changes
//! them only through its write methods (`insert_new`, `swap`, `load`,
//! `transact`), and each of those goes through [`Records::write`],
//! which keeps the before-image of every record it is about to change for
//! an open export (see `snapshot.rs`), then writes. So a new write path
//! cannot skip the before-image: there is no other way to reach a tree.
//!
//! Idempotency keys live in a third tree, `idempotency`, written in a
//! [`Records::transact`], the same sled transaction as the change they
//! answer (the writer thread's batches, `cart_writer.rs`), except for a
//! keyed create ([`Records::insert_new_keyed`]): its key, written first,
//! holds the whole new record, and is rolled forward at open when a crash
//! lost the record's write.
//!
//! The same function keeps the in-memory indexes (`index.rs`) up to date:
//! it holds their lock across the write and their update, so they follow
//! the writes in the order sled took them.
//!
//! Before-images are read and kept outside sled's transaction closures:
//! a closure may run several times and must have no side effects. That is
//! sound because every write keeps a before-image read before it writes:
//! the first image kept for a record after an export opened was read
//! before any change to it, so it is the record as it was at that moment.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sled::IVec;
use sled::Transactional;
use sled::transaction::{
    ConflictableTransactionError, TransactionError, TransactionalTree, UnabortableTransactionError,
};

use super::backend;
use super::codec::{self, CartRecord, ItemRecord};
use super::ids::IdGen;
use super::index::Indexes;
use super::snapshot::Capture;
use crate::domain::{Id, Resource};
use crate::store::{KeptRecord, StoreError, StoreResult};

/// The record of an idempotency key, rendered for the id of the record it
/// answers.
pub(super) type KeptFor = Box<dyn FnOnce(Id) -> Vec<u8> + Send>;

/// An idempotency key's bytes and its encoded record, to store with a
/// write.
pub(super) type KeptEntry = (Vec<u8>, Vec<u8>);

/// The item and cart trees behind the write gate.
pub(super) struct Records {
    items: sled::Tree,
    carts: sled::Tree,
    /// Idempotency keys and their kept answers.
    kept: sled::Tree,
    /// How many keys `kept` holds.
    kept_count: AtomicU64,
    /// The last key the previous prune looked at; `None`: start over.
    prune_cursor: std::sync::Mutex<Option<IVec>>,
    /// The open export's capture, if any. Writers hold it shared around
    /// each change (not while waiting for fsync); opening and closing a
    /// capture takes it exclusively, so no change straddles the moment the
    /// export stands for. That exclusive hold is the only pause writers see.
    capture: RwLock<Option<Arc<Capture>>>,
    /// Item prices and cart totals; written only here, with the records.
    index: RwLock<Indexes>,
}

type Pass<'a> = RwLockReadGuard<'a, Option<Arc<Capture>>>;

/// A stored record: its id and its bytes.
pub(super) type Entry = (Id, IVec);

impl Records {
    /// The gate over the two trees as opened.
    pub(super) fn new(items: sled::Tree, carts: sled::Tree, kept: sled::Tree) -> Records {
        Records {
            items,
            carts,
            kept_count: AtomicU64::new(kept.len() as u64),
            prune_cursor: std::sync::Mutex::default(),
            kept,
            capture: RwLock::default(),
            index: RwLock::default(),
        }
    }

    /// The indexes, to read (briefly: writers wait meanwhile).
    pub(super) fn indexes(&self) -> RwLockReadGuard<'_, Indexes> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn indexes_mut(&self) -> RwLockWriteGuard<'_, Indexes> {
        self.index.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notes a record read at start-up in the indexes (items first, then
    /// carts, so carts are priced from their items).
    pub(super) fn index_item(&self, id: Id, record: &ItemRecord) {
        self.indexes_mut().put_item(id, record);
    }

    /// See [`Records::index_item`].
    pub(super) fn index_cart(&self, id: Id, record: &CartRecord) {
        self.indexes_mut().put_cart(id, record);
    }

    fn tree(&self, resource: Resource) -> &sled::Tree {
        match resource {
            Resource::Item => &self.items,
            Resource::Cart => &self.carts,
        }
    }

    fn pass(&self) -> Pass<'_> {
        self.capture.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The bytes of record `id`, if stored.
    pub(super) fn get(&self, resource: Resource, id: Id) -> StoreResult<Option<IVec>> {
        self.tree(resource).get(codec::key(id)).map_err(backend)
    }

    /// Every record of `resource`, by ascending id.
    pub(super) fn iter(
        &self,
        resource: Resource,
    ) -> impl DoubleEndedIterator<Item = StoreResult<Entry>> + use<> {
        self.tree(resource).iter().map(entry)
    }

    /// Every record of `resource` as stored, keys undecoded (for the
    /// damage check, which reports a key that is not an id).
    pub(super) fn raw(&self, resource: Resource) -> sled::Iter {
        self.tree(resource).iter()
    }

    /// The records of `resource` with ids below `end`, by ascending id.
    pub(super) fn below(
        &self,
        resource: Resource,
        end: Id,
    ) -> impl Iterator<Item = StoreResult<Entry>> + use<> {
        self.tree(resource).range(..codec::key(end)).map(entry)
    }

    /// How many records of `resource` are stored (walks the tree).
    pub(super) fn count(&self, resource: Resource) -> usize {
        self.tree(resource).len()
    }

    /// The highest id of `resource` stored.
    pub(super) fn last_id(&self, resource: Resource) -> StoreResult<Option<Id>> {
        match self.tree(resource).last().map_err(backend)? {
            Some((key, _)) => Ok(Some(codec::id_of(&key).map_err(backend)?)),
            None => Ok(None),
        }
    }

    /// The write gate: with the pass held, keeps the before-image of every
    /// record in `touched` for an open capture (read now, before `write`
    /// changes anything), then runs `write` with the indexes locked, which
    /// writes and then notes what it wrote in them (see [`Upkeep`]). Every
    /// change of a record goes through here; `write` must change no record
    /// outside `touched`.
    fn write<R>(
        &self,
        pass: &Pass<'_>,
        touched: impl IntoIterator<Item = (Resource, Id)>,
        write: impl FnOnce(&mut Upkeep<'_>) -> StoreResult<R>,
    ) -> StoreResult<R> {
        if let Some(capture) = pass.as_ref() {
            for (resource, id) in touched {
                if !capture.has(resource, id) {
                    let old = self.get(resource, id)?;
                    capture.keep(resource, id, old);
                }
            }
        }
        write(&mut Upkeep(self.indexes_mut()))
    }

    /// Stores `bytes` as a new record of `resource` under a fresh id from
    /// `ids`, and returns the id. The id and the insert are under one pass:
    /// an export sees both or neither (ids from its moment on are left out).
    pub(super) fn insert_new(
        &self,
        resource: Resource,
        ids: &IdGen,
        bytes: &[u8],
    ) -> StoreResult<Id> {
        let pass = self.pass();
        let id = ids.next()?;
        self.write(&pass, [(resource, id)], |upkeep| {
            self.tree(resource)
                .insert(codec::key(id), bytes)
                .map_err(backend)?;
            upkeep.stored(resource, id, bytes);
            Ok(id)
        })
    }

    /// Stores `bytes` as a new record of `resource` under a fresh id from
    /// `ids` with idempotency key `key` and the record `kept` renders for
    /// the id (which holds the whole new record:
    /// [`KeptRecord::holds_a_create`]), without a transaction: the key,
    /// then the record, as two writes.
    ///
    /// That is as atomic as a transaction across a crash: sled recovers
    /// its log in order up to the first write that did not reach the disk
    /// whole, so the record is never there without its key, and a key
    /// whose record is missing is rolled forward at open
    /// ([`Records::roll_forward_creates`]). It costs one write less than a
    /// transaction, which would also need the writer thread (see
    /// `cart_writer.rs`): a keyed create is as cheap as a plain one plus
    /// the key's write.
    ///
    /// The key is swapped in, not read first: [`StoreError::KeyTaken`]
    /// when a live answer (at `now`) holds it. The id drawn for the create
    /// is then given back, so a replay leaves no gap in the ids unless
    /// another create drew the next id meanwhile.
    pub(super) fn insert_new_keyed(
        &self,
        (resource, ids): (Resource, &IdGen),
        bytes: &[u8],
        (key, kept): (&[u8], KeptFor),
        now: u64,
    ) -> StoreResult<Id> {
        let pass = self.pass();
        let id = ids.next()?;
        let record = kept(id);
        self.write(&pass, [(resource, id)], |upkeep| {
            // One swap for a fresh key (nearly every one); an expired
            // answer is swapped out.
            let mut replaced: Option<IVec> = None;
            loop {
                match self
                    .kept
                    .compare_and_swap(key, replaced.as_ref(), Some(record.as_slice()))
                    .map_err(backend)?
                {
                    Ok(()) => break,
                    Err(found) => match found.current {
                        Some(current) if KeptRecord::bytes_live_at(&current, now) => {
                            // Still under the pass: no export saw the id.
                            ids.give_back(id);
                            return Err(StoreError::KeyTaken);
                        }
                        current => replaced = current,
                    },
                }
            }
            if let Err(err) = self.tree(resource).insert(codec::key(id), bytes) {
                // The key must not answer for a record that is not there;
                // were the undo lost too, the next open rolls forward.
                let _ = self
                    .kept
                    .compare_and_swap(key, Some(record.as_slice()), replaced);
                return Err(backend(err));
            }
            if replaced.is_none() {
                self.note_kept(1);
            }
            upkeep.stored(resource, id, bytes);
            Ok(id)
        })
    }

    /// Replaces record `id` with `new` if it still holds `old`; `false`
    /// when another writer changed it first (read it again and retry).
    pub(super) fn swap(
        &self,
        resource: Resource,
        id: Id,
        old: IVec,
        new: &[u8],
    ) -> StoreResult<bool> {
        let pass = self.pass();
        self.write(&pass, [(resource, id)], |upkeep| {
            let swapped = self
                .tree(resource)
                .compare_and_swap(codec::key(id), Some(old), Some(new))
                .map_err(backend)?;
            if swapped.is_ok() {
                upkeep.stored(resource, id, new);
            }
            Ok(swapped.is_ok())
        })
    }

    /// Stores `records` of `resource` under their own ids in one atomic
    /// batch (an import).
    pub(super) fn load(&self, resource: Resource, records: &[(Id, Vec<u8>)]) -> StoreResult<()> {
        let pass = self.pass();
        let touched: Vec<(Resource, Id)> = records.iter().map(|(id, _)| (resource, *id)).collect();
        self.write(&pass, touched, |upkeep| {
            let mut batch = sled::Batch::default();
            for (id, bytes) in records {
                batch.insert(&codec::key(*id), bytes.as_slice());
            }
            self.tree(resource).apply_batch(batch).map_err(backend)?;
            for (id, bytes) in records {
                upkeep.stored(resource, *id, bytes);
            }
            Ok(())
        })
    }

    /// Runs `change` as one transaction over the three trees, in which it
    /// may read any record, keep idempotency keys, and write the records in
    /// `touched` (sorted, no duplicates) only: a write to another fails the
    /// transaction. `change` may run more than once: it must have no side
    /// effects.
    pub(super) fn transact<R>(
        &self,
        touched: &[(Resource, Id)],
        change: impl Fn(&WriteTx<'_>) -> Result<R, ConflictableTransactionError<StoreError>>,
    ) -> Result<R, TransactionError<StoreError>> {
        let pass = self.pass();
        // What the run that commits wrote, in order: the indexes are fed
        // from it, with no read of the records back.
        let written = std::cell::RefCell::new(Vec::with_capacity(touched.len()));
        let transaction = |upkeep: &mut Upkeep<'_>| {
            let outcome =
                (&self.items, &self.carts, &self.kept).transaction(|(items, carts, kept)| {
                    written.borrow_mut().clear();
                    change(&WriteTx {
                        items,
                        carts,
                        kept,
                        writable: touched,
                        written: &written,
                    })
                });
            if outcome.is_ok() {
                // Committed: the declared records hold what it wrote last.
                for (resource, id, bytes) in written.borrow().iter() {
                    upkeep.stored(*resource, *id, bytes);
                }
            }
            Ok(outcome)
        };
        match self.write(&pass, touched.iter().copied(), transaction) {
            Ok(outcome) => outcome,
            Err(err) => Err(TransactionError::Abort(err)),
        }
    }

    /// Opens a capture once no change is in flight; `at_open` runs at that
    /// moment (to read the id counters).
    pub(super) fn open_capture<T>(&self, at_open: impl FnOnce() -> T) -> (Arc<Capture>, T) {
        let mut slot = self.capture.write().unwrap_or_else(PoisonError::into_inner);
        let capture = Arc::new(Capture::default());
        *slot = Some(capture.clone());
        (capture, at_open())
    }

    /// Closes the capture: writers stop keeping before-images.
    pub(super) fn close_capture(&self) {
        *self.capture.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// The indexes, locked for a write: [`Upkeep::stored`] notes a record as
/// the write left it.
struct Upkeep<'a>(RwLockWriteGuard<'a, Indexes>);

impl Upkeep<'_> {
    fn stored(&mut self, resource: Resource, id: Id, bytes: &[u8]) {
        let noted = match resource {
            Resource::Item => codec::decode(bytes).map(|record| self.0.put_item(id, &record)),
            Resource::Cart => codec::decode(bytes).map(|record| self.0.put_cart(id, &record)),
        };
        if let Err(err) = noted {
            // Only bytes this process just encoded get here.
            tracing::error!(error = %err, ?resource, id, "a record just written does not decode");
        }
    }
}

fn entry(found: sled::Result<(IVec, IVec)>) -> StoreResult<Entry> {
    let (key, value) = found.map_err(backend)?;
    Ok((codec::id_of(&key).map_err(backend)?, value))
}

/// What a transaction of [`Records::transact`] sees: every record to
/// read, and the records it declared to write.
pub(super) struct WriteTx<'a> {
    items: &'a TransactionalTree,
    carts: &'a TransactionalTree,
    kept: &'a TransactionalTree,
    writable: &'a [(Resource, Id)],
    /// Every record written, in order.
    written: &'a std::cell::RefCell<Vec<(Resource, Id, IVec)>>,
}

impl WriteTx<'_> {
    /// The bytes of record `id`, if stored.
    pub(super) fn get(
        &self,
        resource: Resource,
        id: Id,
    ) -> Result<Option<IVec>, UnabortableTransactionError> {
        let tree = match resource {
            Resource::Item => self.items,
            Resource::Cart => self.carts,
        };
        tree.get(codec::key(id))
    }

    /// Writes record `id` of `resource`, which must be one the
    /// transaction declared.
    pub(super) fn put(
        &self,
        resource: Resource,
        id: Id,
        bytes: &[u8],
    ) -> Result<(), ConflictableTransactionError<StoreError>> {
        if self.writable.binary_search(&(resource, id)).is_err() {
            return Err(ConflictableTransactionError::Abort(backend(
                std::io::Error::other(format!(
                    "{resource:?} {id} written by a transaction that did not declare it"
                )),
            )));
        }
        let tree = match resource {
            Resource::Item => self.items,
            Resource::Cart => self.carts,
        };
        let bytes = IVec::from(bytes);
        tree.insert(&codec::key(id), bytes.clone())?;
        self.written.borrow_mut().push((resource, id, bytes));
        Ok(())
    }

    /// Whether a live answer (at `now`) is kept under idempotency key
    /// `key`, which a write with that key must then not change.
    pub(super) fn key_taken(
        &self,
        key: &[u8],
        now: u64,
    ) -> Result<bool, UnabortableTransactionError> {
        Ok(self
            .kept
            .get(key)?
            .is_some_and(|old| KeptRecord::bytes_live_at(&old, now)))
    }

    /// Keeps an idempotency key with the transaction's changes, unless a
    /// live answer (at `now`) is kept under it already: then the kept one
    /// stays and the write with the key must change nothing.
    pub(super) fn keep(
        &self,
        (key, record): &KeptEntry,
        now: u64,
    ) -> Result<Keep, UnabortableTransactionError> {
        // One insert for a fresh key (nearly every one); a live one is put
        // back as it was.
        match self.kept.insert(key.as_slice(), record.as_slice())? {
            None => Ok(Keep::Fresh),
            Some(old) if KeptRecord::bytes_live_at(&old, now) => {
                self.kept.insert(key.as_slice(), old)?;
                Ok(Keep::Taken)
            }
            Some(_) => Ok(Keep::Expired),
        }
    }
}

/// What [`WriteTx::keep`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Keep {
    /// Kept a key not kept before.
    Fresh,
    /// Kept a key over its expired answer.
    Expired,
    /// Kept nothing: a live answer holds the key.
    Taken,
}

impl Keep {
    /// How many keys this adds to the count kept.
    pub(super) fn counted(self) -> u64 {
        u64::from(self == Keep::Fresh)
    }
}

mod kept;
#[cfg(test)]
mod tests;
