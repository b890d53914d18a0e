//! kill -9 in the middle of keyed writes, a restart on the same store, and
//! a retry of every key: each add is counted exactly once, each create
//! makes exactly one item, and every write that was answered before the
//! kill is replayed, not run again. On the embedded store, a keyed create
//! whose item (written after its key) a crash lost is rolled forward at
//! restart.

use reqwest::Method;
use serde_json::Value;
use tokio::sync::mpsc;

use super::{keyed, replayed};
use crate::helpers::backend_tests;
use crate::process::{ShopdProcess, spawn_process};
use crate::support::Backend;

/// Keyed adds sent at once; the kill comes after a few are answered.
const ADDS: usize = 60;
/// Answers awaited before the kill.
const BEFORE_KILL: usize = 8;

/// A shopd child process on `backend`'s store: the data directory `data`,
/// or the database.
fn start(cwd: &std::path::Path, data: &std::path::Path, url: Option<&str>) -> ShopdProcess {
    match url {
        Some(url) => spawn_process(cwd, data, &["--database-url", url]),
        None => spawn_process(cwd, data, &[]),
    }
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
        let cwd = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let database = match backend {
            Backend::Postgres(database) => Some(database),
            Backend::Sled => None,
        };
        let url = database.as_ref().map(|database| database.url.clone());
        let mut shopd = start(cwd.path(), data.path(), url.as_deref());
        let client = reqwest::Client::new();
        let item = create(
            &client,
            shopd.url("/item"),
            Some(serde_json::json!({"name": "Tea", "price": 1.0})),
        )
        .await;
        let cart = create(&client, shopd.url("/cart"), None).await;
        let path = format!("/cart/{cart}/add/{item}");

        let (answers, mut answered) = mpsc::unbounded_channel();
        for n in 0..ADDS {
            let (client, url, answers) = (client.clone(), shopd.url(&path), answers.clone());
            tokio::spawn(async move {
                let sent = client
                    .post(url)
                    .header("Idempotency-Key", format!("crash-{n}"))
                    .send()
                    .await;
                let status = sent.map(|response| response.status().as_u16()).ok();
                let _ = answers.send((n, status));
            });
        }
        drop(answers);
        let mut acked = Vec::new();
        while acked.len() < BEFORE_KILL {
            let (n, status) = answered.recv().await.expect("answers");
            if status == Some(200) {
                acked.push(n);
            }
        }
        shopd.child.kill().expect("kill -9");
        shopd.child.wait().expect("reaped");
        while let Some((n, status)) = answered.recv().await {
            if status == Some(200) {
                acked.push(n);
            }
        }

        let shopd = start(cwd.path(), data.path(), url.as_deref());
        for n in 0..ADDS {
            let key = format!("crash-{n}");
            let response = keyed(&client, shopd.url(&path), Method::POST, &key, None).await;
            assert_eq!(response.status(), 200, "{key}");
            if acked.contains(&n) {
                assert!(replayed(&response), "{key} was answered before the kill");
            }
        }
        let cart: Value = client
            .get(shopd.url(&format!("/cart/{cart}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            cart["items"][0]["quantity"], ADDS,
            "each key counted exactly once"
        );
        drop(shopd);
        drop(database);
    }
}

/// How many items named `name` the store at `shopd` holds.
async fn named(client: &reqwest::Client, shopd: &ShopdProcess, name: &str) -> usize {
    let items: Vec<Value> = client
        .get(shopd.url("/item?limit=100&show_deleted=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    items.iter().filter(|item| item["name"] == name).count()
}

backend_tests! {
    async fn after_a_kill_9_every_retried_keyed_create_makes_one_item(backend) {
        let cwd = tempfile::tempdir().unwrap();
        let data = tempfile::tempdir().unwrap();
        let database = match backend {
            Backend::Postgres(database) => Some(database),
            Backend::Sled => None,
        };
        let url = database.as_ref().map(|database| database.url.clone());
        let mut shopd = start(cwd.path(), data.path(), url.as_deref());
        let client = reqwest::Client::new();
        let body = |n: usize| serde_json::json!({"name": format!("crash-{n}"), "price": 1.0});

        let (answers, mut answered) = mpsc::unbounded_channel();
        for n in 0..ADDS {
            let (client, url, answers) = (client.clone(), shopd.url("/item"), answers.clone());
            let body = body(n);
            tokio::spawn(async move {
                let sent = client
                    .post(url)
                    .header("Idempotency-Key", format!("create-{n}"))
                    .json(&body)
                    .send()
                    .await;
                let id = match sent {
                    Ok(response) if response.status() == 201 => {
                        response.json::<Value>().await.ok().and_then(|item| item["id"].as_u64())
                    }
                    _ => None,
                };
                let _ = answers.send((n, id));
            });
        }
        drop(answers);
        let mut acked = std::collections::HashMap::new();
        while acked.len() < BEFORE_KILL {
            let (n, id) = answered.recv().await.expect("answers");
            if let Some(id) = id {
                acked.insert(n, id);
            }
        }
        shopd.child.kill().expect("kill -9");
        shopd.child.wait().expect("reaped");
        while let Some((n, id)) = answered.recv().await {
            if let Some(id) = id {
                acked.insert(n, id);
            }
        }

        let shopd = start(cwd.path(), data.path(), url.as_deref());
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
        drop(database);
    }
}

/// The crash between a keyed create's two writes on the embedded store
/// (the key stored, the item not), made by removing the item from a
/// killed store's files: the restart writes the item back from its key,
/// and a retry is replayed with it.
#[tokio::test]
async fn a_keyed_create_whose_item_a_crash_lost_is_rolled_forward_at_restart() {
    let cwd = tempfile::tempdir().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut shopd = start(cwd.path(), data.path(), None);
    let client = reqwest::Client::new();
    let body = serde_json::json!({"name": "Rolled", "price": 2.5});
    let first = keyed(
        &client,
        shopd.url("/item"),
        Method::POST,
        "torn",
        Some(&body),
    )
    .await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let id = first["id"].as_u64().unwrap();
    shopd.child.kill().expect("kill -9");
    shopd.child.wait().expect("reaped");

    {
        let db = sled::open(data.path().join("sled")).expect("the killed store opens");
        let items = db.open_tree("items").unwrap();
        let removed = items.remove(id.to_be_bytes()).unwrap();
        assert!(removed.is_some(), "item {id} was stored under its id");
        assert!(
            db.open_tree("idempotency")
                .unwrap()
                .contains_key("torn")
                .unwrap()
        );
        db.flush().unwrap();
    }

    let shopd = start(cwd.path(), data.path(), None);
    let item: Value = client
        .get(shopd.url(&format!("/item/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(item, first, "the item is back as it was created");
    let retry = keyed(
        &client,
        shopd.url("/item"),
        Method::POST,
        "torn",
        Some(&body),
    )
    .await;
    assert_eq!(retry.status(), 201);
    assert!(replayed(&retry));
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    let next = create(
        &client,
        shopd.url("/item"),
        Some(serde_json::json!({"name": "Next", "price": 1.0})),
    )
    .await;
    assert!(next > id, "ids go on after the rolled-forward item");
}
