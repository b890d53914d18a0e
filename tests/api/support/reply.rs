//! Reading error replies compactly, and scratch directories.

use std::path::PathBuf;

use serde_json::Value;
use tempfile::TempDir;

/// The 422 `detail` entries' `(loc, type)` pairs, for compact assertions.
pub async fn issues(response: reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("422 JSON");
    body["detail"]
        .as_array()
        .expect("detail list")
        .iter()
        .map(|issue| {
            let loc: Vec<String> = issue["loc"]
                .as_array()
                .expect("loc")
                .iter()
                .map(|part| match part {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            assert!(issue["msg"].as_str().is_some_and(|m| !m.is_empty()));
            (
                loc.join("."),
                issue["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect()
}

/// The `detail` sentence of an error reply with the expected status.
pub async fn detail(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error JSON");
    body["detail"].as_str().expect("detail sentence").to_owned()
}

/// A fresh directory to use as a working directory or data directory.
pub fn scratch() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}
