//! The document describes the server that serves it: `/admin/*` only with
//! an admin token, the token's requirement on item writes only with
//! catalogue protection.

use serde_json::{Value, json};
use shopd::config::Secret;

use super::reading::{ADMIN_ROUTES, ROUTES, document};
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const TOKEN: &str = "correct-horse-battery-staple";

/// The item writes, as the document keys them.
const ITEM_WRITES: &[(&str, &str)] = &[
    ("post", "/item"),
    ("put", "/item/{id}"),
    ("patch", "/item/{id}"),
    ("delete", "/item/{id}"),
];

async fn with_token(protect_catalogue: bool) -> TestApp {
    spawn_app_with(|s| {
        s.admin.token = Some(Secret::new(TOKEN));
        s.admin.protect_catalogue = protect_catalogue;
    })
    .await
}

/// Every `(method, path)` of the document.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            found.push((method.clone(), path.clone()));
        }
    }
    found.sort();
    found
}

fn expected(routes: &[&[(&str, &str, &[&str])]]) -> Vec<(String, String)> {
    let mut found: Vec<_> = routes
        .iter()
        .flat_map(|routes| routes.iter())
        .map(|(method, path, _)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn a_server_without_an_admin_token_documents_no_admin_route_and_no_token() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert_eq!(operations(&doc), expected(&[ROUTES]));
    assert!(
        !doc.to_string().contains("admin_token"),
        "no token anywhere"
    );
    assert_eq!(app.get("/admin/export").await.status(), 404);
}

#[tokio::test]
async fn a_server_with_a_token_documents_its_admin_routes_with_their_requirement() {
    let app = with_token(false).await;
    let doc = document(&app).await;
    assert_eq!(operations(&doc), expected(&[ROUTES, ADMIN_ROUTES]));
    for (method, path, _) in ADMIN_ROUTES {
        let operation = &doc["paths"][path][method];
        assert_eq!(
            operation["security"],
            json!([{"admin_token": []}]),
            "{path}"
        );
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["admin_token"]["scheme"],
        "bearer"
    );
    for (method, path) in ITEM_WRITES {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path}");
        assert!(
            operation.get("security").is_none(),
            "{method} {path} is open"
        );
    }
}

#[tokio::test]
async fn a_protected_catalogue_documents_the_token_on_item_writes_only() {
    let app = with_token(true).await;
    let doc = document(&app).await;
    for (method, path) in ITEM_WRITES {
        let operation = &doc["paths"][path][method];
        assert_eq!(
            operation["security"],
            json!([{"admin_token": []}]),
            "{method} {path}"
        );
    }
    for (method, path, _) in ROUTES {
        if !ITEM_WRITES.contains(&(method, path)) {
            let operation = &doc["paths"][path][method];
            assert!(operation.get("security").is_none(), "{method} {path}");
        }
    }
}
