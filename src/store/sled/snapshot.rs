//! A consistent export of a running sled store without stopping writes.
//!
//! sled 0.34 has no snapshots, and a transaction over both trees would
//! stop every write for the whole read. So an export opens a *capture*:
//! from then on the write gate (`records.rs`), before it changes a record,
//! keeps the record's bytes as they were (once per record). The export
//! then reads the trees while writes go on, and for every record some
//! writer changed it takes the kept bytes instead: what it reads is the
//! store as it was when the capture opened. Records created after that
//! have ids at or above the counters read at that moment and are left out.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::domain::{Id, Resource};

/// Records as they were when a capture opened: `None` for "did not exist".
#[derive(Default)]
pub(super) struct Capture {
    items: Mutex<HashMap<Id, Option<sled::IVec>>>,
    carts: Mutex<HashMap<Id, Option<sled::IVec>>>,
}

impl Capture {
    fn map(
        &self,
        resource: Resource,
    ) -> std::sync::MutexGuard<'_, HashMap<Id, Option<sled::IVec>>> {
        let map = match resource {
            Resource::Item => &self.items,
            Resource::Cart => &self.carts,
        };
        map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kept bytes of a record, if a writer changed it since the
    /// capture opened: `Some(None)` when it did not exist then.
    #[allow(clippy::option_option)] // "changed" and "existed then" are two separate facts.
    pub(super) fn before(&self, resource: Resource, id: Id) -> Option<Option<sled::IVec>> {
        self.map(resource).get(&id).cloned()
    }

    /// Whether a before-image of the record is kept already.
    pub(super) fn has(&self, resource: Resource, id: Id) -> bool {
        self.map(resource).contains_key(&id)
    }

    /// Keeps `old` as the record's bytes at the capture's moment, unless
    /// an earlier change kept them already. Only the write gate calls it,
    /// before it changes the record.
    pub(super) fn keep(&self, resource: Resource, id: Id, old: Option<sled::IVec>) {
        self.map(resource).entry(id).or_insert(old);
    }
}
