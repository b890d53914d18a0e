//! Backup and restore: `shopd export`/`import` between stores, the online
//! export at `/admin/export`, and the admin token that guards it (and, when
//! asked, item writes).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::Method;
use serde_json::json;
use shopd::config::Secret;

use crate::helpers::{
    Backend, TestApp, backend_tests, detail, scratch, shopd_command, spawn_app_in, spawn_app_with,
    spawn_process,
};

mod fixtures;
mod scheduled;

use fixtures::{api_view, fill, filled_export, run, stderr};

const TOKEN: &str = "correct-horse-battery-staple";

/// `GET /admin/export` on `app` with the right token.
async fn admin_export(app: &TestApp) -> reqwest::Response {
    app.client
        .get(app.url("/admin/export"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn an_embedded_store_exported_and_imported_reads_the_same() {
    let exported = filled_export().await;
    let (cwd, export) = (&exported.cwd, &exported.file);
    let target = tempfile::tempdir().unwrap();
    let out = run(
        cwd,
        &["import", "--data-dir", target.path().to_str().unwrap()],
        Some(export),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("imported 25 items and 12 carts"),
        "{}",
        stderr(&out)
    );
    let restored = spawn_app_in(target, |_| {}).await;
    assert_eq!(api_view(&restored).await, exported.before);
    // Ids go on after the imported ones, never reusing one.
    assert_eq!(restored.create_item("new", 1.0).await["id"], 26);
    assert_eq!(restored.create_cart().await, 13);
}

#[tokio::test]
async fn an_embedded_store_moves_to_postgresql_unchanged() {
    let Some(Backend::Postgres(database)) =
        Backend::postgres("an_embedded_store_moves_to_postgresql_unchanged").await
    else {
        return;
    };
    let exported = filled_export().await;
    let (cwd, export) = (&exported.cwd, &exported.file);
    let url = database.url.clone();
    let input = [
        "import",
        "--database-url",
        &url,
        "--in",
        export.to_str().unwrap(),
    ];
    let out = run(cwd, &input, None);
    assert!(out.status.success(), "{}", stderr(&out));
    let moved = Backend::Postgres(database).spawn().await;
    assert_eq!(api_view(&moved).await, exported.before);
    assert_eq!(moved.create_item("new", 1.0).await["id"], 26);
    // A second import into the now non-empty database is refused.
    let out = run(cwd, &input, None);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("26 items and 12 carts"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn bad_exports_are_refused_by_line_and_import_nothing() {
    let exported = filled_export().await;
    let (cwd, good) = (&exported.cwd, &exported.file);
    let text = std::fs::read_to_string(good).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let garbage = [&lines[..5], &["{not json"], &lines[6..]].concat();
    let twice = [&lines[..5], &[lines[4]], &lines[6..]].concat();
    let first_line = "\"lines\":[{\"item\":";
    let cart_line = lines.iter().position(|l| l.contains(first_line)).unwrap();
    // Item 12 becomes 99912: no such item in the file.
    let unknown_item = lines[cart_line].replacen(first_line, &format!("{first_line}999"), 1);
    let unknown = [
        &lines[..cart_line],
        &[unknown_item.as_str()],
        &lines[cart_line + 1..],
    ]
    .concat();
    let newer = text.replacen("\"version\":1", "\"version\":7", 1);
    let cases: Vec<(&str, String, usize)> = vec![
        (
            "truncated",
            lines[..lines.len() - 3].join("\n"),
            lines.len() - 2,
        ),
        ("garbage", garbage.join("\n"), 6),
        ("duplicate id", twice.join("\n"), 6),
        ("unknown item", unknown.join("\n"), cart_line + 1),
        ("newer version", newer, 1),
    ];
    for (case, text, line) in cases {
        let file = cwd.join(format!("{case}.ndjson"));
        std::fs::write(&file, text).unwrap();
        let target = tempfile::tempdir().unwrap();
        let target_dir = target.path().to_str().unwrap();
        let out = run(
            cwd,
            &[
                "import",
                "--data-dir",
                target_dir,
                "--in",
                file.to_str().unwrap(),
            ],
            None,
        );
        assert!(!out.status.success(), "{case} was accepted");
        assert!(
            stderr(&out).contains(&format!("line {line}:")),
            "{case}: {}",
            stderr(&out)
        );
        let after = spawn_app_in(target, |_| {}).await;
        assert_eq!(
            api_view(&after).await,
            (vec![], vec![]),
            "{case} imported something"
        );
    }
}

backend_tests! {
    async fn an_online_export_under_writes_holds_every_write_acknowledged_before_it(backend) {
        let app = Arc::new(backend.spawn_with(|s| s.admin.token = Some(Secret::new(TOKEN))).await);
        fill(&app).await;
        // Enough items that reading them takes a while.
        let creating: Vec<_> = (0..16)
            .map(|_| {
                let app = app.clone();
                tokio::spawn(async move {
                    for _ in 0..100 {
                        app.create_item("stock", 3.0).await;
                    }
                })
            })
            .collect();
        for task in creating {
            task.await.unwrap();
        }
        let before = api_view(&app).await;
        let item = app.create_item("busy", 0.5).await["id"].as_u64().unwrap();
        let cart = app.create_cart().await;
        // Writers go on during the export.
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let (app, stop) = (app.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        if w % 2 == 0 {
                            app.add(cart, item).await;
                        } else {
                            // A new item straight into the cart: an export
                            // that is not of one moment holds a line whose
                            // item it lacks, and does not read back.
                            let new = app.create_item("during", 1.0).await["id"].as_u64().unwrap();
                            app.add(cart, new).await;
                        }
                    }
                })
            })
            .collect();
        // Several exports, each while the writers go on.
        let mut snapshots = Vec::new();
        for _ in 0..5 {
            let response = admin_export(&app).await;
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["content-type"], "application/x-ndjson");
            let export = response.bytes().await.unwrap();
            snapshots.push(shopd::store::Snapshot::read(&export[..]).expect("a valid export"));
        }
        stop.store(true, Ordering::Relaxed);
        for writer in writers {
            writer.await.unwrap();
        }
        let snapshot = snapshots.pop().unwrap();
        let target = tempfile::tempdir().unwrap();
        let store = shopd::store::SledStore::open(target.path(), shopd::store::Durability::default(), 500).unwrap();
        shopd::store::Store::import(&store, snapshot).await.unwrap();
        drop(store);
        let restored = spawn_app_in(target, |_| {}).await;
        let (items, carts) = api_view(&restored).await;
        // Everything acknowledged before the export began is there as it was.
        assert_eq!(items[..before.0.len()], before.0[..]);
        assert_eq!(carts[..before.1.len()], before.1[..]);
        // The busy cart is whole: its price is its lines' sum.
        let busy = carts.iter().find(|c| c["id"] == cart).expect("the busy cart");
        let sum = busy["items"].as_array().unwrap().iter().fold(0.0, |sum, line| {
            let price = if line["id"] == item { 0.5 } else { 1.0 };
            sum + price * line["quantity"].as_f64().unwrap()
        });
        assert_eq!(busy["price"].as_f64(), Some(sum));
    }

    async fn admin_routes_need_the_token_and_item_writes_too_when_protected(backend) {
        let app = backend
            .spawn_with(|s| {
                s.admin.token = Some(Secret::new(TOKEN));
                s.admin.protect_catalogue = true;
            })
            .await;
        let item = json!({"name": "Tea", "price": 1.0});
        let write = |method: Method, path: &'static str, token: Option<&'static str>| {
            let mut request = app.client.request(method, app.url(path)).json(&item);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send()
        };
        for token in [None, Some("wrong-token-of-some-length"), Some("correct-horse-battery-stapl")] {
            for (method, path) in [
                (Method::GET, "/admin/export"),
                (Method::POST, "/item"),
                (Method::PUT, "/item/1"),
                (Method::PATCH, "/item/1"),
                (Method::DELETE, "/item/1"),
            ] {
                let response = write(method.clone(), path, token).await.unwrap();
                assert_eq!(response.headers()["www-authenticate"], "Bearer", "{method} {path}");
                assert_eq!(detail(response, 401).await, "Not authenticated");
            }
        }
        let created = write(Method::POST, "/item", Some(TOKEN)).await.unwrap();
        assert_eq!(created.status(), 201);
        assert_eq!(write(Method::PUT, "/item/1", Some(TOKEN)).await.unwrap().status(), 200);
        assert_eq!(write(Method::PATCH, "/item/1", Some(TOKEN)).await.unwrap().status(), 200);
        assert_eq!(write(Method::DELETE, "/item/1", Some(TOKEN)).await.unwrap().status(), 200);
        assert_eq!(admin_export(&app).await.status(), 200);
        // Reading items and everything on carts stays open.
        assert_eq!(app.get("/item").await.status(), 200);
        let cart = app.create_cart().await;
        assert_eq!(app.get(&format!("/cart/{cart}")).await.status(), 200);
    }
}

#[tokio::test]
async fn without_a_token_admin_routes_are_not_found_and_item_writes_open() {
    let app = spawn_app_with(|_| {}).await;
    let response = admin_export(&app).await;
    assert_eq!(detail(response, 404).await, "Not Found");
    app.create_item("open", 1.0).await;
}

#[test]
fn the_token_never_reaches_the_logs_and_export_over_http_uses_it() {
    let (_cwd, cwd) = scratch();
    let data = cwd.join("data");
    let token_file = cwd.join("token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let mut shopd = spawn_process(
        &cwd,
        &data,
        &[
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--log-level",
            "trace",
        ],
    );
    let url = format!("http://{}", shopd.addr);
    let client = reqwest::blocking::Client::new();
    let created = client
        .post(format!("{url}/item"))
        .json(&json!({"name": "Tea", "price": 2.5}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let wrong = client
        .get(format!("{url}/admin/export"))
        .header("authorization", format!("Bearer {TOKEN}x"))
        .send()
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let out = shopd_command(&cwd)
        .env("SHOPD_ADMIN_TOKEN", TOKEN)
        .args(["export", "--url", &url])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let export = String::from_utf8(out.stdout).unwrap();
    assert!(export.contains("\"name\":\"Tea\""), "{export}");
    // Without a token, or with the wrong one: the error says which setting to use.
    let without = shopd_command(&cwd)
        .args(["export", "--url", &url])
        .output()
        .unwrap();
    assert!(!without.status.success());
    let why = stderr(&without);
    assert!(
        why.contains("401")
            && why.contains("--admin-token-file")
            && why.contains("SHOPD_ADMIN_TOKEN"),
        "{why}"
    );
    let wrong = shopd_command(&cwd)
        .env("SHOPD_ADMIN_TOKEN", format!("{TOKEN}x"))
        .args(["export", "--url", &url])
        .output()
        .unwrap();
    let why = stderr(&wrong);
    assert!(
        why.contains("401") && why.contains("is not that shopd's admin token"),
        "{why}"
    );
    let logs = shopd.stop_for_logs();
    assert!(
        logs.contains("/admin/export"),
        "the access log saw the requests: {logs}"
    );
    assert!(!logs.contains(TOKEN), "the token leaked into the logs");
}

#[test]
fn export_over_http_from_a_shopd_without_a_token_says_which_setting_turns_it_on() {
    let (_cwd, cwd) = scratch();
    let shopd = spawn_process(&cwd, &cwd.join("data"), &[]);
    let file = cwd.join("shop.ndjson");
    let out = shopd_command(&cwd)
        .env("SHOPD_ADMIN_TOKEN", TOKEN)
        .args(["export", "--url", &format!("http://{}", shopd.addr)])
        .args(["--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(!file.exists(), "a failed export left a file");
    let why = stderr(&out);
    assert!(
        why.contains("404") && why.contains("no admin token") && why.contains("--admin-token-file"),
        "{why}"
    );
}
