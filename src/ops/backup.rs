//! Scheduled backups: every `backup_every_secs`, the consistent export
//! written to a temporary file in `backup_dir`, fsynced, renamed to its
//! moment's name (see `files`), then the oldest beyond `backup_keep`
//! pruned. The first backup is due one interval after the newest already
//! in the directory (at once when there is none), so a restart neither
//! skips one nor takes an extra one.
//!
//! A failure is counted, logged once with its cause (again only when the
//! cause changes, and once when backups work again), and retried at the
//! next tick. On a store shared by several instances (PostgreSQL) one
//! instance at a time takes a backup; the others skip the tick, and skip
//! it too when the directory (if they share it) holds a backup from the
//! last half interval.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

use super::export::{WriteError, export_to};
use super::files::{self, Pending};
use crate::config;
use crate::metrics::{BackupMetrics, Telemetry};
use crate::store::{ExportCounts, ExportMode, Store};

/// The backup scheduler of one shopd.
pub struct Backups<S> {
    store: S,
    dir: PathBuf,
    every: Duration,
    keep: usize,
    metrics: BackupMetrics,
    /// The cause of the last failure, while failures go on: logged once.
    failing: Option<String>,
}

/// What one tick did.
#[derive(Debug)]
pub enum Outcome {
    /// A backup is complete under `path`.
    Taken {
        /// Its file.
        path: PathBuf,
        /// What it holds.
        counts: ExportCounts,
    },
    /// Another instance is taking one now.
    Skipped,
    /// Shutdown began while it ran; nothing was kept.
    Stopped,
}

/// Why one backup failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The store could not be exported.
    #[error("exporting the store")]
    Export(#[source] crate::store::StoreError),
    /// The file could not be written, synced or renamed.
    #[error("writing {path}")]
    File {
        /// The directory or file.
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn file_error(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::File {
        path: path.to_path_buf(),
        source,
    }
}

impl<S: Store> Backups<S> {
    /// The scheduler the settings ask for; `None` when backups are off.
    /// Registers the backup metrics in `telemetry` when they are on.
    pub fn new(store: S, settings: &config::Backup, telemetry: &Telemetry) -> Option<Self> {
        let dir = settings.dir.clone()?;
        if settings.every.is_zero() {
            return None;
        }
        let metrics = telemetry.backup_metrics();
        metrics.interval.set(settings.every.as_secs_f64());
        let backups = Backups {
            store,
            dir,
            every: settings.every,
            keep: settings.keep.get(),
            metrics,
            failing: None,
        };
        backups.note_newest();
        Some(backups)
    }

    /// The newest backup's moment in the directory, shown in the metrics
    /// (0 when there is none); a directory that cannot be read leaves the
    /// metric as it was.
    fn note_newest(&self) -> Option<SystemTime> {
        let newest = files::newest(&self.dir).ok()?;
        let secs = newest
            .and_then(|time| time.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |since| since.as_secs_f64());
        self.metrics.last_success.set(secs);
        newest
    }

    /// Takes backups until `stop` is cancelled; a backup running then is
    /// abandoned (its temporary file removed) before this returns.
    pub async fn run(mut self, stop: CancellationToken) {
        let newest = self.note_newest();
        // When the next is due: an interval after the newest kept.
        let since_newest = newest
            .and_then(|time| SystemTime::now().duration_since(time).ok())
            .unwrap_or(self.every);
        let mut due = Instant::now() + self.every.saturating_sub(since_newest);
        tracing::info!(
            dir = %self.dir.display(),
            every_secs = self.every.as_secs(),
            keep = self.keep,
            first_in_secs = due.saturating_duration_since(Instant::now()).as_secs(),
            "scheduled backups on"
        );
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => {}
                () = stop.cancelled() => return,
            }
            self.tick(&stop).await;
            // The next tick; ticks missed while a long backup ran are skipped.
            let now = Instant::now();
            while due <= now {
                due += self.every;
            }
        }
    }

    /// One tick: a backup, its metrics, and its failure logged once.
    pub async fn tick(&mut self, stop: &CancellationToken) -> Option<Outcome> {
        let started = Instant::now();
        match self.take(stop).await {
            Ok(outcome) => {
                if let Outcome::Taken { path, counts } = &outcome {
                    let secs = started.elapsed().as_secs_f64();
                    self.metrics.duration.set(secs);
                    self.note_newest();
                    if self.failing.take().is_some() {
                        tracing::info!(dir = %self.dir.display(), "scheduled backups work again");
                    }
                    tracing::info!(
                        path = %path.display(),
                        items = counts.items,
                        carts = counts.carts,
                        secs,
                        "backup taken"
                    );
                } else if matches!(outcome, Outcome::Skipped) {
                    // Another instance took it, perhaps into this directory.
                    self.note_newest();
                    tracing::debug!("another instance took or is taking this backup; skipped");
                }
                Some(outcome)
            }
            Err(err) => {
                self.metrics.failures.increment(1);
                // A backup may be complete with only its pruning failed.
                self.note_newest();
                let cause = crate::error_chain(&err);
                if self.failing.as_deref() != Some(cause.as_str()) {
                    tracing::error!(
                        error = %cause,
                        dir = %self.dir.display(),
                        every_secs = self.every.as_secs(),
                        "scheduled backup failed; retrying at each tick, logged again only if the cause changes"
                    );
                    self.failing = Some(cause);
                }
                None
            }
        }
    }

    /// One backup: export to a temporary file, fsync, rename, prune.
    async fn take(&self, stop: &CancellationToken) -> Result<Outcome, BackupError> {
        if self.taken_lately() {
            return Ok(Outcome::Skipped);
        }
        // Named for a moment before the export's: every write acknowledged
        // before the name's time is in it.
        let name = files::name_at(SystemTime::now());
        let dir = self.dir.clone();
        let (pending, file) = {
            let name = name.clone();
            let dir = dir.clone();
            tokio::task::spawn_blocking(move || Pending::create(&dir, &name))
                .await
                .map_err(|err| file_error(&self.dir)(std::io::Error::other(err)))?
                .map_err(file_error(&self.dir))?
        };
        let out = Stoppable {
            file,
            stop: stop.clone(),
        };
        let exported = match export_to(&self.store, ExportMode::Scheduled, out).await {
            Ok(exported) => exported,
            Err(_) if stop.is_cancelled() => return Ok(Outcome::Stopped),
            Err(WriteError::Store(err)) => return Err(BackupError::Export(err)),
            Err(WriteError::Write(err)) => return Err(file_error(&pending_path(&dir, &name))(err)),
        };
        let Some((out, counts)) = exported else {
            return Ok(Outcome::Skipped);
        };
        let keep = self.keep;
        let done = tokio::task::spawn_blocking(move || {
            let path = pending
                .complete(&out.file, &name)
                .map_err(file_error(&dir.join(&name)))?;
            // Only now, with the new one complete, go the old ones.
            for removed in files::prune(&dir, keep).map_err(file_error(&dir))? {
                tracing::info!(path = %removed.display(), "old backup removed");
            }
            Ok::<_, BackupError>(path)
        })
        .await
        .map_err(|err| file_error(&self.dir)(std::io::Error::other(err)))??;
        Ok(Outcome::Taken { path: done, counts })
    }
}

impl<S> Backups<S> {
    /// Whether the directory holds a backup from the last half interval:
    /// another instance sharing the directory (and the database) took this
    /// one, so the shop gets one backup per interval, not one per instance.
    fn taken_lately(&self) -> bool {
        let newest = files::newest(&self.dir).ok().flatten();
        newest
            .and_then(|time| SystemTime::now().duration_since(time).ok())
            .is_some_and(|age| age < self.every / 2)
    }
}

fn pending_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.tmp"))
}

/// The backup file, refusing further chunks once shutdown began (which
/// ends the export: the store sees its reader gone).
struct Stoppable {
    file: std::fs::File,
    stop: CancellationToken,
}

impl std::io::Write for Stoppable {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.stop.is_cancelled() {
            // Not `Interrupted`: `write_all` would retry that.
            return Err(std::io::Error::other("shopd is stopping"));
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests;
