//! End to end: a real Prometheus scrapes a real shopd under traffic, and
//! every query of every shipped Grafana dashboard returns series.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::require_tool;
use crate::helpers::{TestApp, spawn_app};
use crate::support::free_port;

/// What Grafana's `$__rate_interval` and friends stand for here: with 1 s
/// scrapes Grafana would use 4 s; 10 s leaves room for a late scrape.
const GRAFANA_VARIABLES: &[(&str, &str)] = &[
    ("$__rate_interval", "10s"),
    ("$__interval", "2s"),
    ("$__range", "1m"),
    // The dashboard's `instance` variable set to "All".
    ("$instance", ".*"),
];

/// How long Prometheus may take to start and to show every panel's series.
const DEADLINE: Duration = Duration::from_secs(90);

/// A Prometheus child process, killed on drop.
pub struct Prometheus {
    child: Child,
    /// Its base URL, `http://127.0.0.1:PORT`.
    pub base: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts Prometheus on loopback, scraping `target` every second and
/// evaluating the shipped alert rules every second, with its config and
/// storage in a fresh temp dir.
fn start_prometheus(binary: &Path, target: &str) -> Prometheus {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("prometheus.yml");
    let rules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana-dashboards/alerts/shopd.rules.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - '{}'\n\
             scrape_configs:\n  - job_name: shopd\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
    )
    .expect("write prometheus.yml");
    let port = free_port();
    let log = dir.path().join("prometheus.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().expect("log file"))
        .stderr(log_file)
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
        _dir: dir,
    }
}

/// Polls `/-/ready` until Prometheus answers. `Err` with its log if it
/// exited (e.g. someone took the port meanwhile); panics at the deadline.
async fn wait_ready(
    prometheus: &mut Prometheus,
    client: &reqwest::Client,
    deadline: Instant,
) -> Result<(), String> {
    loop {
        if let Ok(Some(status)) = prometheus.child.try_wait() {
            return Err(format!(
                "prometheus exited ({status}):\n{}",
                prometheus.log()
            ));
        }
        let ready = client
            .get(format!("{}/-/ready", prometheus.base))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if ready {
            return Ok(());
        }
        assert!(
            Instant::now() < deadline,
            "prometheus not ready:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A ready Prometheus; a few tries, as its port may be taken between our
/// check and its bind.
pub async fn ready_prometheus(
    binary: &Path,
    target: &str,
    client: &reqwest::Client,
    deadline: Instant,
) -> Prometheus {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let mut prometheus = start_prometheus(binary, target);
        match wait_ready(&mut prometheus, client, deadline).await {
            Ok(()) => return prometheus,
            Err(why) => failures.push(why),
        }
    }
    panic!("prometheus did not start:\n{}", failures.join("\n"));
}

/// A panel query: where it comes from, its PromQL and its legend.
#[derive(Debug)]
struct PanelQuery {
    origin: String,
    expr: String,
    legend: String,
}

/// Every target of every panel (rows' nested panels included) of every
/// `grafana-dashboards/*.json`.
fn dashboard_queries() -> Vec<PanelQuery> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("grafana-dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("grafana-dashboards/")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no dashboards in {}", dir.display());
    let mut queries = Vec::new();
    for file in files {
        let dashboard: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read dashboard"))
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        let mut panels: Vec<&Value> = dashboard["panels"]
            .as_array()
            .expect("panels")
            .iter()
            .collect();
        while let Some(panel) = panels.pop() {
            if let Some(nested) = panel["panels"].as_array() {
                panels.extend(nested);
            }
            for target in panel["targets"].as_array().into_iter().flatten() {
                let expr = target["expr"].as_str().expect("every target has an expr");
                queries.push(PanelQuery {
                    origin: format!("{name}: {:?}", panel["title"].as_str().unwrap_or("?")),
                    expr: expr.to_owned(),
                    legend: target["legendFormat"].as_str().unwrap_or("").to_owned(),
                });
            }
        }
    }
    queries
}

/// The `{{label}}` names of a legend format.
fn legend_labels(legend: &str) -> Vec<String> {
    legend
        .split("{{")
        .skip(1)
        .filter_map(|part| part.split_once("}}"))
        .map(|(label, _)| label.trim().to_owned())
        .collect()
}

/// The expr with Grafana's variables replaced.
fn concrete(expr: &str) -> String {
    GRAFANA_VARIABLES
        .iter()
        .fold(expr.to_owned(), |e, (var, value)| e.replace(var, value))
}

/// Runs an instant query; `Err` explains why the result does not count.
async fn check(client: &reqwest::Client, base: &str, query: &PanelQuery) -> Result<Value, String> {
    let expr = concrete(&query.expr);
    let encoded = percent_encoding::utf8_percent_encode(&expr, percent_encoding::NON_ALPHANUMERIC);
    let response = client
        .get(format!("{base}/api/v1/query?query={encoded}"))
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    if body["status"] != "success" {
        return Err(format!("query failed: {body}"));
    }
    let result = body["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if result.is_empty() {
        return Err("empty result".into());
    }
    for label in legend_labels(&query.legend) {
        if let Some(series) = result.iter().find(|s| s["metric"][&label].is_null()) {
            return Err(format!("legend label {label:?} missing from {series}"));
        }
    }
    Ok(Value::Array(result))
}

/// Mixed 2xx, 3xx and 4xx requests on items, carts and `/metrics`.
async fn traffic(app: &TestApp, round: u64) {
    let item = app
        .send_json(
            reqwest::Method::POST,
            "/item",
            &json!({"name": format!("thing {round}"), "price": 1.5}),
        )
        .await;
    let id = item
        .json::<Value>()
        .await
        .map(|v| v["id"].clone())
        .unwrap_or_default();
    app.get(&format!("/item/{id}")).await;
    app.get("/item?limit=5").await;
    app.get(&format!("/item/{}", 1_000_000 + round)).await;
    app.send_json(reqwest::Method::POST, "/item", &json!({"name": ""}))
        .await;
    let cart = app.post("/cart").await;
    let cart = cart
        .json::<Value>()
        .await
        .map(|v| v["id"].clone())
        .unwrap_or_default();
    app.post(&format!("/cart/{cart}/add/{id}")).await;
    app.get(&format!("/cart/{cart}")).await;
    if round.is_multiple_of(3) {
        app.client
            .delete(app.url(&format!("/item/{id}")))
            .send()
            .await
            .ok();
        let body = json!({"name": "gone", "price": 1.0});
        app.send_json(reqwest::Method::PUT, &format!("/item/{id}"), &body)
            .await;
    }
    app.get("/no-such-page").await;
}

#[tokio::test]
async fn every_dashboard_query_returns_metrics_from_a_real_prometheus() {
    let test = "every_dashboard_query_returns_metrics_from_a_real_prometheus";
    let Some(binary) = require_tool("prometheus", test) else {
        return;
    };
    let queries = dashboard_queries();
    assert!(
        queries.len() >= 10,
        "dashboards hold too few queries: {queries:?}"
    );
    let app = spawn_app().await;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + DEADLINE;
    let prometheus = ready_prometheus(&binary, &app.addr.to_string(), &client, deadline).await;

    // The seed panel: its series carry the legend's labels, with route
    // templates and status classes.
    let seed = queries
        .iter()
        .find(|q| q.legend == "{{method}} {{handler}} (status={{status}})")
        .expect("the requests-per-route panel");
    let expected = [
        ("/item/{id}", "GET", "2xx"),
        ("/item/{id}", "GET", "4xx"),
        ("/item/{id}", "PUT", "3xx"),
        ("none", "GET", "4xx"),
        ("/metrics", "GET", "2xx"),
    ];

    let mut round = 0;
    loop {
        // Traffic keeps flowing while we wait, so rates are not all zero.
        round += 1;
        traffic(&app, round).await;
        let mut failures = Vec::new();
        for query in &queries {
            if let Err(why) = check(&client, &prometheus.base, query).await {
                failures.push(format!("{}\n  {}\n  {why}", query.origin, query.expr));
            }
        }
        if let Ok(series) = check(&client, &prometheus.base, seed).await {
            for (handler, method, status) in expected {
                let found = series.as_array().into_iter().flatten().any(|s| {
                    s["metric"]["handler"] == handler
                        && s["metric"]["method"] == method
                        && s["metric"]["status"] == status
                });
                if !found {
                    failures.push(format!(
                        "seed panel: no {method} {handler} {status} in {series}"
                    ));
                }
            }
        }
        if failures.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after {round} rounds, these dashboard queries still fail:\n{}\nprometheus log:\n{}",
            failures.join("\n"),
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
