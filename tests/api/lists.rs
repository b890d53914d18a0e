//! Lists and their filters: every filter combination against a
//! brute-force answer on both stores (a model kept by the test, and a walk
//! over point reads), the embedded store's indexes through restarts and
//! `kill -9`, the bound on long lists (503 beyond it), and on PostgreSQL
//! the plans, the migration to filterable totals and the stored totals.

use serde_json::{Value, json};
use shopd::store::export::{ExportCart, ExportItem, ExportLine};
use shopd::store::{Durability, SledStore, Snapshot, Store};
use tempfile::TempDir;

use crate::helpers::{TestApp, backend_tests, scratch, spawn_app_in, spawn_pg_app, spawn_process};
use crate::pg::fresh_database;

mod model;
mod postgres_plans;
mod shedding;
mod walk;

/// A data directory holding `items` and `carts` (imported, as `shopd
/// import` does), ready for shopd to open.
pub async fn seeded_dir(items: Vec<ExportItem>, carts: Vec<ExportCart>) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SledStore::open(dir.path(), Durability::Periodic, 500).expect("open the store");
    let snapshot = Snapshot {
        next_item_id: items.last().map_or(1, |item| item.id + 1),
        next_cart_id: carts.last().map_or(1, |cart| cart.id + 1),
        items,
        carts,
    };
    store.import(snapshot).await.expect("import");
    store.close().await.expect("close");
    drop(store);
    dir
}

/// `count` live items priced 1.0, 2.0, ...
pub fn items(count: u64) -> Vec<ExportItem> {
    (1..=count)
        .map(|id| ExportItem {
            id,
            name: format!("item {id}"),
            price: id as f64,
            deleted: false,
        })
        .collect()
}

/// A cart holding `lines` (item, quantity).
fn cart(id: u64, lines: &[(u64, u64)]) -> ExportCart {
    ExportCart {
        id,
        lines: lines
            .iter()
            .map(|&(item, quantity)| ExportLine { item, quantity })
            .collect(),
    }
}

/// A small deterministic generator, so a failure can be replayed.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, sides: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % sides
    }
}

/// A query string of `(name, value)` pairs; floats in Rust's shortest
/// round-trip form, so bounds are exact.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(name, value)| value.as_ref().map(|value| format!("{name}={value}")))
        .collect();
    parts.join("&")
}

/// The first `offset`.. `offset + limit` of `ids`.
fn paged(ids: Vec<u64>, offset: usize, limit: usize) -> Vec<u64> {
    ids.into_iter().skip(offset).take(limit).collect()
}

fn ids_of(list: &Value) -> Vec<u64> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|entry| entry["id"].as_u64().expect("an id"))
        .collect()
}
