//! Which route answers a request: the plain spelling of a read takes a
//! shorter way through the server than the other spellings of its path;
//! both must answer and be counted the same.

use crate::exposition::{Exposition, scrape};
use crate::helpers::spawn_app;

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
