//! Lists on a store of some size: scans run off the async threads behind a
//! bound, and what comes beyond the bound is shed with 503.

use serde_json::Value;
use shopd::store::export::{ExportCart, ExportItem};
use shopd::store::{Durability, SledStore, Snapshot, Store};
use tempfile::TempDir;

use crate::helpers::spawn_app_in;

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

#[tokio::test]
async fn scans_beyond_the_workers_and_the_queue_get_503_with_retry_after() {
    let dir = seeded_dir(items(3000), Vec::new()).await;
    let app = spawn_app_in(dir, |s| {
        s.scan_workers = 1;
        s.scan_queue_len = 0;
    })
    .await;
    // Matches every item but skips past them all: a full scan each time.
    let path = "/item?offset=100000&limit=1&max_price=1e12";
    let mut shed = 0;
    for _round in 0..20 {
        let answers = futures_util::future::join_all((0..32).map(|_| app.get(path))).await;
        for response in answers {
            match response.status().as_u16() {
                200 => assert_eq!(
                    response.json::<Value>().await.unwrap(),
                    Value::Array(vec![])
                ),
                503 => {
                    let retry = response.headers().get("retry-after").cloned();
                    assert_eq!(retry.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
                    let body: Value = response.json().await.unwrap();
                    let detail = body["detail"].as_str().unwrap_or_default();
                    assert!(detail.contains("busy"), "detail: {body}");
                    shed += 1;
                }
                other => panic!("GET {path} answered {other}"),
            }
        }
        if shed > 0 {
            break;
        }
    }
    assert!(
        shed > 0,
        "32 scans at once, 1 worker and no queue: none was shed"
    );
    // Once they are done, a scan is served again.
    assert_eq!(app.get_json(path).await, Value::Array(vec![]));
    assert_eq!(app.get_json("/item/3000").await["price"], 3000.0);
}
