//! The operator interface: flags, environment, config file, the data
//! directory lock, fail-fast start-up, signals and durability.

use std::io::Read;
use std::process::Output;

use serde_json::{Value, json};

use crate::helpers::{scratch, spawn_app, spawn_app_in};
use crate::process::{serve_command, shopd_command, sigterm, spawn_process, terminate};

mod fixtures;
mod startup;

use fixtures::{exit_within_20s, full_pipe, serve_with_log_level, stderr_after_two_requests};

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn help_and_version_exit_zero() {
    let (_dir, cwd) = scratch();
    let help = shopd_command(&cwd).arg("--help").output().unwrap();
    assert!(help.status.success());
    let text = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--config",
        "--data-dir",
        "--listen",
        "--durability",
        "SHOPD_LISTEN",
    ] {
        assert!(text.contains(flag), "--help mentions {flag}:\n{text}");
    }
    let version = shopd_command(&cwd).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[tokio::test]
async fn a_restart_keeps_every_item_and_cart_and_never_reuses_ids() {
    let app = spawn_app().await;
    let item = app.create_item("kept", 9.5).await;
    let deleted = app.create_item("deleted", 1.0).await;
    let cart = app.create_cart().await;
    app.add(cart, 1).await;
    app.add(cart, 2).await;
    assert_eq!(app.delete("/item/2").await.status(), 200);
    let before_items = app.get_json("/item?show_deleted=true").await;
    let before_cart = app.get_json(&format!("/cart/{cart}")).await;
    let dir = app.stop().await;

    let app = spawn_app_in(dir, |_| {}).await;
    assert_eq!(app.get_json("/item?show_deleted=true").await, before_items);
    assert_eq!(app.get_json(&format!("/cart/{cart}")).await, before_cart);
    assert_eq!(app.get_json("/item/1").await, item);
    assert_eq!(deleted["id"], 2);
    assert_eq!(app.create_item("next", 1.0).await["id"], 3);
    assert_eq!(app.create_cart().await, 2);
}

#[tokio::test]
async fn periodic_durability_flushes_at_shutdown_and_keeps_ids_dense() {
    let periodic = |s: &mut shopd::Settings| {
        s.storage.durability = shopd::store::Durability::Periodic;
        s.storage.flush_every = std::time::Duration::from_millis(60_000);
    };
    let app = crate::helpers::spawn_app_with(periodic).await;
    for i in 0..5 {
        app.create_item(&format!("p{i}"), 1.0).await;
    }
    let dir = app.stop().await;
    let app = spawn_app_in(dir, periodic).await;
    assert_eq!(
        app.get_json("/item?limit=100")
            .await
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(app.create_item("after", 1.0).await["id"], 6);
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let (_cwd_dir, cwd) = scratch();
    let (_data, data_dir) = scratch();
    let mut server = spawn_process(&cwd, &data_dir, &[]);
    let client = reqwest::blocking::Client::new();
    let mut acknowledged = Vec::new();
    for i in 0..50 {
        let response = client
            .post(server.url("/item"))
            .json(&json!({"name": format!("item {i}"), "price": i}))
            .send()
            .unwrap();
        assert_eq!(response.status(), 201);
        acknowledged.push(response.json::<Value>().unwrap());
    }
    let cart: Value = client
        .post(server.url("/cart"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    for _ in 0..7 {
        let add = client
            .post(server.url(&format!("/cart/{}/add/3", cart["id"])))
            .send()
            .unwrap();
        assert_eq!(add.status(), 200);
    }
    // SIGKILL right after the last acknowledgement: no chance to flush.
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let server = spawn_process(&cwd, &data_dir, &[]);
    let items: Value = client
        .get(server.url("/item?limit=1000"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(items.as_array().unwrap(), &acknowledged);
    let cart: Value = client
        .get(server.url(&format!("/cart/{}", cart["id"])))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(cart["items"][0]["quantity"], 7);
    let next: Value = client
        .post(server.url("/item"))
        .json(&json!({"name": "after crash", "price": 1}))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert!(
        next["id"].as_u64().unwrap() > 50,
        "ids are never reused after a crash"
    );
}

#[test]
fn a_second_process_on_the_same_data_dir_refuses_to_start() {
    let (_cwd_dir, cwd) = scratch();
    let (_data, data_dir) = scratch();
    let _first = spawn_process(&cwd, &data_dir, &[]);
    let second = serve_command(&cwd, &data_dir, &[]).output().unwrap();
    assert!(!second.status.success());
    let message = stderr_of(&second);
    assert!(message.contains("in use by another shopd"), "{message}");
    assert!(message.contains(data_dir.to_str().unwrap()), "{message}");
}

#[test]
fn a_busy_port_stops_start_up_naming_the_address() {
    let (_cwd_dir, cwd) = scratch();
    let (_data, data_dir) = scratch();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let output = shopd_command(&cwd)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen", &addr])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr_of(&output);
    assert!(
        message.contains(&addr) && message.contains("cannot listen"),
        "{message}"
    );
}

#[test]
fn an_unusable_data_dir_stops_start_up_naming_the_path_once_and_its_cause_once() {
    let (_cwd_dir, cwd) = scratch();
    let file = cwd.join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let output = serve_command(&cwd, &file.join("data"), &[])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr_of(&output);
    assert_eq!(message.matches("not-a-dir/data").count(), 1, "{message}");
    // The OS's reason, e.g. "Not a directory (os error 20)", once.
    assert_eq!(message.matches("(os error").count(), 1, "{message}");
}

#[test]
fn config_file_errors_name_the_file_and_the_key() {
    let (_cwd_dir, cwd) = scratch();
    std::fs::write(
        cwd.join("config.toml"),
        "listen = \"127.0.0.1:0\"\nlisten_port = 5\n",
    )
    .unwrap();
    let output = shopd_command(&cwd).output().unwrap();
    assert!(!output.status.success());
    let message = stderr_of(&output);
    assert!(
        message.contains("config.toml") && message.contains("listen_port"),
        "{message}"
    );

    std::fs::write(cwd.join("bad.toml"), "listen = [unclosed\n").unwrap();
    let output = shopd_command(&cwd)
        .args(["--config", "bad.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr_of(&output).contains("bad.toml"));

    let output = shopd_command(&cwd)
        .args(["--config", "missing.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr_of(&output).contains("missing.toml"));

    std::fs::write(cwd.join("typed.toml"), "max_body_bytes = \"big\"\n").unwrap();
    let output = shopd_command(&cwd)
        .args(["--config", "typed.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let message = stderr_of(&output);
    assert!(
        message.contains("typed.toml") && message.contains("max_body_bytes"),
        "{message}"
    );
}

#[test]
fn flags_beat_environment_which_beats_the_config_file() {
    let (_cwd_dir, cwd) = scratch();
    std::fs::write(
        cwd.join("config.toml"),
        "data_dir = \"from-file\"\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    let started_in = |command: &mut std::process::Command| {
        let mut child = command.spawn().unwrap();
        let mut first = [0u8; 5];
        // The first bytes of stdout arrive once shopd is up.
        child
            .stdout
            .as_mut()
            .unwrap()
            .read_exact(&mut first)
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    };
    started_in(&mut shopd_command(&cwd));
    assert!(cwd.join("from-file/shopd.lock").exists());
    started_in(shopd_command(&cwd).env("SHOPD_DATA_DIR", "from-env"));
    assert!(cwd.join("from-env/shopd.lock").exists());
    started_in(
        shopd_command(&cwd)
            .env("SHOPD_DATA_DIR", "from-env2")
            .args(["--data-dir", "from-flag"]),
    );
    assert!(cwd.join("from-flag/shopd.lock").exists());
    assert!(!cwd.join("from-env2").exists());
}

#[test]
fn sigterm_drains_flushes_and_exits_zero() {
    let (_cwd_dir, cwd) = scratch();
    let (_data, data_dir) = scratch();
    // Periodic mode with a long interval: only the shutdown flush saves the write.
    let args = ["--durability", "periodic", "--flush-every-ms", "600000"];
    let mut server = spawn_process(&cwd, &data_dir, &args);
    let client = reqwest::blocking::Client::new();
    let created = client
        .post(server.url("/item"))
        .json(&json!({"name": "flushed", "price": 1}))
        .send()
        .unwrap();
    assert_eq!(created.status(), 201);
    let status = terminate(&mut server.child);
    assert!(status.success(), "exit status {status:?}");

    let server = spawn_process(&cwd, &data_dir, &[]);
    let items: Value = client
        .get(server.url("/item"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(items[0]["name"], "flushed");
}

#[test]
fn sigterm_exits_even_when_nobody_reads_stderr() {
    let (_cwd_dir, cwd) = scratch();
    let (_data, data_dir) = scratch();
    // Every request logs an access line; stderr is a pipe this test never
    // reads, so it fills and the log writer blocks on it.
    let mut server = serve_with_log_level(&cwd, &data_dir, "info");
    let client = reqwest::blocking::Client::new();
    // About 150 bytes a line: far more than a pipe's 64 KiB.
    for _ in 0..3000 {
        let path = server.url(&format!("/item/{}", "9".repeat(40)));
        let _ = client.get(path).send().unwrap();
    }
    sigterm(&server.child);
    let status = exit_within_20s(&mut server.child);
    let status = status.expect("shopd did not exit within 20 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    drop(server.child.stderr.take());
}

#[test]
fn a_start_up_error_with_stderr_on_a_full_pipe_still_exits() {
    let (_cwd_dir, cwd) = scratch();
    let (_data, data_dir) = scratch();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (_unread, full) = full_pipe();
    let mut child = shopd_command(&cwd)
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--listen", &addr])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(full))
        .spawn()
        .unwrap();
    let status = exit_within_20s(&mut child);
    let status = status.expect("shopd did not exit within 20 s of failing to start");
    assert!(!status.success());
}

#[test]
fn the_access_log_has_one_line_per_request_at_info() {
    let stderr = stderr_after_two_requests("info");
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|line| line.contains("shopd::access"))
        .collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].contains(" INFO shopd::access: method=GET path=\"/item/7\" status=404 micros="),
        "{stderr}"
    );
    assert!(
        lines[1].contains("method=GET path=\"/healthz\" status=200"),
        "{stderr}"
    );
}

#[test]
fn the_access_log_is_silenced_by_its_target() {
    let stderr = stderr_after_two_requests("info,shopd::access=warn");
    assert!(!stderr.contains("shopd::access"), "{stderr}");
    assert!(stderr.contains("shopd started"), "{stderr}");
}
