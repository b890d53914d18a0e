//! `GET /metrics`: names, types, labels, buckets and counts after known
//! requests, and `promtool check metrics` on the real output.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::exposition::{Exposition, parse_value, scrape};
use crate::helpers::{TestApp, backend_tests, require_tool, spawn_app};
use crate::support::{Backend, eventually};

/// `http_requests_total` for a route, method and status class (0 when absent).
fn requests(metrics: &Exposition, handler: &str, method: &str, status: &str) -> f64 {
    metrics
        .value(
            "http_requests_total",
            &[("handler", handler), ("method", method), ("status", status)],
        )
        .unwrap_or(0.0)
}

#[tokio::test]
async fn three_reads_of_an_item_add_exactly_three_to_its_route_counter() {
    let app = spawn_app().await;
    let item = app.create_item("Tea", 2.5).await;
    let path = format!("/item/{}", item["id"]);
    let before = requests(&scrape(&app).await, "/item/{id}", "GET", "2xx");
    for _ in 0..3 {
        assert_eq!(app.get(&path).await.status(), 200);
    }
    let after = scrape(&app).await;
    assert_eq!(requests(&after, "/item/{id}", "GET", "2xx") - before, 3.0);
    assert_eq!(requests(&after, "/item", "POST", "2xx"), 1.0);
}

#[tokio::test]
async fn unknown_paths_are_counted_under_handler_none() {
    let app = spawn_app().await;
    assert_eq!(app.get("/no/such/page/4711").await.status(), 404);
    assert_eq!(app.post("/elsewhere").await.status(), 404);
    let metrics = scrape(&app).await;
    assert_eq!(requests(&metrics, "none", "GET", "4xx"), 1.0);
    assert_eq!(requests(&metrics, "none", "POST", "4xx"), 1.0);
    assert!(!metrics.text.contains("4711") && !metrics.text.contains("/no/such"));
}

#[tokio::test]
async fn a_missing_item_is_a_4xx_of_its_route_template_never_of_its_id() {
    let app = spawn_app().await;
    let cart = app.create_cart().await;
    assert_eq!(app.get("/item/987654").await.status(), 404);
    let add = app.post(&format!("/cart/{cart}/add/987655")).await;
    assert_eq!(add.status(), 404);
    let metrics = scrape(&app).await;
    assert_eq!(requests(&metrics, "/item/{id}", "GET", "4xx"), 1.0);
    assert_eq!(
        requests(&metrics, "/cart/{cart_id}/add/{item_id}", "POST", "4xx"),
        1.0
    );
    for sample in &metrics.samples {
        if let Some(handler) = sample.labels.get("handler") {
            assert!(
                !handler.chars().any(|c| c.is_ascii_digit()),
                "raw id in {sample:?}"
            );
        }
    }
}

#[tokio::test]
async fn metrics_counts_its_own_scrapes_after_rendering() {
    let app = spawn_app().await;
    let first = scrape(&app).await;
    assert_eq!(requests(&first, "/metrics", "GET", "2xx"), 0.0);
    let second = scrape(&app).await;
    assert_eq!(requests(&second, "/metrics", "GET", "2xx"), 1.0);
    let third = scrape(&app).await;
    assert_eq!(requests(&third, "/metrics", "GET", "2xx"), 2.0);
}

#[tokio::test]
async fn latency_histograms_have_the_contract_buckets_and_counts() {
    let app = spawn_app().await;
    for _ in 0..2 {
        app.get("/item").await;
    }
    let metrics = scrape(&app).await;
    let bounds = |name: &str, labels: &[(&str, &str)]| -> Vec<(f64, f64)> {
        metrics
            .matching(name, labels)
            .map(|s| (parse_value(&s.labels["le"]), s.value))
            .collect()
    };
    let per_route = bounds(
        "http_request_duration_seconds_bucket",
        &[("handler", "/item"), ("method", "GET")],
    );
    let les: Vec<f64> = per_route.iter().map(|(le, _)| *le).collect();
    assert_eq!(les, [0.1, 0.5, 1.0, f64::INFINITY]);
    assert_eq!(per_route.last().unwrap().1, 2.0);
    assert_eq!(
        metrics.value(
            "http_request_duration_seconds_count",
            &[("handler", "/item"), ("method", "GET")]
        ),
        Some(2.0)
    );
    let highr = bounds("http_request_duration_highr_seconds_bucket", &[]);
    let les: Vec<f64> = highr.iter().map(|(le, _)| *le).collect();
    let mut contract = vec![
        0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5,
        5.0, 7.5, 10.0, 30.0, 60.0,
    ];
    contract.push(f64::INFINITY);
    assert_eq!(les, contract);
    assert!(highr.windows(2).all(|w| w[0].1 <= w[1].1), "cumulative");
    assert_eq!(highr.last().unwrap().1, 2.0);
    let highr_labels: Vec<_> = metrics
        .matching("http_request_duration_highr_seconds_count", &[])
        .map(|s| s.labels.clone())
        .collect();
    assert_eq!(highr_labels, [BTreeMap::new()], "highr has no labels");
}

#[tokio::test]
async fn every_family_has_help_and_its_contract_type() {
    let app = spawn_app().await;
    app.create_item("Tea", 2.5).await;
    let metrics = scrape(&app).await;
    for (name, kind) in [
        ("http_requests_total", "counter"),
        ("http_request_duration_seconds", "histogram"),
        ("http_request_duration_highr_seconds", "histogram"),
        ("http_request_size_bytes", "summary"),
        ("http_response_size_bytes", "summary"),
        ("shopd_chat_connections", "gauge"),
        ("shopd_chat_rooms", "gauge"),
        ("shopd_chat_messages_total", "counter"),
        ("shopd_chat_dropped_total", "counter"),
        ("shopd_items", "gauge"),
        ("shopd_carts", "gauge"),
        ("shopd_storage_bytes", "gauge"),
        ("shopd_store_up", "gauge"),
        ("shopd_storage_available_bytes", "gauge"),
        ("process_cpu_seconds_total", "counter"),
        ("process_resident_memory_bytes", "gauge"),
        ("process_virtual_memory_bytes", "gauge"),
        ("process_open_fds", "gauge"),
        ("process_max_fds", "gauge"),
        ("process_start_time_seconds", "gauge"),
    ] {
        let (found, help) = metrics
            .families
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from\n{}", metrics.text));
        assert_eq!(found, kind, "type of {name}");
        assert!(!help.trim().is_empty(), "HELP of {name}");
    }
    for sample in &metrics.samples {
        let family = metrics.family_of(&sample.name);
        assert!(
            family.is_some_and(|(kind, help)| !kind.is_empty() && !help.is_empty()),
            "{} has no HELP and TYPE",
            sample.name
        );
    }
}

#[tokio::test]
async fn request_and_response_sizes_expose_sum_and_count_per_route() {
    let app = spawn_app().await;
    let body = json!({"name": "Coffee", "price": 4.0}).to_string();
    let response = app
        .send_raw(reqwest::Method::POST, "/item", body.clone())
        .await;
    assert_eq!(response.status(), 201);
    let reply = response.bytes().await.expect("body");
    let metrics = scrape(&app).await;
    let item = [("handler", "/item")];
    assert_eq!(
        metrics.value("http_request_size_bytes_count", &item),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("http_request_size_bytes_sum", &item),
        Some(body.len() as f64)
    );
    assert_eq!(
        metrics.value("http_response_size_bytes_count", &item),
        Some(1.0)
    );
    assert_eq!(
        metrics.value("http_response_size_bytes_sum", &item),
        Some(reply.len() as f64)
    );
    assert_eq!(
        metrics.matching("http_request_size_bytes", &[]).count(),
        0,
        "no quantile lines, as the instrumentator's summaries"
    );
}

backend_tests! {
    async fn store_gauges_follow_created_items_and_carts(backend) {
        let embedded = matches!(backend, Backend::Sled);
        let app = backend
            .spawn_with(|settings| {
                settings.storage.stats_refresh = std::time::Duration::from_millis(20);
            })
            .await;
        let empty = scrape(&app).await;
        assert_eq!(empty.value("shopd_items", &[]), Some(0.0));
        assert_eq!(empty.value("shopd_carts", &[]), Some(0.0));
        let doomed = app.create_item("Tea", 2.5).await;
        app.create_item("Cake", 3.0).await;
        for _ in 0..3 {
            app.create_cart().await;
        }
        let path = format!("/item/{}", doomed["id"]);
        assert_eq!(
            app.client
                .delete(app.url(&path))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        // Sizes are refreshed in the background: wait for a refresh.
        let refreshed = |metrics: &Exposition| {
            metrics.value("shopd_items", &[]) == Some(1.0)
                && metrics.value("shopd_carts", &[]) == Some(3.0)
        };
        eventually("items and carts counted", || async {
            refreshed(&scrape(&app).await)
        })
        .await;
        let metrics = scrape(&app).await;
        assert!(metrics.value("shopd_storage_bytes", &[]) > Some(0.0));
        assert_eq!(metrics.value("shopd_store_up", &[]), Some(1.0));
        // The free space under the data directory; PostgreSQL's disk is
        // the database host's to watch.
        let available = metrics.value("shopd_storage_available_bytes", &[]);
        if embedded {
            assert!(available > Some(0.0), "{available:?}");
        } else {
            assert_eq!(available, None);
        }
    }
}

#[tokio::test]
async fn chat_and_process_figures_are_there_from_the_start() {
    let app = spawn_app().await;
    let metrics = scrape(&app).await;
    for name in [
        "shopd_chat_connections",
        "shopd_chat_rooms",
        "shopd_chat_messages_total",
    ] {
        assert_eq!(metrics.value(name, &[]), Some(0.0), "{name}");
    }
    let positive = |name: &str| metrics.value(name, &[]).is_some_and(|v| v > 0.0);
    for name in [
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
    ] {
        assert!(positive(name), "{name} in\n{}", metrics.text);
    }
    assert!(metrics.value("process_start_time_seconds", &[]) > Some(1.0e9));
    assert!(metrics.value("process_cpu_seconds_total", &[]) >= Some(0.0));
}

/// Joins chat room `room` of `app`.
async fn join(app: &TestApp, room: &str) -> ChatClient {
    crate::support::join(app.addr, room).await
}

use crate::support::WsClient as ChatClient;

/// `from` says something and `to` hears it: both are in the room by then,
/// and the server has counted the message.
async fn talk(from: &mut ChatClient, to: &mut ChatClient) {
    from.send(Message::text("hello")).await.expect("send");
    let heard = tokio::time::timeout(Duration::from_secs(20), to.next())
        .await
        .expect("a line in time");
    assert!(matches!(heard, Some(Ok(Message::Text(_)))), "{heard:?}");
}

#[tokio::test]
async fn chat_figures_follow_connections_rooms_and_messages() {
    let app = spawn_app().await;
    let (mut a1, mut a2) = (join(&app, "tea").await, join(&app, "tea").await);
    let (mut b1, mut b2) = (join(&app, "cake").await, join(&app, "cake").await);
    talk(&mut a1, &mut a2).await;
    talk(&mut a2, &mut a1).await;
    talk(&mut b1, &mut b2).await;
    let metrics = scrape(&app).await;
    assert_eq!(metrics.value("shopd_chat_connections", &[]), Some(4.0));
    assert_eq!(metrics.value("shopd_chat_rooms", &[]), Some(2.0));
    assert_eq!(metrics.value("shopd_chat_messages_total", &[]), Some(3.0));
    assert!(
        !metrics.text.contains("chat/"),
        "WebSocket sessions are not HTTP requests"
    );
    for mut client in [a1, a2, b1, b2] {
        client.close(None).await.expect("close");
        while let Some(Ok(_)) = client.next().await {}
    }
    // The server notices departures on its own schedule: poll, bounded.
    eventually("the chat gauges back at 0", || async {
        let metrics = scrape(&app).await;
        metrics.value("shopd_chat_connections", &[]) == Some(0.0)
            && metrics.value("shopd_chat_rooms", &[]) == Some(0.0)
    })
    .await;
    let metrics = scrape(&app).await;
    assert_eq!(metrics.value("shopd_chat_messages_total", &[]), Some(3.0));
}

#[tokio::test]
async fn promtool_accepts_the_exposition() {
    let Some(promtool) = require_tool("promtool", "promtool_accepts_the_exposition") else {
        return;
    };
    let app = spawn_app().await;
    let item = app.create_item("Tea", 2.5).await;
    app.get(&format!("/item/{}", item["id"])).await;
    app.get("/item/424242").await;
    app.get("/nowhere").await;
    scrape(&app).await;
    let text = scrape(&app).await.text;
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool output");
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics:\n{}{}\non:\n{text}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
}

#[test]
fn promtool_accepts_the_shipped_prometheus_configs() {
    let Some(promtool) = require_tool(
        "promtool",
        "promtool_accepts_the_shipped_prometheus_configs",
    ) else {
        return;
    };
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grafana-dashboards");
    for file in ["prometheus.yml", "prometheus.docker.yml"] {
        let output = Command::new(&promtool)
            .args(["check", "config"])
            .arg(dir.join(file))
            .output()
            .expect("run promtool");
        assert!(
            output.status.success(),
            "promtool check config {file}:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }
}
