//! When a write counts as done. In `sync` mode every write waits until it is
//! on stable storage, and concurrent writers share that wait: one flusher
//! thread takes all writers waiting at once, flushes sled, fsyncs its files
//! and answers them all (group commit), so a burst of N writes costs about
//! one or two fsyncs, not N. After each sync that stored new records it
//! brings the manifest up to date before it answers (see `manifest.rs`); in
//! `periodic` mode the same thread does that every `flush_every_ms`.
//!
//! sled stops writing for good after its first I/O error (a full disk, say):
//! every later write fails until the database is opened again. So the first
//! failed sync marks the store failed, says so once in the log, and every
//! later sync fails at once.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::Duration;

use serde::Deserialize;
use tokio::sync::oneshot;

use super::manifest::{LAZY, Ledger};
use crate::store::{StoreError, StoreResult};

/// How durable an acknowledged write is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Acknowledge after sled's flush and an fsync: survives `kill -9`,
    /// OS crashes and power loss. Concurrent writes share one flush.
    #[default]
    Sync,
    /// Acknowledge at once; sled writes to disk every `flush_every_ms`.
    /// A crash can lose the writes of that last interval.
    Periodic,
}

impl FromStr for Durability {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "sync" => Ok(Durability::Sync),
            "periodic" => Ok(Durability::Periodic),
            other => Err(format!(
                "unknown durability {other:?}: expected \"sync\" or \"periodic\""
            )),
        }
    }
}

type Waiter = oneshot::Sender<Result<(), String>>;

/// Flushes sled and fsyncs the files it wrote.
pub(super) struct DiskSync {
    db: sled::Db,
    /// sled's log file; its flush uses `sync_file_range`, which keeps neither
    /// the file's size nor the disk's cache safe from power loss.
    log: File,
    blobs: PathBuf,
    /// The highest blob file already fsynced (blob files are named by a
    /// growing log sequence number, and sled does not fsync them).
    synced_blob: Mutex<u64>,
    /// Why storage failed, once it has: sled writes no more in this process.
    failed: OnceLock<String>,
    /// Whether anything was written since the last `periodic` sync.
    dirty: AtomicBool,
    /// Where each sync writes its number first.
    meta: sled::Tree,
    /// The number of the last sync begun.
    sync_number: Mutex<u64>,
    ledger: Arc<Ledger>,
}

/// The key in `meta` of the last sync's number.
pub(super) const SYNC_KEY: &str = "last_sync";

impl DiskSync {
    /// Syncs `db` (whose files are in `sled_dir`) and records each sync in
    /// `meta` and in the manifest through `ledger`; sync numbers continue
    /// after `last_sync`.
    pub(super) fn new(
        db: sled::Db,
        sled_dir: &Path,
        meta: sled::Tree,
        last_sync: u64,
        ledger: Arc<Ledger>,
    ) -> io::Result<DiskSync> {
        Ok(DiskSync {
            db,
            log: File::open(sled_dir.join("db"))?,
            blobs: sled_dir.join("blobs"),
            synced_blob: Mutex::new(0),
            failed: OnceLock::new(),
            dirty: AtomicBool::new(false),
            meta,
            sync_number: Mutex::new(last_sync),
            ledger,
        })
    }

    /// Makes every write made so far durable, then brings the manifest up
    /// to what this sync made durable.
    pub(super) fn sync(&self) -> io::Result<()> {
        let mut snapshot = self.ledger.snapshot();
        snapshot.sync = self.sync_files()?;
        self.ledger.publish(snapshot)
    }

    /// Makes every write made so far durable; returns the sync's number.
    fn sync_files(&self) -> io::Result<u64> {
        if let Some(why) = self.failed() {
            return Err(io::Error::other(format!("storage failed earlier: {why}")));
        }
        let synced = self
            .number_sync()
            .and_then(|number| {
                self.db.flush().map_err(io::Error::other)?;
                Ok(number)
            })
            .and_then(|number| {
                self.log.sync_data()?;
                self.sync_new_blobs()?;
                Ok(number)
            });
        if let Err(err) = &synced {
            self.fail(&err.to_string());
        }
        synced
    }

    /// Writes the next sync number into sled, in order (under a lock, so
    /// the stored number never goes back).
    fn number_sync(&self) -> io::Result<u64> {
        let mut number = self
            .sync_number
            .lock()
            .map_err(|_| io::Error::other("sync number lock poisoned"))?;
        *number += 1;
        self.meta
            .insert(SYNC_KEY, &number.to_be_bytes())
            .map_err(io::Error::other)?;
        Ok(*number)
    }

    /// The last sync, made at shutdown: the manifest then says exactly
    /// what the store holds.
    pub(super) fn final_sync(&self) -> io::Result<()> {
        let number = self.sync_files()?;
        self.ledger.settle(number)
    }

    /// Notes a write, for `periodic` mode's next tick.
    pub(super) fn touch(&self) {
        self.dirty.store(true, Ordering::SeqCst);
    }

    /// Why storage failed, if it has.
    pub(super) fn failed(&self) -> Option<&str> {
        self.failed.get().map(String::as_str)
    }

    fn fail(&self, why: &str) {
        if self.failed.set(why.to_owned()).is_ok() {
            tracing::error!(
                error = %why,
                "storage failed: sled writes nothing more in this process; writes fail and \
                 /readyz answers 503 until shopd is restarted (once the disk has room)"
            );
        }
    }

    fn sync_new_blobs(&self) -> io::Result<()> {
        let Ok(entries) = std::fs::read_dir(&self.blobs) else {
            return Ok(());
        };
        let mut synced = self
            .synced_blob
            .lock()
            .map_err(|_| io::Error::other("blob sync lock poisoned"))?;
        let mut newest = *synced;
        for entry in entries {
            let entry = entry?;
            let Some(lsn) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if lsn > *synced {
                File::open(entry.path())?.sync_all()?;
                newest = newest.max(lsn);
            }
        }
        if newest > *synced {
            File::open(&self.blobs)?.sync_all()?;
            *synced = newest;
        }
        Ok(())
    }
}

/// The handle writers wait on; cheap to clone.
#[derive(Clone)]
pub(super) struct Committer {
    waiters: Option<mpsc::Sender<Waiter>>,
    /// In `periodic` mode: dropping the last one ends the manifest thread.
    _ticker: Option<mpsc::Sender<()>>,
    /// In `periodic` mode: told of each write, so idle ticks sync nothing.
    touch: Option<Arc<DiskSync>>,
}

impl Committer {
    /// Starts the flusher thread (in `periodic` mode, the thread that
    /// syncs and updates the manifest every `every`); its handle comes back
    /// so the store can wait for it to end.
    pub(super) fn start(
        mode: Durability,
        every: Duration,
        disk: Arc<DiskSync>,
    ) -> io::Result<(Committer, std::thread::JoinHandle<()>)> {
        let builder = std::thread::Builder::new().name("shopd-flusher".into());
        if mode == Durability::Periodic {
            let (tx, rx) = mpsc::channel::<()>();
            let touch = Some(disk.clone());
            let thread = builder.spawn(move || ticker(&rx, every, &disk))?;
            let committer = Committer {
                waiters: None,
                _ticker: Some(tx),
                touch,
            };
            return Ok((committer, thread));
        }
        let (tx, rx) = mpsc::channel::<Waiter>();
        let thread = builder.spawn(move || flusher(&rx, &disk))?;
        let committer = Committer {
            waiters: Some(tx),
            _ticker: None,
            touch: None,
        };
        Ok((committer, thread))
    }

    /// A committer whose writers never wait; dropping the last real one in
    /// favour of this ends the flusher thread.
    pub(super) fn stopped() -> Committer {
        Committer {
            waiters: None,
            _ticker: None,
            touch: None,
        }
    }

    /// Resolves once every write made before the call is durable.
    pub(super) async fn durable(&self) -> StoreResult<()> {
        let Some(waiters) = &self.waiters else {
            if let Some(disk) = &self.touch {
                disk.touch();
            }
            return Ok(());
        };
        let (tx, rx) = oneshot::channel();
        let gone = || StoreError::backend(io::Error::other("the flusher thread stopped"));
        waiters.send(tx).map_err(|_| gone())?;
        rx.await
            .map_err(|_| gone())?
            .map_err(|msg| StoreError::backend(io::Error::other(msg)))
    }
}

/// Takes every waiting writer, syncs once (which records the sync in the
/// manifest), answers them all; until every sender is gone. When idle, makes
/// sure the manifest does not lag.
fn flusher(rx: &mpsc::Receiver<Waiter>, disk: &DiskSync) {
    loop {
        let first = match rx.recv_timeout(LAZY) {
            Ok(first) => first,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                publish_pending(disk);
                continue;
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        };
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = disk.sync().map_err(|err| {
            tracing::error!(error = %err, "flushing storage failed");
            err.to_string()
        });
        for waiter in batch {
            // A writer that went away (client hung up) needs no answer.
            let _ = waiter.send(result.clone());
        }
    }
}

fn publish_pending(disk: &DiskSync) {
    if disk.failed().is_none()
        && let Err(err) = disk.ledger.publish_pending()
    {
        tracing::error!(error = %err, "writing the manifest failed");
    }
}

/// `periodic` mode: every `every`, syncs (which records the sync in the
/// manifest); until the stop sender is gone.
fn ticker(stop: &mpsc::Receiver<()>, every: Duration, disk: &DiskSync) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
        if disk.failed().is_none()
            && disk.dirty.swap(false, Ordering::SeqCst)
            && let Err(err) = disk.sync()
        {
            tracing::error!(error = %err, "flushing storage failed");
        }
        publish_pending(disk);
    }
}
