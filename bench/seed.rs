//! Seeds a store for the benchmark through shopd's own store code:
//! `seed DIR ITEMS CARTS` (a stopped shopd's data directory) or
//! `seed postgres://URL ITEMS CARTS`. Item n costs `n % 100 + 0.99`; every
//! cart holds three different items, one of them twice.

use shopd::domain::NewItem;
use shopd::store::{Durability, PgOptions, PgStore, SledStore, Store};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: seed DIR|postgres://URL ITEMS CARTS";
    let target = args.next().expect(usage);
    let items: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    let carts: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    if target.starts_with("postgres") {
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
        ids.push(store.create_item(item).await.expect("create item").id);
    }
    for n in 0..carts {
        let cart = store.create_cart().await.expect("create cart");
        if ids.is_empty() {
            continue;
        }
        let pick = |k: u64| ids[((n * 3 + k) % ids.len() as u64) as usize];
        for item in [pick(0), pick(1), pick(2), pick(0)] {
            store.add_to_cart(cart, item).await.expect("add to cart");
        }
    }
    store.close().await.expect("flush");
}
