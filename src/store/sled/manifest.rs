//! The manifest: a small file beside sled (`DATA_DIR/manifest`) that says
//! how much the store held when it last knew for sure, so a store that
//! later holds less (a damaged or truncated log, which sled reads as a
//! shorter one) is noticed at start-up instead of served, and ids are never
//! handed out twice.
//!
//! It is written atomically (temporary file, fsync, rename, fsync of the
//! directory) and only after the sled sync that made what it claims
//! durable, so it never claims more than is on disk. The [`Ledger`] counts
//! the records stored so far; each sync takes a snapshot before it starts
//! and publishes it after. Ids are reserved in blocks, and a new block is
//! in the manifest before an id from it is handed out, so the manifest
//! never says less than what was handed out; highest ids, counts and the
//! sync number may lag by [`LAZY`] (a write costs several fsyncs, ten
//! times an item's own), and are exact after a clean shutdown.
//!
//! The format is a few lines of text with an FNV-1a checksum line, written
//! by hand: a serde struct with a CRC would not be shorter, since existing
//! data directories hold this format and its reader would have to stay.

use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::domain::{Id, Resource};

/// The manifest's file name in the data directory.
pub(super) const FILE: &str = "manifest";
const HEADER: &str = "shopd manifest 1";
/// How long a manifest may lag behind syncs that stored no new record.
pub(super) const LAZY: Duration = Duration::from_secs(1);

/// What the manifest claims about one resource (items or carts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Claim {
    /// The highest id known to be stored durably (0: none).
    pub highest: Id,
    /// How many records are known to be stored durably (records are never
    /// removed: a deleted item stays, marked deleted).
    pub count: u64,
    /// Every id handed out so far (or reserved to be) is below this: the
    /// next id is at least this, and no id below it may be handed out again.
    pub next: Id,
}

impl Claim {
    fn max(self, other: Claim) -> Claim {
        Claim {
            highest: self.highest.max(other.highest),
            count: self.count.max(other.count),
            next: self.next.max(other.next),
        }
    }
}

/// The manifest's contents.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Manifest {
    pub items: Claim,
    pub carts: Claim,
    /// The number of the last sync known durable. Each sync first writes
    /// its number into sled (`meta`), so a store whose log lost its tail
    /// (and with it the latest changes to existing records, which counts
    /// and ids cannot show) holds a lower number than this.
    pub sync: u64,
}

/// Why a manifest could not be read.
#[derive(Debug, thiserror::Error)]
pub(super) enum ManifestError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path} is damaged ({why})")]
    Damaged { path: PathBuf, why: &'static str },
}

impl fmt::Display for Manifest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{HEADER}")?;
        for (name, claim) in [("items", self.items), ("carts", self.carts)] {
            writeln!(f, "{name}.highest {}", claim.highest)?;
            writeln!(f, "{name}.count {}", claim.count)?;
            writeln!(f, "{name}.next {}", claim.next)?;
        }
        writeln!(f, "sync {}", self.sync)
    }
}

/// FNV-1a, 64 bits: enough to tell a damaged manifest from a whole one.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl Manifest {
    /// The manifest's bytes: its lines, then a checksum line over them.
    fn encode(&self) -> String {
        let body = self.to_string();
        format!("{body}checksum {:016x}\n", checksum(body.as_bytes()))
    }

    fn decode(text: &str) -> Result<Manifest, &'static str> {
        let at = text.rfind("checksum ").ok_or("no checksum line")?;
        let (body, sum) = text.split_at(at);
        let sum = sum["checksum ".len()..].trim_end();
        if u64::from_str_radix(sum, 16).ok() != Some(checksum(body.as_bytes())) {
            return Err("checksum mismatch");
        }
        let mut lines = body.lines();
        if lines.next() != Some(HEADER) {
            return Err("unknown format");
        }
        let mut value = |key: &str| -> Result<u64, &'static str> {
            let line = lines.next().ok_or("too short")?;
            let (name, number) = line.split_once(' ').ok_or("bad line")?;
            if name != key {
                return Err("unexpected key");
            }
            number.parse().map_err(|_| "bad number")
        };
        let mut claim = |name: &str| -> Result<Claim, &'static str> {
            Ok(Claim {
                highest: value(&format!("{name}.highest"))?,
                count: value(&format!("{name}.count"))?,
                next: value(&format!("{name}.next"))?,
            })
        };
        let (items, carts) = (claim("items")?, claim("carts")?);
        Ok(Manifest {
            items,
            carts,
            sync: value("sync")?,
        })
    }

    /// The manifest in `dir`, or `None` when there is none (a new store, or
    /// one made before shopd kept a manifest).
    pub(super) fn read(dir: &Path) -> Result<Option<Manifest>, ManifestError> {
        let path = dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ManifestError::Read { path, source }),
        };
        let text = String::from_utf8(bytes).map_err(|_| ManifestError::Damaged {
            path: path.clone(),
            why: "not text",
        })?;
        Manifest::decode(&text)
            .map(Some)
            .map_err(|why| ManifestError::Damaged { path, why })
    }

    /// Replaces the manifest in `dir` atomically: a crash leaves the old
    /// one or the new one, never a mix.
    pub(super) fn write(&self, dir: &Path) -> io::Result<()> {
        let temp = dir.join(format!("{FILE}.tmp"));
        let mut file = File::create(&temp)?;
        file.write_all(self.encode().as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, dir.join(FILE))?;
        File::open(dir)?.sync_all()
    }
}

/// Counts of one resource's records as they are stored.
#[derive(Default)]
struct Counter {
    highest: AtomicU64,
    count: AtomicU64,
    /// Ids below this may have been handed out (the reserved block).
    reserved: AtomicU64,
}

impl Counter {
    fn snapshot(&self) -> Claim {
        let highest = self.highest.load(Ordering::SeqCst);
        Claim {
            highest,
            count: self.count.load(Ordering::SeqCst),
            next: (highest + 1).max(self.reserved.load(Ordering::SeqCst)),
        }
    }
}

/// Keeps the manifest up to date with what the store has made durable.
pub(super) struct Ledger {
    dir: PathBuf,
    items: Counter,
    carts: Counter,
    state: Mutex<State>,
}

struct State {
    /// What is known durable.
    durable: Manifest,
    /// What the file says.
    written: Manifest,
    written_at: Instant,
}

impl Ledger {
    /// Starts from `manifest` (what the store holds at start-up) and writes it.
    pub(super) fn start(dir: &Path, manifest: Manifest) -> io::Result<Ledger> {
        manifest.write(dir)?;
        let counter = |claim: Claim| Counter {
            highest: AtomicU64::new(claim.highest),
            count: AtomicU64::new(claim.count),
            reserved: AtomicU64::new(claim.next),
        };
        Ok(Ledger {
            dir: dir.to_path_buf(),
            items: counter(manifest.items),
            carts: counter(manifest.carts),
            state: Mutex::new(State {
                durable: manifest,
                written: manifest,
                written_at: Instant::now(),
            }),
        })
    }

    fn counter(&self, resource: Resource) -> &Counter {
        match resource {
            Resource::Item => &self.items,
            Resource::Cart => &self.carts,
        }
    }

    fn state(&self) -> io::Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("manifest lock poisoned"))
    }

    /// Notes a new record, after sled took it (and before it is synced).
    pub(super) fn stored(&self, resource: Resource, id: Id) {
        let counter = self.counter(resource);
        counter.highest.fetch_max(id, Ordering::SeqCst);
        counter.count.fetch_add(1, Ordering::SeqCst);
    }

    /// Notes that ids below `until` may be handed out.
    pub(super) fn reserve(&self, resource: Resource, until: Id) {
        self.counter(resource)
            .reserved
            .fetch_max(until, Ordering::SeqCst);
    }

    /// Notes that no id from `next` on was handed out (at shutdown, when
    /// no more are): the unused part of a reservation is free again.
    pub(super) fn release(&self, resource: Resource, next: Id) {
        self.counter(resource)
            .reserved
            .store(next, Ordering::SeqCst);
    }

    /// What is stored now; take it before a sync and publish it after.
    pub(super) fn snapshot(&self) -> Manifest {
        Manifest {
            items: self.items.snapshot(),
            carts: self.carts.snapshot(),
            sync: 0,
        }
    }

    /// Records `snapshot` (taken before a sync that succeeded, with that
    /// sync's number). A grown id reservation is written at once (no id
    /// from it is handed out before); the rest (highest ids, counts, sync
    /// number) at most every [`LAZY`], as writing this file costs several
    /// fsyncs (see [`Ledger::publish_pending`] for the idle case).
    pub(super) fn publish(&self, snapshot: Manifest) -> io::Result<()> {
        let mut state = self.state()?;
        let durable = Manifest {
            items: state.durable.items.max(snapshot.items),
            carts: state.durable.carts.max(snapshot.carts),
            sync: state.durable.sync.max(snapshot.sync),
        };
        state.durable = durable;
        let reserved = durable.items.next > state.written.items.next
            || durable.carts.next > state.written.carts.next;
        if reserved || state.written_at.elapsed() >= LAZY {
            self.write(&mut state)?;
        }
        Ok(())
    }

    /// Writes what is known durable if the file lags behind it.
    pub(super) fn publish_pending(&self) -> io::Result<()> {
        let mut state = self.state()?;
        self.write(&mut state)
    }

    fn write(&self, state: &mut State) -> io::Result<()> {
        if state.durable != state.written {
            state.durable.write(&self.dir)?;
            state.written = state.durable;
            state.written_at = Instant::now();
        }
        Ok(())
    }

    /// Writes what is stored now as it is, also where it says less than
    /// the file (a released reservation); for shutdown, after the last
    /// sync, `sync` being its number.
    pub(super) fn settle(&self, sync: u64) -> io::Result<()> {
        let mut state = self.state()?;
        state.durable = Manifest {
            sync,
            ..self.snapshot()
        };
        self.write(&mut state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_round_trips_and_any_changed_byte_is_noticed() {
        let manifest = Manifest {
            items: Claim {
                highest: 2000,
                count: 1999,
                next: 3025,
            },
            carts: Claim {
                highest: 7,
                count: 7,
                next: 8,
            },
            sync: 12,
        };
        let text = manifest.encode();
        assert_eq!(Manifest::decode(&text), Ok(manifest));
        for at in 0..text.len() {
            let mut bytes = text.clone().into_bytes();
            bytes[at] ^= 0x04;
            if let Ok(text) = String::from_utf8(bytes) {
                assert_ne!(Manifest::decode(&text), Ok(manifest), "byte {at}");
            }
        }
    }

    /// Data directories already hold manifests in this format: they must
    /// keep reading the same (the text below was written by shopd 0.1).
    #[test]
    fn a_manifest_written_before_reads_the_same() {
        let text = "shopd manifest 1\nitems.highest 2000\nitems.count 1999\nitems.next 3025\n\
                    carts.highest 7\ncarts.count 7\ncarts.next 8\nsync 12\n\
                    checksum 44438aee962d7380\n";
        let manifest = Manifest::decode(text).unwrap();
        assert_eq!(manifest.items.next, 3025);
        assert_eq!(manifest.carts.highest, 7);
        assert_eq!(manifest.sync, 12);
        assert_eq!(manifest.encode(), text);
    }
}
