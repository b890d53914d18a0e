//! The API document (`/openapi.json`), the Swagger UI page (`/docs/`), and
//! regressions for what fuzzing the API against its document found.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::spawn_app;

pub mod reading;
mod running;

use reading::{ROUTES, content_type, document, parameter, resolve};

#[tokio::test]
async fn the_document_is_openapi_3_and_lists_every_route_with_its_statuses() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert_eq!(doc["info"]["title"], "shopd");
    for (method, path, statuses) in ROUTES {
        let operation = &doc["paths"][path][method];
        assert!(operation.is_object(), "{method} {path} is documented");
        let listed: BTreeSet<&str> = operation["responses"]
            .as_object()
            .expect("responses")
            .keys()
            .map(String::as_str)
            .collect();
        for status in *statuses {
            assert!(listed.contains(status), "{method} {path} lists {status}");
        }
        assert!(operation["operationId"].is_string());
    }
    let operations: usize = doc["paths"]
        .as_object()
        .expect("paths")
        .values()
        .map(|item| item.as_object().map_or(0, serde_json::Map::len))
        .sum();
    assert_eq!(operations, ROUTES.len(), "no route beyond the contract's");
}

#[tokio::test]
async fn every_reference_in_the_document_resolves() {
    fn references<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(reference)) = map.get("$ref") {
                    found.push(reference);
                }
                map.values().for_each(|v| references(v, found));
            }
            Value::Array(list) => list.iter().for_each(|v| references(v, found)),
            _ => {}
        }
    }
    let app = spawn_app().await;
    let doc = document(&app).await;
    let mut found = Vec::new();
    references(&doc, &mut found);
    assert!(found.len() > 10);
    for reference in found {
        let pointer = reference.strip_prefix('#').expect("local reference");
        assert!(doc.pointer(pointer).is_some(), "{reference} resolves");
    }
}

#[tokio::test]
async fn error_replies_are_documented_in_fastapi_shapes() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["HTTPError"]["required"], json!(["detail"]));
    assert_eq!(
        schemas["HTTPError"]["properties"]["detail"]["type"],
        "string"
    );
    let issues = &schemas["HTTPValidationError"]["properties"]["detail"];
    assert_eq!(issues["type"], "array");
    let issue = resolve(&doc, &issues["items"]);
    assert_eq!(issue["required"], json!(["loc", "msg", "type"]));
    let location = resolve(&doc, &issue["properties"]["loc"]["items"]);
    let kinds: BTreeSet<&str> = location["oneOf"]
        .as_array()
        .expect("string or integer")
        .iter()
        .filter_map(|s| s["type"].as_str())
        .collect();
    assert_eq!(kinds, BTreeSet::from(["integer", "string"]));

    let replace = &doc["paths"]["/item/{id}"]["put"]["responses"];
    let invalid = resolve(&doc, &replace["422"]);
    let body = resolve(&doc, &invalid["content"]["application/json"]["schema"]);
    assert_eq!(body, &schemas["HTTPValidationError"]);
    let too_large = resolve(&doc, &replace["413"]);
    assert!(too_large["content"]["application/json"]["schema"].is_object());
    assert!(replace["304"].get("content").is_none(), "a 304 has no body");
}

#[tokio::test]
async fn created_replies_document_their_location_and_links() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let item = &doc["paths"]["/item"]["post"]["responses"]["201"];
    assert!(item["headers"]["Location"].is_object());
    let links = item["links"].as_object().expect("item links");
    let targets: BTreeSet<&str> = links
        .values()
        .filter_map(|link| link["operationId"].as_str())
        .collect();
    for target in [
        "get_item",
        "replace_item",
        "patch_item",
        "delete_item",
        "add_to_cart",
    ] {
        assert!(targets.contains(target), "link to {target}");
    }
    let cart = &doc["paths"]["/cart"]["post"]["responses"]["201"];
    assert!(cart["headers"]["Location"].is_object());
    assert_eq!(
        cart["links"]["AddToCart"]["parameters"]["cart_id"],
        "$response.body#/id"
    );
    let example = &doc["paths"]["/item"]["post"]["requestBody"]["content"]["application/json"];
    let example = resolve(&doc, &example["schema"])["example"].clone();
    assert_eq!(example, json!({"name": "Tea", "price": 2.5}));
}

#[tokio::test]
async fn query_parameters_carry_their_bounds_and_defaults() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let items = &doc["paths"]["/item"]["get"];
    let carts = &doc["paths"]["/cart"]["get"];
    for list in [items, carts] {
        let offset = &parameter(list, "offset")["schema"];
        assert_eq!(
            (&offset["type"], &offset["minimum"], &offset["default"]),
            (&json!("integer"), &json!(0), &json!(0))
        );
        let limit = &parameter(list, "limit")["schema"];
        assert_eq!(
            (&limit["type"], &limit["minimum"], &limit["default"]),
            (&json!("integer"), &json!(1), &json!(10))
        );
        for name in ["min_price", "max_price"] {
            let price = &parameter(list, name)["schema"];
            assert_eq!(
                (&price["type"], &price["minimum"]),
                (&json!("number"), &json!(0))
            );
        }
        for name in ["offset", "limit", "min_price", "max_price"] {
            assert_eq!(parameter(list, name)["required"], false);
        }
    }
    for name in ["min_quantity", "max_quantity"] {
        let quantity = &parameter(carts, name)["schema"];
        assert_eq!(
            (&quantity["type"], &quantity["minimum"]),
            (&json!("integer"), &json!(0))
        );
    }
    let show_deleted = &parameter(items, "show_deleted")["schema"];
    assert_eq!(
        (&show_deleted["type"], &show_deleted["default"]),
        (&json!("boolean"), &json!(false))
    );
    let id = &parameter(&doc["paths"]["/item/{id}"]["get"], "id");
    assert_eq!(
        (&id["in"], &id["schema"]["type"]),
        (&json!("path"), &json!("integer"))
    );
}

#[tokio::test]
async fn request_bodies_are_closed_objects_with_the_validation_rules() {
    let app = spawn_app().await;
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    let new_item = &schemas["NewItem"];
    assert_eq!(new_item["additionalProperties"], false);
    assert_eq!(new_item["required"], json!(["name", "price"]));
    assert_eq!(new_item["properties"]["name"]["minLength"], 1);
    assert_eq!(new_item["properties"]["price"]["minimum"], 0);
    let patch = &schemas["ItemPatch"];
    assert_eq!(patch["additionalProperties"], false);
    assert!(patch.get("required").is_none_or(|r| r == &json!([])));
    // null is not a valid name or price.
    assert_eq!(patch["properties"]["name"]["type"], "string");
    assert_eq!(patch["properties"]["price"]["type"], "number");
}

#[tokio::test]
async fn docs_redirects_to_the_page_with_a_trailing_slash() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client
        .get(app.url("/docs"))
        .send()
        .await
        .expect("GET /docs");
    assert!(response.status().is_redirection());
    assert_eq!(response.headers()["location"], "/docs/");
}

#[tokio::test]
async fn the_docs_page_and_its_assets_load_from_shopd_itself() {
    let app = spawn_app().await;
    let response = app.get("/docs/").await;
    assert_eq!(response.status(), 200);
    assert!(content_type(&response).starts_with("text/html"));
    let page = response.text().await.expect("page");
    assert!(page.contains("swagger-ui"));
    let assets: Vec<&str> = page
        .split(['"', '\''])
        .filter(|part| part.ends_with(".js") || part.ends_with(".css"))
        .collect();
    assert!(assets.len() >= 3, "scripts and styles: {assets:?}");
    for asset in assets {
        let name = asset.trim_start_matches("./");
        assert!(!name.contains("://"), "{asset} is served locally");
        let response = app.get(&format!("/docs/{name}")).await;
        assert_eq!(response.status(), 200, "{name}");
        let kind = content_type(&response);
        if name.ends_with(".css") {
            assert!(kind.starts_with("text/css"), "{name}: {kind}");
        } else {
            assert!(kind.contains("javascript"), "{name}: {kind}");
        }
    }
    let initializer = app.get("/docs/swagger-initializer.js").await;
    let initializer = initializer.text().await.expect("initializer");
    assert!(initializer.contains("/openapi.json"));
}

#[tokio::test]
async fn unknown_docs_files_are_not_found() {
    let app = spawn_app().await;
    let response = app.get("/docs/no-such-file.js").await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body, json!({"detail": "Not Found"}));
}

#[tokio::test]
async fn the_document_and_the_docs_are_measured_by_route_template() {
    let app = spawn_app().await;
    app.get("/openapi.json").await;
    app.get("/docs/").await;
    app.get("/docs/swagger-ui.css").await;
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    assert!(metrics.contains(r#"handler="/openapi.json""#));
    assert!(metrics.contains(r#"handler="/docs""#));
    assert!(
        !metrics.contains("swagger-ui.css"),
        "no raw path in a label"
    );
}

// Regressions found by fuzzing the API against its document.

#[tokio::test]
async fn method_not_allowed_lists_the_methods_the_path_takes() {
    let app = spawn_app().await;
    let cases = [
        ("/item", "GET, POST"),
        ("/item/1", "GET, PUT, PATCH, DELETE"),
        ("/item/1/", "GET, PUT, PATCH, DELETE"),
        ("/cart", "GET, POST"),
        ("/cart/1", "GET"),
        ("/cart/1/add/2", "POST"),
        ("/metrics", "GET"),
        ("/openapi.json", "GET"),
        ("/docs/", "GET"),
    ];
    for (path, allow) in cases {
        let method = if path == "/cart/1/add/2" {
            Method::GET
        } else {
            Method::TRACE
        };
        let response = app
            .client
            .request(method, app.url(path))
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 405, "{path}");
        assert_eq!(response.headers()["allow"], allow, "{path}");
        let body: Value = response.json().await.expect("JSON");
        assert_eq!(body, json!({"detail": "Method Not Allowed"}));
    }
    let response = app
        .client
        .request(Method::TRACE, app.url("/nowhere"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 404);
    assert!(response.headers().get("allow").is_none());
}

#[tokio::test]
async fn integers_beyond_64_bits_are_valid_in_queries_as_documented() {
    let app = spawn_app().await;
    app.create_item("Tea", 1.0).await;
    for path in [
        "/item?offset=9223372036854775808",
        "/cart?offset=99999999999999999999999&max_quantity=18446744073709551616",
    ] {
        assert_eq!(app.get_json(path).await, json!([]), "{path}");
    }
    let doc = document(&app).await;
    let offset = &parameter(&doc["paths"]["/item"]["get"], "offset")["schema"];
    assert!(offset.get("format").is_none(), "no 64-bit bound: {offset}");
    assert!(offset.get("maximum").is_none());
}

#[tokio::test]
async fn a_cart_price_beyond_the_largest_number_stays_a_number() {
    let app = spawn_app().await;
    let item = app.create_item("Gold", f64::MAX).await;
    let id = item["id"].as_u64().expect("id");
    let cart = app.create_cart().await;
    app.add(cart, id).await;
    let cart_json = app.add(cart, id).await;
    assert_eq!(cart_json["price"].as_f64(), Some(f64::MAX));
    assert_eq!(cart_json["items"][0]["quantity"], 2);
    let read = app.get_json(&format!("/cart/{cart}")).await;
    assert_eq!(read["price"].as_f64(), Some(f64::MAX));
    let listed = app.get_json("/cart?min_price=1e308").await;
    assert_eq!(listed[0]["price"].as_f64(), Some(f64::MAX));
}

#[tokio::test]
async fn a_deleted_item_answers_304_to_changes_as_documented() {
    // Fuzzing flags this (a deleted resource should be 404), but the
    // contract keeps FastAPI's 304: the document says so.
    let app = spawn_app().await;
    let item = app.create_item("Tea", 1.0).await;
    let path = format!("/item/{}", item["id"]);
    app.client
        .delete(app.url(&path))
        .send()
        .await
        .expect("DELETE");
    let response = app
        .send_json(Method::PATCH, &path, &json!({"price": 2.0}))
        .await;
    assert_eq!(response.status(), 304);
    let doc = document(&app).await;
    let patch = &doc["paths"]["/item/{id}"]["patch"]["responses"]["304"];
    assert!(
        patch["description"]
            .as_str()
            .is_some_and(|d| d.contains("deleted"))
    );
}
