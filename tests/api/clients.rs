//! Per-client limits over real sockets from two loopback addresses
//! (127.0.0.1 and 127.0.0.2): a connection cap per address that one client
//! fills without slowing the other, a request rate per client with 429 and
//! `Retry-After`, and the client's address from `X-Forwarded-For` only
//! when a trusted proxy sends it.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::exposition::{Exposition, scrape};
use crate::helpers::{TestApp, detail, spawn_app_with};
use crate::raw::within;
use crate::support::ws::join;

const FIRST: &str = "127.0.0.1";
const SECOND: &str = "127.0.0.2";

/// A connection to `addr` from the loopback address `from`.
async fn connect_from(from: &str, addr: SocketAddr, receive_buffer: Option<u32>) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    if let Some(bytes) = receive_buffer {
        socket.set_recv_buffer_size(bytes).unwrap();
    }
    socket
        .bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    socket.connect(addr).await.unwrap()
}

/// An HTTP client whose connections come from `from`.
fn client_from(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

/// Whether shopd closes `stream` without an answer to a request on it.
async fn closed_without_answer(stream: &mut TcpStream) -> bool {
    // The write may already fail if the close came first.
    let _ = stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut reply = [0u8; 256];
    match within("the close", stream.read(&mut reply)).await {
        Ok(n) => n == 0,
        Err(_) => true, // reset
    }
}

fn rejected(metrics: &Exposition, reason: &str) -> f64 {
    metrics
        .value("shopd_rejected_total", &[("reason", reason)])
        .unwrap_or(0.0)
}

#[tokio::test]
async fn one_address_at_its_connection_cap_is_closed_at_once_and_another_is_served() {
    let app = spawn_app_with(|s| {
        s.server.max_connections = std::num::NonZeroUsize::new(16).unwrap();
        s.server.max_connections_per_client = std::num::NonZeroUsize::new(3).unwrap();
    })
    .await;
    // The first client holds its cap three ways: a connection that says
    // nothing, one whose body never comes, one that does not read.
    let idle = connect_from(FIRST, app.addr, None).await;
    let mut silent_body = connect_from(FIRST, app.addr, None).await;
    silent_body
        .write_all(b"POST /item HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"na")
        .await
        .unwrap();
    let mut unread = connect_from(FIRST, app.addr, Some(4096)).await;
    let asks = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200);
    unread.write_all(&asks).await.unwrap();

    let mut fourth = connect_from(FIRST, app.addr, None).await;
    assert!(
        closed_without_answer(&mut fourth).await,
        "past its cap, a new connection from the same address is closed"
    );
    let second = client_from(SECOND);
    let served = within("the second client", second.get(app.url("/healthz")).send())
        .await
        .unwrap();
    assert_eq!(served.status(), 200);
    let metrics = second.get(app.url("/metrics")).send().await.unwrap();
    let metrics = Exposition::parse(&metrics.text().await.unwrap());
    assert_eq!(rejected(&metrics, "connections"), 1.0);

    // A slot comes back when a connection of the first client closes.
    drop(idle);
    crate::support::eventually("the first client's slot back", || async {
        let response = client_from(FIRST).get(app.url("/healthz")).send().await;
        response.is_ok_and(|r| r.status() == 200)
    })
    .await;
    drop((silent_body, unread));
}

#[tokio::test]
async fn a_chat_member_counts_against_its_address_while_connected() {
    let app = spawn_app_with(|s| {
        s.server.max_connections_per_client = std::num::NonZeroUsize::new(1).unwrap();
    })
    .await;
    let member = join(app.addr, "lobby").await;
    let mut other = connect_from(FIRST, app.addr, None).await;
    assert!(closed_without_answer(&mut other).await);
    drop(member);
    crate::support::eventually("the member's slot back", || async {
        let response = client_from(FIRST).get(app.url("/healthz")).send().await;
        response.is_ok_and(|r| r.status() == 200)
    })
    .await;
}

async fn get_as(app: &TestApp, path: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url(path));
    if let Some(address) = forwarded_for {
        request = request.header("X-Forwarded-For", address);
    }
    request.send().await.unwrap()
}

fn retry_after(response: &reqwest::Response) -> u64 {
    response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn over_the_rate_a_client_gets_429_with_retry_after_and_is_served_after_it() {
    let app = spawn_app_with(|s| {
        s.limits.rate_limit_per_sec = std::num::NonZeroU32::new(1);
        s.limits.rate_limit_burst = std::num::NonZeroU32::new(3);
    })
    .await;
    for _ in 0..3 {
        assert_eq!(get_as(&app, "/item", None).await.status(), 200);
    }
    let refused = get_as(&app, "/item/1", None).await;
    assert_eq!(refused.status(), 429);
    let wait = retry_after(&refused);
    assert!((1..=2).contains(&wait), "{wait}");
    let said = detail(refused, 429).await;
    assert!(said.contains("retry after"), "{said}");
    // Probes and scrapes are never limited.
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get_as(&app, path, None).await.status(), 200, "{path}");
    }
    // Another address has its own bucket.
    let other = client_from(SECOND)
        .get(app.url("/item"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 200);
    tokio::time::sleep(Duration::from_secs(wait)).await;
    assert_eq!(get_as(&app, "/item", None).await.status(), 200);
    assert_eq!(rejected(&scrape(&app).await, "rate"), 1.0);
}

#[tokio::test]
async fn forwarded_for_decides_the_client_only_from_a_trusted_proxy() {
    let strict = |trusted: &'static str| {
        move |s: &mut shopd::Settings| {
            s.limits.rate_limit_per_sec = std::num::NonZeroU32::new(1);
            s.limits.rate_limit_burst = std::num::NonZeroU32::new(1);
            s.server.trusted_proxies = trusted.parse().unwrap();
        }
    };
    // Untrusted: the header is ignored, both requests are the peer's.
    let app = spawn_app_with(strict("10.0.0.0/8")).await;
    assert_eq!(
        get_as(&app, "/item", Some("198.51.100.1")).await.status(),
        200
    );
    assert_eq!(
        get_as(&app, "/item", Some("198.51.100.2")).await.status(),
        429
    );

    // Trusted: the rightmost address that is not a proxy is the client.
    let app = spawn_app_with(strict("127.0.0.1, 10.0.0.0/8")).await;
    let a = "203.0.113.9, 198.51.100.1, 10.0.0.7";
    assert_eq!(get_as(&app, "/item", Some(a)).await.status(), 200);
    assert_eq!(get_as(&app, "/item", Some(a)).await.status(), 429);
    let b = "198.51.100.1, 198.51.100.2";
    assert_eq!(get_as(&app, "/item", Some(b)).await.status(), 200);
    // A client cannot pick another address by writing it first.
    let spoofed = "198.51.100.77, 198.51.100.1";
    assert_eq!(get_as(&app, "/item", Some(spoofed)).await.status(), 429);
}

#[tokio::test]
async fn the_document_lists_429_on_limited_routes_and_403_on_the_chat_upgrade() {
    let app = crate::helpers::spawn_app().await;
    let document = app.get_json("/openapi.json").await;
    let responses = |path: &str, method: &str| document["paths"][path][method]["responses"].clone();
    for (path, method) in [
        ("/item/{id}", "get"),
        ("/cart", "post"),
        ("/item/{id}", "patch"),
    ] {
        let reply = &responses(path, method)["429"];
        assert_eq!(
            reply["$ref"], "#/components/responses/TooManyRequests",
            "{method} {path}"
        );
    }
    for path in ["/healthz", "/readyz", "/metrics"] {
        assert!(responses(path, "get")["429"].is_null(), "{path}");
    }
    let too_many = &document["components"]["responses"]["TooManyRequests"];
    assert!(too_many["headers"]["Retry-After"].is_object(), "{too_many}");
    assert!(responses("/chat/{chat_name}", "get")["403"].is_object());
}
