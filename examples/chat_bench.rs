//! Measures a running shopd's chat: lines delivered per second in rooms
//! where every member talks and listens (2 and 50 members by default), the
//! server's memory per idle chat connection, and the latency from one
//! member's send to another's receipt (p50, p99), within one instance and,
//! with `--peer`, from an instance to another one over the chat bus.
//!
//! ```sh
//! cargo build --release --bin shopd --example chat_bench
//! nats-server -p 4222 &
//! FAST="--chat-rate-per-sec 1000000 --chat-rate-burst 1000000 --chat-bus nats://127.0.0.1:4222"
//! target/release/shopd --data-dir /tmp/shopd-a --listen 127.0.0.1:8000 $FAST & SHOPD=$!
//! target/release/shopd --data-dir /tmp/shopd-b --listen 127.0.0.1:8001 $FAST &
//! target/release/examples/chat_bench --url ws://127.0.0.1:8000 --pid $SHOPD \
//!     --peer ws://127.0.0.1:8001
//! ```
//!
//! The rate limit (100 lines a second per member by default) would measure
//! only itself: raise it as above.
//!
//! It starts nothing itself. Senders stay a few lines ahead of their
//! listeners (`--queue-len`, the server's `chat_queue_len`, sets how far):
//! the server drops a member whose queue fills, which a benchmark that
//! floods would only measure. Clients and server share the machine, so the
//! figures are for both together. The memory figure compares the server's
//! resident set (`VmRSS` in `/proc/<pid>/status`, Linux) before and after
//! opening `--idle` connections; without `--pid` it is skipped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{Barrier, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Error = Box<dyn std::error::Error + Send + Sync>;

/// Longest a room may go without a member finishing.
const ROOM_TIMEOUT: Duration = Duration::from_secs(120);

/// Chat throughput and memory of a running shopd.
#[derive(Parser, Debug)]
struct Args {
    /// Base WebSocket URL of the shopd to measure.
    #[arg(long, default_value = "ws://127.0.0.1:8000")]
    url: String,
    /// The shopd's process id, to read its memory (Linux); no memory figure without it.
    #[arg(long)]
    pid: Option<u32>,
    /// Room sizes to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2,50")]
    members: Vec<usize>,
    /// Lines delivered per room size (spread over its members' sends).
    #[arg(long, default_value_t = 2_000_000)]
    deliveries: usize,
    /// Bytes of text per line.
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// The server's `chat_queue_len`; senders stay within half of it.
    #[arg(long, default_value_t = 1024)]
    queue_len: usize,
    /// Idle connections opened for the memory estimate.
    #[arg(long, default_value_t = 1000)]
    idle: usize,
    /// Another instance on the same chat bus: latency is also measured
    /// from --url to it.
    #[arg(long)]
    peer: Option<String>,
    /// Lines sent for each latency figure.
    #[arg(long, default_value_t = 20_000)]
    latency_lines: usize,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let args = Args::parse();
    let url = args.url.trim_end_matches('/').to_owned();
    if let Some(pid) = args.pid {
        idle_memory(&url, pid, args.idle).await?;
    }
    for &members in &args.members {
        throughput(&url, members.max(2), &args).await?;
    }
    latency("one instance", &url, &url, &args).await?;
    if let Some(peer) = &args.peer {
        let peer = peer.trim_end_matches('/');
        latency("across instances", &url, peer, &args).await?;
    }
    Ok(())
}

/// One sender in a room on `from`, one listener in the same room on `to`;
/// the sender keeps at most 64 lines in flight. Prints the delivery rate
/// and the send-to-receipt latency.
async fn latency(label: &str, from: &str, to: &str, args: &Args) -> Result<(), Error> {
    const IN_FLIGHT: usize = 64;
    let room = format!("latency-{}-{}", std::process::id(), label.len());
    let listener = connect(&format!("{to}/chat/{room}")).await?;
    let talker = connect(&format!("{from}/chat/{room}")).await?;
    let count = args.latency_lines;
    let pad = "x".repeat(args.size.saturating_sub(21));
    let began = Instant::now();
    let (heard_tx, mut heard) = watch::channel(0usize);
    let listen = tokio::spawn(async move {
        let (_sink, mut stream) = listener.split();
        let mut micros = Vec::with_capacity(count);
        while micros.len() < count {
            match stream.next().await {
                Some(Ok(Message::Text(line))) => {
                    let (_, text) = line.split_once(" :: ").ok_or("a line without a name")?;
                    let sent: u64 = text.get(..20).ok_or("short line")?.trim().parse()?;
                    let now = began.elapsed().as_micros() as u64;
                    micros.push(now.saturating_sub(sent));
                    heard_tx.send_replace(micros.len());
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(Error::from(err)),
                None => return Err("listener's connection ended early".into()),
            }
        }
        Ok::<_, Error>(micros)
    });
    let (mut sink, _stream) = talker.split();
    for sent in 0..count {
        if sent >= IN_FLIGHT {
            heard.wait_for(|heard| *heard + IN_FLIGHT > sent).await?;
        }
        let stamp = began.elapsed().as_micros() as u64;
        sink.send(Message::text(format!("{stamp:>20}{pad}")))
            .await?;
    }
    let mut micros = tokio::time::timeout(ROOM_TIMEOUT, listen).await???;
    let elapsed = began.elapsed().as_secs_f64();
    micros.sort_unstable();
    let at = |q: f64| micros[((micros.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
    println!(
        "latency, {label}: {count} lines of {} bytes, {IN_FLIGHT} in flight: {:.0} lines/s; \
         p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        args.size,
        count as f64 / elapsed,
        at(0.5),
        at(0.99),
        at(1.0),
    );
    Ok(())
}

/// Opens `count` idle connections and prints the server's extra memory.
async fn idle_memory(url: &str, pid: u32, count: usize) -> Result<(), Error> {
    let before = rss_kib(pid)?;
    let mut idle = Vec::with_capacity(count);
    for i in 0..count {
        // Ten members a room: rooms cost something too, as in real use.
        idle.push(connect(&format!("{url}/chat/idle-{}", i / 10)).await?);
    }
    // Each session allocates its buffers on its first read, just after the
    // handshake: give them a moment.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib(pid)?;
    drop(idle);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let released = rss_kib(pid)?;
    let per = (after.saturating_sub(before)) as f64 / count as f64;
    println!(
        "idle: {count} connections: RSS {before} KiB -> {after} KiB, {per:.1} KiB per connection \
         ({released} KiB after they closed)"
    );
    Ok(())
}

/// The resident set of process `pid`, in KiB.
fn rss_kib(pid: u32) -> Result<u64, Error> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with("VmRSS:"))
        .ok_or("no VmRSS line")?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or("empty VmRSS line")?
        .parse()?;
    Ok(kib)
}

async fn connect(url: &str) -> Result<Client, Error> {
    // TCP_NODELAY: small frames must not wait for Nagle.
    let (client, _) = tokio_tungstenite::connect_async_with_config(url, None, true).await?;
    Ok(client)
}

/// One room of `members`, everyone talking and listening; prints lines
/// delivered per second.
async fn throughput(url: &str, members: usize, args: &Args) -> Result<(), Error> {
    let others = members - 1;
    let lines = (args.deliveries / (members * others)).max(1);
    // Lines a member may be ahead of the slowest other member; a listener
    // then has at most about `2 * window * others` lines queued, kept
    // under half the server's queue length.
    let window = (args.queue_len / 4 / others).max(1);
    let room = format!("{url}/chat/bench-{members}-{}", std::process::id());
    let start = Arc::new(Barrier::new(members + 1));
    let mut tasks = JoinSet::new();
    for index in 0..members {
        let client = connect(&room).await?;
        let start = Arc::clone(&start);
        let size = args.size;
        tasks.spawn(async move {
            start.wait().await;
            member(client, index, members, size, lines, window).await
        });
    }
    start.wait().await;
    let began = Instant::now();
    // One member failing (say, dropped for a full queue) stalls the others:
    // stop at the first failure.
    while let Some(done) = tokio::time::timeout(ROOM_TIMEOUT, tasks.join_next()).await? {
        if let Err(err) = done? {
            return Err(format!("room of {members}: a member failed: {err}").into());
        }
    }
    let elapsed = began.elapsed().as_secs_f64();
    let delivered = members * lines * others;
    println!(
        "room of {members}: {delivered} lines of {} bytes delivered in {elapsed:.2} s: \
         {:.0} lines/s delivered, {:.0} lines/s sent",
        args.size,
        delivered as f64 / elapsed,
        (members * lines) as f64 / elapsed,
    );
    Ok(())
}

/// Sends `lines` lines while reading the `lines * others` lines the other
/// members send. A member sends its line `k` only once it has heard line
/// `k - window` of every other member, so no member is ever more than about
/// `2 * window` lines from each talker behind: no queue fills.
async fn member(
    client: Client,
    index: usize,
    members: usize,
    size: usize,
    lines: usize,
    window: usize,
) -> Result<(), Error> {
    let (mut sink, mut stream) = client.split();
    let expected = lines * (members - 1);
    // The fewest lines heard from any other member.
    let (least_tx, mut least) = watch::channel(0usize);
    let listen = async move {
        let mut heard = Tally::new(members, index);
        for _ in 0..expected {
            match stream.next().await {
                Some(Ok(Message::Text(line))) => {
                    let from = sender(&line).ok_or("a line without a sender index")?;
                    if let Some(fewest) = heard.add(from) {
                        least_tx.send_replace(fewest);
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    return Err(format!("closed by the server: {frame:?}").into());
                }
                Some(Ok(_)) => {}
                Some(Err(err)) => return Err(Error::from(err)),
                None => return Err("connection ended early".into()),
            }
        }
        Ok::<_, Error>(stream)
    };
    let talk = async move {
        let text = format!("{index:04} {}", "x".repeat(size.saturating_sub(5)));
        let line = Message::text(text);
        for sent in 0..lines {
            if sent >= window {
                let needed = sent + 1 - window;
                if *least.borrow() < needed {
                    // Whatever is buffered must go out before waiting.
                    sink.flush().await?;
                    least.wait_for(|fewest| *fewest >= needed).await?;
                }
            }
            sink.feed(line.clone()).await?;
        }
        sink.flush().await?;
        Ok::<_, Error>(sink)
    };
    let (stream, sink) = tokio::try_join!(listen, talk)?;
    let mut client = sink.reunite(stream)?;
    let _ = client.close(None).await;
    Ok(())
}

/// The member index a line `{name} :: {index} xxx...` starts with.
fn sender(line: &str) -> Option<usize> {
    let (_, text) = line.split_once(" :: ")?;
    text.get(..4)?.parse().ok()
}

/// Lines heard per other member, and the fewest of them, kept in amortised
/// constant time per line.
struct Tally {
    heard: Vec<usize>,
    fewest: usize,
    at_fewest: usize,
}

impl Tally {
    fn new(members: usize, own: usize) -> Tally {
        // Our own count never moves: start it out of the way.
        let mut heard = vec![0; members];
        heard[own] = usize::MAX;
        Tally {
            heard,
            fewest: 0,
            at_fewest: members - 1,
        }
    }

    /// Counts a line from `from`; the new minimum when it moved.
    fn add(&mut self, from: usize) -> Option<usize> {
        let count = self.heard.get_mut(from)?;
        *count += 1;
        if *count - 1 != self.fewest {
            return None;
        }
        self.at_fewest -= 1;
        if self.at_fewest > 0 {
            return None;
        }
        self.fewest = self.heard.iter().copied().min().unwrap_or(0);
        self.at_fewest = self.heard.iter().filter(|c| **c == self.fewest).count();
        Some(self.fewest)
    }
}
