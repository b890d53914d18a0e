//! Joining a chat room over a real WebSocket: one handshake for every
//! suite.

use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::GUARD;

/// A chat member's connection.
pub type WsClient = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Joins room `room` (as it appears in the path, so already
/// percent-encoded) of the shopd at `addr`; the server has added the member
/// to the room once this returns.
pub async fn join(addr: SocketAddr, room: &str) -> WsClient {
    join_over(addr, room, None).await
}

/// Like [`join`], over a socket with a tiny receive buffer, so that a
/// member that does not read backs up into the server quickly.
pub async fn join_with_small_buffer(addr: SocketAddr, room: &str) -> WsClient {
    join_over(addr, room, Some(4096)).await
}

/// The handshake, over a socket with `receive_buffer` bytes when set.
async fn join_over(addr: SocketAddr, room: &str, receive_buffer: Option<u32>) -> WsClient {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(size) = receive_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let stream = socket.connect(addr).await.expect("connect");
    // Without TCP_NODELAY, Nagle and delayed ACKs stall a talker that
    // sends small frames and reads nothing.
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let url = format!("ws://{addr}/chat/{room}");
    let handshake = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream));
    let (client, response) = timeout(GUARD, handshake)
        .await
        .expect("handshake in time")
        .expect("handshake");
    assert_eq!(response.status(), 101);
    client
}
