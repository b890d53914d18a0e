//! kill -9 in the middle of keyed writes, a restart on the same store, and
//! a retry of every key: each add is counted exactly once, and every add
//! that was answered before the kill is replayed, not run again.

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
