//! Raw HTTP/1.1 over TCP, for the tests of what a client library would
//! never send or never wait for: half requests, garbage, unread replies.
#![allow(dead_code)] // Not every test module uses every helper.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A liveness guard, not a timing assertion: generous on a busy machine.
pub const GUARD: Duration = Duration::from_secs(30);

/// `future`'s output; a panic naming `what` if it takes longer than [`GUARD`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(GUARD, future)
        .await
        .unwrap_or_else(|_| panic!("{what}: nothing after {GUARD:?}"))
}

/// Everything the server sends until it closes the connection (a reset
/// counts as closed).
pub async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut reply = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return reply,
            Ok(n) => reply.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Sends `request` on a fresh connection and returns the whole reply,
/// which the server must end by closing the connection.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let reply = within("a reply and a close", read_until_closed(&mut stream)).await;
    String::from_utf8_lossy(&reply).into_owned()
}
