//! Chat rooms over real WebSockets, by concern: delivery (who hears what,
//! in which order, at which pace), limits (close codes, slow readers) and
//! lifecycle (joining, leaving, shutdown, figures). This file holds the
//! client helpers they share.
#![allow(dead_code)] // Not every module uses every helper.

mod delivery;
mod lifecycle;
mod limits;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;

pub use crate::support::ws::join_with_small_buffer;
use crate::support::{TestApp, eventually};
pub use crate::support::{WsClient as Client, join};

/// Only a failure guard: every wait below normally ends in milliseconds.
pub const GUARD: Duration = Duration::from_secs(20);

pub async fn say(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("send");
}

pub async fn next_frame(client: &mut Client) -> Message {
    timeout(GUARD, client.next())
        .await
        .expect("a frame in time")
        .expect("the connection is open")
        .expect("a valid frame")
}

/// The next frame, which must be a chat line, as `(user name, text)`.
pub async fn next_line(client: &mut Client) -> (String, String) {
    match next_frame(client).await {
        Message::Text(line) => {
            let (name, text) = line.split_once(" :: ").expect("`name :: text`");
            (name.to_owned(), text.to_owned())
        }
        other => panic!("expected a chat line, got {other:?}"),
    }
}

/// Reads (and drops) chat lines until the server's close frame, then
/// answers it as a well-behaved client does; the frame's code.
pub async fn close_code(client: &mut Client) -> u16 {
    let code = loop {
        match next_frame(client).await {
            Message::Close(Some(frame)) => break frame.code.into(),
            Message::Close(None) => panic!("a close frame without a code"),
            Message::Text(_) => {}
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    finish_close(client).await;
    code
}

/// Reads on after a close frame: that sends tungstenite's queued answer
/// and waits for the server to end the connection.
pub async fn finish_close(client: &mut Client) {
    let rest = timeout(GUARD, async {
        while let Some(Ok(_)) = client.next().await {}
    })
    .await;
    rest.expect("the server ends the connection after the close handshake");
}

/// Drops the connection with a TCP reset: no close frame, no FIN.
pub fn reset(client: Client) {
    if let MaybeTlsStream::Plain(tcp) = client.get_ref() {
        tcp.set_zero_linger().expect("SO_LINGER 0");
    }
    drop(client);
}

/// Waits until `app`'s chat figures in `/metrics` reach `rooms` and
/// `connections` (sessions clean up just after their socket ends); gives
/// back `(rooms, connections, messages)`.
pub async fn wait_for_stats(app: &TestApp, rooms: u64, connections: u64) -> (u64, u64, u64) {
    eventually(
        &format!("{rooms} chat rooms and {connections} connections"),
        || async {
            let (now_rooms, now_connections, _) = chat_metrics(app).await;
            (now_rooms, now_connections) == (rooms, connections)
        },
    )
    .await;
    chat_metrics(app).await
}

pub fn is_generated_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() == 3
        && parts[..2]
            .iter()
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[2].len() == 4
        && parts[2].bytes().all(|b| b.is_ascii_digit())
}

/// Sends `lines` from `talker` and checks `reader` gets each in order, the
/// talker staying at most `window` lines ahead (below the queue length, so
/// the reader, a live client, never counts as too slow).
pub async fn relay(talker: &mut Client, reader: &mut Client, lines: &[String], window: usize) {
    let window = Semaphore::new(window);
    let talk = async {
        for line in lines {
            window.acquire().await.expect("open").forget();
            say(talker, line).await;
        }
    };
    let listen = async {
        for line in lines {
            assert_eq!(next_line(reader).await.1, *line);
            window.add_permits(1);
        }
    };
    tokio::join!(talk, listen);
}

/// `(rooms, connections, messages)` as `GET /metrics` has them.
pub async fn chat_metrics(app: &TestApp) -> (u64, u64, u64) {
    let metrics = crate::exposition::scrape(app).await;
    let value = |name: &str| -> u64 {
        let value = metrics
            .value(name, &[])
            .unwrap_or_else(|| panic!("no {name} in /metrics"));
        value as u64
    };
    (
        value("shopd_chat_rooms"),
        value("shopd_chat_connections"),
        value("shopd_chat_messages_total"),
    )
}
