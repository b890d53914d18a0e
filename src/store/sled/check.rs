//! Reading every record back: each key is an id, each value decodes, each
//! cart line names a stored item with a quantity of at least 1, and the
//! store holds at least what its manifest says it held. Start-up and
//! `shopd check` both run this.

use std::collections::HashSet;
use std::fmt;
use std::path::PathBuf;

use super::codec::{self, CartRecord, ItemRecord};
use super::durability::SYNC_KEY;
use super::manifest::{Claim, Manifest};
use super::records::Records;
use crate::domain::{Id, Resource};

/// Problems listed in full; more are counted.
const SHOWN: usize = 20;

/// Records of one kind as found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// How many records decode.
    pub count: u64,
    /// The highest id stored (0: none).
    pub highest: Id,
}

/// What a full read of the store found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Items (deleted ones included).
    pub items: Tally,
    /// Items not deleted.
    pub live_items: u64,
    /// Carts.
    pub carts: Tally,
    /// Records that cannot be read or do not fit together (the first few).
    pub problems: Vec<String>,
    /// How many problems there are in all.
    pub problem_count: usize,
    /// The number of the last sync whose mark the store holds.
    pub sync: u64,
}

impl Scan {
    fn problem(&mut self, text: String) {
        self.problem_count += 1;
        if self.problems.len() < SHOWN {
            self.problems.push(text);
        }
    }
}

/// Records read between two progress lines in the log.
const PROGRESS_EVERY: u64 = 100_000;

/// Reads every item and cart, and the last sync's mark in `meta`; notes
/// each record that reads in the indexes (they are built here, once per
/// start), logging progress on a big store.
pub(super) fn scan(records: &Records, meta: &sled::Tree) -> Scan {
    let mut scan = Scan::default();
    match meta.get(SYNC_KEY) {
        Ok(Some(bytes)) => match codec::id_of(&bytes) {
            Ok(number) => scan.sync = number,
            Err(_) => scan.problem("the last sync's mark does not decode".into()),
        },
        Ok(None) => {}
        Err(err) => scan.problem(format!("the last sync's mark cannot be read: {err}")),
    }
    let mut item_ids = HashSet::new();
    for entry in records.raw(Resource::Item) {
        let (key, value) = match entry {
            Ok(entry) => entry,
            Err(err) => {
                scan.problem(format!(
                    "items cannot be read past id {}: {err}",
                    scan.items.highest
                ));
                break;
            }
        };
        let Ok(id) = codec::id_of(&key) else {
            scan.problem(format!("an item has a key that is not an id: {key:?}"));
            continue;
        };
        match codec::decode::<ItemRecord>(&value) {
            Ok(record) => {
                records.index_item(id, &record);
                scan.items.count += 1;
                if scan.items.count % PROGRESS_EVERY == 0 {
                    tracing::info!(items = scan.items.count, "reading and indexing the store");
                }
                scan.items.highest = id;
                scan.live_items += u64::from(!record.deleted);
                item_ids.insert(id);
            }
            Err(err) => scan.problem(format!("item {id} does not decode: {err}")),
        }
    }
    for entry in records.raw(Resource::Cart) {
        let (key, value) = match entry {
            Ok(entry) => entry,
            Err(err) => {
                scan.problem(format!(
                    "carts cannot be read past id {}: {err}",
                    scan.carts.highest
                ));
                break;
            }
        };
        let Ok(id) = codec::id_of(&key) else {
            scan.problem(format!("a cart has a key that is not an id: {key:?}"));
            continue;
        };
        let record = match codec::decode::<CartRecord>(&value) {
            Ok(record) => record,
            Err(err) => {
                scan.problem(format!("cart {id} does not decode: {err}"));
                continue;
            }
        };
        records.index_cart(id, &record);
        scan.carts.count += 1;
        if scan.carts.count % PROGRESS_EVERY == 0 {
            tracing::info!(carts = scan.carts.count, "reading and indexing the store");
        }
        scan.carts.highest = id;
        for line in &record.lines {
            if !item_ids.contains(&line.item) {
                scan.problem(format!(
                    "cart {id} holds item {}, which is not stored",
                    line.item
                ));
            }
            if line.quantity == 0 {
                scan.problem(format!(
                    "cart {id} holds item {} with quantity 0",
                    line.item
                ));
            }
        }
    }
    scan
}

/// What is missing from `found` that `manifest` says was stored.
pub(super) fn missing(found: &Scan, manifest: &Manifest) -> Vec<String> {
    let mut missing = Vec::new();
    for (name, tally, claim) in [
        ("items", found.items, manifest.items),
        ("carts", found.carts, manifest.carts),
    ] {
        if tally.highest < claim.highest {
            missing.push(format!(
                "{name} up to id {} were acknowledged but the highest stored is {}: the store lost data",
                claim.highest, tally.highest
            ));
        }
        if tally.count < claim.count {
            missing.push(format!(
                "{} {name} were acknowledged but {} are stored: {} are missing",
                claim.count,
                tally.count,
                claim.count - tally.count
            ));
        }
    }
    if found.sync < manifest.sync {
        missing.push(format!(
            "the store holds writes up to sync {} but writes up to sync {} were acknowledged: \
             the store lost its latest changes",
            found.sync, manifest.sync
        ));
    }
    missing
}

/// The manifest as found by `shopd check`.
#[derive(Debug)]
pub enum ManifestState {
    /// Read and whole.
    Present,
    /// Not there: a new store, or one made before shopd kept a manifest.
    Missing,
    /// There but unreadable; the text says why.
    Damaged(String),
}

/// What `shopd check` found; its `Display` is the summary it prints.
#[derive(Debug)]
pub struct CheckReport {
    /// The data directory checked.
    pub dir: PathBuf,
    /// Whether the manifest was there and whole.
    pub manifest_state: ManifestState,
    /// What the manifest says, when it could be read.
    pub(super) manifest: Option<Manifest>,
    /// What the records say.
    pub scan: Scan,
    /// What the manifest says was stored and is not.
    pub missing: Vec<String>,
}

impl CheckReport {
    /// No damage found: every record reads, fits, and nothing the manifest
    /// names is missing.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.scan.problem_count == 0
            && self.missing.is_empty()
            && !matches!(self.manifest_state, ManifestState::Damaged(_))
    }
}

fn claim_line(f: &mut fmt::Formatter<'_>, name: &str, claim: Claim) -> fmt::Result {
    writeln!(
        f,
        "  {name}: {} records, highest id {}, next id {}",
        claim.count, claim.highest, claim.next
    )
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "data directory: {}", self.dir.display())?;
        let scan = &self.scan;
        writeln!(
            f,
            "items: {} records ({} live), highest id {}",
            scan.items.count, scan.live_items, scan.items.highest
        )?;
        writeln!(
            f,
            "carts: {} records, highest id {}",
            scan.carts.count, scan.carts.highest
        )?;
        writeln!(f, "last sync: {}", scan.sync)?;
        match (&self.manifest_state, &self.manifest) {
            (ManifestState::Present, Some(manifest)) => {
                writeln!(f, "manifest: acknowledged so far")?;
                claim_line(f, "items", manifest.items)?;
                claim_line(f, "carts", manifest.carts)?;
                writeln!(f, "  last sync: {}", manifest.sync)?;
            }
            (ManifestState::Damaged(why), _) => writeln!(f, "manifest: damaged: {why}")?,
            _ => writeln!(f, "manifest: none (shopd writes one at its next start)")?,
        }
        let count = self.missing.len() + scan.problem_count;
        if count == 0 {
            return writeln!(f, "problems: none");
        }
        writeln!(f, "problems: {count}")?;
        for problem in self.missing.iter().chain(&scan.problems) {
            writeln!(f, "  - {problem}")?;
        }
        if scan.problem_count > scan.problems.len() {
            writeln!(
                f,
                "  ... and {} more",
                scan.problem_count - scan.problems.len()
            )?;
        }
        Ok(())
    }
}
