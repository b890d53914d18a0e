//! The `/cart` routes: creation, adding, pricing from the items' current
//! state, filters, and concurrent adds.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, backend_tests, detail, issues};

backend_tests! {
    async fn a_new_cart_is_empty_and_has_a_location(backend) {
        let app = backend.spawn().await;
        let response = app
            .client
            .post(app.url("/cart"))
            .body("ignored body")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()["location"], "/cart/1");
        assert_eq!(response.json::<Value>().await.unwrap(), json!({"id": 1}));
        assert_eq!(
            app.get_json("/cart/1").await,
            json!({"id": 1, "items": [], "price": 0.0})
        );
        assert_eq!(app.create_cart().await, 2);
    }
}

backend_tests! {
    async fn adding_counts_up_and_keeps_first_added_order(backend) {
        let app = backend.spawn().await;
        let cart = app.create_cart().await;
        let a = app.create_item("apple", 0.5).await["id"].as_u64().unwrap();
        let b = app.create_item("bread", 2.25).await["id"].as_u64().unwrap();
        let after_first = app.add(cart, b).await;
        assert_eq!(
            after_first,
            json!({"id": cart, "items": [{"id": b, "name": "bread", "quantity": 1, "available": true}], "price": 2.25})
        );
        app.add(cart, a).await;
        let last = app.add(cart, b).await;
        assert_eq!(
            last,
            json!({"id": cart, "items": [
                {"id": b, "name": "bread", "quantity": 2, "available": true},
                {"id": a, "name": "apple", "quantity": 1, "available": true},
            ], "price": 5.0})
        );
        assert_eq!(app.get_json(&format!("/cart/{cart}")).await, last);
    }
}

backend_tests! {
    async fn cart_lines_follow_item_changes_and_deletions(backend) {
        let app = backend.spawn().await;
        let cart = app.create_cart().await;
        let a = app.create_item("apple", 1.0).await["id"].as_u64().unwrap();
        let b = app.create_item("bread", 2.0).await["id"].as_u64().unwrap();
        app.add(cart, a).await;
        app.add(cart, b).await;
        app.add(cart, b).await;
        app.send_json(
            Method::PUT,
            &format!("/item/{a}"),
            &json!({"name": "green apple", "price": 1.5}),
        )
        .await;
        app.send_json(Method::PATCH, &format!("/item/{b}"), &json!({"price": 3.0}))
            .await;
        let cart_json = app.get_json(&format!("/cart/{cart}")).await;
        assert_eq!(cart_json["items"][0]["name"], "green apple");
        assert_eq!(cart_json["price"], 1.5 + 2.0 * 3.0);
        app.client
            .delete(app.url(&format!("/item/{b}")))
            .send()
            .await
            .unwrap();
        let cart_json = app.get_json(&format!("/cart/{cart}")).await;
        assert_eq!(
            cart_json["items"][1],
            json!({"id": b, "name": "bread", "quantity": 2, "available": false})
        );
        assert_eq!(
            cart_json["price"], 1.5,
            "deleted items are left out of the price"
        );
    }
}

backend_tests! {
    async fn adding_to_unknown_carts_or_unknown_or_deleted_items_is_404(backend) {
        let app = backend.spawn().await;
        let cart = app.create_cart().await;
        let item = app.create_item("x", 1.0).await["id"].as_u64().unwrap();
        assert_eq!(
            detail(app.post(&format!("/cart/99/add/{item}")).await, 404).await,
            "Cart 99 not found"
        );
        assert_eq!(
            detail(app.post(&format!("/cart/{cart}/add/99")).await, 404).await,
            "Item 99 not found"
        );
        assert_eq!(
            detail(app.post("/cart/98/add/99").await, 404).await,
            "Cart 98 not found"
        );
        app.client
            .delete(app.url(&format!("/item/{item}")))
            .send()
            .await
            .unwrap();
        let response = app.post(&format!("/cart/{cart}/add/{item}")).await;
        assert_eq!(
            detail(response, 404).await,
            format!("Item {item} is deleted")
        );
        assert_eq!(
            app.get_json(&format!("/cart/{cart}")).await["items"],
            json!([])
        );
    }
}

backend_tests! {
    async fn non_integer_cart_ids_are_422_before_any_404(backend) {
        let app = backend.spawn().await;
        assert_eq!(
            issues(app.get("/cart/x").await).await,
            [("path.id".to_owned(), "int_parsing".to_owned())]
        );
        assert_eq!(
            issues(app.post("/cart/a/add/b").await).await,
            [
                ("path.cart_id".to_owned(), "int_parsing".to_owned()),
                ("path.item_id".to_owned(), "int_parsing".to_owned())
            ]
        );
        assert_eq!(
            issues(app.post("/cart/999/add/b").await).await,
            [("path.item_id".to_owned(), "int_parsing".to_owned())]
        );
        assert_eq!(
            detail(app.get("/cart/5").await, 404).await,
            "Cart 5 not found"
        );
    }
}

/// Carts 1..=6: cart n holds n of an item priced 1.0, except cart 4 which
/// holds 4 of an item that is then deleted.
async fn seeded(backend: Backend) -> TestApp {
    let app = backend.spawn().await;
    let one = app.create_item("one", 1.0).await["id"].as_u64().unwrap();
    let gone = app.create_item("gone", 10.0).await["id"].as_u64().unwrap();
    for n in 1..=6u64 {
        let cart = app.create_cart().await;
        assert_eq!(cart, n);
        let item = if n == 4 { gone } else { one };
        for _ in 0..n {
            app.add(cart, item).await;
        }
    }
    app.client
        .delete(app.url(&format!("/item/{gone}")))
        .send()
        .await
        .unwrap();
    app
}

async fn cart_ids(app: &TestApp, query: &str) -> Vec<u64> {
    let list = app.get_json(&format!("/cart{query}")).await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect()
}

backend_tests! {
    async fn listing_carts_filters_by_price_and_quantity_then_pages(backend) {
        let app = seeded(backend).await;
        assert_eq!(cart_ids(&app, "").await, [1, 2, 3, 4, 5, 6]);
        assert_eq!(cart_ids(&app, "?limit=2&offset=1").await, [2, 3]);
        // Cart 4's price is 0 (its only item is deleted), its quantity still 4.
        assert_eq!(cart_ids(&app, "?max_price=0").await, [4]);
        assert_eq!(cart_ids(&app, "?min_price=2&max_price=5").await, [2, 3, 5]);
        assert_eq!(cart_ids(&app, "?min_quantity=4").await, [4, 5, 6]);
        assert_eq!(
            cart_ids(&app, "?min_quantity=2&max_quantity=4").await,
            [2, 3, 4]
        );
        assert_eq!(
            cart_ids(
                &app,
                "?min_quantity=2&max_quantity=5&min_price=1&offset=1&limit=2"
            )
            .await,
            [3, 5]
        );
        let list = app.get_json("/cart?min_quantity=4&max_quantity=4").await;
        assert_eq!(
            list,
            json!([{"id": 4, "items": [{"id": 2, "name": "gone", "quantity": 4, "available": false}], "price": 0.0}])
        );
    }
}

backend_tests! {
    async fn bad_cart_list_queries_are_422(backend) {
        let app = backend.spawn().await;
        assert_eq!(
            issues(
                app.get("/cart?min_quantity=-1&max_quantity=z&max_price=-3")
                    .await
            )
            .await,
            [
                (
                    "query.max_price".to_owned(),
                    "greater_than_equal".to_owned()
                ),
                (
                    "query.min_quantity".to_owned(),
                    "greater_than_equal".to_owned()
                ),
                ("query.max_quantity".to_owned(), "int_parsing".to_owned()),
            ]
        );
    }
}

backend_tests! {
    async fn concurrent_adds_to_one_cart_never_lose_an_increment(backend) {
        let app = backend.spawn().await;
        let cart = app.create_cart().await;
        let a = app.create_item("a", 0.25).await["id"].as_u64().unwrap();
        let b = app.create_item("b", 1.0).await["id"].as_u64().unwrap();
        let mut clients = Vec::new();
        for client in 0..16u64 {
            let url = app.url(&format!(
                "/cart/{cart}/add/{}",
                if client % 2 == 0 { a } else { b }
            ));
            clients.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                for _ in 0..25 {
                    let response = http.post(&url).send().await.expect("add");
                    assert_eq!(response.status(), 200);
                }
            }));
        }
        for client in clients {
            client.await.unwrap();
        }
        let cart = app.get_json(&format!("/cart/{cart}")).await;
        let quantities: Vec<u64> = cart["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["quantity"].as_u64().unwrap())
            .collect();
        assert_eq!(quantities.iter().sum::<u64>(), 400);
        assert_eq!(quantities, [200, 200]);
        assert_eq!(cart["price"], 200.0 * 0.25 + 200.0);
    }
}

backend_tests! {
    async fn failing_adds_do_not_spoil_concurrent_adds_to_other_carts(backend) {
        let app = backend.spawn().await;
        let cart = app.create_cart().await;
        let live = app.create_item("live", 1.0).await["id"].as_u64().unwrap();
        let gone = app.create_item("gone", 1.0).await["id"].as_u64().unwrap();
        app.client
            .delete(app.url(&format!("/item/{gone}")))
            .send()
            .await
            .unwrap();
        // Concurrent adds are applied in shared transactions: each must still
        // get its own answer.
        let mut tasks = Vec::new();
        for n in 0..60u64 {
            let path = match n % 3 {
                0 => format!("/cart/{cart}/add/{live}"),
                1 => format!("/cart/{cart}/add/{gone}"),
                _ => format!("/cart/999/add/{live}"),
            };
            let url = app.url(&path);
            tasks.push(tokio::spawn(async move {
                let status = reqwest::Client::new()
                    .post(&url)
                    .send()
                    .await
                    .unwrap()
                    .status();
                (n % 3, status.as_u16())
            }));
        }
        for task in tasks {
            let (kind, status) = task.await.unwrap();
            assert_eq!(status, if kind == 0 { 200 } else { 404 }, "add kind {kind}");
        }
        let cart = app.get_json(&format!("/cart/{cart}")).await;
        assert_eq!(
            cart["items"],
            json!([{"id": live, "name": "live", "quantity": 20, "available": true}])
        );
    }
}
