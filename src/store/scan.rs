//! Where long storage work runs: list scans, exports and big carts. The
//! embedded store's reads block the thread, so this work runs on tokio's
//! blocking threads, never on the runtime's workers (two scans would stop
//! every other request on a 2-core machine). At most `workers` pieces run
//! at once and at most `queue` more wait for a turn; what comes beyond that
//! is refused at once with [`StoreError::Busy`] (503 with `Retry-After`):
//! shed, not queued forever.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Semaphore;

use super::{StoreError, StoreResult};

/// Seconds a client is told to wait when the queue is full.
pub const RETRY_AFTER_SECS: u64 = 1;

/// The bounded pool for long storage work. A cheap handle: clones share
/// one bound.
#[derive(Clone, Debug)]
pub struct Scans {
    inner: Arc<Bound>,
}

#[derive(Debug)]
struct Bound {
    turns: Arc<Semaphore>,
    /// Pieces admitted: running or waiting for a turn.
    admitted: AtomicUsize,
    /// The most admitted at once: workers plus queue.
    most: usize,
}

/// One admitted piece of work; it leaves the count when dropped (done, or
/// its request went away while it waited).
struct Admitted(Arc<Bound>);

/// A turn of the bound: one of the `workers` places, held until dropped.
pub struct Turn {
    _permit: tokio::sync::OwnedSemaphorePermit,
    _admitted: Admitted,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Scans {
    /// Workers when no setting says otherwise.
    pub const DEFAULT_WORKERS: usize = 2;
    /// Queue length when no setting says otherwise.
    pub const DEFAULT_QUEUE: usize = 32;

    /// At most `workers` (at least 1) pieces at once, `queue` more waiting.
    #[must_use]
    pub fn new(workers: usize, queue: usize) -> Scans {
        let workers = workers.max(1);
        Scans {
            inner: Arc::new(Bound {
                turns: Arc::new(Semaphore::new(workers)),
                admitted: AtomicUsize::new(0),
                most: workers.saturating_add(queue),
            }),
        }
    }

    /// Runs `work` on a blocking thread when its turn comes; refuses with
    /// [`StoreError::Busy`] when `workers` run and `queue` wait already.
    /// The turn is held by the thread, so work whose request went away
    /// still counts until it ends.
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> StoreResult<T> + Send + 'static,
    ) -> StoreResult<T> {
        let turn = self.admit().await?;
        tokio::task::spawn_blocking(move || {
            let _held = turn;
            work()
        })
        .await
        .map_err(StoreError::backend)?
    }

    /// A turn for long work that runs on the runtime itself (a database
    /// export, which waits on the network rather than blocking a thread),
    /// under the same bound as [`Scans::run`]: held until dropped.
    pub async fn admit(&self) -> StoreResult<Turn> {
        let bound = &self.inner;
        if bound.admitted.fetch_add(1, Ordering::AcqRel) >= bound.most {
            bound.admitted.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::Busy {
                retry_after_secs: RETRY_AFTER_SECS,
            });
        }
        let admitted = Admitted(bound.clone());
        let permit = bound
            .turns
            .clone()
            .acquire_owned()
            .await
            .map_err(StoreError::backend)?;
        Ok(Turn {
            _permit: permit,
            _admitted: admitted,
        })
    }

    /// Pieces running or waiting now.
    #[must_use]
    pub fn admitted(&self) -> usize {
        self.inner.admitted.load(Ordering::Acquire)
    }
}

impl Default for Scans {
    fn default() -> Self {
        Scans::new(Scans::DEFAULT_WORKERS, Scans::DEFAULT_QUEUE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Work that runs until `release` is dropped or sent to.
    fn held(release: std::sync::mpsc::Receiver<()>) -> impl FnOnce() -> StoreResult<u8> + Send {
        move || {
            let _ = release.recv();
            Ok(7)
        }
    }

    async fn eventually(what: impl Fn() -> bool) {
        for _ in 0..500 {
            if what() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("the condition never held");
    }

    #[tokio::test]
    async fn work_beyond_the_workers_and_the_queue_is_refused_then_admitted_again() {
        let scans = Scans::new(1, 1);
        let (release_running, running) = std::sync::mpsc::channel();
        let (release_waiting, waiting) = std::sync::mpsc::channel();
        let first = tokio::spawn({
            let scans = scans.clone();
            async move { scans.run(held(running)).await }
        });
        let second = tokio::spawn({
            let scans = scans.clone();
            async move { scans.run(held(waiting)).await }
        });
        eventually(|| scans.admitted() == 2).await;
        let refused = scans.run(|| Ok(1)).await;
        assert!(matches!(
            refused,
            Err(StoreError::Busy {
                retry_after_secs: RETRY_AFTER_SECS
            })
        ));
        release_running.send(()).unwrap();
        release_waiting.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 7);
        assert_eq!(second.await.unwrap().unwrap(), 7);
        assert_eq!(scans.run(|| Ok(3)).await.unwrap(), 3);
        assert_eq!(scans.admitted(), 0);
    }

    #[tokio::test]
    async fn a_waiter_that_goes_away_frees_its_place() {
        let scans = Scans::new(1, 1);
        let (release, running) = std::sync::mpsc::channel();
        let first = tokio::spawn({
            let scans = scans.clone();
            async move { scans.run(held(running)).await }
        });
        eventually(|| scans.admitted() == 1).await;
        let waiter = tokio::spawn({
            let scans = scans.clone();
            async move { scans.run(|| Ok(1)).await }
        });
        eventually(|| scans.admitted() == 2).await;
        waiter.abort();
        eventually(|| scans.admitted() == 1).await;
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap().unwrap(), 7);
    }
}
