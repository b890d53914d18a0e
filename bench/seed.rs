//! Seeds a data directory for the benchmark through shopd's own store:
//! `seed DIR ITEMS CARTS`. Item n costs `n % 100 + 0.99`; every cart holds
//! three different items, one of them twice. Run on a stopped shopd's dir.

use shopd::domain::NewItem;
use shopd::store::{Durability, SledStore, Store};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let usage = "usage: seed DIR ITEMS CARTS";
    let dir = args.next().expect(usage);
    let items: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    let carts: u64 = args.next().and_then(|n| n.parse().ok()).expect(usage);
    // Periodic durability: one flush at the end instead of one per write.
    let store = SledStore::open(dir.as_ref(), Durability::Periodic, 1000).expect("open the store");
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
            store
                .add_to_cart(cart, item, usize::MAX)
                .await
                .expect("add to cart");
        }
    }
    store.close().await.expect("flush");
    println!("seeded {items} items and {carts} carts into {dir}");
}
