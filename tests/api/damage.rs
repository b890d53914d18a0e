//! Damaged data directories: a store that lost acknowledged data is refused
//! at start-up (or, with --accept-data-loss, served without reusing an id),
//! and `shopd check` tells a clean store from a damaged one.

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitStatus;

use serde_json::{Value, json};

use crate::helpers::{TestApp, scratch, spawn_app, spawn_app_in};
use crate::process::{Start, shopd_command, start, terminate, wait};

mod generator;

use generator::{Rng, copy_dir, damage};

/// What a store held when it was stopped.
struct Acked {
    items: Value,
    carts: Value,
    highest_item: u64,
    highest_cart: u64,
}

/// Builds a store through a running shopd (items, some deleted, carts with
/// lines), stops it cleanly and returns what it acknowledged.
async fn build_store(items: u64, carts: u64) -> (tempfile::TempDir, Acked) {
    let app = spawn_app().await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..items {
        let (client, url) = (app.client.clone(), app.url("/item"));
        tasks.spawn(async move {
            let body = json!({"name": format!("item {i} {}", "x".repeat((i % 40) as usize)), "price": i as f64 / 7.0});
            let response = client.post(url).json(&body).send().await.expect("POST /item");
            assert_eq!(response.status(), 201);
        });
        if tasks.len() >= 32 {
            tasks.join_next().await;
        }
    }
    tasks.join_all().await;
    for cart in 0..carts {
        let id = app.create_cart().await;
        for item in (cart * 3 + 1..=items).step_by(17).take(4) {
            app.add(id, item).await;
            app.add(id, item).await;
        }
    }
    for item in (5..=items).step_by(23) {
        app.client
            .delete(app.url(&format!("/item/{item}")))
            .send()
            .await
            .unwrap();
    }
    let acked = Acked {
        items: app.get_json("/item?show_deleted=true&limit=1000").await,
        carts: app.get_json("/cart?limit=1000").await,
        highest_item: items,
        highest_cart: carts,
    };
    (app.stop().await, acked)
}

/// Runs `shopd check` on `data_dir`: exit status and stdout + stderr.
fn check(cwd: &Path, data_dir: &Path) -> (ExitStatus, String) {
    let mut child = shopd_command(cwd)
        .args(["check", "--data-dir"])
        .arg(data_dir)
        .spawn()
        .expect("start shopd check");
    let status = wait(&mut child);
    let mut output = String::new();
    let _ = child.stdout.take().unwrap().read_to_string(&mut output);
    let _ = child.stderr.take().unwrap().read_to_string(&mut output);
    (status, output)
}

fn get(addr: SocketAddr, path: &str) -> Value {
    let response = reqwest::blocking::get(format!("http://{addr}{path}")).expect("GET");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().expect("JSON")
}

fn post(addr: SocketAddr, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::blocking::Client::new();
    let mut request = client.post(format!("http://{addr}{path}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().expect("POST");
    assert_eq!(response.status(), 201, "POST {path}");
    response.json().expect("JSON")
}

/// Creates an item through the server at `addr` and returns it.
fn new_item(addr: SocketAddr) -> Value {
    post(addr, "/item", Some(json!({"name": "n", "price": 1.0})))
}

/// Fails with the first entry that differs (the lists are long).
fn assert_same(found: &Value, acked: &Value, what: &str) {
    let (found, acked) = (found.as_array().unwrap(), acked.as_array().unwrap());
    for (found, acked) in found.iter().zip(acked) {
        assert_eq!(found, acked, "{what}: served a different record");
    }
    assert_eq!(
        found.len(),
        acked.len(),
        "{what}: served a different number"
    );
}

/// Checks that a started shopd serves everything acknowledged and hands out
/// fresh ids only.
fn assert_intact_and_fresh(addr: SocketAddr, acked: &Acked, case: &str) {
    let items = get(addr, "/item?show_deleted=true&limit=1000");
    assert_same(&items, &acked.items, &format!("{case}: items"));
    assert_same(
        &get(addr, "/cart?limit=1000"),
        &acked.carts,
        &format!("{case}: carts"),
    );
    let item = post(addr, "/item", Some(json!({"name": "after", "price": 1.0})));
    assert!(
        item["id"].as_u64().unwrap() > acked.highest_item,
        "{case}: item id reused: {item}"
    );
    let cart = post(addr, "/cart", None);
    assert!(
        cart["id"].as_u64().unwrap() > acked.highest_cart,
        "{case}: cart id reused: {cart}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn random_damage_is_refused_at_start_up_or_harmless_and_never_reuses_an_id() {
    let (store, acked) = build_store(600, 12).await;
    let (_cwd_dir, cwd) = scratch();
    tokio::task::spawn_blocking(move || {
        let (mut refused, mut intact) = (0, 0);
        for seed in 0..36 {
            let copy = cwd.join(format!("seed-{seed}"));
            copy_dir(store.path(), &copy);
            let what = damage(&copy.join("sled"), &mut Rng(seed));
            let case = format!("seed {seed}: {what}");
            let (checked, report) = check(&cwd, &copy);
            match start(&cwd, &copy, &[]) {
                Start::Refused(status, stderr) => {
                    assert!(!status.success(), "{case}: refused with exit 0");
                    assert!(
                        stderr.contains("damaged"),
                        "{case}: no reason given: {stderr}"
                    );
                    assert!(
                        !checked.success(),
                        "{case}: check passed a refused store:\n{report}"
                    );
                    eprintln!(
                        "{case}: {}",
                        stderr
                            .lines()
                            .last()
                            .unwrap_or("")
                            .chars()
                            .take(160)
                            .collect::<String>()
                    );
                    refused += 1;
                }
                Start::Serving(mut server) => {
                    assert_intact_and_fresh(server.addr, &acked, &case);
                    assert!(
                        terminate(&mut server.child).success(),
                        "{case}: unclean exit"
                    );
                    assert!(
                        checked.success(),
                        "{case}: check failed a store that serves:\n{report}"
                    );
                    intact += 1;
                }
            }
            std::fs::remove_dir_all(&copy).unwrap();
        }
        eprintln!("damaged stores: {refused} refused, {intact} harmless");
        assert!(
            refused > 0,
            "no damage was ever refused: the damage does not reach the data"
        );
    })
    .await
    .unwrap();
}

/// A store whose sled files are older than its manifest: what a lost log
/// tail, or a restore of an old copy of the files, looks like.
async fn store_that_lost_its_tail() -> tempfile::TempDir {
    let app = spawn_app().await;
    for i in 0..5 {
        app.create_item(&format!("old {i}"), 1.0).await;
    }
    let dir = app.stop().await;
    let old = tempfile::tempdir().unwrap();
    copy_dir(&dir.path().join("sled"), old.path());
    let app = spawn_app_in(dir, |_| {}).await;
    for i in 0..3 {
        app.create_item(&format!("new {i}"), 2.0).await;
    }
    app.create_cart().await;
    let dir = app.stop().await;
    std::fs::remove_dir_all(dir.path().join("sled")).unwrap();
    copy_dir(old.path(), &dir.path().join("sled"));
    dir
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_that_lost_data_is_refused_and_accept_data_loss_serves_it_without_reusing_ids() {
    let dir = store_that_lost_its_tail().await;
    let data = dir.path().to_path_buf();
    tokio::task::spawn_blocking(move || {
        let (_cwd_dir, cwd) = scratch();
        let Start::Refused(status, stderr) = start(&cwd, &data, &[]) else {
            panic!("a store that lost items 6 to 8 and cart 1 started");
        };
        assert!(!status.success());
        for needed in [
            "items up to id 8 were acknowledged but the highest stored is 5",
            "carts up to id 1 were acknowledged but the highest stored is 0",
            "shopd import",
            "--accept-data-loss",
        ] {
            assert!(stderr.contains(needed), "{needed:?} missing from: {stderr}");
        }

        let mut server =
            start(&cwd, &data, &["--accept-data-loss"]).serving("--accept-data-loss did not start");
        assert_eq!(
            get(server.addr, "/item?limit=100")
                .as_array()
                .unwrap()
                .len(),
            5
        );
        assert_eq!(new_item(server.addr)["id"], 9);
        assert_eq!(post(server.addr, "/cart", None)["id"], 2);
        assert!(terminate(&mut server.child).success());

        // Accepted once: the next start is a clean one and ids keep going.
        let mut server =
            start(&cwd, &data, &[]).serving("the store did not start after the loss was accepted");
        assert_eq!(new_item(server.addr)["id"], 10);
        assert!(terminate(&mut server.child).success());
    })
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn shopd_check_passes_a_clean_store_and_fails_a_damaged_or_locked_one() {
    let (clean, _) = build_store(40, 3).await;
    let damaged = store_that_lost_its_tail().await;
    tokio::task::spawn_blocking(move || {
        let (_cwd_dir, cwd) = scratch();
        let (status, report) = check(&cwd, clean.path());
        assert!(status.success(), "{report}");
        for line in [
            "items: 40 records (38 live), highest id 40",
            "carts: 3 records",
            "problems: none",
        ] {
            assert!(report.contains(line), "{line:?} missing from:\n{report}");
        }

        let (status, report) = check(&cwd, damaged.path());
        assert!(!status.success(), "{report}");
        assert!(
            report.contains("items up to id 8 were acknowledged"),
            "{report}"
        );

        let mut server = start(&cwd, clean.path(), &[]).serving("the clean store did not start");
        let (status, report) = check(&cwd, clean.path());
        assert!(!status.success() && report.contains("in use"), "{report}");
        assert!(terminate(&mut server.child).success());
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn a_store_without_a_manifest_gets_one_from_what_it_holds() {
    let app = spawn_app().await;
    app.create_item("kept", 1.0).await;
    let dir = app.stop().await;
    std::fs::remove_file(dir.path().join("manifest")).unwrap();
    let app = spawn_app_in(dir, |_| {}).await;
    assert_eq!(app.get_json("/item/1").await["name"], "kept");
    assert_eq!(app.create_item("next", 1.0).await["id"], 2);
    let dir = app.stop().await;
    let manifest = std::fs::read_to_string(dir.path().join("manifest")).unwrap();
    assert!(manifest.contains("items.highest 2"), "{manifest}");
}

#[tokio::test]
async fn a_damaged_manifest_is_refused() {
    let app = spawn_app().await;
    app.create_item("kept", 1.0).await;
    let dir = app.stop().await;
    let path = dir.path().join("manifest");
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, text.replace("items.highest 1", "items.highest 7")).unwrap();
    let err = TestApp::builder()
        .in_dir(dir)
        .start()
        .await
        .err()
        .expect("a damaged manifest was accepted");
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
}
