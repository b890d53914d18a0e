//! The shipped alert rules: valid, loaded by the shipped Prometheus
//! config, and passing their own unit tests (`promtool test rules`), which
//! cover every alert firing and staying quiet. A rule without a runbook
//! section, or a runbook section for no rule, fails here too.

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::failing_store::BrokenStore;
use crate::helpers::{require_tool, spawn_app_on};
use crate::prometheus_e2e::ready_prometheus;
use crate::support::eventually;

fn dashboards() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana-dashboards")
}

/// Runs `promtool` with `args` in the dashboards' folder; it must succeed.
fn promtool(binary: &Path, args: &[&str]) -> String {
    let output = Command::new(binary)
        .args(args)
        .current_dir(dashboards())
        .output()
        .expect("run promtool");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?}:\n{text}");
    text
}

#[test]
fn the_rules_are_valid_and_the_shipped_prometheus_config_loads_them() {
    let Some(binary) = require_tool("promtool", "alert rules") else {
        return;
    };
    promtool(&binary, &["check", "rules", "alerts/shopd.rules.yml"]);
    let config = promtool(&binary, &["check", "config", "prometheus.yml"]);
    assert!(config.contains("alerts/shopd.rules.yml"), "{config}");
    let docker = promtool(&binary, &["check", "config", "prometheus.docker.yml"]);
    assert!(docker.contains("alerts/shopd.rules.yml"), "{docker}");
}

#[test]
fn every_alert_passes_its_unit_tests() {
    let Some(binary) = require_tool("promtool", "alert rule tests") else {
        return;
    };
    promtool(&binary, &["test", "rules", "alerts/shopd.rules.test.yml"]);
}

/// The names after `alert:` in the rules file.
fn alert_names() -> Vec<String> {
    let rules = std::fs::read_to_string(dashboards().join("alerts/shopd.rules.yml"))
        .expect("read the rules");
    rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_alert_has_a_test_a_runbook_section_and_a_matching_link() {
    let names = alert_names();
    assert!(names.len() >= 8, "{names:?}");
    let tests = std::fs::read_to_string(dashboards().join("alerts/shopd.rules.test.yml"))
        .expect("read the rule tests");
    let rules = std::fs::read_to_string(dashboards().join("alerts/shopd.rules.yml"))
        .expect("read the rules");
    let runbook =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/alerts.md"))
            .expect("read docs/alerts.md");
    let headings: Vec<&str> = runbook
        .lines()
        .filter_map(|line| line.strip_prefix("### "))
        .collect();
    for name in &names {
        // Fires somewhere and stays quiet somewhere.
        let fires = format!("alertname: {name}\n        exp_alerts:\n          - ");
        let quiet = format!("alertname: {name}\n        exp_alerts: []");
        assert!(tests.contains(&fires), "no test sees {name} fire");
        assert!(tests.contains(&quiet), "no test sees {name} stay quiet");
        assert!(
            headings.contains(&name.as_str()),
            "no runbook section for {name}"
        );
        let link = format!("runbook_url: \"docs/alerts.md#{}\"", name.to_lowercase());
        assert!(
            rules.contains(&link),
            "{name} has no runbook_url to its section"
        );
    }
    for heading in headings.iter().filter(|h| h.starts_with("Shopd")) {
        assert!(
            names.iter().any(|n| n == heading),
            "a runbook section for no alert: {heading}"
        );
    }
}

/// The state (`pending`, `firing`) of alert `name` in Prometheus, if active.
async fn alert_state(client: &reqwest::Client, base: &str, name: &str) -> Option<String> {
    let body: Value = client
        .get(format!("{base}/api/v1/alerts"))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    body["data"]["alerts"]
        .as_array()?
        .iter()
        .find(|alert| alert["labels"]["alertname"] == name)
        .and_then(|alert| alert["state"].as_str().map(str::to_owned))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_with_the_shipped_rules_sees_a_failing_store_and_the_alert_goes_pending()
{
    let Some(binary) = require_tool("prometheus", "the live store alert") else {
        return;
    };
    let app = spawn_app_on(BrokenStore).await;
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    let prometheus = ready_prometheus(&binary, &app.addr.to_string(), &client, deadline).await;
    eventually("ShopdStoreUnavailable to go pending", || async {
        alert_state(&client, &prometheus.base, "ShopdStoreUnavailable")
            .await
            .is_some_and(|state| state == "pending" || state == "firing")
    })
    .await;
    // Nothing else is wrong: the scrape works, so ShopdDown stays quiet.
    assert_eq!(
        alert_state(&client, &prometheus.base, "ShopdDown").await,
        None
    );
}
