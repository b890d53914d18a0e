//! CORS: a listed origin's preflights are answered for every route and
//! method of the table, and its requests carry the `Access-Control-*`
//! headers; an unlisted origin gets none; with no list shopd answers as
//! before.

use reqwest::{Method, Response};
use serde_json::Value;

use crate::exposition::scrape;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

const SHOP: &str = "http://shop.example:3000";

async fn with_cors() -> TestApp {
    spawn_app_with(|settings| {
        settings.server.cors_allowed_origins =
            format!("{SHOP}, https://other.example").parse().unwrap();
    })
    .await
}

async fn preflight(app: &TestApp, path: &str, method: &str, origin: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("Origin", origin)
        .header("Access-Control-Request-Method", method)
        .header(
            "Access-Control-Request-Headers",
            "content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .map_or("", |value| value.to_str().unwrap())
}

/// Every (path, method) of the API document, with `{param}`s filled in.
async fn operations(app: &TestApp) -> Vec<(String, String, String)> {
    let document: Value = app.get_json("/openapi.json").await;
    let mut found = Vec::new();
    for (template, item) in document["paths"].as_object().unwrap() {
        let path = template
            .split('/')
            .map(|part| if part.starts_with('{') { "1" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for method in item.as_object().unwrap().keys() {
            found.push((template.clone(), path.clone(), method.to_ascii_uppercase()));
        }
    }
    assert!(found.len() >= 10, "{found:?}");
    found
}

#[tokio::test]
async fn a_listed_origin_gets_a_preflight_answer_for_every_route_and_method() {
    let app = with_cors().await;
    for (template, path, method) in operations(&app).await {
        let response = preflight(&app, &path, &method, SHOP).await;
        let what = format!("OPTIONS {path} for {method}");
        assert_eq!(response.status(), 204, "{what}");
        assert_eq!(
            header(&response, "access-control-allow-origin"),
            SHOP,
            "{what}"
        );
        let methods = header(&response, "access-control-allow-methods");
        assert!(
            methods.split(", ").any(|m| m == method),
            "{what}: {methods}"
        );
        let allowed = header(&response, "access-control-allow-headers").to_ascii_lowercase();
        for name in [
            "content-type",
            "authorization",
            "idempotency-key",
            "if-match",
            "if-none-match",
        ] {
            assert!(allowed.contains(name), "{what}: {allowed}");
        }
        let exposed = header(&response, "access-control-expose-headers");
        for name in ["Location", "ETag", "Idempotent-Replayed", "Retry-After"] {
            assert!(exposed.contains(name), "{what}: {exposed}");
        }
        assert!(header(&response, "vary").contains("Origin"), "{what}");
        assert!(!template.is_empty());
    }
    let metrics = scrape(&app).await;
    let preflights = metrics.value(
        "http_requests_total",
        &[
            ("handler", "/item/{id}"),
            ("method", "OPTIONS"),
            ("status", "2xx"),
        ],
    );
    // GET, PUT, PATCH and DELETE of /item/{id}: counted under its route.
    assert_eq!(preflights, Some(4.0), "{}", metrics.text);
}

#[tokio::test]
async fn a_listed_origin_reads_answers_and_an_unlisted_one_gets_no_cors_headers() {
    let app = with_cors().await;
    let created = app
        .client
        .post(app.url("/cart"))
        .header("Origin", SHOP)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    assert_eq!(header(&created, "access-control-allow-origin"), SHOP);
    assert!(header(&created, "access-control-expose-headers").contains("Location"));
    assert!(header(&created, "vary").contains("Origin"));
    let missing = app
        .client
        .get(app.url("/item/999"))
        .header("Origin", "https://OTHER.example")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        header(&missing, "access-control-allow-origin"),
        "https://OTHER.example"
    );

    let stranger = "https://evil.example";
    let response = preflight(&app, "/item", "POST", stranger).await;
    assert_eq!(
        response.status(),
        405,
        "an unlisted origin's preflight is not answered"
    );
    let response_headers = format!("{:?}", response.headers()).to_ascii_lowercase();
    assert!(
        !response_headers.contains("access-control-"),
        "{response_headers}"
    );
    let listed = app
        .client
        .get(app.url("/item"))
        .header("Origin", stranger)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let response_headers = format!("{:?}", listed.headers()).to_ascii_lowercase();
    assert!(
        !response_headers.contains("access-control-"),
        "{response_headers}"
    );
}

#[tokio::test]
async fn without_a_list_shopd_sends_no_cors_headers_and_options_stays_405() {
    let app = spawn_app().await;
    let response = preflight(&app, "/item", "GET", SHOP).await;
    assert_eq!(response.status(), 405);
    assert_eq!(header(&response, "allow"), "GET, POST");
    let response = app
        .client
        .get(app.url("/item"))
        .header("Origin", SHOP)
        .send()
        .await
        .unwrap();
    let response_headers = format!("{:?}", response.headers()).to_ascii_lowercase();
    assert!(
        !response_headers.contains("access-control-"),
        "{response_headers}"
    );
    assert!(!response_headers.contains("vary"), "{response_headers}");
}

/// The status of a chat upgrade to `room` carrying `origin`, and the
/// body of a refusal.
async fn chat_upgrade(app: &TestApp, origin: Option<&str>) -> (u16, String) {
    use tokio_tungstenite::tungstenite::Error;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/chat/lobby", app.addr)
        .into_client_request()
        .unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_socket, response)) => (response.status().as_u16(), String::new()),
        Err(Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (response.status().as_u16(), String::from_utf8(body).unwrap())
        }
        Err(err) => panic!("chat upgrade: {err}"),
    }
}

#[tokio::test]
async fn a_chat_opens_from_its_own_a_listed_or_no_origin_and_is_refused_from_others() {
    let app = spawn_app_with(|settings| {
        settings.server.cors_allowed_origins = format!("{SHOP}, *").parse().unwrap();
    })
    .await;
    let own = format!("https://{}", app.addr);
    for allowed in [None, Some(SHOP), Some(own.as_str())] {
        assert_eq!(chat_upgrade(&app, allowed).await.0, 101, "{allowed:?}");
    }
    let (status, body) = chat_upgrade(&app, Some("https://evil.example")).await;
    assert_eq!(status, 403, "the CORS list's * does not open chats");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("origin"),
        "{body}"
    );
    let metrics = scrape(&app).await;
    assert_eq!(
        metrics.value("shopd_rejected_total", &[("reason", "chat_origin")]),
        Some(1.0)
    );

    let open = spawn_app_with(|settings| {
        settings.chat.allowed_origins = Some("*".parse().unwrap());
    })
    .await;
    assert_eq!(
        chat_upgrade(&open, Some("https://evil.example")).await.0,
        101
    );
}
