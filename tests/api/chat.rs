//! Chat rooms over real WebSockets: delivery, names, order, room names,
//! departures, isolation, slow readers, limits, shutdown and clean-up.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use shopd::chat::{ChatStats, Rooms};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Barrier, Semaphore, oneshot};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data as OpData, OpCode};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{TestApp, detail, spawn_app, spawn_app_with};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Only a failure guard: every wait below normally ends in milliseconds.
const GUARD: Duration = Duration::from_secs(20);

/// Connects to room `room` (as it appears in the path, so already
/// percent-encoded); the server has added us to the room once this returns.
async fn join(addr: SocketAddr, room: &str) -> Client {
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

/// Like [`join`], over a socket with a tiny receive buffer, so that a
/// client that does not read backs up into the server quickly.
async fn join_with_small_buffer(addr: SocketAddr, room: &str) -> Client {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let stream = socket.connect(addr).await.expect("connect");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let url = format!("ws://{addr}/chat/{room}");
    let (client, _) = timeout(
        GUARD,
        tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("handshake in time")
    .expect("handshake");
    client
}

async fn say(client: &mut Client, text: &str) {
    client.send(Message::text(text)).await.expect("send");
}

async fn next_frame(client: &mut Client) -> Message {
    timeout(GUARD, client.next())
        .await
        .expect("a frame in time")
        .expect("the connection is open")
        .expect("a valid frame")
}

/// The next frame, which must be a chat line, as `(user name, text)`.
async fn next_line(client: &mut Client) -> (String, String) {
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
async fn close_code(client: &mut Client) -> u16 {
    let code = loop {
        match next_frame(client).await {
            Message::Close(Some(frame)) => break frame.code.into(),
            Message::Close(None) => panic!("a close frame without a code"),
            Message::Text(_) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    finish_close(client).await;
    code
}

/// Reads on after a close frame: that sends tungstenite's queued answer
/// and waits for the server to end the connection.
async fn finish_close(client: &mut Client) {
    let rest = timeout(GUARD, async {
        while let Some(Ok(_)) = client.next().await {}
    })
    .await;
    rest.expect("the server ends the connection after the close handshake");
}

/// Drops the connection with a TCP reset: no close frame, no FIN.
fn reset(client: Client) {
    if let MaybeTlsStream::Plain(tcp) = client.get_ref() {
        tcp.set_zero_linger().expect("SO_LINGER 0");
    }
    drop(client);
}

/// A server with only the chat route, over rooms the test can inspect.
async fn chat_only(rooms: &Rooms) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let (stop, stopped) = oneshot::channel::<()>();
    let server = warp::serve(shopd::chat::route(rooms.clone()))
        .incoming(listener)
        .graceful(async {
            let _ = stopped.await;
        })
        .run();
    tokio::spawn(server);
    (addr, stop)
}

/// Waits until the rooms' figures (messages aside) reach `rooms` and
/// `connections`: sessions clean up just after their socket ends.
async fn wait_for_stats(registry: &Rooms, rooms: u64, connections: u64) -> ChatStats {
    let wanted = |stats: ChatStats| stats.rooms == rooms && stats.connections == connections;
    let waited = timeout(GUARD, async {
        while !wanted(registry.stats()) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let stats = registry.stats();
    assert!(
        waited.is_ok(),
        "wanted {rooms} rooms and {connections} connections, have {stats:?}"
    );
    stats
}

fn is_generated_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() == 3
        && parts[..2]
            .iter()
            .all(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[2].len() == 4
        && parts[2].bytes().all(|b| b.is_ascii_digit())
}

#[tokio::test]
async fn two_rooms_of_two_each_member_hears_only_the_other_member() {
    let app = spawn_app().await;
    let mut a1 = join(app.addr, "alpha").await;
    let mut a2 = join(app.addr, "alpha").await;
    let mut b1 = join(app.addr, "beta").await;
    let mut b2 = join(app.addr, "beta").await;

    say(&mut a1, "hello from a1").await;
    say(&mut b1, "hello from b1").await;
    assert_eq!(next_line(&mut a2).await.1, "hello from a1");
    assert_eq!(next_line(&mut b2).await.1, "hello from b1");
    say(&mut a2, "hello from a2").await;
    say(&mut b2, "hello from b2").await;
    assert_eq!(next_line(&mut a1).await.1, "hello from a2");
    assert_eq!(next_line(&mut b1).await.1, "hello from b2");

    // Anything else (an echo, the other room's lines) would already be
    // queued ahead of these markers.
    for (from, to, marker) in [(&mut a1, &mut a2, "end a1"), (&mut b1, &mut b2, "end b1")] {
        say(from, marker).await;
        assert_eq!(next_line(to).await.1, marker);
    }
    for (from, to, marker) in [(&mut a2, &mut a1, "end a2"), (&mut b2, &mut b1, "end b2")] {
        say(from, marker).await;
        assert_eq!(next_line(to).await.1, marker);
    }
}

#[tokio::test]
async fn each_member_keeps_one_readable_name_that_differs_from_the_others() {
    let app = spawn_app().await;
    let mut ann = join(app.addr, "names").await;
    let mut bob = join(app.addr, "names").await;

    for text in ["one", "two", "three"] {
        say(&mut ann, text).await;
    }
    let mut ann_names = Vec::new();
    for _ in 0..3 {
        ann_names.push(next_line(&mut bob).await.0);
    }
    say(&mut bob, "hi").await;
    let (bob_name, _) = next_line(&mut ann).await;

    assert!(ann_names.iter().all(|name| *name == ann_names[0]));
    let ann_name = &ann_names[0];
    assert_ne!(*ann_name, bob_name);
    for name in [ann_name, &bob_name] {
        assert!(is_generated_name(name), "{name:?}");
        assert_eq!(name.trim(), name);
    }
}

#[tokio::test]
async fn two_hundred_messages_arrive_in_order_with_unicode_intact() {
    let app = spawn_app().await;
    let mut talker = join(app.addr, "order").await;
    let mut listener = join(app.addr, "order").await;
    let texts: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => format!("{i}: plain"),
            1 => format!("{i}: héllo wörld 你好 🐱‍👤"),
            2 => format!("{i} :: with the separator :: twice"),
            _ => format!("  {i}: spaces kept  "),
        })
        .collect();
    for text in &texts {
        say(&mut talker, text).await;
    }
    for text in &texts {
        assert_eq!(next_line(&mut listener).await.1, *text);
    }
}

#[tokio::test]
async fn percent_encoded_room_names_meet_their_decoded_form() {
    let app = spawn_app().await;
    let mut upper = join(app.addr, "caf%C3%A9%20au%20lait").await;
    let mut lower = join(app.addr, "caf%c3%a9%20au%20lait").await;
    let mut odd = join(app.addr, "%63af%C3%A9%20au%20lait").await;
    let mut other = join(app.addr, "cafe%20au%20lait").await;

    say(&mut upper, "☕").await;
    assert_eq!(next_line(&mut lower).await.1, "☕");
    assert_eq!(next_line(&mut odd).await.1, "☕");

    // Decoded once: `%2520` is a literal `%20`, not a space.
    let mut literal = join(app.addr, "caf%C3%A9%2520au%2520lait").await;
    // `cafe au lait` is another room, and so is the literal one: their
    // next frames are their own markers.
    let mut neighbour = join(app.addr, "cafe%20au%20lait").await;
    say(&mut neighbour, "marker").await;
    assert_eq!(next_line(&mut other).await.1, "marker");
    let mut literal_too = join(app.addr, "caf%C3%A9%2520au%2520lait").await;
    say(&mut literal_too, "literal").await;
    assert_eq!(next_line(&mut literal).await.1, "literal");
    say(&mut lower, "end").await;
    assert_eq!(next_line(&mut upper).await.1, "end");
}

#[tokio::test]
async fn a_plain_get_on_a_chat_path_is_a_404() {
    let app = spawn_app().await;
    // `/chat` itself is the chat page (see chat_page.rs).
    for path in ["/chat/lobby", "/chat/caf%C3%A9", "/chat/a/b"] {
        assert_eq!(
            detail(app.get(path).await, 404).await,
            "Not Found",
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_member_that_leaves_or_drops_its_connection_does_not_disturb_the_others() {
    let app = spawn_app().await;
    let mut ann = join(app.addr, "departures").await;
    let mut bob = join(app.addr, "departures").await;
    let mut polite = join(app.addr, "departures").await;
    let abrupt = join(app.addr, "departures").await;
    let vanishing = join(app.addr, "departures").await;

    polite.close(None).await.expect("close");
    assert!(matches!(next_frame(&mut polite).await, Message::Close(_)));
    reset(vanishing);
    say(&mut ann, "still here?").await;
    assert_eq!(next_line(&mut bob).await.1, "still here?");
    // Gone without a close frame: a plain FIN.
    drop(abrupt);
    for round in 0..20 {
        say(&mut bob, &format!("yes {round}")).await;
        assert_eq!(next_line(&mut ann).await.1, format!("yes {round}"));
    }
}

#[tokio::test]
async fn pings_are_answered_with_pongs() {
    let app = spawn_app().await;
    let mut client = join(app.addr, "ping").await;
    client
        .send(Message::Ping("are you there".into()))
        .await
        .expect("ping");
    assert_eq!(
        next_frame(&mut client).await,
        Message::Pong("are you there".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_rooms_at_once_stay_isolated() {
    const ROOMS: usize = 40;
    const MEMBERS: usize = 3;
    let app = spawn_app().await;
    let barrier = std::sync::Arc::new(Barrier::new(ROOMS * MEMBERS));
    let mut tasks = Vec::new();
    for room in 0..ROOMS {
        for member in 0..MEMBERS {
            let mut client = join(app.addr, &format!("room-{room}")).await;
            let barrier = barrier.clone();
            tasks.push(tokio::spawn(async move {
                // Wait for everyone to be in, then all talk at once.
                barrier.wait().await;
                say(&mut client, &format!("{room}/{member} hello")).await;
                let mut heard = Vec::new();
                for _ in 1..MEMBERS {
                    heard.push(next_line(&mut client).await.1);
                }
                // Every hello has now been delivered; a stray line would be
                // queued ahead of the room's end markers.
                barrier.wait().await;
                say(&mut client, &format!("{room}/{member} end")).await;
                for _ in 1..MEMBERS {
                    heard.push(next_line(&mut client).await.1);
                }
                heard.sort();
                let mut expected: Vec<String> = ["end", "hello"]
                    .iter()
                    .flat_map(|word| {
                        (0..MEMBERS)
                            .filter(|other| *other != member)
                            .map(move |other| format!("{room}/{other} {word}"))
                    })
                    .collect();
                expected.sort();
                assert_eq!(heard, expected);
            }));
        }
    }
    for task in tasks {
        timeout(GUARD, task)
            .await
            .expect("in time")
            .expect("member");
    }
}

/// Sends `lines` from `talker` and checks `reader` gets each in order, the
/// talker staying at most `window` lines ahead (below the queue length, so
/// the reader, a live client, never counts as too slow).
async fn relay(talker: &mut Client, reader: &mut Client, lines: &[String], window: usize) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_reading_is_dropped_and_the_room_goes_on() {
    let app = spawn_app_with(|settings| settings.chat_queue_len = 64).await;
    let mut talker = join(app.addr, "busy").await;
    let mut reader = join(app.addr, "busy").await;
    let mut sleeper = join_with_small_buffer(app.addr, "busy").await;
    let lines = |count: usize, size: usize| -> Vec<String> {
        (0..count)
            .map(|i| format!("{i:05} {}", "x".repeat(size - 6)))
            .collect()
    };

    // The kernel buffers up to a few MiB for a client that does not read
    // (`tcp_wmem`); 8 MiB, more than that plus a full queue, make sure the
    // sleeper's queue has overflowed once the reader has them all.
    let flood = lines(128, 64 * 1024);
    timeout(GUARD, relay(&mut talker, &mut reader, &flood, 32))
        .await
        .expect("the flood in time");

    // The sleeper was dropped: 4000 more lines flow, and it finds its
    // close frame behind the lines it had been sent.
    let ordinary = lines(4000, 1024);
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
    .expect("the room kept its pace");
    assert_eq!(code, 1008);
    assert!(
        taken < flood.len(),
        "dropped during the flood ({taken} lines)"
    );
}

#[tokio::test]
async fn a_text_over_the_limit_closes_with_1009() {
    let app = spawn_app_with(|settings| settings.chat_max_message_bytes = 1024).await;
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
}

#[tokio::test]
async fn a_text_over_the_limit_in_fragments_closes_with_1009() {
    let app = spawn_app_with(|settings| settings.chat_max_message_bytes = 1024).await;
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
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_with_1013() {
    let app = spawn_app_with(|s| s.chat_max_connections = 2).await;
    let mut ann = join(app.addr, "full").await;
    let mut bob = join(app.addr, "full").await;
    let mut extra = join(app.addr, "full").await;
    assert_eq!(close_code(&mut extra).await, 1013);
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
            _ => continue,
        }
    };
    say(&mut retry, "back").await;
    assert_eq!(next_line(&mut ann).await.1, "back");
}

#[tokio::test]
async fn shutdown_closes_every_chat_with_1001() {
    let app = spawn_app().await;
    let mut ann = join(app.addr, "one").await;
    let mut bob = join(app.addr, "one").await;
    let mut cid = join(app.addr, "two").await;
    let (_dir, ann_code, bob_code, cid_code) = timeout(GUARD, async {
        tokio::join!(
            app.stop(),
            close_code(&mut ann),
            close_code(&mut bob),
            close_code(&mut cid)
        )
    })
    .await
    .expect("shutdown in time");
    assert_eq!([ann_code, bob_code, cid_code], [1001; 3]);
}

#[tokio::test]
async fn members_are_removed_however_they_leave_and_empty_rooms_are_forgotten() {
    let rooms = Rooms::new(64 * 1024, 64, 10_000);
    let (addr, _stop) = chat_only(&rooms).await;
    let mut polite = join(addr, "one").await;
    let mut abrupt = join(addr, "one").await;
    let vanishing = join(addr, "two").await;
    let mut binary = join(addr, "three").await;
    // Members are in before the handshake completes: no waiting here.
    assert_eq!(rooms.stats().rooms, 3);
    assert_eq!(rooms.stats().connections, 4);

    say(&mut polite, "hi").await;
    assert_eq!(next_line(&mut abrupt).await.1, "hi");
    polite.close(None).await.expect("close");
    reset(vanishing);
    binary.send(Message::binary(vec![1u8])).await.expect("send");
    assert_eq!(close_code(&mut binary).await, 1003);
    wait_for_stats(&rooms, 1, 1).await;
    drop(abrupt);
    let stats = wait_for_stats(&rooms, 0, 0).await;
    assert_eq!(stats.messages, 1);
}

/// `(rooms, connections, messages)` as `GET /metrics` has them.
async fn chat_metrics(app: &TestApp) -> (u64, u64, u64) {
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.expect("metrics text");
    let value = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
            .unwrap_or_else(|| panic!("no {name} in /metrics"))
            .trim()
            .parse::<f64>()
            .expect("a number") as u64
    };
    (
        value("shopd_chat_rooms"),
        value("shopd_chat_connections"),
        value("shopd_chat_messages_total"),
    )
}

#[tokio::test]
async fn the_metrics_follow_rooms_connections_and_messages() {
    let app = spawn_app().await;
    let mut ann = join(app.addr, "one").await;
    let bob = join(app.addr, "one").await;
    let cid = join(app.addr, "two").await;
    say(&mut ann, "hi").await;
    say(&mut ann, "there").await;
    let (mut rooms, mut connections, mut messages) = chat_metrics(&app).await;
    assert_eq!((rooms, connections), (2, 3));
    // Counted when the server reads them, just after this client sent them.
    let waited = timeout(GUARD, async {
        while messages < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            messages = chat_metrics(&app).await.2;
        }
    });
    waited.await.expect("both messages counted");

    ann.close(None).await.expect("close");
    finish_close(&mut ann).await;
    reset(bob);
    drop(cid);
    let emptied = timeout(GUARD, async {
        while (rooms, connections) != (0, 0) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            (rooms, connections, messages) = chat_metrics(&app).await;
        }
    });
    emptied.await.expect("every room forgotten");
    assert_eq!(messages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_members_joining_and_leaving_the_same_rooms_at_once_leave_nothing_behind() {
    let rooms = Rooms::new(64 * 1024, 64, 10_000);
    let (addr, _stop) = chat_only(&rooms).await;
    let tasks: Vec<_> = (0..40)
        .map(|task| {
            tokio::spawn(async move {
                for round in 0..10 {
                    let mut client = join(addr, &format!("churn-{}", (task + round) % 4)).await;
                    say(&mut client, "passing through").await;
                    match round % 3 {
                        0 => client.close(None).await.expect("close"),
                        1 => reset(client),
                        _ => drop(client),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        timeout(GUARD, task).await.expect("in time").expect("churn");
    }
    let stats = wait_for_stats(&rooms, 0, 0).await;
    assert_eq!(stats.messages, 400);
}
