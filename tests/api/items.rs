//! The `/item` routes: every row of the contract's table, success and errors.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Backend, backend_tests, detail, issues};

backend_tests! {
    async fn creating_an_item_returns_it_with_a_location(backend) {
        let app = backend.spawn().await;
        let response = app
            .send_json(
                Method::POST,
                "/item",
                &json!({"name": "Tea", "price": 0.1 + 0.2}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        let item: Value = response.json().await.unwrap();
        assert_eq!(
            item,
            json!({"id": 1, "name": "Tea", "price": 0.1 + 0.2, "deleted": false})
        );
        assert_eq!(location, "/item/1");
        assert_eq!(app.get_json("/item/1").await, item);
    }
}

backend_tests! {
    async fn ids_are_distinct_and_increasing(backend) {
        let app = backend.spawn().await;
        let a = app.create_item("a", 1.0).await["id"].as_u64().unwrap();
        let b = app.create_item("b", 1.0).await["id"].as_u64().unwrap();
        assert!(a >= 1 && b > a);
    }
}

backend_tests! {
    async fn unicode_names_and_zero_prices_are_kept_exactly(backend) {
        let app = backend.spawn().await;
        let item = app.create_item("Чай 🍵 \"x\"", 0.0).await;
        let fetched = app.get_json(&format!("/item/{}", item["id"])).await;
        assert_eq!(fetched["name"], "Чай 🍵 \"x\"");
        assert_eq!(fetched["price"].as_f64(), Some(0.0));
    }
}

backend_tests! {
    async fn getting_an_unknown_or_deleted_item_is_404(backend) {
        let app = backend.spawn().await;
        assert_eq!(
            detail(app.get("/item/42").await, 404).await,
            "Item 42 not found"
        );
        assert_eq!(
            detail(app.get("/item/99999999999999999999999").await, 404).await,
            "Item 99999999999999999999999 not found"
        );
        assert_eq!(
            detail(app.get("/item/0").await, 404).await,
            "Item 0 not found"
        );
        let item = app.create_item("gone", 1.0).await;
        let path = format!("/item/{}", item["id"]);
        assert_eq!(
            app.delete(&path).await.status(),
            200
        );
        assert_eq!(app.get(&path).await.status(), 404);
    }
}

backend_tests! {
    async fn a_non_integer_item_id_is_422_on_every_item_route(backend) {
        let app = backend.spawn().await;
        for method in [Method::GET, Method::PUT, Method::PATCH, Method::DELETE] {
            let response = app
                .send_json(
                    method.clone(),
                    "/item/abc",
                    &json!({"name": "x", "price": 1}),
                )
                .await;
            assert_eq!(
                issues(response).await,
                [("path.id".to_owned(), "int_parsing".to_owned())],
                "{method}"
            );
        }
        let response = app.get("/item/1.5").await;
        assert_eq!(response.status(), 422);
    }
}

backend_tests! {
    async fn replacing_an_item_needs_both_fields(backend) {
        let app = backend.spawn().await;
        let id = app.create_item("old", 1.0).await["id"].clone();
        let path = format!("/item/{id}");
        let response = app
            .send_json(Method::PUT, &path, &json!({"name": "new", "price": 2.5}))
            .await;
        assert_eq!(response.status(), 200);
        let item: Value = response.json().await.unwrap();
        assert_eq!(
            item,
            json!({"id": id, "name": "new", "price": 2.5, "deleted": false})
        );
        assert_eq!(app.get_json(&path).await, item);

        let response = app
            .send_json(Method::PUT, &path, &json!({"name": "only"}))
            .await;
        assert_eq!(
            issues(response).await,
            [("body.price".to_owned(), "missing".to_owned())]
        );
        assert_eq!(
            app.get_json(&path).await,
            item,
            "a rejected PUT changes nothing"
        );
    }
}

backend_tests! {
    async fn put_and_patch_check_shape_then_existence_then_state(backend) {
        let app = backend.spawn().await;
        let id = app.create_item("x", 1.0).await["id"].as_u64().unwrap();
        assert_eq!(app.delete(&format!("/item/{id}")).await.status(), 200);
        for method in [Method::PUT, Method::PATCH] {
            // Invalid body: 422 wins over unknown (404) and deleted (304).
            let bad = json!({"name": "", "price": 1});
            let response = app.send_json(method.clone(), "/item/777", &bad).await;
            assert_eq!(response.status(), 422, "{method} unknown id, bad body");
            let response = app
                .send_json(method.clone(), &format!("/item/{id}"), &bad)
                .await;
            assert_eq!(response.status(), 422, "{method} deleted id, bad body");
            // Valid body: unknown is 404, deleted is 304 with no body.
            let good = json!({"name": "y", "price": 2});
            let response = app.send_json(method.clone(), "/item/777", &good).await;
            assert_eq!(detail(response, 404).await, "Item 777 not found");
            let response = app
                .send_json(method.clone(), &format!("/item/{id}"), &good)
                .await;
            assert_eq!(response.status(), 304, "{method} deleted item");
            assert!(response.bytes().await.unwrap().is_empty());
        }
        let all = app.get_json("/item?show_deleted=true").await;
        assert_eq!(all[0]["name"], "x", "a deleted item is never changed");
    }
}

backend_tests! {
    async fn patching_changes_only_the_given_fields(backend) {
        let app = backend.spawn().await;
        let id = app.create_item("pen", 3.0).await["id"].clone();
        let path = format!("/item/{id}");
        let patched: Value = app
            .send_json(Method::PATCH, &path, &json!({"price": 4.25}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            patched,
            json!({"id": id, "name": "pen", "price": 4.25, "deleted": false})
        );
        let patched: Value = app
            .send_json(Method::PATCH, &path, &json!({"name": "ink pen"}))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(patched["name"], "ink pen");
        assert_eq!(patched["price"], 4.25);
        let response = app.send_json(Method::PATCH, &path, &json!({})).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap(), patched);
    }
}

backend_tests! {
    async fn patching_deleted_or_unknown_fields_is_rejected(backend) {
        let app = backend.spawn().await;
        let id = app.create_item("pen", 3.0).await["id"].clone();
        let path = format!("/item/{id}");
        let response = app
            .send_json(Method::PATCH, &path, &json!({"deleted": true}))
            .await;
        assert_eq!(
            issues(response).await,
            [("body.deleted".to_owned(), "extra_forbidden".to_owned())]
        );
        let response = app
            .send_json(Method::PATCH, &path, &json!({"name": "x", "color": "red"}))
            .await;
        assert_eq!(
            issues(response).await,
            [("body.color".to_owned(), "extra_forbidden".to_owned())]
        );
        assert_eq!(app.get_json(&path).await["name"], "pen");
        assert_eq!(app.get_json(&path).await["deleted"], false);
    }
}

backend_tests! {
    async fn deleting_is_idempotent_and_unknown_items_are_404(backend) {
        let app = backend.spawn().await;
        let id = app.create_item("cup", 2.0).await["id"].clone();
        let path = format!("/item/{id}");
        for _ in 0..2 {
            let response = app.delete(&path).await;
            assert_eq!(response.status(), 200);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["deleted"], true);
        }
        let response = app.delete("/item/555").await;
        assert_eq!(detail(response, 404).await, "Item 555 not found");
    }
}

/// Items 1..=20 with price = id, every third (3, 6, ..., 18) deleted.
async fn seeded(backend: Backend) -> crate::helpers::TestApp {
    let app = backend.spawn().await;
    for i in 1..=20 {
        let id = app.create_item(&format!("item {i}"), f64::from(i)).await["id"]
            .as_u64()
            .unwrap();
        assert_eq!(id, u64::from(i as u32));
        if i % 3 == 0 {
            assert_eq!(app.delete(&format!("/item/{i}")).await.status(), 200);
        }
    }
    app
}

async fn ids(app: &crate::helpers::TestApp, query: &str) -> Vec<u64> {
    let list = app.get_json(&format!("/item{query}")).await;
    list.as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_u64().unwrap())
        .collect()
}

backend_tests! {
    async fn listing_items_filters_then_offsets_then_limits(backend) {
        let app = seeded(backend).await;
        assert_eq!(ids(&app, "").await, [1, 2, 4, 5, 7, 8, 10, 11, 13, 14]);
        assert_eq!(ids(&app, "?offset=10").await, [16, 17, 19, 20]);
        assert_eq!(ids(&app, "?offset=2&limit=3").await, [4, 5, 7]);
        assert_eq!(ids(&app, "?min_price=5&max_price=10").await, [5, 7, 8, 10]);
        assert_eq!(
            ids(&app, "?min_price=5&max_price=10&offset=1&limit=2").await,
            [7, 8]
        );
        assert_eq!(
            ids(&app, "?show_deleted=true&limit=100&min_price=15").await,
            [15, 16, 17, 18, 19, 20]
        );
        assert_eq!(ids(&app, "?show_deleted=True&limit=4").await, [1, 2, 3, 4]);
        assert_eq!(ids(&app, "?show_deleted=0&limit=4").await, [1, 2, 4, 5]);
        assert_eq!(ids(&app, "?max_price=0.5").await, Vec::<u64>::new());
        assert_eq!(ids(&app, "?offset=1000").await, Vec::<u64>::new());
        assert_eq!(ids(&app, "?limit=1&unknown=1").await, [1]);
        let listed = app.get_json("/item?limit=1").await;
        assert_eq!(
            listed,
            json!([{"id": 1, "name": "item 1", "price": 1.0, "deleted": false}])
        );
    }
}

backend_tests! {
    async fn bad_list_queries_are_422_with_one_entry_each(backend) {
        let app = seeded(backend).await;
        let cases = [
            ("?offset=-1", vec![("query.offset", "greater_than_equal")]),
            ("?limit=0", vec![("query.limit", "greater_than_equal")]),
            ("?limit=ten", vec![("query.limit", "int_parsing")]),
            (
                "?min_price=-0.5",
                vec![("query.min_price", "greater_than_equal")],
            ),
            (
                "?max_price=cheap",
                vec![("query.max_price", "float_parsing")],
            ),
            (
                "?show_deleted=perhaps",
                vec![("query.show_deleted", "bool_parsing")],
            ),
            (
                "?offset=x&limit=-2&min_price=y",
                vec![
                    ("query.offset", "int_parsing"),
                    ("query.limit", "greater_than_equal"),
                    ("query.min_price", "float_parsing"),
                ],
            ),
        ];
        for (query, expected) in cases {
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(l, t)| (l.to_owned(), t.to_owned()))
                .collect();
            assert_eq!(
                issues(app.get(&format!("/item{query}")).await).await,
                expected,
                "{query}"
            );
        }
    }
}
