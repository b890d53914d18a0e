//! The `shopd.chat.v1` client the resume tests share: connecting with the
//! subprotocol, reading JSON frames, welcomes and resume queries.

use crate::chat::{Client, GUARD, finish_close, say};
use futures_util::StreamExt;
use serde_json::Value;
use std::net::SocketAddr;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

pub(crate) const SUBPROTOCOL: &str = "shopd.chat.v1";

/// What a welcome says.
#[derive(Debug, Clone)]
pub(crate) struct Welcome {
    pub(crate) name: String,
    pub(crate) epoch: String,
    pub(crate) offset: u64,
    pub(crate) token: String,
    pub(crate) resumed: bool,
}

/// Connects to `/chat/{room}{query}` with the subprotocol; the server must
/// echo it.
pub(crate) async fn connect(addr: SocketAddr, room: &str, query: &str) -> Client {
    let mut request = format!("ws://{addr}/chat/{room}{query}")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (client, response) = timeout(
        GUARD,
        tokio_tungstenite::connect_async_with_config(request, None, true),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    assert_eq!(response.status(), 101);
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        SUBPROTOCOL,
        "the subprotocol is echoed"
    );
    client
}

/// The next frame, which must be a JSON object.
pub(crate) async fn next_json(client: &mut Client) -> Value {
    let frame = timeout(GUARD, client.next())
        .await
        .expect("a frame in time")
        .expect("the connection is open")
        .expect("a valid frame");
    match frame {
        Message::Text(text) => serde_json::from_str(&text).expect("a JSON frame"),
        other => panic!("expected a JSON frame, got {other:?}"),
    }
}

/// Joins with the subprotocol and reads the welcome.
pub(crate) async fn join_json(addr: SocketAddr, room: &str, query: &str) -> (Client, Welcome) {
    let mut client = connect(addr, room, query).await;
    let frame = next_json(&mut client).await;
    assert_eq!(frame["type"], "welcome", "{frame}");
    let welcome = Welcome {
        name: frame["name"].as_str().expect("name").to_owned(),
        epoch: frame["epoch"].as_str().expect("epoch").to_owned(),
        offset: frame["offset"].as_u64().expect("offset"),
        token: frame["token"].as_str().expect("token").to_owned(),
        resumed: frame["resumed"].as_bool().expect("resumed"),
    };
    (client, welcome)
}

pub(crate) fn resume_query(welcome: &Welcome, since: u64) -> String {
    format!(
        "?resume={}&since={since}&epoch={}",
        welcome.token, welcome.epoch
    )
}

/// The next `line` frame as `(offset, from, text)`.
pub(crate) async fn next_chat_line(client: &mut Client) -> (u64, String, String) {
    let frame = next_json(client).await;
    assert_eq!(frame["type"], "line", "{frame}");
    (
        frame["offset"].as_u64().expect("offset"),
        frame["from"].as_str().expect("from").to_owned(),
        frame["text"].as_str().expect("text").to_owned(),
    )
}

/// Sends `text` and reads its `sent`; returns the offset.
pub(crate) async fn say_json(client: &mut Client, text: &str) -> u64 {
    say(client, text).await;
    let frame = next_json(client).await;
    assert_eq!(frame["type"], "sent", "{frame}");
    frame["offset"].as_u64().expect("offset")
}

/// The close code of the next frame, which must be a close.
pub(crate) async fn closed_with(client: &mut Client) -> u16 {
    close_frame(client).await.0
}

/// The next frame, which must be a close: its code and reason.
pub(crate) async fn close_frame(client: &mut Client) -> (u16, String) {
    let frame = timeout(GUARD, client.next())
        .await
        .expect("a frame in time")
        .expect("a frame")
        .expect("a valid frame");
    let Message::Close(Some(close)) = frame else {
        panic!("expected a close frame first, got {frame:?}");
    };
    finish_close(client).await;
    (close.code.into(), close.reason.to_string())
}
