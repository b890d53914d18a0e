//! Opening a data directory: lock it, open sled (a damaged log can make
//! sled fail or even panic: both become a refusal), read every record back
//! and compare with the manifest. A store that holds less than its manifest
//! says is refused unless the operator accepts the loss.

use std::fs::File;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use super::check::{self, CheckReport, ManifestState, Scan};
use super::manifest::{Claim, Manifest};
use super::records::Records;
use crate::store::StoreError;

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
    /// The store lost acknowledged data or holds records that do not read.
    #[error(
        "data directory {path} is damaged: {problems}. Restore it from an export (`shopd import`){remedy}; \
         `shopd check --data-dir {path}` lists every problem"
    )]
    Damaged {
        path: PathBuf,
        problems: String,
        /// What else can be done, after "restore it from an export".
        remedy: &'static str,
    },
}

impl OpenError {
    /// The same error naming `dir` instead of the directory it happened in
    /// (the private copy `shopd check` reads).
    fn for_dir(self, dir: &Path) -> OpenError {
        let path = dir.to_path_buf();
        match self {
            OpenError::Unusable { source, .. } => OpenError::Unusable { path, source },
            OpenError::Locked { lock, .. } => OpenError::Locked { path, lock },
            OpenError::Database { source, .. } => OpenError::Database { path, source },
            OpenError::Damaged {
                problems, remedy, ..
            } => OpenError::Damaged {
                path,
                problems,
                remedy,
            },
        }
    }
}

/// Copies the directory tree `from` to `to` (files and directories only).
fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The way out when sled reads the store but it lost data.
const ACCEPT: &str = ", or start anyway with --accept-data-loss to serve what is left \
     (new ids continue after the highest acknowledged ones)";
/// ... and when sled cannot read it at all.
const UNREADABLE: &str = " into a new data directory (sled cannot open this one, so \
     --accept-data-loss cannot help; keep a copy of it for forensics)";

/// What to do with a damaged store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnDamage {
    /// Refuse to start ([`OpenError::Damaged`]).
    #[default]
    Refuse,
    /// Serve what is left, log what is missing, never reuse an id.
    AcceptDataLoss,
}

/// A database that opened, with what it holds.
pub(super) struct Opened {
    pub db: sled::Db,
    /// The items and carts, behind the write gate from the start.
    pub records: Records,
    pub meta: sled::Tree,
    pub scan: Scan,
    /// What the store holds and the ids to continue after: the manifest to
    /// start from.
    pub start: Manifest,
}

/// Locks `dir` by its `shopd.lock` file, held for as long as the file is.
pub(super) fn lock_dir(dir: &Path) -> Result<File, OpenError> {
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

/// Takes the data directory's lock, as a server would, but writes nothing:
/// the lock file is opened read-only (and not created when missing, since a
/// directory without one has no server on it).
fn hold_without_writing(dir: &Path) -> Result<Option<File>, OpenError> {
    let path = dir.join("shopd.lock");
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(OpenError::Unusable {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Err(OpenError::Locked {
            path: dir.to_path_buf(),
            lock: path,
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(OpenError::Unusable {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// The `meta` key that says the store was closed cleanly, so no keyed
/// create can be half written (see `Records::insert_new_keyed`).
const KEYS_SETTLED: &str = "keyed_creates_settled";

/// Notes that the store is closing cleanly: no keyed create is half
/// written, and the next open need not look (made durable by the final
/// sync that follows).
pub(super) fn settle_keys(db: &sled::Db) -> sled::Result<()> {
    db.open_tree("meta")?.insert(KEYS_SETTLED, &[])?;
    Ok(())
}

/// Opens sled in `dir/sled` and reads every record; damage that stops sled
/// from opening comes back as [`OpenError::Damaged`].
fn open_and_scan(
    dir: &Path,
    flush_every_ms: Option<u64>,
) -> Result<(sled::Db, Records, sled::Tree, Scan), OpenError> {
    let damaged = |problems: String| OpenError::Damaged {
        path: dir.to_path_buf(),
        problems,
        remedy: UNREADABLE,
    };
    let opened = catch_unwind(AssertUnwindSafe(|| -> sled::Result<_> {
        let db = sled::Config::new()
            .path(dir.join("sled"))
            .flush_every_ms(flush_every_ms)
            .open()?;
        // The only place the item and cart trees are opened: from here on
        // they are reachable only through the write gate.
        let records = Records::new(
            db.open_tree("items")?,
            db.open_tree("carts")?,
            db.open_tree("idempotency")?,
        );
        let meta = db.open_tree("meta")?;
        let started = std::time::Instant::now();
        // Unless the last shutdown was clean: the keyed creates a crash
        // cut short. The flag goes now, so a crash from here on leaves it
        // gone (a later write is durable only after this removal is).
        if meta.remove(KEYS_SETTLED)?.is_none() {
            let rolled = records.roll_forward_creates().map_err(|err| {
                sled::Error::Unsupported(format!("rolling keyed creates forward: {err}"))
            })?;
            if rolled > 0 {
                db.flush()?;
            }
        }
        let scan = check::scan(&records, &meta);
        tracing::info!(
            items = scan.items.count,
            carts = scan.carts.count,
            millis = started.elapsed().as_millis() as u64,
            "store read, checked and indexed"
        );
        Ok((db, records, meta, scan))
    }));
    match opened {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(err @ (sled::Error::Corruption { .. } | sled::Error::ReportableBug(_)))) => {
            Err(damaged(format!("sled cannot read its files ({err})")))
        }
        Ok(Err(err)) => Err(OpenError::Database {
            path: dir.to_path_buf(),
            source: StoreError::backend(err),
        }),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "no reason given".into());
            Err(damaged(format!(
                "sled cannot read its files (it stopped: {why})"
            )))
        }
    }
}

/// Opens the locked `dir` and checks it against its manifest.
pub(super) fn open_checked(
    dir: &Path,
    flush_every_ms: Option<u64>,
    on_damage: OnDamage,
) -> Result<Opened, OpenError> {
    let manifest = Manifest::read(dir);
    let (db, records, meta, scan) = open_and_scan(dir, flush_every_ms)?;
    let mut problems: Vec<String> = Vec::new();
    let manifest = match manifest {
        Ok(Some(manifest)) => manifest,
        Ok(None) => {
            if scan.items.count + scan.carts.count > 0 {
                tracing::info!(
                    "no manifest in {}: writing one from the {} items and {} carts stored",
                    dir.display(),
                    scan.items.count,
                    scan.carts.count
                );
            }
            Manifest::default()
        }
        Err(err) => {
            problems.push(err.to_string());
            Manifest::default()
        }
    };
    problems.extend(check::missing(&scan, &manifest));
    problems.extend(scan.problems.iter().cloned());
    if scan.problem_count > scan.problems.len() {
        problems.push(format!(
            "{} more records do not read",
            scan.problem_count - scan.problems.len()
        ));
    }
    if !problems.is_empty() {
        let problems = problems.join("; ");
        if on_damage == OnDamage::Refuse {
            return Err(OpenError::Damaged {
                path: dir.to_path_buf(),
                problems,
                remedy: ACCEPT,
            });
        }
        tracing::warn!(
            %problems,
            "data directory {} is damaged; serving what is left as --accept-data-loss asks",
            dir.display()
        );
    }
    let start = |tally: check::Tally, claim: Claim| Claim {
        highest: tally.highest,
        count: tally.count,
        next: (tally.highest + 1).max(claim.next),
    };
    let start = Manifest {
        items: start(scan.items, manifest.items),
        carts: start(scan.carts, manifest.carts),
        sync: scan.sync.max(manifest.sync),
    };
    Ok(Opened {
        db,
        records,
        meta,
        scan,
        start,
    })
}

/// `shopd check`: reads every record of the stopped store in `dir` and
/// compares with its manifest. Refuses a directory another process holds.
pub fn check(dir: &Path) -> Result<CheckReport, OpenError> {
    if !dir.join("sled").is_dir() {
        return Err(OpenError::Unusable {
            path: dir.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no store here"),
        });
    }
    let _lock = hold_without_writing(dir)?;
    let (manifest_state, manifest) = match Manifest::read(dir) {
        Ok(Some(manifest)) => (ManifestState::Present, Some(manifest)),
        Ok(None) => (ManifestState::Missing, None),
        Err(err) => (ManifestState::Damaged(err.to_string()), None),
    };
    // sled has no read-only mode: opening replays and may rewrite its
    // files. The check reads a private copy, so the files it checks never
    // change, whatever it finds.
    let copy = tempfile::Builder::new()
        .prefix("shopd-check-")
        .tempdir()
        .map_err(|source| OpenError::Unusable {
            path: std::env::temp_dir(),
            source,
        })?;
    copy_tree(&dir.join("sled"), &copy.path().join("sled")).map_err(|source| {
        OpenError::Unusable {
            path: dir.to_path_buf(),
            source,
        }
    })?;
    let (_db, _records, _meta, scan) =
        open_and_scan(copy.path(), None).map_err(|err| err.for_dir(dir))?;
    let missing = manifest
        .as_ref()
        .map(|manifest| check::missing(&scan, manifest))
        .unwrap_or_default();
    Ok(CheckReport {
        dir: dir.to_path_buf(),
        manifest_state,
        manifest,
        scan,
        missing,
    })
}
