//! Measures what chat history costs a running shopd: its resident memory
//! (`VmRSS`, Linux) before and after `--rooms` rooms each receive
//! `--lines` lines of `--size` bytes (kept by the history when
//! `chat_history_lines` allows), per room and per line.
//!
//! ```sh
//! cargo build --release --bin shopd --example chat_history_memory
//! target/release/shopd --data-dir /tmp/shopd-h --listen 127.0.0.1:8000 & SHOPD=$!
//! target/release/examples/chat_history_memory --url ws://127.0.0.1:8000 --pid $SHOPD
//! ```
//!
//! One member per room says the lines with the subprotocol `shopd.chat.v1`
//! and waits for the `sent` of its last line, so every line is numbered
//! and kept before the member leaves; rooms are then empty and only their
//! history stays. Run it once against shopd with history and once with
//! `--chat-history-lines 0` to tell history from the rest.

use std::time::Duration;

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Error = Box<dyn std::error::Error + Send + Sync>;

/// Memory of chat history in a running shopd.
#[derive(Parser, Debug)]
struct Args {
    /// Base WebSocket URL of the shopd to measure.
    #[arg(long, default_value = "ws://127.0.0.1:8000")]
    url: String,
    /// The shopd's process id, to read its memory.
    #[arg(long)]
    pid: u32,
    /// Rooms to fill.
    #[arg(long, default_value_t = 1000)]
    rooms: usize,
    /// Lines said in each room.
    #[arg(long, default_value_t = 100)]
    lines: usize,
    /// Bytes of text per line.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Rooms filled at once.
    #[arg(long, default_value_t = 32)]
    parallel: usize,
}

fn rss_kib(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .ok_or("no VmRSS")?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("no VmRSS value")?
        .parse()?)
}

async fn fill(url: String, room: usize, lines: usize, size: usize) -> Result<(), Error> {
    let mut request = format!("{url}/chat/history-bench-{room}").into_client_request()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static("shopd.chat.v1"),
    );
    let (mut client, _) = tokio_tungstenite::connect_async(request).await?;
    let text = "x".repeat(size);
    for _ in 0..lines {
        client.send(Message::text(text.clone())).await?;
    }
    let mut sent = 0;
    while sent < lines {
        match client.next().await {
            Some(Ok(Message::Text(frame))) if frame.contains("\"sent\"") => sent += 1,
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(err.into()),
            None => return Err("closed early".into()),
        }
    }
    client.close(None).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let url = args.url.trim_end_matches('/').to_owned();
    // Warm up: one room, so the first connection's one-time costs are not
    // counted.
    fill(url.clone(), usize::MAX, 1, args.size).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_kib(args.pid)?;
    let mut next = 0;
    while next < args.rooms {
        let batch: Vec<_> = (next..(next + args.parallel).min(args.rooms))
            .map(|room| tokio::spawn(fill(url.clone(), room, args.lines, args.size)))
            .collect();
        next += batch.len();
        for task in batch {
            task.await??;
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = rss_kib(args.pid)?;
    let grown = after.saturating_sub(before) * 1024;
    let per_room = grown as f64 / args.rooms as f64;
    println!(
        "rooms {} x {} lines of {} bytes: RSS {before} KiB -> {after} KiB; {per_room:.0} bytes per room, {:.0} per line",
        args.rooms,
        args.lines,
        args.size,
        per_room / args.lines as f64
    );
    Ok(())
}
