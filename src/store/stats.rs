//! The store's sizes for `/metrics`. Reading them may take a round trip to a
//! database, so a background task refreshes a [`StatsCache`] now and then
//! and a scrape only reads the cache: it never waits on the storage.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Store;

/// Sizes of the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Items that are not deleted.
    pub items: u64,
    /// Carts.
    pub carts: u64,
    /// Idempotency keys kept (expired ones not yet pruned included).
    pub idempotency_keys: u64,
    /// Bytes the data takes in storage, where the backend knows it: the
    /// data directory for sled, the tables with their indexes for
    /// PostgreSQL.
    pub storage_bytes: Option<u64>,
    /// Bytes still free for shopd on the disk under the data directory
    /// (the embedded store only).
    pub available_bytes: Option<u64>,
}

/// The longest the periodic check waits for the store: as `/readyz` does.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The last sizes read, and whether the store answered its last check; a
/// cheap handle.
#[derive(Clone)]
pub struct StatsCache {
    inner: Arc<Mutex<StoreStats>>,
    /// Refreshes that failed in a row, so an outage is logged once.
    failures: Arc<AtomicU64>,
    /// Whether the store answered its last check (it opened, so it starts
    /// up).
    up: Arc<AtomicBool>,
}

impl Default for StatsCache {
    fn default() -> Self {
        StatsCache {
            inner: Arc::default(),
            failures: Arc::default(),
            up: Arc::new(AtomicBool::new(true)),
        }
    }
}

impl StatsCache {
    /// The sizes as last read (zero before the first read).
    #[must_use]
    pub fn get(&self) -> StoreStats {
        *self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the store answered its last check, the one `/readyz` makes,
    /// within 2 seconds: `shopd_store_up`.
    #[must_use]
    pub fn store_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    fn set(&self, stats: StoreStats) {
        *self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = stats;
    }

    /// Checks the store and reads the sizes once now, then every `every`,
    /// forever; run it as a task and abort it at shutdown. A failed read
    /// keeps the last sizes.
    pub async fn refresh<S: Store>(self, store: S, every: Duration) {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let up = matches!(
                tokio::time::timeout(CHECK_TIMEOUT, store.ping()).await,
                Ok(Ok(()))
            );
            self.up.store(up, Ordering::Relaxed);
            match store.stats().await {
                Ok(stats) => {
                    self.set(stats);
                    self.failures.store(0, Ordering::Relaxed);
                }
                Err(err) => {
                    if self.failures.fetch_add(1, Ordering::Relaxed) == 0 {
                        tracing::warn!(error = %err, "cannot read the store's sizes for the metrics; keeping the last ones");
                    }
                }
            }
        }
    }
}
