//! A consistent export of a running sled store without stopping writes.
//!
//! sled 0.34 has no snapshots, and a transaction over both trees would
//! stop every write for the whole read. So an export opens a *capture*:
//! from then on every writer, before it changes a record, keeps the
//! record's bytes as they were (once per record). The export then reads the
//! trees while writes go on, and for every record some writer changed it
//! takes the kept bytes instead: what it reads is the store as it was when
//! the capture opened. Records created after that have ids at or above the
//! counters read at that moment and are left out.
//!
//! Writers hold the [`Gate`] shared around each change (not while waiting
//! for fsync); opening and closing a capture takes it exclusively, so no
//! change straddles the moment the export stands for. That exclusive hold
//! is the only pause writers see.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock, RwLockReadGuard};

use crate::domain::Id;

/// Records as they were when a capture opened: `None` for "did not exist".
#[derive(Default)]
pub(super) struct Capture {
    items: Mutex<HashMap<Id, Option<sled::IVec>>>,
    carts: Mutex<HashMap<Id, Option<sled::IVec>>>,
}

/// Which tree a record is in.
#[derive(Clone, Copy)]
pub(super) enum Kind {
    Item,
    Cart,
}

impl Capture {
    fn map(&self, kind: Kind) -> &Mutex<HashMap<Id, Option<sled::IVec>>> {
        match kind {
            Kind::Item => &self.items,
            Kind::Cart => &self.carts,
        }
    }

    /// The kept bytes of a record, if a writer changed it since the
    /// capture opened: `Some(None)` when it did not exist then.
    #[allow(clippy::option_option)] // "changed" and "existed then" are two separate facts.
    pub(super) fn before(&self, kind: Kind, id: Id) -> Option<Option<sled::IVec>> {
        let map = self
            .map(kind)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(&id).cloned()
    }
}

/// Shared by writers, exclusive for opening and closing a capture.
#[derive(Default)]
pub(super) struct Gate {
    capture: RwLock<Option<Arc<Capture>>>,
}

/// A writer's pass through the gate: hold it while changing records.
pub(super) struct Pass<'a> {
    guard: RwLockReadGuard<'a, Option<Arc<Capture>>>,
}

impl Pass<'_> {
    /// Keeps `old` as record `id`'s bytes at the capture's moment, unless
    /// an earlier change kept them already. Call before changing it.
    pub(super) fn keep(&self, kind: Kind, id: Id, old: Option<&sled::IVec>) {
        if let Some(capture) = self.guard.as_ref() {
            let mut map = capture
                .map(kind)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            map.entry(id).or_insert_with(|| old.cloned());
        }
    }
}

impl Gate {
    /// A writer's pass.
    pub(super) fn pass(&self) -> Pass<'_> {
        Pass {
            guard: self.capture.read().unwrap_or_else(PoisonError::into_inner),
        }
    }

    /// Opens a capture once no change is in flight; `at_open` runs at that
    /// moment (to read the id counters).
    pub(super) fn open<T>(&self, at_open: impl FnOnce() -> T) -> (Arc<Capture>, T) {
        let mut slot = self.capture.write().unwrap_or_else(PoisonError::into_inner);
        let capture = Arc::new(Capture::default());
        *slot = Some(capture.clone());
        (capture, at_open())
    }

    /// Closes the capture: writers stop keeping bytes.
    pub(super) fn close(&self) {
        *self.capture.write().unwrap_or_else(PoisonError::into_inner) = None;
    }
}
