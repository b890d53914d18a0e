//! Id allocation: dense, per resource kind, never reused.
//!
//! Ids are reserved in blocks, in both durability modes: the end of the
//! block is written (into sled's `meta` and into the manifest) and synced
//! before an id from the block is handed out, and a restart continues from
//! there (a crash skips at most one block; a clean shutdown skips nothing).
//! In `periodic` mode a crash can lose records whose ids were given out; in
//! either mode a damaged log can lose them: the reservation outside sled
//! keeps their ids from being handed out again.
//!
//! Either way the manifest's `next` ids are a floor too: a store whose log
//! was damaged (and so looks shorter) still continues after every id that
//! was ever acknowledged or reserved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::codec;
use super::durability::DiskSync;
use super::manifest::Ledger;
use crate::domain::{Id, Resource};
use crate::store::{StoreError, StoreResult};

/// Ids reserved at a time.
const BLOCK: u64 = 1024;

/// Hands out the ids of one resource.
pub(super) struct IdGen {
    next: AtomicU64,
    /// Ids below it are covered by a durable reservation.
    reserved: Mutex<u64>,
    meta: sled::Tree,
    meta_key: &'static str,
    disk: Arc<DiskSync>,
    ledger: Arc<Ledger>,
    resource: Resource,
}

/// Where an [`IdGen`] keeps its reservations and records them.
pub(super) struct IdHome<'a> {
    pub meta: &'a sled::Tree,
    pub meta_key: &'static str,
    pub disk: Arc<DiskSync>,
    pub ledger: Arc<Ledger>,
    pub resource: Resource,
}

impl IdGen {
    /// Continues after `last` (the highest id stored), any stored
    /// reservation and `floor` (the manifest's next id).
    pub(super) fn open(last: Option<Id>, home: IdHome<'_>, floor: Id) -> StoreResult<IdGen> {
        let IdHome {
            meta,
            meta_key,
            disk,
            ledger,
            resource,
        } = home;
        let after_last = last.map_or(1, |id| id + 1);
        let reserved_before = match meta.get(meta_key).map_err(StoreError::backend)? {
            Some(bytes) => codec::id_of(&bytes).map_err(StoreError::backend)?,
            None => 1,
        };
        let next = after_last.max(reserved_before).max(floor);
        Ok(IdGen {
            next: AtomicU64::new(next),
            reserved: Mutex::new(next),
            meta: meta.clone(),
            meta_key,
            disk,
            ledger,
            resource,
        })
    }

    /// A fresh id.
    pub(super) fn next(&self) -> StoreResult<Id> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut reserved = self.reserved()?;
        if id >= *reserved {
            self.persist(id + BLOCK)?;
            *reserved = id + BLOCK;
        }
        Ok(id)
    }

    /// Gives back `id`, just drawn by [`IdGen::next`] and not used, if no
    /// id was drawn since; else it stays a gap.
    pub(super) fn give_back(&self, id: Id) {
        let _ = self
            .next
            .compare_exchange(id + 1, id, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// The id the next [`IdGen::next`] would give.
    pub(super) fn peek(&self) -> Id {
        self.next.load(Ordering::Relaxed)
    }

    /// Moves the next id up to `next` (an import's counter) and makes that
    /// durable, so no id below it is ever handed out.
    pub(super) fn advance_to(&self, next: Id) -> StoreResult<()> {
        let next = self.next.fetch_max(next, Ordering::Relaxed).max(next);
        let mut reserved = self.reserved()?;
        *reserved = (*reserved).max(next);
        self.persist(next)
    }

    /// Records that no id below the next one is free, so a clean restart
    /// continues without a gap; the caller syncs and writes the manifest
    /// ([`Ledger::settle`]) after this.
    pub(super) fn close(&self) -> StoreResult<()> {
        let next = self.next.load(Ordering::Relaxed);
        self.meta
            .insert(self.meta_key, &codec::key(next))
            .map_err(StoreError::backend)?;
        self.ledger.release(self.resource, next);
        Ok(())
    }

    fn reserved(&self) -> StoreResult<std::sync::MutexGuard<'_, u64>> {
        self.reserved
            .lock()
            .map_err(|_| StoreError::backend(std::io::Error::other("id lock poisoned")))
    }

    fn persist(&self, reserved_until: Id) -> StoreResult<()> {
        self.meta
            .insert(self.meta_key, &codec::key(reserved_until))
            .map_err(StoreError::backend)?;
        // In the manifest before any id below `reserved_until` is handed out.
        self.ledger.reserve(self.resource, reserved_until);
        self.disk.sync().map_err(StoreError::backend)
    }
}
