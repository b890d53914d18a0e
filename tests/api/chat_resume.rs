//! Chat history and resume over real WebSockets: the `shopd.chat.v1`
//! frames, resuming after a dropped connection and after restarts of the
//! shopd binary (SIGTERM keeps the epoch, kill -9 changes it), what a
//! resume that cannot be complete says, and tokens that are forged, for
//! another room, or presented twice.

use std::path::Path;

use futures_util::FutureExt;

use crate::chat::{join, next_line, say};
use crate::exposition::Exposition;
use crate::process::{spawn_process, terminate};
use crate::support::{TestApp, scratch};

pub(crate) mod client;

use client::*;

#[tokio::test]
async fn json_members_get_a_welcome_lines_with_offsets_and_sent_while_plain_members_see_no_difference()
 {
    let app = TestApp::builder().spawn().await;
    let mut plain = join(app.addr, "mixed").await;
    let (mut ann, welcome) = join_json(app.addr, "mixed", "").await;
    assert_eq!(welcome.offset, 0);
    assert!(!welcome.resumed);
    assert!(!welcome.token.is_empty() && !welcome.epoch.is_empty());
    let (mut bob, bob_welcome) = join_json(app.addr, "mixed", "").await;
    assert_eq!(bob_welcome.epoch, welcome.epoch);

    assert_eq!(say_json(&mut ann, "hello").await, 1);
    assert_eq!(
        next_chat_line(&mut bob).await,
        (1, welcome.name.clone(), "hello".into())
    );
    assert_eq!(
        next_line(&mut plain).await,
        (welcome.name.clone(), "hello".into())
    );
    say(&mut plain, "plain :: text").await;
    let (offset, from, text) = next_chat_line(&mut ann).await;
    assert_eq!((offset, text.as_str()), (2, "plain :: text"));
    assert_eq!(next_chat_line(&mut bob).await.1, from);
    assert_eq!(say_json(&mut bob, "bye").await, 3);
    assert_eq!(next_chat_line(&mut ann).await.0, 3);
    assert_eq!(next_line(&mut plain).await.1, "bye");

    // A newcomer with since=N gets the kept lines after N; without since,
    // nothing.
    let (mut late, late_welcome) = join_json(app.addr, "mixed", "?since=1").await;
    assert_eq!(late_welcome.offset, 3);
    assert_eq!(next_chat_line(&mut late).await.0, 2);
    assert_eq!(next_chat_line(&mut late).await.0, 3);
    let (mut later, _) = join_json(app.addr, "mixed", "").await;
    assert_eq!(say_json(&mut ann, "live").await, 4);
    assert_eq!(next_chat_line(&mut late).await.0, 4);
    assert_eq!(
        next_chat_line(&mut later).await,
        (4, welcome.name, "live".into())
    );
}

#[tokio::test]
async fn a_member_that_drops_resumes_with_every_missed_line_once_in_order_under_its_name() {
    let app = TestApp::builder().spawn().await;
    let (mut ann, ann_welcome) = join_json(app.addr, "resume", "").await;
    let (mut bob, _) = join_json(app.addr, "resume", "").await;
    say_json(&mut bob, "one").await;
    let seen = next_chat_line(&mut ann).await.0;
    let mine = say_json(&mut ann, "mine").await;
    assert_eq!(next_chat_line(&mut bob).await.0, mine);
    drop(ann);
    for text in ["two", "three", "four"] {
        say_json(&mut bob, text).await;
    }

    // Resumes from the line before its own: gets its own back as `sent`.
    let query = resume_query(&ann_welcome, seen);
    let (mut ann, welcome) = join_json(app.addr, "resume", &query).await;
    assert!(welcome.resumed);
    assert_eq!(welcome.name, ann_welcome.name);
    assert_eq!(welcome.offset, 5);
    let sent = next_json(&mut ann).await;
    assert_eq!(
        (sent["type"].as_str(), sent["offset"].as_u64()),
        (Some("sent"), Some(2))
    );
    for (offset, text) in [(3, "two"), (4, "three"), (5, "four")] {
        assert_eq!(next_chat_line(&mut ann).await.0, offset, "{text}");
    }
    say_json(&mut bob, "live").await;
    assert_eq!(next_chat_line(&mut ann).await.2, "live");

    let metrics = Exposition::parse(&app.get("/metrics").await.text().await.expect("text"));
    let resumes = |result| metrics.value("shopd_chat_resumes_total", &[("result", result)]);
    assert_eq!(resumes("complete"), Some(1.0));
    assert_eq!(resumes("incomplete"), Some(0.0));
    assert_eq!(metrics.value("shopd_chat_history_lines", &[]), Some(6.0));
    assert!(
        metrics
            .value("shopd_chat_history_bytes", &[])
            .expect("bytes")
            > 0.0
    );
    assert_eq!(metrics.value("shopd_chat_history_rooms", &[]), Some(1.0));
}

#[tokio::test]
async fn a_too_old_offset_or_another_epoch_is_told_and_gets_what_is_kept_under_the_same_name() {
    let app = TestApp::builder()
        .configure(|settings| settings.chat.history_lines = 3)
        .spawn()
        .await;
    let (ann, ann_welcome) = join_json(app.addr, "short", "").await;
    drop(ann);
    let (mut bob, _) = join_json(app.addr, "short", "").await;
    for n in 1..=6 {
        say_json(&mut bob, &n.to_string()).await;
    }
    for query in [
        resume_query(&ann_welcome, 1),
        format!("?resume={}&since=5&epoch=another", ann_welcome.token),
        format!(
            "?resume={}&since=99&epoch={}",
            ann_welcome.token, ann_welcome.epoch
        ),
    ] {
        let (mut ann, welcome) = join_json(app.addr, "short", &query).await;
        assert!(!welcome.resumed, "{query}");
        assert_eq!(
            welcome.name, ann_welcome.name,
            "a valid token keeps the name"
        );
        for offset in 4..=6 {
            assert_eq!(next_chat_line(&mut ann).await.0, offset, "{query}");
        }
    }
    let metrics = Exposition::parse(&app.get("/metrics").await.text().await.expect("text"));
    assert_eq!(
        metrics.value("shopd_chat_resumes_total", &[("result", "incomplete")]),
        Some(3.0)
    );
}

#[tokio::test]
async fn a_forged_token_or_one_for_another_room_is_closed_with_1008_and_told_nothing() {
    let app = TestApp::builder().spawn().await;
    let (mut bob, welcome) = join_json(app.addr, "private", "").await;
    say_json(&mut bob, "secret line").await;
    let forged = welcome.token.replacen(&welcome.name, "sly-fox-1234", 1);
    for (room, token) in [
        ("private", forged.as_str()),
        ("private", "garbage"),
        ("elsewhere", welcome.token.as_str()),
    ] {
        let query = format!("?resume={token}&since=0&epoch={}", welcome.epoch);
        let mut client = connect(app.addr, room, &query).await;
        assert_eq!(closed_with(&mut client).await, 1008, "{room} {token}");
    }
    let mut bad = connect(app.addr, "private", "?since=minus-one").await;
    assert_eq!(closed_with(&mut bad).await, 1008);
    // A plain client's query means nothing, as before.
    let mut plain = join(app.addr, "private?resume=garbage").await;
    say_json(&mut bob, "still here").await;
    assert_eq!(next_line(&mut plain).await.1, "still here");
}

#[tokio::test]
async fn the_same_token_twice_closes_the_older_connection() {
    let app = TestApp::builder().spawn().await;
    let (first, welcome) = join_json(app.addr, "twice", "").await;
    let mut first = first;
    let query = resume_query(&welcome, 0);
    let (mut second, again) = join_json(app.addr, "twice", &query).await;
    assert_eq!(again.name, welcome.name);
    assert!(again.resumed);
    assert_eq!(closed_with(&mut first).await, 1008);
    let (mut bob, _) = join_json(app.addr, "twice", "").await;
    say_json(&mut bob, "to the newest").await;
    assert_eq!(next_chat_line(&mut second).await.2, "to the newest");
}

#[tokio::test]
async fn at_the_connection_limit_a_resume_replaces_its_connection_and_a_stranger_is_refused_alone()
{
    let app = TestApp::builder()
        .configure(|s| s.chat.max_connections = std::num::NonZero::new(2).expect("nonzero"))
        .spawn()
        .await;
    let (mut ann, welcome) = join_json(app.addr, "full", "").await;
    let (mut bob, _) = join_json(app.addr, "full", "").await;
    // A stranger beyond the limit is refused, and nobody else is closed.
    let mut stranger = connect(app.addr, "full", "").await;
    assert_eq!(closed_with(&mut stranger).await, 1013);
    let before = say_json(&mut bob, "still here").await;
    assert_eq!(next_chat_line(&mut ann).await.2, "still here");
    let metrics = app.get("/metrics").await.text().await.expect("metrics");
    let dropped = Exposition::parse(&metrics)
        .value(
            "shopd_chat_dropped_total",
            &[("reason", "too_many_connections")],
        )
        .expect("the drop counter");
    assert!((dropped - 1.0).abs() < f64::EPSILON, "{dropped}");
    // Ann resumes while the chat is full: her new connection takes the
    // place of her old one instead of being refused.
    let (mut again, resumed) = join_json(app.addr, "full", &resume_query(&welcome, before)).await;
    assert_eq!(resumed.name, welcome.name);
    assert!(resumed.resumed);
    assert_eq!(closed_with(&mut ann).await, 1008, "replaced");
    say_json(&mut bob, "to the new one").await;
    assert_eq!(next_chat_line(&mut again).await.2, "to the new one");
}

/// Runs the conversation's first half on a shopd over `data`, stops it
/// with `stop`, runs the second half on a new shopd over the same
/// directory; returns ann's first and second welcomes and what she got.
async fn across_a_restart(
    data: &Path,
    cwd: &Path,
    stop: impl FnOnce(&mut std::process::Child),
) -> (Welcome, Welcome, Vec<(u64, String, String)>) {
    let mut shopd = spawn_process(cwd, data, &[]);
    let (mut ann, ann_welcome) = join_json(shopd.addr, "restart", "").await;
    let (mut bob, bob_welcome) = join_json(shopd.addr, "restart", "").await;
    let mut last = 0;
    for text in ["a1", "a2", "a3"] {
        let offset = say_json(&mut bob, text).await;
        if text != "a3" {
            // ann reads the first two only; a3 reaches her queue but she
            // never shows it, so her resume point stays at a2.
            last = next_chat_line(&mut ann).await.0;
            assert_eq!(last, offset);
        }
    }
    stop(&mut shopd.child);
    drop((ann, bob));
    let shopd = spawn_process(cwd, data, &[]);
    let (mut bob, bob_again) =
        join_json(shopd.addr, "restart", &resume_query(&bob_welcome, 3)).await;
    assert_eq!(bob_again.name, bob_welcome.name);
    // After an unclean stop bob is given what is kept: his own lines.
    let mut seen = if bob_again.resumed {
        bob_again.offset
    } else {
        0
    };
    while seen < bob_again.offset {
        let frame = next_json(&mut bob).await;
        assert_eq!(frame["type"], "sent", "{frame}");
        seen = frame["offset"].as_u64().expect("offset");
    }
    for text in ["b1", "b2", "b3"] {
        say_json(&mut bob, text).await;
    }
    let (mut ann, again) =
        join_json(shopd.addr, "restart", &resume_query(&ann_welcome, last)).await;
    let mut got = Vec::new();
    let upto = again.offset;
    while got.last().is_none_or(|(offset, _, _)| *offset < upto) {
        got.push(next_chat_line(&mut ann).await);
    }
    say_json(&mut bob, "live").await;
    got.push(next_chat_line(&mut ann).await);
    (ann_welcome, again, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigterm_restart_a_resuming_member_gets_every_line_it_missed_once_in_order() {
    let (_tmp, dir) = scratch();
    let data = dir.join("data");
    let (before, after, got) = across_a_restart(&data, &dir, |child| {
        assert!(terminate(child).success());
    })
    .await;
    assert!(after.resumed, "same epoch after a clean stop");
    assert_eq!(after.epoch, before.epoch);
    assert_eq!(after.name, before.name);
    let texts: Vec<&str> = got.iter().map(|(_, _, text)| text.as_str()).collect();
    assert_eq!(texts, ["a3", "b1", "b2", "b3", "live"]);
    let offsets: Vec<u64> = got.iter().map(|(offset, _, _)| *offset).collect();
    assert_eq!(offsets, [3, 4, 5, 6, 7], "contiguous, none twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_epoch_changes_and_the_resume_says_it_is_incomplete() {
    let (_tmp, dir) = scratch();
    let data = dir.join("data");
    let (before, after, got) = across_a_restart(&data, &dir, |child| {
        child.kill().expect("kill -9");
        child.wait().expect("reaped");
    })
    .await;
    assert!(!after.resumed);
    assert_ne!(after.epoch, before.epoch);
    assert_eq!(after.name, before.name, "the token still holds the name");
    // What is kept comes, in order, then the live line.
    let offsets: Vec<u64> = got.iter().map(|(offset, _, _)| *offset).collect();
    assert!(
        offsets.windows(2).all(|pair| pair[0] < pair[1]),
        "{offsets:?}"
    );
    assert_eq!(got.last().map(|(_, _, text)| text.as_str()), Some("live"));
    assert!(got.iter().any(|(_, _, text)| text == "b3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_on_one_database_share_the_token_secret_but_not_the_in_memory_history() {
    let Some(database) = crate::pg::fresh_database("chat_resume_shared_secret").await else {
        return;
    };
    let url = database.url.clone();
    let first = TestApp::builder().postgres(database).spawn().await;
    let second = TestApp::builder().shared_postgres(&url).spawn().await;
    let second_addr = second.addr;

    let (mut ann, welcome) = join_json(first.addr, "shared", "").await;
    say_json(&mut ann, "on the first").await;
    // The second instance checks the first's token: same name; its history
    // is its own (memory), so the resume is not complete.
    let (_ann, again) = join_json(second_addr, "shared", &resume_query(&welcome, 1)).await;
    assert_eq!(again.name, welcome.name);
    assert!(!again.resumed);
    assert_ne!(again.epoch, welcome.epoch);
    let forged = welcome.token.replacen(&welcome.name, "sly-fox-1234", 1);
    let mut client = connect(second_addr, "shared", &format!("?resume={forged}")).await;
    assert_eq!(closed_with(&mut client).await, 1008);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_many_senders_at_once_a_json_member_gets_every_line_in_offset_order() {
    let app = TestApp::builder()
        .configure(|settings| {
            settings.chat.rate_per_sec = std::num::NonZero::new(1_000_000).unwrap();
            settings.chat.rate_burst = std::num::NonZero::new(1_000_000).unwrap();
        })
        .spawn()
        .await;
    let (mut reader, _) = join_json(app.addr, "busy", "").await;
    const SENDERS: usize = 4;
    const LINES: usize = 200;
    let mut senders = Vec::new();
    for _ in 0..SENDERS {
        senders.push(join(app.addr, "busy").await);
    }
    let talk = futures_util::future::join_all(senders.iter_mut().enumerate().map(
        |(index, sender)| async move {
            for n in 0..LINES {
                say(sender, &format!("{index}:{n}")).await;
            }
        },
    ));
    let listen = async {
        let mut offsets = Vec::new();
        let mut per_sender = [0; SENDERS];
        while offsets.len() < SENDERS * LINES {
            let (offset, _, text) = next_chat_line(&mut reader).await;
            let (index, n) = text.split_once(':').expect("index:n");
            let index: usize = index.parse().expect("index");
            assert_eq!(n, per_sender[index].to_string(), "each sender's order");
            per_sender[index] += 1;
            offsets.push(offset);
        }
        offsets
    };
    let ((), offsets) = tokio::join!(talk.map(drop), listen);
    let expected: Vec<u64> = (1..=(SENDERS * LINES) as u64).collect();
    assert_eq!(offsets, expected, "every offset once, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_reach_the_logs_even_at_debug_level() {
    let (_tmp, dir) = scratch();
    let mut command = crate::process::serve_command(&dir, &dir.join("data"), &[]);
    command.env("SHOPD_LOG_LEVEL", "debug");
    let mut shopd = crate::process::start_command(command).serving("shopd starts");
    let mut stderr = shopd.child.stderr.take().expect("stderr");
    // Read as it comes, so a full pipe never blocks shopd.
    let logs = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut text);
        text
    });
    let (mut ann, welcome) = join_json(shopd.addr, "quiet", "").await;
    say_json(&mut ann, "hello").await;
    let (_again, again) = join_json(shopd.addr, "quiet", &resume_query(&welcome, 1)).await;
    assert_eq!(closed_with(&mut ann).await, 1008, "replaced");
    let forged = again.token.replacen(&again.name, "sly-fox-1234", 1);
    let mut refused = connect(shopd.addr, "quiet", &format!("?resume={forged}")).await;
    assert_eq!(closed_with(&mut refused).await, 1008);
    assert!(terminate(&mut shopd.child).success());
    let logs = logs.join().expect("reader");
    assert!(logs.contains("DEBUG"), "debug logging is on: {logs}");
    for token in [&welcome.token, &again.token, &forged] {
        let mac = token.rsplit('.').next().expect("a MAC");
        assert!(!logs.contains(mac), "a token in the logs: {logs}");
    }
}
