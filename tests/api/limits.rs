//! Every resource a client can make shopd hold is bounded: a request's time,
//! an idle connection's time, a response nobody reads, list sizes, name
//! lengths and cart lines. Past a bound a client gets a 4xx with `detail`
//! (or its connection closed), and everyone else is still served.

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{TestApp, backend_tests, detail, issues, spawn_app, spawn_app_with};
use crate::raw::{exchange, read_until_closed, within};

/// The status and the JSON body of a raw HTTP/1.1 reply.
fn status_and_body(reply: &str) -> (u16, Value) {
    let status = reply
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"));
    let (head, body) = reply.split_once("\r\n\r\n").expect("a head and a body");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{head}"
    );
    let body = serde_json::from_str(body).unwrap_or_else(|_| panic!("JSON body in {reply:?}"));
    (status, body)
}

/// A connection that asked `GET /healthz`, got its whole answer (200) and
/// stays open.
async fn served_and_kept(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut reply = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before answering");
        reply.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&reply).to_ascii_lowercase();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|n| n.trim().parse::<usize>().ok())
                .expect("content-length");
            if body.len() >= length {
                assert!(head.starts_with("http/1.1 200"), "{head}");
                return stream;
            }
        }
    }
}

/// `http_requests_total` for unmatched requests (`handler="none"`) with a 4xx.
async fn unmatched_4xx(app: &TestApp) -> f64 {
    crate::exposition::scrape(app)
        .await
        .matching(
            "http_requests_total",
            &[("handler", "none"), ("status", "4xx")],
        )
        .map(|sample| sample.value)
        .sum()
}

#[tokio::test]
async fn a_body_that_never_comes_gets_408_and_frees_its_slot() {
    let app = spawn_app_with(|s| {
        s.server.max_connections = std::num::NonZero::new(2).unwrap();
        s.server.request_timeout = std::time::Duration::from_secs(1);
    })
    .await;
    let silent = b"POST /item HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n";
    let mut first = TcpStream::connect(app.addr).await.unwrap();
    let mut second = TcpStream::connect(app.addr).await.unwrap();
    first.write_all(silent).await.unwrap();
    second.write_all(silent).await.unwrap();
    // Both slots are taken; a third client is served once one is freed.
    let served = within("a third client", app.get("/healthz")).await;
    assert_eq!(served.status(), 200);
    for stream in [&mut first, &mut second] {
        let reply = within("the 408", read_until_closed(stream)).await;
        let (status, body) = status_and_body(&String::from_utf8_lossy(&reply));
        assert_eq!(status, 408);
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    app.create_item("nothing was stored from the silent bodies", 1.0)
        .await;
    let items = app.get_json("/item").await;
    assert_eq!(items.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_response_nobody_reads_is_dropped_and_frees_its_slot() {
    let app = spawn_app_with(|s| {
        s.server.max_connections = std::num::NonZero::new(2).unwrap();
        s.server.write_timeout = std::time::Duration::from_secs(1);
        s.limits.max_name_chars = std::num::NonZero::new(100_000).unwrap();
    })
    .await;
    // 60 items of 100 kB: a 6 MB list, more than the socket buffers hold.
    // Created over connections that close at once, so no slot stays taken.
    let once = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let name = "n".repeat(100_000);
    for _ in 0..60 {
        let created = once
            .post(app.url("/item"))
            .json(&json!({"name": name, "price": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), 201);
    }
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        let mut stream = socket.connect(app.addr).await.unwrap();
        stream
            .write_all(b"GET /item?limit=100 HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        stalled.push(stream);
    }
    // Two more clients, each keeping its connection: both are served only
    // once both stalled connections are gone.
    let _third = within("a third client", served_and_kept(app.addr)).await;
    let _fourth = within("a fourth client", served_and_kept(app.addr)).await;
    for mut stream in stalled {
        // What arrives is cut short: the server gave up on the response.
        // (A wider window first, so the bytes already sent drain quickly.)
        let _ = socket2::SockRef::from(&stream).set_recv_buffer_size(1 << 20);
        let reply = within("the close", read_until_closed(&mut stream)).await;
        assert!(reply.len() < 6_000_000, "{} bytes arrived", reply.len());
    }
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_and_frees_its_slot() {
    let app = spawn_app_with(|s| {
        s.server.max_connections = std::num::NonZero::new(1).unwrap();
        s.server.idle_timeout = std::time::Duration::from_secs(1);
        // Only the idle bound may close it.
        s.server.header_read_timeout = std::time::Duration::from_secs(3600);
        s.server.request_timeout = std::time::Duration::from_secs(3600);
    })
    .await;
    let mut idle = TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // The reply comes, then nothing more is asked: the server closes.
    let reply = within("the reply and the close", read_until_closed(&mut idle)).await;
    assert!(String::from_utf8_lossy(&reply).starts_with("HTTP/1.1 200"));
    let served = within("another client", app.get("/healthz")).await;
    assert_eq!(served.status(), 200);
}

#[tokio::test]
async fn errors_before_routing_have_a_json_detail_and_are_counted() {
    let app = spawn_app().await;
    let long_uri = format!(
        "GET /item?q={} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(70_000)
    );
    let many_headers: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let many_headers = format!("GET /item HTTP/1.1\r\nHost: x\r\n{many_headers}\r\n");
    let cases: Vec<(Vec<u8>, u16)> = vec![
        (b"GET http://[::1 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        (b"GET /it\x7fem HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 400),
        (
            b"POST /item HTTP/1.1\r\nHost: x\r\nContent-Length: banana\r\n\r\n".to_vec(),
            400,
        ),
        (long_uri.into_bytes(), 414),
        (many_headers.into_bytes(), 431),
    ];
    let before = unmatched_4xx(&app).await;
    for (request, expected) in &cases {
        let reply = exchange(app.addr, request).await;
        let (status, body) = status_and_body(&reply);
        assert_eq!(status, *expected, "{reply}");
        assert!(
            body["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{reply}"
        );
    }
    let after = unmatched_4xx(&app).await;
    assert_eq!(after - before, cases.len() as f64);
    app.create_item("still serving", 1.0).await;
}

#[tokio::test]
async fn a_list_limit_over_the_maximum_is_422_like_pydantic() {
    let app = spawn_app().await;
    for path in ["/item?limit=1001", "/cart?limit=1000000000"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 422, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["detail"],
            json!([{
                "loc": ["query", "limit"],
                "msg": "Input should be less than or equal to 1000",
                "type": "less_than_equal",
            }]),
            "{path}"
        );
    }
    assert_eq!(app.get("/item?limit=1000").await.status(), 200);
}

backend_tests! {
    async fn names_longer_than_the_maximum_are_422_counted_in_characters(backend) {
        let app = backend.spawn_with(|s| s.limits.max_name_chars = std::num::NonZero::new(8).unwrap()).await;
        // Eight characters of two bytes each fit.
        let item = app.create_item("éééééééé", 1.0).await;
        let id = item["id"].as_u64().unwrap();
        let long = json!({"name": "ninechars", "price": 1});
        for (method, path) in [
            (reqwest::Method::POST, "/item".to_owned()),
            (reqwest::Method::PUT, format!("/item/{id}")),
            (reqwest::Method::PATCH, format!("/item/{id}")),
        ] {
            let response = app.send_json(method, &path, &long).await;
            assert_eq!(
                issues(response).await,
                vec![("body.name".to_owned(), "string_too_long".to_owned())],
                "{path}"
            );
        }
        assert_eq!(
            app.get_json(&format!("/item/{id}")).await["name"],
            "éééééééé"
        );
    }
}

backend_tests! {
    async fn a_cart_full_of_lines_refuses_a_new_item_with_409_but_counts_old_ones(backend) {
        let app = backend.spawn_with(|s| s.limits.max_cart_lines = std::num::NonZero::new(2).unwrap()).await;
        let cart = app.create_cart().await;
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            ids.push(app.create_item(name, 1.0).await["id"].as_u64().unwrap());
        }
        app.add(cart, ids[0]).await;
        app.add(cart, ids[1]).await;
        let refused = app.post(&format!("/cart/{cart}/add/{}", ids[2])).await;
        let sentence = detail(refused, 409).await;
        assert!(
            sentence.contains(&cart.to_string()) && sentence.contains('2'),
            "{sentence}"
        );
        let again = app.add(cart, ids[0]).await;
        assert_eq!(again["items"][0]["quantity"], 2);
        assert_eq!(again["items"].as_array().unwrap().len(), 2);
    }
}

#[tokio::test]
async fn the_document_states_the_configured_bounds() {
    let app = spawn_app_with(|s| {
        s.limits.max_list_limit = std::num::NonZero::new(7).unwrap();
        s.limits.max_name_chars = std::num::NonZero::new(9).unwrap();
    })
    .await;
    let doc: Value = app.get("/openapi.json").await.json().await.unwrap();
    for path in ["/item", "/cart"] {
        let limit = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap();
        assert_eq!(limit["schema"]["maximum"], 7, "{path}");
    }
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["NewItem"]["properties"]["name"]["maxLength"], 9);
    assert_eq!(schemas["ItemPatch"]["properties"]["name"]["maxLength"], 9);
    let add = &doc["paths"]["/cart/{cart_id}/add/{item_id}"]["post"];
    assert!(add["responses"].get("409").is_some());
    let overview = doc["info"]["description"].as_str().unwrap();
    assert!(overview.contains("max_list_limit"), "{overview}");
}
