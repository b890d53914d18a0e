//! Who hears what, in which order and at which pace.

use futures_util::SinkExt;
use tokio::sync::Barrier;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::helpers::{spawn_app, spawn_app_with};

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

/// Reads `count` chat lines as fast as they come; their texts.
async fn read_lines(mut client: Client, count: usize) -> (Client, Vec<String>) {
    let mut texts = Vec::with_capacity(count);
    for _ in 0..count {
        texts.push(next_line(&mut client).await.1);
    }
    (client, texts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_two_thousand_frames_in_one_write_reaches_every_reader_in_order() {
    const LINES: usize = 2000;
    let app = spawn_app_with(|settings| {
        // A short queue, so the burst outruns it many times over.
        settings.chat.queue_len = std::num::NonZero::new(16).unwrap();
        settings.chat.rate_per_sec = std::num::NonZero::new(1_000_000).unwrap();
        settings.chat.rate_burst = std::num::NonZero::new(1_000_000).unwrap();
    })
    .await;
    let ann = join(app.addr, "burst").await;
    let bob = join(app.addr, "burst").await;
    let mut talker = join(app.addr, "burst").await;
    let readers = [
        tokio::spawn(read_lines(ann, LINES)),
        tokio::spawn(read_lines(bob, LINES)),
    ];
    let texts: Vec<String> = (0..LINES).map(|i| format!("line {i}")).collect();
    // One write: every frame is fed, then flushed at once.
    for text in &texts {
        talker
            .feed(Message::text(text.as_str()))
            .await
            .expect("feed");
    }
    talker.flush().await.expect("flush");
    for reader in readers {
        let (mut client, heard) = timeout(GUARD, reader)
            .await
            .expect("every line in time")
            .expect("reader");
        assert_eq!(heard, texts, "every line, in order");
        // Still a member: no close frame is waiting ahead of this.
        say(&mut talker, "still there?").await;
        assert_eq!(next_line(&mut client).await.1, "still there?");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_over_its_rate_is_slowed_down_not_dropped() {
    const RATE: u32 = 40;
    const BURST: u32 = 10;
    const LINES: usize = 70;
    let app = spawn_app_with(|settings| {
        settings.chat.rate_per_sec = std::num::NonZero::new(RATE).unwrap();
        settings.chat.rate_burst = std::num::NonZero::new(BURST).unwrap();
    })
    .await;
    let listener = join(app.addr, "paced").await;
    let mut talker = join(app.addr, "paced").await;
    let reading = tokio::spawn(read_lines(listener, LINES));
    let started = std::time::Instant::now();
    let texts: Vec<String> = (0..LINES).map(|i| format!("line {i}")).collect();
    for text in &texts {
        say(&mut talker, text).await;
    }
    let (_listener, heard) = timeout(GUARD, reading)
        .await
        .expect("every line in time")
        .expect("reader");
    assert_eq!(heard, texts, "nothing dropped, order kept");
    // A lower bound only: beyond its burst, the talker's lines cannot
    // have been taken faster than its rate allows.
    let least = f64::from(LINES as u32 - BURST - 1) / f64::from(RATE);
    assert!(
        started.elapsed().as_secs_f64() >= least,
        "{LINES} lines went in {:?}, faster than {RATE}/s after a burst of {BURST}",
        started.elapsed()
    );
    say(&mut talker, "still connected").await;
}
