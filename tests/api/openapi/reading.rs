//! What the document tests expect and how they read it: the contract's
//! routes with their statuses, the document itself, references and
//! parameters in it.

use serde_json::Value;

use crate::helpers::TestApp;

/// Every route of the contract and the statuses its document must list,
/// on a server without an admin token (see [`ADMIN_ROUTES`]).
pub const ROUTES: &[(&str, &str, &[&str])] = &[
    ("post", "/cart", &["201"]),
    ("get", "/cart", &["200", "422"]),
    ("get", "/cart/{id}", &["200", "304", "404", "422"]),
    (
        "post",
        "/cart/{cart_id}/add/{item_id}",
        &["200", "404", "422"],
    ),
    ("post", "/item", &["201", "413", "422"]),
    ("get", "/item", &["200", "422"]),
    ("get", "/item/{id}", &["200", "304", "404", "422"]),
    (
        "put",
        "/item/{id}",
        &["200", "304", "404", "412", "413", "422"],
    ),
    (
        "patch",
        "/item/{id}",
        &["200", "304", "404", "412", "413", "422"],
    ),
    ("delete", "/item/{id}", &["200", "404", "412", "422"]),
    ("get", "/chat/{chat_name}", &["101"]),
    ("get", "/chat", &["200"]),
    ("get", "/metrics", &["200"]),
    ("get", "/healthz", &["200"]),
    ("get", "/readyz", &["200", "503"]),
    ("get", "/readyz/chat", &["200", "503"]),
];

/// The routes a server has only with an admin token, and their statuses.
pub const ADMIN_ROUTES: &[(&str, &str, &[&str])] = &[("get", "/admin/export", &["200", "401"])];

/// The document `app` serves, checked to be JSON.
pub async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status(), 200);
    assert_eq!(content_type(&response), "application/json");
    response.json().await.expect("document JSON")
}

/// The reply's content type (empty when missing).
pub fn content_type(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Follows a local `$ref` such as `#/components/responses/ValidationFailed`.
pub fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local reference");
            resolve(
                document,
                document.pointer(pointer).expect("reference resolves"),
            )
        }
        None => value,
    }
}

/// The parameter `name` of `operation`.
pub fn parameter<'a>(operation: &'a Value, name: &str) -> &'a Value {
    operation["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("parameter {name}"))
}
