//! `shopd check` reads a store without changing it: every file of the data
//! directory is byte for byte the same afterwards, also after a kill -9,
//! when opening the store for real would replay and rewrite its files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::json;
use sha2::{Digest, Sha256};

use crate::process::{shopd_command, spawn_process};
use crate::support::scratch;

/// Every file under `dir`, by path, with its length and SHA-256.
fn fingerprint(dir: &Path) -> BTreeMap<PathBuf, (u64, Vec<u8>)> {
    let mut files = BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).expect("read dir") {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            if entry.file_type().expect("file type").is_dir() {
                pending.push(path);
            } else {
                let bytes = std::fs::read(&path).expect("read file");
                let digest = Sha256::digest(&bytes).to_vec();
                files.insert(path, (bytes.len() as u64, digest));
            }
        }
    }
    files
}

/// A data directory with items and carts in it, left by a shopd that was
/// killed with SIGKILL in the middle of its life.
fn killed_store(cwd: &Path) -> PathBuf {
    let data = cwd.join("data");
    let shop = spawn_process(cwd, &data, &[]);
    let client = reqwest::blocking::Client::new();
    for i in 0..50 {
        let created = client
            .post(shop.url("/item"))
            .json(&json!({"name": format!("item {i}"), "price": f64::from(i) + 0.5}))
            .send()
            .expect("POST /item");
        assert_eq!(created.status(), 201);
    }
    let cart = client.post(shop.url("/cart")).send().expect("POST /cart");
    assert_eq!(cart.status(), 201);
    let added = client
        .post(shop.url("/cart/1/add/7"))
        .send()
        .expect("add to cart");
    assert_eq!(added.status(), 200);
    // Dropping the process kills it with SIGKILL: no clean stop.
    drop(shop);
    data
}

#[test]
fn shopd_check_changes_no_file_of_the_store_it_checks_even_after_a_kill_9() {
    let (_dir, cwd) = scratch();
    let data = killed_store(&cwd);
    let before = fingerprint(&data);
    assert!(before.len() > 2, "{before:?}");
    let output = shopd_command(&cwd)
        .args(["check", "--data-dir"])
        .arg(&data)
        .output()
        .expect("run shopd check");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("50"), "the check read the items: {report}");
    assert_eq!(fingerprint(&data), before, "shopd check changed the store");
    // And the store still opens for real afterwards, with everything in it.
    let shop = spawn_process(&cwd, &data, &[]);
    let item: serde_json::Value = reqwest::blocking::get(shop.url("/item/50"))
        .expect("GET /item/50")
        .json()
        .expect("JSON");
    assert_eq!(item["name"], "item 49");
}
