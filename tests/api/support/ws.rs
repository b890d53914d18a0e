//! Joining a chat room over a real WebSocket.

use std::net::SocketAddr;

use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::GUARD;

/// A chat member's connection.
pub type WsClient = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Joins room `room` (as it appears in the path, so already
/// percent-encoded) of the shopd at `addr`; the server has added the member
/// to the room once this returns.
pub async fn join(addr: SocketAddr, room: &str) -> WsClient {
    let url = format!("ws://{addr}/chat/{room}");
    // Without TCP_NODELAY, Nagle and delayed ACKs stall a talker that
    // sends small frames and reads nothing.
    let connecting = tokio_tungstenite::connect_async_with_config(url, None, true);
    let (client, response) = timeout(GUARD, connecting)
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(response.status(), 101);
    client
}
