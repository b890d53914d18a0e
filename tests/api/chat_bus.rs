//! Chat rooms spanning shopd instances over a NATS bus: delivery, order,
//! isolation, names, subscriptions, start-up checks, and what the metrics
//! and `/readyz` say while the bus is away (the NATS harness is in
//! `nats.rs`).

use std::collections::HashSet;
use std::time::Duration;

use tokio::time::timeout;

use crate::chat::{GUARD, join, next_line, say};
use crate::helpers::{TestApp, detail, scratch, shopd_command};
use crate::nats::{Nats, free_port, metric, nats_server, poll, spawn_on_bus, subject};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_on_two_instances_hear_each_other_without_echo_and_rooms_stay_apart() {
    let Some(binary) = nats_server("two_instances") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let a = spawn_on_bus(&nats.url()).await;
    let b = spawn_on_bus(&nats.url()).await;
    let mut ann = join(a.addr, "lobby").await;
    let mut bob = join(b.addr, "lobby").await;
    let mut cid = join(a.addr, "other%20room").await;
    let mut dan = join(b.addr, "other%20room").await;

    // Joined just now: the subscription was live before the handshake.
    say(&mut ann, "hello from A").await;
    let (ann_name, text) = next_line(&mut bob).await;
    assert_eq!(text, "hello from A");
    say(&mut bob, "hello from B").await;
    let (bob_name, text) = next_line(&mut ann).await;
    assert_eq!(text, "hello from B");
    assert_ne!(ann_name, bob_name);
    say(&mut dan, "other room").await;
    assert_eq!(next_line(&mut cid).await.1, "other room");

    // An echo or the other room's lines would be queued ahead of these.
    for (from, to) in [(&mut ann, &mut bob), (&mut cid, &mut dan)] {
        say(from, "marker").await;
        assert_eq!(next_line(to).await.1, "marker");
        say(to, "back").await;
        assert_eq!(next_line(from).await.1, "back");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_senders_thousand_lines_keep_their_order_on_three_instances() {
    const LINES: usize = 1000;
    let Some(binary) = nats_server("three_instances") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let apps = [
        spawn_on_bus(&nats.url()).await,
        spawn_on_bus(&nats.url()).await,
        spawn_on_bus(&nats.url()).await,
    ];
    let mut talker = join(apps[0].addr, "order").await;
    let mut listeners = Vec::new();
    for app in &apps {
        listeners.push(join(app.addr, "order").await);
    }
    let texts: Vec<String> = (0..LINES).map(|i| format!("{i}: héllo 🐱")).collect();
    let reads: Vec<_> = listeners
        .into_iter()
        .map(|mut listener| {
            tokio::spawn(async move {
                let mut heard = Vec::with_capacity(LINES);
                for _ in 0..LINES {
                    heard.push(next_line(&mut listener).await.1);
                }
                heard
            })
        })
        .collect();
    for text in &texts {
        say(&mut talker, text).await;
    }
    for read in reads {
        let heard = timeout(GUARD, read)
            .await
            .expect("in time")
            .expect("reader");
        assert_eq!(heard, texts);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_distinct_across_instances_and_keep_their_look() {
    let Some(binary) = nats_server("names_across_instances") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let a = spawn_on_bus(&nats.url()).await;
    let b = spawn_on_bus(&nats.url()).await;
    let mut listener = join(a.addr, "crowd").await;
    let mut members = Vec::new();
    for index in 0..20 {
        let app = if index % 2 == 0 { &a } else { &b };
        members.push((index % 2, join(app.addr, "crowd").await));
    }
    for (_, member) in &mut members {
        say(member, "here").await;
    }
    let mut names = HashSet::new();
    let mut tags = HashSet::new();
    for _ in 0..members.len() {
        let (name, _) = next_line(&mut listener).await;
        let parts: Vec<&str> = name.split('-').collect();
        assert_eq!(parts.len(), 4, "adjective-animal-NNNN-tag: {name}");
        assert!(parts[2].len() == 4 && parts[2].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(name.trim(), name);
        names.insert(name.clone());
        tags.insert(parts[3].to_owned());
    }
    assert_eq!(names.len(), members.len(), "distinct names");
    assert_eq!(tags.len(), 2, "one tag per instance: {tags:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_unsubscribes_from_a_room_when_its_last_local_member_leaves() {
    let Some(binary) = nats_server("unsubscribe") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let a = spawn_on_bus(&nats.url()).await;
    let b = spawn_on_bus(&nats.url()).await;
    let room = subject("a.b *> c");
    let ann = join(a.addr, "a.b%20*%3E%20c").await;
    let mut bob = join(b.addr, "a.b%20*%3E%20c").await;
    let mut cid = join(b.addr, "a.b%20*%3E%20c").await;
    assert_eq!(nats.subjects(&room).await, vec![room.clone(); 2]);

    drop(ann);
    poll("A to unsubscribe", || async {
        nats.subjects(&room).await == vec![room.clone()]
    })
    .await;
    poll("A to forget the room", || async {
        metric(&a, "shopd_chat_rooms").await == Some(0.0)
    })
    .await;
    // B's members still talk.
    say(&mut bob, "still here").await;
    assert_eq!(next_line(&mut cid).await.1, "still here");
    drop(bob);
    drop(cid);
    poll("B to unsubscribe", || async {
        nats.subjects(&room).await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_outage_leaves_the_api_ready_and_only_chat_degrades_until_it_returns() {
    let Some(binary) = nats_server("bus_restart") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let port = nats.port;
    let a = spawn_on_bus(&nats.url()).await;
    let b = spawn_on_bus(&nats.url()).await;
    let mut ann = join(a.addr, "lobby").await;
    let mut bob = join(b.addr, "lobby").await;
    let mut amy = join(a.addr, "lobby").await;
    let ready: serde_json::Value = a.get("/readyz").await.json().await.expect("JSON");
    assert_eq!(
        ready,
        serde_json::json!({"status": "ok", "chat_bus": "connected"})
    );
    assert_eq!(a.get("/readyz/chat").await.status(), 200);
    assert_eq!(metric(&a, "shopd_chat_bus_connected").await, Some(1.0));
    let text = a.get("/metrics").await.text().await.expect("metrics");
    assert!(text.contains("# HELP shopd_chat_bus_connected "), "{text}");

    drop(nats);
    poll("A to see the bus gone", || async {
        metric(&a, "shopd_chat_bus_connected").await == Some(0.0)
    })
    .await;
    // The API stays ready: every instance shares the bus, and a load
    // balancer that took them all out would take the whole shop down.
    let ready = a.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let ready: serde_json::Value = ready.json().await.expect("JSON");
    assert_eq!(
        ready,
        serde_json::json!({"status": "ok", "chat_bus": "disconnected"})
    );
    let tea = a.create_item("tea", 2.5).await;
    assert_eq!(
        a.get_json(&format!("/item/{}", tea["id"])).await["name"],
        "tea"
    );
    // The chat's own check says what is down, for a chat backend's balancer.
    let why = detail(a.get("/readyz/chat").await, 503).await;
    assert!(
        why.contains("chat bus") && why.contains(&port.to_string()),
        "{why}"
    );
    // Local delivery goes on.
    say(&mut ann, "local while the bus is down").await;
    assert_eq!(next_line(&mut amy).await.1, "local while the bus is down");

    // The same port again: both clients reconnect and resubscribe.
    let _nats = Nats::spawn(&binary, port, None, &[], "").await;
    for app in [&a, &b] {
        poll("the instance to reconnect", || async {
            app.get("/readyz/chat").await.status() == 200
        })
        .await;
    }
    assert_eq!(metric(&a, "shopd_chat_bus_connected").await, Some(1.0));
    // Lines sent while resubscribing may be lost: probe until one passes.
    let mut round = 0;
    loop {
        round += 1;
        assert!(round < 500, "no line crossed the bus after it came back");
        say(&mut ann, &format!("probe {round}")).await;
        let heard = timeout(Duration::from_millis(100), next_line(&mut bob)).await;
        if heard.is_ok() {
            break;
        }
    }
    say(&mut ann, "after").await;
    loop {
        let (_, text) = next_line(&mut bob).await;
        if text == "after" {
            break;
        }
        assert!(text.starts_with("probe "), "{text}");
    }
}

#[tokio::test]
async fn an_unreachable_bus_stops_start_up_naming_it() {
    let (cwd, dir) = scratch();
    let url = format!("nats://127.0.0.1:{}", free_port());
    let output = shopd_command(cwd.path())
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--chat-bus", &url])
        .output()
        .expect("run shopd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("chat bus") && stderr.contains(&url),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_message_limit_the_bus_cannot_carry_is_refused_at_start_up() {
    let Some(binary) = nats_server("max_payload") else {
        return;
    };
    let nats = Nats::start_with(&binary, "max_payload: 4096\n").await;
    let (cwd, dir) = scratch();
    let output = shopd_command(cwd.path())
        .arg("--data-dir")
        .arg(&dir)
        .args(["--listen", "127.0.0.1:0", "--chat-bus", &nats.url()])
        .args(["--chat-max-message-bytes", "65536"])
        .output()
        .expect("run shopd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("chat_max_message_bytes") && stderr.contains("4096"),
        "{stderr}"
    );
    // What fits is accepted.
    let fits = TestApp::builder()
        .bus(&nats.url())
        .configure(|settings| {
            settings.chat.max_message_bytes = std::num::NonZero::new(3800).unwrap();
        })
        .spawn()
        .await;
    assert_eq!(fits.get("/readyz").await.status(), 200);
}

/// A join returns once the bus server has the room's subscription, not
/// once it is only written to the socket: about 1 join in 250 missed the
/// lines said on another instance just after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_said_on_another_instance_right_after_a_join_is_heard() {
    const JOINS: usize = 500;
    let Some(binary) = nats_server("heard_after_join") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let a = spawn_on_bus(&nats.url()).await;
    let b = spawn_on_bus(&nats.url()).await;
    for round in 0..JOINS {
        let room = format!("joined{round}");
        let mut talker = join(a.addr, &room).await;
        let mut listener = join(b.addr, &room).await;
        say(&mut talker, "first").await;
        let (_, text) = next_line(&mut listener).await;
        assert_eq!(text, "first", "join {round}");
    }
}
