//! A storefront on another origin, in headless Chromium: a page served by
//! a tiny static server on a second port calls shopd with `fetch` and
//! opens its chat. With the page's origin listed in `cors_allowed_origins`
//! the browser lets every call through; with it not listed, the browser
//! blocks them and shopd refuses the chat (403 before the upgrade).

use std::net::SocketAddr;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::browser::Driver;
use crate::exposition::scrape;
use crate::helpers::spawn_app_with;

const PAGE: &str = "<!doctype html><html><head><title>storefront</title></head>\
<body><p>a storefront</p></body></html>";

/// Serves [`PAGE`] for every request until the test ends; its address.
async fn static_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{PAGE}",
                    PAGE.len()
                );
                let _ = stream.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

/// Runs in the page: calls shopd at `arguments[0]` (item id
/// `arguments[1]`) and leaves each outcome, a status or `blocked`, in
/// `window.outcome`.
const CALLS: &str = r"
const [base, id] = arguments;
window.outcome = {};
const settle = (name, promise) => promise
    .then(r => { window.outcome[name] = r.status; })
    .catch(() => { window.outcome[name] = 'blocked'; });
settle('get', fetch(base + '/item'));
settle('post', fetch(base + '/cart', {method: 'POST'}));
settle('patch', fetch(base + '/item/' + id, {
    method: 'PATCH',
    headers: {'Content-Type': 'application/json'},
    body: JSON.stringify({price: 9.5}),
}));
const ws = new WebSocket(base.replace('http', 'ws') + '/chat/lobby');
ws.onopen = () => { window.outcome.chat = 'open'; ws.close(); };
ws.onerror = () => { if (!window.outcome.chat) window.outcome.chat = 'refused'; };
";

#[tokio::test]
async fn a_page_of_a_listed_origin_calls_the_api_and_chats_and_an_unlisted_one_is_blocked() {
    let test = "a_page_of_a_listed_origin_calls_the_api_and_chats_and_an_unlisted_one_is_blocked";
    let Some(mut driver) = Driver::start(test).await else {
        return;
    };
    let storefront = static_server().await;
    let origin = format!("http://{storefront}");
    let listing = origin.clone();
    let listed =
        spawn_app_with(move |s| s.server.cors_allowed_origins = listing.parse().unwrap()).await;
    let unlisted = spawn_app_with(|s| {
        s.server.cors_allowed_origins = "https://elsewhere.example".parse().unwrap();
    })
    .await;
    let page = driver.session(640, 480).await;
    page.goto(&format!("{origin}/")).await;

    let mut outcomes = Vec::new();
    for app in [&listed, &unlisted] {
        let id = app.create_item("Tea", 2.5).await["id"].clone();
        page.run(CALLS, json!([format!("http://{}", app.addr), id]))
            .await;
        page.wait_until(
            "every call to settle",
            "const o = window.outcome; return ['get', 'post', 'patch', 'chat'].every(k => k in o);",
            json!([]),
        )
        .await;
        outcomes.push(page.run("return window.outcome;", json!([])).await);
    }
    assert_eq!(
        outcomes[0],
        json!({"get": 200, "post": 201, "patch": 200, "chat": "open"}),
        "from the listed origin"
    );
    assert_eq!(
        outcomes[1],
        json!({"get": "blocked", "post": "blocked", "patch": "blocked", "chat": "refused"}),
        "from an unlisted origin"
    );
    // The patch from the unlisted page never ran: its preflight failed.
    let item: Value = unlisted.get_json("/item/1").await;
    assert_eq!(item["price"], 2.5);
    // The chat was refused by shopd (403), not lost on the way.
    let refusals = |metrics: crate::exposition::Exposition| {
        metrics.value("shopd_rejected_total", &[("reason", "chat_origin")])
    };
    assert_eq!(refusals(scrape(&unlisted).await), Some(1.0));
    assert_eq!(refusals(scrape(&listed).await), Some(0.0));
    page.quit().await;
}
