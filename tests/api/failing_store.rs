//! A store that fails on purpose: every request that reaches it gets a 500
//! with a plain body, the cause goes to the log in one line, and the
//! server goes on; an export that fails midway is cut off, never ended as
//! if whole.

use std::io::Write;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use shopd::domain::etag::Condition;
use shopd::domain::{Cart, CartFilter, Id, Item, ItemFilter, ItemPatch, NewItem};
use shopd::store::{
    Chunks, ExportCounts, ExportMode, KeptRecord, Keyed, Pruned, Snapshot, Store, StoreError,
    StoreResult, StoreStats,
};

use shopd::config::{ExportArgs, Secret};

use crate::helpers::{TestApp, scratch, spawn_app_on};
use crate::nats::metric;
use crate::support::eventually;

/// Every operation fails as a broken disk would; closing succeeds, so the
/// server can stop cleanly.
#[derive(Clone)]
pub struct BrokenStore;

fn broken<T>() -> StoreResult<T> {
    Err(StoreError::backend(std::io::Error::other(
        "the disk is on fire",
    )))
}

impl Store for BrokenStore {
    async fn create_item(&self, _: NewItem, _: Option<Keyed<Item>>) -> StoreResult<Item> {
        broken()
    }
    async fn item(&self, _: Id) -> StoreResult<Item> {
        broken()
    }
    async fn items(&self, _: ItemFilter) -> StoreResult<Vec<Item>> {
        broken()
    }
    async fn replace_item(
        &self,
        _: Id,
        _: NewItem,
        _: Option<Condition>,
        _: Option<Keyed<Item>>,
    ) -> StoreResult<Item> {
        broken()
    }
    async fn patch_item(
        &self,
        _: Id,
        _: ItemPatch,
        _: Option<Condition>,
        _: Option<Keyed<Item>>,
    ) -> StoreResult<Item> {
        broken()
    }
    async fn delete_item(
        &self,
        _: Id,
        _: Option<Condition>,
        _: Option<Keyed<Item>>,
    ) -> StoreResult<Item> {
        broken()
    }
    async fn create_cart(&self, _: Option<Keyed<Id>>) -> StoreResult<Id> {
        broken()
    }
    async fn cart(&self, _: Id) -> StoreResult<Cart> {
        broken()
    }
    async fn carts(&self, _: CartFilter) -> StoreResult<Vec<Cart>> {
        broken()
    }
    async fn add_to_cart(
        &self,
        _: Id,
        _: Id,
        _: usize,
        _: Option<Keyed<Cart>>,
    ) -> StoreResult<Cart> {
        broken()
    }
    async fn kept(&self, _: &str) -> StoreResult<Option<KeptRecord>> {
        broken()
    }
    async fn prune_kept(&self, _: u64, _: usize) -> StoreResult<Pruned> {
        broken()
    }
    async fn stats(&self) -> StoreResult<StoreStats> {
        broken()
    }
    async fn export(&self, out: Chunks, _mode: ExportMode) -> StoreResult<Option<ExportCounts>> {
        // The disk fails after some chunks are out (more than the channel
        // holds, so the reader has begun): a reader must see the export
        // cut off, never ended as if whole.
        let mut header = b"{\"format\":\"shopd-export\",\"version\":1}\n".to_vec();
        out.send(&mut header).await?;
        for _ in 0..8 {
            out.send(&mut vec![b' '; 64 * 1024]).await?;
        }
        broken()
    }
    async fn import(&self, _: Snapshot) -> StoreResult<()> {
        broken()
    }
    async fn ping(&self) -> StoreResult<()> {
        broken()
    }
    async fn close(&self) -> StoreResult<()> {
        Ok(())
    }
}

/// Log lines, as the server writes them, into memory.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn lines_with(&self, needle: &str) -> Vec<String> {
        let text = String::from_utf8_lossy(&self.0.lock().expect("log buffer")).into_owned();
        text.lines()
            .filter(|line| line.contains(needle))
            .map(str::to_owned)
            .collect()
    }
}

// A current-thread runtime: the server's tasks run on this thread, so the
// subscriber set for it sees their events.
#[tokio::test(flavor = "current_thread")]
async fn a_failing_store_answers_500_with_a_plain_detail_and_logs_the_cause_once() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = spawn_app_on(BrokenStore).await;

    let requests: [(reqwest::Method, &str, Option<Value>); 8] = [
        (
            reqwest::Method::POST,
            "/item",
            Some(json!({"name": "Tea", "price": 2.5})),
        ),
        (reqwest::Method::GET, "/item", None),
        (reqwest::Method::GET, "/item/1", None),
        (
            reqwest::Method::PUT,
            "/item/1",
            Some(json!({"name": "Tea", "price": 3.0})),
        ),
        (reqwest::Method::DELETE, "/item/1", None),
        (reqwest::Method::POST, "/cart", None),
        (reqwest::Method::GET, "/cart/1", None),
        (reqwest::Method::POST, "/cart/1/add/1", None),
    ];
    let count = requests.len();
    for (method, path, body) in requests {
        let mut request = app.client.request(method.clone(), app.url(path));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        assert_eq!(response.status(), 500, "{method} {path}");
        let body: Value = response.json().await.expect("a JSON body");
        assert_eq!(
            body,
            json!({"detail": "Internal Server Error"}),
            "{method} {path}: the cause stays out of the reply"
        );
        let failures = log.lines_with("request failed in storage");
        let last = failures.last().expect("a log line for the failure");
        assert!(
            last.contains("storage failure: the disk is on fire"),
            "the cause chain is logged in one line: {last}"
        );
    }
    assert_eq!(
        log.lines_with("request failed in storage").len(),
        count,
        "one log line per failed request"
    );

    // The server is still up, and stops cleanly: nothing panicked.
    assert_eq!(app.get("/openapi.json").await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_failing_store_shows_as_shopd_store_up_0_and_readyz_503() {
    let app = spawn_app_on(BrokenStore).await;
    eventually("shopd_store_up to fall to 0", || async {
        metric(&app, "shopd_store_up").await == Some(0.0)
    })
    .await;
    assert_eq!(app.get("/readyz").await.status(), 503);
    let text = app.get("/metrics").await.text().await.expect("metrics");
    assert!(text.contains("# HELP shopd_store_up "), "{text}");
}

#[tokio::test]
async fn an_export_that_fails_midway_is_cut_off_and_shopd_export_keeps_no_file() {
    const TOKEN: &str = "correct-horse-battery-staple";
    let app = TestApp::builder()
        .configure(|s| s.admin.token = Some(Secret::new(TOKEN)))
        .spawn_on(BrokenStore)
        .await;
    // Whether the failure came before the answer's head was sent or
    // midway through its body, the client sees an error, never a whole
    // answer that just lacks the trailer line.
    let whole = match app
        .client
        .get(app.url("/admin/export"))
        .bearer_auth(TOKEN)
        .send()
        .await
    {
        Ok(response) => response.bytes().await.is_ok(),
        Err(_) => false,
    };
    assert!(!whole, "the body ended as if whole");
    let (_cwd, cwd) = scratch();
    let (token_file, out) = (cwd.join("token"), cwd.join("shop.ndjson"));
    std::fs::write(&token_file, TOKEN).unwrap();
    let failed = shopd::transfer::export(ExportArgs {
        data_dir: None,
        database_url: None,
        url: Some(format!("http://{}", app.addr)),
        admin_token_file: Some(token_file),
        out: Some(out.clone()),
    })
    .await
    .expect_err("a cut-off export is a failure");
    assert!(
        failed.to_string().contains(&app.addr.to_string()),
        "{failed}"
    );
    assert!(!out.exists(), "a half export was left behind");
    // The server goes on.
    assert_eq!(app.get("/openapi.json").await.status(), 200);
}
