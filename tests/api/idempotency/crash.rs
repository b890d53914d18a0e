//! kill -9 in the middle of keyed writes, a restart on the same store, and
//! a retry of every key: each add is counted exactly once, each create
//! makes exactly one item, and every write that was answered before the
//! kill is replayed, not run again. On the embedded store, a keyed create
//! whose item (written after its key) a crash lost is rolled forward at
//! restart.

use std::collections::HashMap;

use reqwest::Method;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{keyed, replayed};
use crate::helpers::backend_tests;
use crate::pg::TestDatabase;
use crate::process::{ShopdProcess, spawn_process};
use crate::support::Backend;

/// Keyed adds sent at once; the kill comes after a few are answered.
const ADDS: usize = 60;
/// Answers awaited before the kill.
const BEFORE_KILL: usize = 8;

/// A store for shopd child processes: a data directory, or a database.
struct Store {
    cwd: tempfile::TempDir,
    data: tempfile::TempDir,
    /// Kept for as long as the store is used.
    database: Option<TestDatabase>,
}

impl Store {
    fn new(backend: Backend) -> Store {
        Store {
            cwd: tempfile::tempdir().unwrap(),
            data: tempfile::tempdir().unwrap(),
            database: match backend {
                Backend::Postgres(database) => Some(database),
                Backend::Sled => None,
            },
        }
    }

    /// A shopd child process on this store.
    fn start(&self) -> ShopdProcess {
        match &self.database {
            Some(database) => spawn_process(
                self.cwd.path(),
                self.data.path(),
                &["--database-url", &database.url],
            ),
            None => spawn_process(self.cwd.path(), self.data.path(), &[]),
        }
    }
}

/// Sends every request of `requests` at once (`n`: its answer, if it was
/// one worth waiting for), kills `shopd` with SIGKILL once
/// [`BEFORE_KILL`] have such an answer, and returns every such answer,
/// by `n`, including those that came after the kill was sent.
async fn kill_in_the_middle<T: Send + 'static>(
    shopd: &mut ShopdProcess,
    requests: impl IntoIterator<Item = impl Future<Output = Option<T>> + Send + 'static>,
) -> HashMap<usize, T> {
    let (answers, mut answered) = mpsc::unbounded_channel();
    for (n, request) in requests.into_iter().enumerate() {
        let answers = answers.clone();
        tokio::spawn(async move {
            let _ = answers.send((n, request.await));
        });
    }
    drop(answers);
    let mut acked = HashMap::new();
    while acked.len() < BEFORE_KILL {
        let (n, answer) = answered.recv().await.expect("answers");
        if let Some(answer) = answer {
            acked.insert(n, answer);
        }
    }
    shopd.child.kill().expect("kill -9");
    shopd.child.wait().expect("reaped");
    while let Some((n, answer)) = answered.recv().await {
        if let Some(answer) = answer {
            acked.insert(n, answer);
        }
    }
    acked
}

async fn create(client: &reqwest::Client, url: String, body: Option<Value>) -> u64 {
    let mut request = client.post(url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("create");
    assert_eq!(response.status(), 201);
    response.json::<Value>().await.unwrap()["id"]
        .as_u64()
        .unwrap()
}

backend_tests! {
    async fn after_a_kill_9_every_retried_key_counts_once(backend) {
        let store = Store::new(backend);
        let mut shopd = store.start();
        let client = reqwest::Client::new();
        let item = create(
            &client,
            shopd.url("/item"),
            Some(serde_json::json!({"name": "Tea", "price": 1.0})),
        )
        .await;
        let cart = create(&client, shopd.url("/cart"), None).await;
        let path = format!("/cart/{cart}/add/{item}");

        let adds: Vec<_> = (0..ADDS).map(|n| {
            let (client, url) = (client.clone(), shopd.url(&path));
            async move {
                let sent = client
                    .post(url)
                    .header("Idempotency-Key", format!("crash-{n}"))
                    .send()
                    .await;
                sent.is_ok_and(|response| response.status() == 200).then_some(())
            }
        }).collect();
        let acked = kill_in_the_middle(&mut shopd, adds).await;

        let shopd = store.start();
        for n in 0..ADDS {
            let key = format!("crash-{n}");
            let response = keyed(&client, shopd.url(&path), Method::POST, &key, None).await;
            assert_eq!(response.status(), 200, "{key}");
            if acked.contains_key(&n) {
                assert!(replayed(&response), "{key} was answered before the kill");
            }
        }
        let cart = get_json(&client, &shopd, &format!("/cart/{cart}")).await;
        assert_eq!(
            cart["items"][0]["quantity"], ADDS,
            "each key counted exactly once"
        );
        drop(shopd);
        drop(store);
    }
}

/// `GET path` on `shopd`, as JSON.
async fn get_json(client: &reqwest::Client, shopd: &ShopdProcess, path: &str) -> Value {
    let response = client.get(shopd.url(path)).send().await.expect("get");
    response.json().await.expect("a JSON answer")
}

/// How many items named `name` the store at `shopd` holds.
async fn named(client: &reqwest::Client, shopd: &ShopdProcess, name: &str) -> usize {
    let items = get_json(client, shopd, "/item?limit=100&show_deleted=true").await;
    items
        .as_array()
        .expect("a list")
        .iter()
        .filter(|item| item["name"] == name)
        .count()
}

backend_tests! {
    async fn after_a_kill_9_every_retried_keyed_create_makes_one_item(backend) {
        let store = Store::new(backend);
        let mut shopd = store.start();
        let client = reqwest::Client::new();
        let body = |n: usize| serde_json::json!({"name": format!("crash-{n}"), "price": 1.0});

        let creates: Vec<_> = (0..ADDS).map(|n| {
            let (client, url, body) = (client.clone(), shopd.url("/item"), body(n));
            async move {
                let response = client
                    .post(url)
                    .header("Idempotency-Key", format!("create-{n}"))
                    .json(&body)
                    .send()
                    .await
                    .ok()
                    .filter(|response| response.status() == 201)?;
                response.json::<Value>().await.ok()?["id"].as_u64()
            }
        }).collect();
        let acked = kill_in_the_middle(&mut shopd, creates).await;

        let shopd = store.start();
        for n in 0..ADDS {
            let key = format!("create-{n}");
            let response = keyed(&client, shopd.url("/item"), Method::POST, &key, Some(&body(n))).await;
            assert_eq!(response.status(), 201, "{key}");
            let was_replayed = replayed(&response);
            let item: Value = response.json().await.unwrap();
            if let Some(id) = acked.get(&n) {
                assert!(was_replayed, "{key} was answered before the kill");
                assert_eq!(item["id"].as_u64(), Some(*id), "{key} replays its item");
            }
            assert_eq!(named(&client, &shopd, &format!("crash-{n}")).await, 1, "{key} made one item");
        }
        drop(shopd);
        drop(store);
    }
}

/// The crash between a keyed create's two writes on the embedded store
/// (the key stored, the record not), made by removing an item and a cart
/// from a killed store's files: the restart writes them back from their
/// keys, and retries are replayed with them.
#[tokio::test]
async fn a_keyed_create_whose_record_a_crash_lost_is_rolled_forward_at_restart() {
    let store = Store::new(Backend::Sled);
    let mut shopd = store.start();
    let client = reqwest::Client::new();
    let body = serde_json::json!({"name": "Rolled", "price": 2.5});
    let create_torn = |shopd: &ShopdProcess| {
        keyed(
            &client,
            shopd.url("/item"),
            Method::POST,
            "torn",
            Some(&body),
        )
    };
    let first = create_torn(&shopd).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_u64().unwrap();
    let create_torn_cart =
        |shopd: &ShopdProcess| keyed(&client, shopd.url("/cart"), Method::POST, "torn-cart", None);
    let cart = create_torn_cart(&shopd).await;
    assert_eq!(cart.status(), 201);
    let cart: Value = cart.json().await.unwrap();
    let cart_id = cart["id"].as_u64().unwrap();
    shopd.child.kill().expect("kill -9");
    shopd.child.wait().expect("reaped");

    {
        let db = sled::open(store.data.path().join("sled")).expect("the killed store opens");
        let items = db.open_tree("items").unwrap();
        let removed = items.remove(id.to_be_bytes()).unwrap();
        assert!(removed.is_some(), "item {id} was stored under its id");
        let carts = db.open_tree("carts").unwrap();
        let removed = carts.remove(cart_id.to_be_bytes()).unwrap();
        assert!(removed.is_some(), "cart {cart_id} was stored under its id");
        assert!(
            db.open_tree("idempotency")
                .unwrap()
                .contains_key("torn")
                .unwrap()
        );
        db.flush().unwrap();
    }

    let shopd = store.start();
    let item = get_json(&client, &shopd, &format!("/item/{id}")).await;
    assert_eq!(item, first, "the item is back as it was created");
    let retry = create_torn(&shopd).await;
    assert_eq!(retry.status(), 201);
    assert!(replayed(&retry));
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    let cart_back = get_json(&client, &shopd, &format!("/cart/{cart_id}")).await;
    assert_eq!(cart_back["id"], cart_id, "the cart is back, empty");
    assert_eq!(cart_back["items"], serde_json::json!([]));
    let retry = create_torn_cart(&shopd).await;
    assert_eq!(retry.status(), 201);
    assert!(replayed(&retry));
    assert_eq!(retry.json::<Value>().await.unwrap(), cart);
    let next = create(
        &client,
        shopd.url("/item"),
        Some(serde_json::json!({"name": "Next", "price": 1.0})),
    )
    .await;
    assert!(next > id, "ids go on after the rolled-forward item");
}
