//! Which route answers a request: every spelling of a path answers and is
//! counted the same, and every route of the table is served, labelled,
//! listed in `Allow` and in the API document.

use reqwest::Method;
use shopd::config::Secret;
use shopd::http::admin::Access;
use shopd::http::routes::table;
use shopd::store::SledStore;

use crate::exposition::{Exposition, scrape};
use crate::helpers::{spawn_app, spawn_app_with};
use crate::openapi::reading::document;

/// `http_requests_total` of `GET` on a route template, by status class.
fn gets(metrics: &Exposition, handler: &str, class: &str) -> f64 {
    metrics
        .value(
            "http_requests_total",
            &[("handler", handler), ("method", "GET"), ("status", class)],
        )
        .unwrap_or(0.0)
}

#[tokio::test]
async fn every_spelling_of_a_read_answers_alike_and_counts_under_its_template() {
    let app = spawn_app().await;
    let item = app.create_item("Tea", 2.5).await;
    let cart = app.create_cart().await;
    app.add(cart, item["id"].as_u64().unwrap()).await;
    let id = &item["id"];
    let spellings = [
        ("/item/{id}", format!("/item/{id}"), format!("/item/{id}/")),
        // `%3` and a digit spell the digit.
        ("/item/{id}", format!("/item/{id}"), format!("/item/%3{id}")),
        (
            "/item",
            "/item?limit=5".to_owned(),
            "/item/?limit=5".to_owned(),
        ),
        (
            "/cart/{id}",
            format!("/cart/{cart}"),
            format!("/cart/{cart}/"),
        ),
        (
            "/cart",
            "/cart?min_price=1".to_owned(),
            "/cart/?min_price=1".to_owned(),
        ),
        ("/item/{id}", "/item/x".to_owned(), "/item/x/".to_owned()),
        (
            "/cart/{id}",
            "/cart/987654".to_owned(),
            "/cart/987654/".to_owned(),
        ),
    ];
    for (template, plain, other) in spellings {
        let before = scrape(&app).await;
        let first = app.get(&plain).await;
        let second = app.get(&other).await;
        let status = first.status();
        assert_eq!(second.status(), status, "{plain} vs {other}");
        let class = format!("{}xx", status.as_u16() / 100);
        let (first, second) = (first.text().await.unwrap(), second.text().await.unwrap());
        assert_eq!(first, second, "{plain} vs {other}");
        let after = scrape(&app).await;
        let counted = gets(&after, template, &class) - gets(&before, template, &class);
        assert_eq!(counted, 2.0, "{plain} and {other} under {template}");
    }
}

/// The routes the API document leaves out on purpose.
const UNDOCUMENTED: &[&str] = &["/chat.css", "/chat.js", "/openapi.json", "/docs/{*file}"];

/// A path that fits `template`: `1` for each parameter.
fn example(template: &str) -> String {
    template
        .split('/')
        .map(|segment| match segment {
            s if s.starts_with("{*") => "index.html",
            s if s.starts_with('{') => "1",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `http_requests_total` of `method` on `handler`, every status.
fn counted(metrics: &Exposition, handler: &str, method: &str) -> f64 {
    metrics
        .matching(
            "http_requests_total",
            &[("handler", handler), ("method", method)],
        )
        .map(|sample| sample.value)
        .sum()
}

#[tokio::test]
async fn every_route_of_the_table_is_served_labelled_allowed_and_documented() {
    const TOKEN: &str = "correct-horse-battery-staple";
    let app = spawn_app_with(|s| {
        s.admin.token = Some(Secret::new(TOKEN));
        s.admin.protect_catalogue = true;
    })
    .await;
    let access = Access {
        token: Some(Secret::new(TOKEN)),
        protect_catalogue: true,
    };
    let doc = document(&app).await;
    let routes = table::<SledStore>(&access);
    assert!(routes.len() >= 20, "the whole table");
    for route in routes {
        let name = format!("{} {}", route.method, route.template);
        let path = example(route.template);
        let method = Method::from_bytes(route.method.as_str().as_bytes()).unwrap();
        let before = counted(&scrape(&app).await, route.label, route.method.as_str());
        let response = app
            .client
            .request(method.clone(), app.url(&path))
            .bearer_auth(TOKEN)
            .json(&serde_json::json!({"name": "Tea", "price": 1.0}))
            .send()
            .await
            .unwrap();
        assert_ne!(response.status(), 405, "{name} is routed");
        let after = counted(&scrape(&app).await, route.label, route.method.as_str());
        // A scrape counts itself once rendered: `/metrics` sees its own too.
        let expected = if route.template == "/metrics" {
            2.0
        } else {
            1.0
        };
        assert_eq!(
            after - before,
            expected,
            "{name} is counted under {}",
            route.label
        );
        let wrong = app
            .client
            .request(Method::TRACE, app.url(&path))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 405, "{name}: TRACE {path}");
        let allow = wrong.headers()["allow"].to_str().unwrap().to_owned();
        assert!(
            allow.split(", ").any(|m| m == route.method.as_str()),
            "{name} in Allow: {allow}"
        );
        let documented =
            doc["paths"][route.template][route.method.as_str().to_lowercase()].is_object();
        assert_eq!(
            documented,
            !UNDOCUMENTED.contains(&route.template),
            "{name} in the document"
        );
    }
}

#[tokio::test]
async fn a_known_path_asked_with_another_method_counts_under_its_template() {
    let app = spawn_app().await;
    let cart = app.create_cart().await;
    let response = app
        .client
        .delete(app.url(&format!("/cart/{cart}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET");
    let metrics = scrape(&app).await;
    assert_eq!(counted(&metrics, "/cart/{id}", "DELETE"), 1.0);
    assert_eq!(counted(&metrics, "none", "DELETE"), 0.0);
}
