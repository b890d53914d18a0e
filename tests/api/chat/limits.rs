//! Close codes for bad or oversized frames, too many connections and
//! members that stop reading.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data as OpData, OpCode};

use super::*;
use crate::exposition::Exposition;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// Every count of `shopd_chat_dropped_total`, by reason, from `/metrics`.
async fn drops(app: &TestApp) -> Vec<(&'static str, f64)> {
    let text = app.get("/metrics").await.text().await.expect("metrics");
    let exposition = Exposition::parse(&text);
    [
        "protocol_error",
        "binary",
        "bad_utf8",
        "stalled",
        "too_large",
        "too_many_connections",
    ]
    .into_iter()
    .map(|reason| {
        let value = exposition
            .value("shopd_chat_dropped_total", &[("reason", reason)])
            .unwrap_or_else(|| panic!("no shopd_chat_dropped_total{{reason={reason:?}}}"));
        (reason, value)
    })
    .collect()
}

/// `drops` with `reason` at `count` and every other reason at 0.
fn only(reason: &'static str, count: f64) -> Vec<(&'static str, f64)> {
    [
        "protocol_error",
        "binary",
        "bad_utf8",
        "stalled",
        "too_large",
        "too_many_connections",
    ]
    .into_iter()
    .map(|r| (r, if r == reason { count } else { 0.0 }))
    .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_never_reads_is_dropped_with_1008_after_the_stall_timeout_and_the_room_goes_on()
 {
    let app = spawn_app_with(|settings| {
        settings.chat.queue_len = std::num::NonZero::new(64).unwrap();
        settings.chat.stall_timeout = std::time::Duration::from_secs(1);
        settings.chat.rate_per_sec = std::num::NonZero::new(1_000_000).unwrap();
        settings.chat.rate_burst = std::num::NonZero::new(1_000_000).unwrap();
    })
    .await;
    let mut talker = join(app.addr, "busy").await;
    let mut reader = join(app.addr, "busy").await;
    let mut sleeper = join_with_small_buffer(app.addr, "busy").await;
    let lines = |count: usize, size: usize| -> Vec<String> {
        (0..count)
            .map(|i| format!("{i:05} {}", "x".repeat(size - 6)))
            .collect()
    };

    // 16 MiB: far more than the kernel buffers for a client that does not
    // read (`tcp_wmem`, a few MiB) plus a full queue. The talker waits on
    // the sleeper until it has made no progress for the stall timeout, then
    // the sleeper is dropped and the reader gets every line, in order.
    let flood = lines(256, 64 * 1024);
    timeout(GUARD, relay(&mut talker, &mut reader, &flood, 32))
        .await
        .expect("the flood in time");

    // The sleeper finds its close frame behind the lines it had been sent,
    // if it reads soon enough (the server tries for a few seconds).
    let ordinary = lines(1000, 1024);
    let drain = async {
        let mut taken = 0;
        let code = loop {
            match next_frame(&mut sleeper).await {
                Message::Text(_) => taken += 1,
                Message::Close(Some(frame)) => break u16::from(frame.code),
                other => panic!("expected lines then a close frame, got {other:?}"),
            }
        };
        finish_close(&mut sleeper).await;
        (code, taken)
    };
    let ((), (code, taken)) = timeout(GUARD, async {
        tokio::join!(relay(&mut talker, &mut reader, &ordinary, 32), drain)
    })
    .await
    .expect("the room went on");
    assert_eq!(code, 1008);
    assert!(
        taken < flood.len(),
        "dropped during the flood ({taken} lines)"
    );
    assert_eq!(drops(&app).await, only("stalled", 1.0));
}

#[tokio::test]
async fn a_text_over_the_limit_closes_with_1009() {
    let app = spawn_app_with(|settings| {
        settings.chat.max_message_bytes = std::num::NonZero::new(1024).unwrap();
    })
    .await;
    let mut listener = join(app.addr, "limits").await;

    let mut just_fits = join(app.addr, "limits").await;
    say(&mut just_fits, &"é".repeat(512)).await;
    assert_eq!(next_line(&mut listener).await.1, "é".repeat(512));

    // Just over, and far over (past where the server stops reading).
    for size in [1025, 1 << 20] {
        let mut big = join(app.addr, "limits").await;
        let _ = big.send(Message::text("x".repeat(size))).await;
        assert_eq!(close_code(&mut big).await, 1009, "{size} bytes");
    }
    say(&mut just_fits, "after").await;
    assert_eq!(next_line(&mut listener).await.1, "after", "nothing else");
    assert_eq!(drops(&app).await, only("too_large", 2.0));
}

#[tokio::test]
async fn a_text_over_the_limit_in_fragments_closes_with_1009() {
    let app = spawn_app_with(|settings| {
        settings.chat.max_message_bytes = std::num::NonZero::new(1024).unwrap();
    })
    .await;
    let mut client = join(app.addr, "fragments").await;
    let part = || Bytes::from("x".repeat(600));
    let frames = [
        Frame::message(part(), OpCode::Data(OpData::Text), false),
        Frame::message(part(), OpCode::Data(OpData::Continue), false),
        Frame::message(part(), OpCode::Data(OpData::Continue), true),
    ];
    for frame in frames {
        client.send(Message::Frame(frame)).await.expect("send");
    }
    assert_eq!(close_code(&mut client).await, 1009);
}

#[tokio::test]
async fn a_text_that_is_not_utf8_closes_with_1007() {
    let app = spawn_app().await;
    let mut client = join(app.addr, "garbled").await;
    let garbled = Bytes::from_static(&[b'h', b'i', 0xff, 0xfe]);
    let frame = Frame::message(garbled, OpCode::Data(OpData::Text), true);
    client.send(Message::Frame(frame)).await.expect("send");
    assert_eq!(close_code(&mut client).await, 1007);
    assert_eq!(drops(&app).await, only("bad_utf8", 1.0));
}

#[tokio::test]
async fn a_binary_message_closes_with_1003() {
    let app = spawn_app().await;
    let mut listener = join(app.addr, "binary").await;
    let mut sender = join(app.addr, "binary").await;
    sender
        .send(Message::binary(vec![0u8, 1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(close_code(&mut sender).await, 1003);
    let mut other = join(app.addr, "binary").await;
    say(&mut other, "after").await;
    assert_eq!(next_line(&mut listener).await.1, "after", "nothing else");
    assert_eq!(drops(&app).await, only("binary", 1.0));
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_with_1013() {
    let app = spawn_app_with(|s| s.chat.max_connections = std::num::NonZero::new(2).unwrap()).await;
    let mut ann = join(app.addr, "full").await;
    let mut bob = join(app.addr, "full").await;
    let mut extra = join(app.addr, "full").await;
    assert_eq!(close_code(&mut extra).await, 1013);
    assert_eq!(drops(&app).await, only("too_many_connections", 1.0));
    say(&mut ann, "still here").await;
    assert_eq!(next_line(&mut bob).await.1, "still here");
    // A place frees up once a member leaves (as soon as the server has
    // seen the connection go).
    drop(bob);
    let mut attempts = 0;
    let mut retry = loop {
        attempts += 1;
        assert!(attempts < 200, "the freed place was never given out");
        let mut client = join(app.addr, "full").await;
        say(&mut ann, "ping").await;
        match timeout(GUARD, client.next())
            .await
            .expect("an answer in time")
        {
            Some(Ok(Message::Text(line))) if line.ends_with(" :: ping") => break client,
            _ => {}
        }
    };
    say(&mut retry, "back").await;
    assert_eq!(next_line(&mut ann).await.1, "back");
}
