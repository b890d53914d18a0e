//! Bad input of every kind gets the contract's error and changes nothing;
//! nothing a client sends crashes shopd or yields a 5xx.

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::helpers::{TestApp, backend_tests, detail, issues, spawn_app, spawn_app_with};
use crate::raw::{exchange, read_until_closed, within};

async fn item_count(app: &TestApp) -> usize {
    app.get_json("/item?show_deleted=true&limit=1000")
        .await
        .as_array()
        .unwrap()
        .len()
}

backend_tests! {
    async fn invalid_item_bodies_are_422_and_store_nothing(backend) {
        let app = backend.spawn().await;
        type Case = (&'static [u8], Vec<(&'static str, &'static str)>);
        let cases: Vec<Case> = vec![
            (
                b"{\"name\": \"a\", \"price\": ",
                vec![("body.23", "json_invalid")],
            ),
            (b"not json", vec![("body.0", "json_invalid")]),
            (b"", vec![("body", "missing")]),
            (b"[]", vec![("body", "model_attributes_type")]),
            (
                b"{\"name\": 5, \"price\": \"1\"}",
                vec![("body.name", "string_type"), ("body.price", "float_type")],
            ),
            (
                b"{\"name\": \"a\", \"price\": true}",
                vec![("body.price", "float_type")],
            ),
            (
                b"{\"name\": \"a\", \"price\": null}",
                vec![("body.price", "float_type")],
            ),
            (
                b"{\"name\": \"\", \"price\": -0.01}",
                vec![
                    ("body.name", "string_too_short"),
                    ("body.price", "greater_than_equal"),
                ],
            ),
            (
                b"{\"name\": \"a\", \"price\": 1, \"deleted\": false}",
                vec![("body.deleted", "extra_forbidden")],
            ),
            (b"{\"price\": 1}", vec![("body.name", "missing")]),
            (
                b"{\"name\": \"a\", \"price\": NaN}",
                vec![("body.23", "json_invalid")],
            ),
            (
                b"{\"name\": \"a\", \"price\": 1e999}",
                vec![("body.28", "json_invalid")],
            ),
            (b"\xff\xfe garbage", vec![("body.0", "json_invalid")]),
        ];
        for (body, expected) in cases {
            let response = app.send_raw(Method::POST, "/item", body.to_vec()).await;
            let expected: Vec<(String, String)> = expected
                .into_iter()
                .map(|(l, t)| (l.to_owned(), t.to_owned()))
                .collect();
            let found = issues(response).await;
            // Byte offsets of JSON errors are informative; compare their kind and root only.
            let simplify = |v: Vec<(String, String)>| -> Vec<(String, String)> {
                v.into_iter()
                    .map(|(l, t)| {
                        if t == "json_invalid" {
                            ("body.N".to_owned(), t)
                        } else {
                            (l, t)
                        }
                    })
                    .collect()
            };
            assert_eq!(
                simplify(found),
                simplify(expected),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(item_count(&app).await, 0);
    }
}

#[tokio::test]
async fn bodies_are_json_whatever_the_content_type() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(app.url("/item"))
        .header("content-type", "text/plain")
        .body(r#"{"name": "plain", "price": 1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
}

backend_tests! {
    async fn oversized_bodies_are_413_and_store_nothing(backend) {
        let app = backend.spawn_with(|s| s.limits.max_body_bytes = std::num::NonZero::new(1024).unwrap()).await;
        let name = "x".repeat(2000);
        let response = app
            .send_json(Method::POST, "/item", &json!({"name": name, "price": 1}))
            .await;
        assert!(detail(response, 413).await.contains("1024"));
        // Without a Content-Length (chunked), the limit holds while reading.
        let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
            (0..10).map(|_| Ok(vec![b' '; 200])).collect();
        let response = app
            .client
            .post(app.url("/item"))
            .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                chunks,
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 413);
        let id = app.create_item("small", 1.0).await["id"].clone();
        let response = app
            .send_json(
                Method::PUT,
                &format!("/item/{id}"),
                &json!({"name": name, "price": 2}),
            )
            .await;
        assert_eq!(response.status(), 413);
        assert_eq!(item_count(&app).await, 1);
        assert_eq!(app.get_json(&format!("/item/{id}")).await["name"], "small");
    }
}

#[tokio::test]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let app = spawn_app().await;
    assert_eq!(detail(app.get("/nope").await, 404).await, "Not Found");
    assert_eq!(detail(app.post("/nope/1").await, 404).await, "Not Found");
    assert_eq!(
        detail(app.get("/item/1/extra").await, 404).await,
        "Not Found"
    );
    assert_eq!(
        detail(app.post("/item/1").await, 405).await,
        "Method Not Allowed"
    );
    assert_eq!(
        detail(
            app.client.delete(app.url("/cart")).send().await.unwrap(),
            405
        )
        .await,
        "Method Not Allowed"
    );
    assert_eq!(
        detail(app.get("/cart/1/add/1").await, 405).await,
        "Method Not Allowed"
    );
}

#[tokio::test]
async fn garbage_on_the_socket_is_refused_and_the_server_goes_on() {
    let app = spawn_app().await;
    let reply = exchange(app.addr, b"\x00\x01\x02GARBAGE\r\n\r\n").await;
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );
    let reply = exchange(
        app.addr,
        b"GET /item HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n",
    )
    .await;
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    let reply = exchange(
        app.addr,
        b"GET /item/\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!reply.starts_with("HTTP/1.1 5"), "{reply}");
    app.create_item("still fine", 1.0).await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let app =
        spawn_app_with(|s| s.server.header_read_timeout = std::time::Duration::from_secs(1)).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"GET /item HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    // The guard is generous; the server closes after about one second.
    within(
        "the half-open connection closed",
        read_until_closed(&mut stream),
    )
    .await;
    app.create_item("others are served", 1.0).await;
}

backend_tests! {
    async fn weird_but_valid_ids_and_queries_never_yield_5xx(backend) {
        let app = backend.spawn().await;
        app.create_item("a", 1.0).await;
        let paths = [
            "/item/%31",
            "/item/+1",
            "/item/-1",
            "/item/18446744073709551615",
            "/item/18446744073709551616",
            "/item/%E2%9C%93",
            "/item?limit=99999999999999999999999&offset=99999999999999999999",
            "/item?min_price=inf&max_price=1e308",
            "/item?min_price=nan",
            "/item?limit=%ZZ",
            "/cart?min_quantity=18446744073709551616",
            "/cart/%00",
        ];
        for path in paths {
            let response = app.get(path).await;
            assert!(
                response.status().as_u16() < 500,
                "{path}: {}",
                response.status()
            );
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert!(!body.is_null(), "{path} answers JSON");
        }
        assert_eq!(app.get_json("/item/%31").await["id"], 1);
    }
}
