//! Seeds a store for the benchmark through shopd's own store code:
//! `seed DIR ITEMS CARTS` (a stopped shopd's data directory) or
//! `seed postgres://URL ITEMS CARTS`; or writes the same data as an export
//! for `shopd import` (fast at a million items): `seed --export FILE ITEMS
//! CARTS`. Item n costs `n % 100 + 0.99`; every cart holds three different
//! items, one of them twice.

use shopd::domain::NewItem;
use shopd::store::export::{ExportCart, ExportItem, ExportLine};
use shopd::store::{Durability, PgOptions, PgStore, SledStore, Snapshot, Store};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: seed DIR|postgres://URL ITEMS CARTS";
    let mut target = args.next().expect(usage);
    let export = target == "--export";
    if export {
        target = args.next().expect(usage);
    }
    let items: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    let carts: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    if export {
        let file = std::fs::File::create(&target).expect("create the export file");
        let mut out = std::io::BufWriter::new(file);
        snapshot(items, carts)
            .write(&mut out)
            .expect("write the export");
        std::io::Write::flush(&mut out).expect("write the export");
    } else if target.starts_with("postgres") {
        let options = PgOptions {
            url: target.parse().expect(usage),
            pool_size: 4,
            timeout: std::time::Duration::from_secs(30),
        };
        let store = PgStore::connect(&options).await.expect("connect");
        seed(&store, items, carts).await;
    } else {
        // Periodic durability: one flush at the end instead of one per write.
        let store =
            SledStore::open(target.as_ref(), Durability::Periodic, 1000).expect("open the store");
        seed(&store, items, carts).await;
    }
    println!("seeded {items} items and {carts} carts into the store");
}

async fn seed<S: Store>(store: &S, items: u64, carts: u64) {
    let mut ids = Vec::with_capacity(items as usize);
    for n in 0..items {
        let item = NewItem {
            name: format!("item {n}"),
            price: (n % 100) as f64 + 0.99,
        };
        ids.push(store.create_item(item, None).await.expect("create item").id);
    }
    for n in 0..carts {
        let cart = store.create_cart(None).await.expect("create cart");
        if ids.is_empty() {
            continue;
        }
        let pick = |k: u64| ids[((n * 3 + k) % ids.len() as u64) as usize];
        for item in [pick(0), pick(1), pick(2), pick(0)] {
            store
                .add_to_cart(cart, item, usize::MAX, None)
                .await
                .expect("add to cart");
        }
    }
    store.close().await.expect("flush");
}

/// The data [`seed`] stores, as an export (ids from 1).
fn snapshot(items: u64, carts: u64) -> Snapshot {
    let pick = |n: u64, k: u64| (n * 3 + k) % items + 1;
    Snapshot {
        next_item_id: items + 1,
        next_cart_id: carts + 1,
        items: (0..items)
            .map(|n| ExportItem {
                id: n + 1,
                name: format!("item {n}"),
                price: (n % 100) as f64 + 0.99,
                deleted: false,
            })
            .collect(),
        carts: (0..carts)
            .map(|n| ExportCart {
                id: n + 1,
                lines: if items < 3 {
                    Vec::new()
                } else {
                    [(pick(n, 0), 2), (pick(n, 1), 1), (pick(n, 2), 1)]
                        .into_iter()
                        .map(|(item, quantity)| ExportLine { item, quantity })
                        .collect()
                },
            })
            .collect(),
    }
}
