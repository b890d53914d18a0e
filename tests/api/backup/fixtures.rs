//! The backup tests' fixtures: a filled shop, what clients see of it, and
//! `shopd` run as a command (export, import).

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{TestApp, scratch, shopd_command, spawn_app_with};

/// Every item (deleted ones too) and every cart, as clients see them.
pub async fn api_view(app: &TestApp) -> (Vec<Value>, Vec<Value>) {
    async fn all(app: &TestApp, path: &str) -> Vec<Value> {
        let mut found = Vec::new();
        loop {
            let page = app
                .get_json(&format!("{path}offset={}&limit=100", found.len()))
                .await;
            let page = page.as_array().expect("a list").clone();
            if page.is_empty() {
                return found;
            }
            found.extend(page);
        }
    }
    (
        all(app, "/item?show_deleted=true&").await,
        all(app, "/cart?").await,
    )
}

/// A shop with deleted items, exact prices and carts in several orders.
pub async fn fill(app: &TestApp) {
    let mut ids = Vec::new();
    for n in 0..25u32 {
        let price = f64::from(n) * 0.1 + 0.2;
        ids.push(
            app.create_item(&format!("item «{n}»"), price).await["id"]
                .as_u64()
                .unwrap(),
        );
    }
    for n in [3, 7, 11] {
        assert_eq!(app.delete(&format!("/item/{}", ids[n])).await.status(), 200);
    }
    for c in 0..12usize {
        let cart = app.create_cart().await;
        for k in 0..(c % 5) {
            let item = ids[(c * 7 + k * 3) % ids.len()];
            if [ids[3], ids[7], ids[11]].contains(&item) {
                continue;
            }
            app.add(cart, item).await;
            if k % 2 == 0 {
                app.add(cart, item).await;
            }
        }
    }
}

/// Runs `shopd` with `args` in `cwd`, its stdin from `stdin` when given.
pub fn run(cwd: &Path, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut command = shopd_command(cwd);
    command.args(args);
    if let Some(path) = stdin {
        command.stdin(std::fs::File::open(path).expect("input file"));
    }
    command.output().expect("run shopd")
}

/// What `shopd` wrote to stderr.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A filled embedded store, stopped and exported with `shopd export`.
pub struct Exported {
    /// Every item and cart as clients saw them before the stop.
    pub before: (Vec<Value>, Vec<Value>),
    /// The scratch directory holding the export; removed when dropped.
    _scratch: TempDir,
    /// Its path, where `shopd` runs.
    pub cwd: PathBuf,
    /// The export file.
    pub file: PathBuf,
}

/// Fills an embedded store, stops it and exports it with `shopd export`.
pub async fn filled_export() -> Exported {
    let app = spawn_app_with(|_| {}).await;
    fill(&app).await;
    let before = api_view(&app).await;
    let dir = app.stop().await;
    let (scratch, cwd) = scratch();
    let file = cwd.join("shop.ndjson");
    let output = run(
        &cwd,
        &[
            "export",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--out",
            file.to_str().unwrap(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", stderr(&output));
    Exported {
        before,
        _scratch: scratch,
        cwd,
        file,
    }
}
