//! ETags and conditional requests: `If-None-Match` (304) on item and cart
//! reads, `If-Match` (412) on item writes, checked atomically with them.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{backend_tests, detail};
use crate::support::TestApp;

/// The `ETag` header of a reply (it must have one).
fn etag(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("etag")
        .expect("an ETag")
        .to_str()
        .expect("ASCII ETag")
        .to_owned()
}

/// The current ETag of `path`, read with a plain GET.
async fn current(app: &TestApp, path: &str) -> String {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    etag(&response)
}

/// A request with one header and an optional JSON body.
async fn send(
    app: &TestApp,
    method: Method,
    path: &str,
    header: (&str, &str),
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = app
        .client
        .request(method, app.url(path))
        .header(header.0, header.1);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request")
}

backend_tests! {
    async fn items_carry_a_strong_stable_etag_that_changes_with_every_change(backend) {
        let app = backend.spawn().await;
        let created = app
            .send_json(Method::POST, "/item", &json!({"name": "Tea", "price": 2.5}))
            .await;
        assert_eq!(created.status(), 201);
        let first = etag(&created);
        assert!(first.starts_with('"') && first.ends_with('"'), "strong: {first}");
        assert_eq!(current(&app, "/item/1").await, first);
        assert_eq!(current(&app, "/item/1").await, first, "stable across reads");

        let mut seen = vec![first];
        let changes = [
            (Method::PUT, Some(json!({"name": "Tea", "price": 3.0}))),
            (Method::PATCH, Some(json!({"name": "Green tea"}))),
            (Method::PATCH, Some(json!({"price": 3.5}))),
            (Method::DELETE, None),
        ];
        for (method, body) in changes {
            let mut request = app.client.request(method.clone(), app.url("/item/1"));
            if let Some(body) = &body {
                request = request.json(body);
            }
            let response = request.send().await.expect("write");
            assert_eq!(response.status(), 200, "{method}");
            let tag = etag(&response);
            assert!(!seen.contains(&tag), "{method} changed the item, not its ETag");
            seen.push(tag);
        }
        // The same representation, the same tag: another item with the same
        // content but another id differs; a no-op PATCH keeps the tag.
        app.create_item("Tea", 2.5).await;
        let second = current(&app, "/item/2").await;
        assert!(!seen.contains(&second));
        let response = app.send_json(Method::PATCH, "/item/2", &json!({})).await;
        assert_eq!(etag(&response), second);
    }
}

backend_tests! {
    async fn if_none_match_with_the_current_item_tag_is_304(backend) {
        let app = backend.spawn().await;
        app.create_item("Tea", 2.5).await;
        let tag = current(&app, "/item/1").await;

        let response = send(&app, Method::GET, "/item/1", ("if-none-match", &tag), None).await;
        assert_eq!(response.status(), 304);
        assert_eq!(etag(&response), tag);
        assert!(response.bytes().await.unwrap().is_empty());

        let weak_in_list = format!("\"other\", W/{tag}");
        let response =
            send(&app, Method::GET, "/item/1", ("if-none-match", &weak_in_list), None).await;
        assert_eq!(response.status(), 304, "compared weakly, in a list");
        let response = send(&app, Method::GET, "/item/1", ("if-none-match", "*"), None).await;
        assert_eq!(response.status(), 304);

        let response =
            send(&app, Method::GET, "/item/1", ("if-none-match", "\"stale\""), None).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.json::<Value>().await.unwrap()["name"], "Tea");

        app.send_json(Method::PATCH, "/item/1", &json!({"price": 3.0})).await;
        let response = send(&app, Method::GET, "/item/1", ("if-none-match", &tag), None).await;
        assert_eq!(response.status(), 200, "the item changed");
        assert_ne!(etag(&response), tag);

        // A deleted item is still 404, whatever the precondition.
        app.delete("/item/1").await;
        let response = send(&app, Method::GET, "/item/1", ("if-none-match", "*"), None).await;
        assert_eq!(response.status(), 404);
    }
}

backend_tests! {
    async fn a_cart_etag_changes_with_its_lines_and_its_items(backend) {
        let app = backend.spawn().await;
        app.create_item("Tea", 2.5).await;
        let cart = app.create_cart().await;
        let path = format!("/cart/{cart}");
        let empty = current(&app, &path).await;
        let response = send(&app, Method::GET, &path, ("if-none-match", &empty), None).await;
        assert_eq!(response.status(), 304);
        assert!(response.bytes().await.unwrap().is_empty());

        app.add(cart, 1).await;
        let one = current(&app, &path).await;
        assert_ne!(one, empty, "a new line");
        assert_eq!(current(&app, &path).await, one, "stable across reads");

        app.send_json(Method::PATCH, "/item/1", &json!({"price": 4.0})).await;
        let repriced = current(&app, &path).await;
        assert_ne!(repriced, one, "the item's price changed");
        let response = send(&app, Method::GET, &path, ("if-none-match", &one), None).await;
        assert_eq!(response.status(), 200);

        app.send_json(Method::PATCH, "/item/1", &json!({"name": "Black tea"})).await;
        let renamed = current(&app, &path).await;
        assert_ne!(renamed, repriced, "the item's name changed");

        app.delete("/item/1").await;
        let unavailable = current(&app, &path).await;
        assert_ne!(unavailable, renamed, "the item became unavailable");
        let response = send(&app, Method::GET, &path, ("if-none-match", &unavailable), None).await;
        assert_eq!(response.status(), 304);
    }
}

backend_tests! {
    async fn a_stale_if_match_is_412_and_changes_nothing(backend) {
        let app = backend.spawn().await;
        app.create_item("Tea", 2.5).await;
        let old = current(&app, "/item/1").await;
        app.send_json(Method::PATCH, "/item/1", &json!({"price": 3.0})).await;
        let now = app.get_json("/item/1").await;
        let tag = current(&app, "/item/1").await;

        let writes = [
            (Method::PUT, Some(json!({"name": "Coffee", "price": 9.0}))),
            (Method::PATCH, Some(json!({"name": "Coffee"}))),
            (Method::DELETE, None),
        ];
        for (method, body) in &writes {
            let response =
                send(&app, method.clone(), "/item/1", ("if-match", &old), body.as_ref()).await;
            assert!(detail(response, 412).await.contains("Item 1"), "{method}");
            // A weak tag never matches If-Match, even the current one.
            let weak = format!("W/{tag}");
            let response =
                send(&app, method.clone(), "/item/1", ("if-match", &weak), body.as_ref()).await;
            assert_eq!(response.status(), 412, "{method} with a weak tag");
        }
        assert_eq!(app.get_json("/item/1").await, now);
        assert_eq!(current(&app, "/item/1").await, tag);

        // Order of checks: the request's own 422, then 404, then 412.
        let response =
            send(&app, Method::PATCH, "/item/1", ("if-match", &old), Some(&json!({"price": -1})))
                .await;
        assert_eq!(response.status(), 422);
        let response = send(&app, Method::DELETE, "/item/9", ("if-match", &old), None).await;
        assert_eq!(response.status(), 404);

        // The current tag, in a list, is accepted.
        let list = format!("\"other\", {tag}");
        let response = send(
            &app,
            Method::PUT,
            "/item/1",
            ("if-match", &list),
            Some(&json!({"name": "Coffee", "price": 9.0})),
        )
        .await;
        assert_eq!(response.status(), 200);
        assert_eq!(app.get_json("/item/1").await["name"], "Coffee");
    }
}

backend_tests! {
    async fn if_match_star_accepts_any_existing_item_and_a_deleted_one_is_then_304(backend) {
        let app = backend.spawn().await;
        app.create_item("Tea", 2.5).await;
        let response = send(
            &app,
            Method::PATCH,
            "/item/1",
            ("if-match", "*"),
            Some(&json!({"price": 1.0})),
        )
        .await;
        assert_eq!(response.status(), 200);
        let response = send(&app, Method::PUT, "/item/7", ("if-match", "*"),
            Some(&json!({"name": "x", "price": 1.0}))).await;
        assert_eq!(response.status(), 404);

        let response = send(&app, Method::DELETE, "/item/1", ("if-match", "*"), None).await;
        assert_eq!(response.status(), 200);
        let deleted = etag(&response);
        // Deleted: a matching precondition reaches the 304; a stale one is 412.
        let response = send(&app, Method::PATCH, "/item/1", ("if-match", &deleted),
            Some(&json!({"price": 2.0}))).await;
        assert_eq!(response.status(), 304);
        let response = send(&app, Method::PATCH, "/item/1", ("if-match", "\"stale\""),
            Some(&json!({"price": 2.0}))).await;
        assert_eq!(response.status(), 412);
        let response = send(&app, Method::DELETE, "/item/1", ("if-match", &deleted), None).await;
        assert_eq!(response.status(), 200, "deleting again is still 200");
    }
}

backend_tests! {
    async fn writers_with_the_same_if_match_never_both_win(backend) {
        let app = backend.spawn().await;
        app.create_item("Tea", 1.0).await;
        for round in 0..50 {
            let tag = current(&app, "/item/1").await;
            let writers = (0..6).map(|writer| {
                let name = format!("w{writer}-{round}");
                let request = app
                    .client
                    .put(app.url("/item/1"))
                    .header("if-match", tag.clone())
                    .json(&json!({"name": name, "price": f64::from(round)}));
                async move {
                    let response = request.send().await.expect("PUT");
                    (response.status().as_u16(), name)
                }
            });
            let answers = futures_util::future::join_all(writers).await;
            let winners: Vec<_> = answers.iter().filter(|(status, _)| *status == 200).collect();
            assert_eq!(winners.len(), 1, "round {round}: {answers:?}");
            assert!(
                answers.iter().all(|(status, _)| *status == 200 || *status == 412),
                "round {round}: {answers:?}"
            );
            assert_eq!(
                app.get_json("/item/1").await["name"],
                winners[0].1.as_str(),
                "round {round}"
            );
        }
    }
}
