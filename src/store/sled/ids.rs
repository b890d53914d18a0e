//! Id allocation: dense, per resource kind, never reused.
//!
//! Ids are reserved in blocks: the end of the block is written (into sled's
//! `meta` and into the manifest) and synced before an id beyond it is
//! handed out, and a restart continues from there (a crash skips at most
//! one block; a clean shutdown skips nothing). In `periodic` mode a crash
//! can lose records whose ids were given out; in either mode a damaged log
//! can lose them: the reservation outside sled keeps their ids from being
//! handed out again.
//!
//! Either way the manifest's `next` ids are a floor too: a store whose log
//! was damaged (and so looks shorter) still continues after every id that
//! was ever acknowledged or reserved.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::codec;
use super::durability::DiskSync;
use super::manifest::{Ledger, Records};
use crate::domain::Id;
use crate::store::{StoreError, StoreResult};

/// Ids reserved at a time in `periodic` mode.
const BLOCK: u64 = 1024;

pub(super) struct IdGen {
    next: AtomicU64,
    /// Set in `periodic` mode: ids below it are covered by a durable reservation.
    reserved: Option<Mutex<u64>>,
    meta: sled::Tree,
    meta_key: &'static str,
    disk: Arc<DiskSync>,
    ledger: Arc<Ledger>,
    records: Records,
}

/// Where an [`IdGen`] keeps its reservations and records them.
pub(super) struct IdHome<'a> {
    pub meta: &'a sled::Tree,
    pub meta_key: &'static str,
    pub disk: Arc<DiskSync>,
    pub ledger: Arc<Ledger>,
    pub records: Records,
}

impl IdGen {
    /// Continues after the highest id in `tree`, any stored reservation and
    /// `floor` (the manifest's next id).
    pub(super) fn open(
        tree: &sled::Tree,
        home: IdHome<'_>,
        floor: Id,
        reserve_blocks: bool,
    ) -> StoreResult<IdGen> {
        let IdHome {
            meta,
            meta_key,
            disk,
            ledger,
            records,
        } = home;
        let after_last = match tree.last().map_err(StoreError::backend)? {
            Some((key, _)) => codec::id_of(&key).map_err(StoreError::backend)? + 1,
            None => 1,
        };
        let reserved_before = match meta.get(meta_key).map_err(StoreError::backend)? {
            Some(bytes) => codec::id_of(&bytes).map_err(StoreError::backend)?,
            None => 1,
        };
        let next = after_last.max(reserved_before).max(floor);
        Ok(IdGen {
            next: AtomicU64::new(next),
            reserved: reserve_blocks.then(|| Mutex::new(next)),
            meta: meta.clone(),
            meta_key,
            disk,
            ledger,
            records,
        })
    }

    /// A fresh id.
    pub(super) fn next(&self) -> StoreResult<Id> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        if let Some(reserved) = &self.reserved {
            let mut reserved = reserved
                .lock()
                .map_err(|_| StoreError::backend(std::io::Error::other("id lock poisoned")))?;
            if id >= *reserved {
                self.persist(id + BLOCK)?;
                *reserved = id + BLOCK;
            }
        }
        Ok(id)
    }

    /// The id the next [`IdGen::next`] would give.
    pub(super) fn peek(&self) -> Id {
        self.next.load(Ordering::Relaxed)
    }

    /// Moves the next id up to `next` (an import's counter) and makes that
    /// durable, so no id below it is ever handed out.
    pub(super) fn advance_to(&self, next: Id) -> StoreResult<()> {
        let next = self.next.fetch_max(next, Ordering::Relaxed).max(next);
        if let Some(reserved) = &self.reserved {
            let mut reserved = reserved
                .lock()
                .map_err(|_| StoreError::backend(std::io::Error::other("id lock poisoned")))?;
            *reserved = (*reserved).max(next);
        }
        self.persist(next)
    }

    /// Records that no id below the next one is free, so a clean restart
    /// continues without a gap; the caller syncs and writes the manifest
    /// ([`Ledger::settle`]) after this.
    pub(super) fn close(&self) -> StoreResult<()> {
        if self.reserved.is_some() {
            let next = self.next.load(Ordering::Relaxed);
            self.meta
                .insert(self.meta_key, &codec::key(next))
                .map_err(StoreError::backend)?;
            self.ledger.release(self.records, next);
        }
        Ok(())
    }

    fn persist(&self, reserved_until: Id) -> StoreResult<()> {
        self.meta
            .insert(self.meta_key, &codec::key(reserved_until))
            .map_err(StoreError::backend)?;
        // In the manifest before any id below `reserved_until` is handed out.
        self.ledger.reserve(self.records, reserved_until);
        self.disk.sync().map_err(StoreError::backend)
    }
}
