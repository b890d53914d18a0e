//! Chat history in NATS JetStream: instances on one bus serve one history,
//! numbered alike, and a member resumes through any of them.

use futures_util::future::join_all;

use crate::chat_resume::client::{join_json, next_chat_line, next_json, resume_query, say_json};
use crate::exposition::scrape;
use crate::nats::{Nats, nats_server, poll, spawn_on_bus};

/// The name shopd gives the history stream under the default prefix.
const STREAM: &str = "SHOPD_CHAT_HISTORY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_resumes_through_either_instance_with_every_line_once_in_order() {
    let Some(binary) = nats_server("chat history in JetStream") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let a = spawn_on_bus(&nats.url()).await;
    let b = spawn_on_bus(&nats.url()).await;

    let (mut ann, ann_welcome) = join_json(a.addr, "js", "").await;
    let first = say_json(&mut ann, "before").await;
    assert_eq!(first, 1);
    let (mut bob, bob_welcome) = join_json(b.addr, "js", "?since=0").await;
    assert_eq!(bob_welcome.epoch, ann_welcome.epoch, "one epoch everywhere");
    assert_eq!(bob_welcome.offset, first);
    assert_eq!(
        next_chat_line(&mut bob).await,
        (1, ann_welcome.name.clone(), "before".into())
    );
    drop(ann);

    // Lines through B while Ann is away; she comes back through B.
    let mut offsets = Vec::new();
    for n in 0..5 {
        offsets.push(say_json(&mut bob, &format!("b{n}")).await);
    }
    assert_eq!(offsets, vec![2, 3, 4, 5, 6], "contiguous after Ann's line");
    let (mut ann, welcome) = join_json(b.addr, "js", &resume_query(&ann_welcome, first)).await;
    assert!(welcome.resumed, "complete through the other instance");
    assert_eq!(welcome.name, ann_welcome.name);
    assert_eq!(welcome.offset, 6);
    for (n, offset) in offsets.iter().enumerate() {
        assert_eq!(
            next_chat_line(&mut ann).await,
            (*offset, bob_welcome.name.clone(), format!("b{n}"))
        );
    }
    let live = say_json(&mut bob, "live").await;
    assert_eq!(next_chat_line(&mut ann).await.0, live);
    drop(ann);

    // Away again; back through A, where the room was forgotten meanwhile.
    for n in 0..3 {
        say_json(&mut bob, &format!("c{n}")).await;
    }
    let (mut ann, again) = join_json(a.addr, "js", &resume_query(&welcome, live)).await;
    assert!(again.resumed, "complete through the first instance too");
    assert_eq!(again.name, ann_welcome.name);
    for (n, offset) in (live + 1..=live + 3).enumerate() {
        assert_eq!(next_chat_line(&mut ann).await.0, offset, "c{n}");
    }
    // And a live line from A reaches B, numbered next.
    assert_eq!(say_json(&mut ann, "from a").await, live + 4);
    assert_eq!(next_chat_line(&mut bob).await.0, live + 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_of_two_instances_talking_at_once_get_contiguous_offsets_in_one_order() {
    let Some(binary) = nats_server("chat history in JetStream") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let apps = [
        spawn_on_bus(&nats.url()).await,
        spawn_on_bus(&nats.url()).await,
    ];
    const LINES: usize = 40;
    let mut members = Vec::new();
    for app in &apps {
        members.push(join_json(app.addr, "busy", "").await.0);
    }
    let total = apps.len() * LINES;
    // Each member sends its lines while reading; what it sees (lines of the
    // other, `sent` for its own) must be every offset once, in order.
    let seen = join_all(
        members
            .iter_mut()
            .enumerate()
            .map(|(index, member)| async move {
                let mut offsets = Vec::new();
                let mut said = 0;
                while offsets.len() < total {
                    if said < LINES {
                        crate::chat::say(member, &format!("{index}:{said}")).await;
                        said += 1;
                    }
                    let frame = next_json(member).await;
                    offsets.push(frame["offset"].as_u64().expect("offset"));
                }
                offsets
            }),
    )
    .await;
    let expected: Vec<u64> = (1..=total as u64).collect();
    for offsets in seen {
        assert_eq!(offsets, expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_stream_is_lost_the_epoch_changes_and_a_resume_is_incomplete() {
    let Some(binary) = nats_server("chat history in JetStream") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let app = spawn_on_bus(&nats.url()).await;
    let (mut ann, welcome) = join_json(app.addr, "lost", "").await;
    let (mut bob, _) = join_json(app.addr, "lost", "").await;
    let last = say_json(&mut ann, "one").await;
    next_chat_line(&mut bob).await;
    drop(ann);

    let client = async_nats::connect(nats.url()).await.expect("connect");
    let jetstream = async_nats::jetstream::new(client);
    jetstream
        .delete_stream(STREAM)
        .await
        .expect("delete the stream");
    // Bob's next line still goes out (live only) and makes the stream
    // again, under a new epoch.
    say_json(&mut bob, "two").await;
    let addr = app.addr;
    let old = welcome.epoch.clone();
    poll("the room under the new stream's epoch", || {
        let old = old.clone();
        async move { join_json(addr, "lost", "").await.1.epoch != old }
    })
    .await;

    let (_ann, resumed) = join_json(app.addr, "lost", &resume_query(&welcome, last)).await;
    assert!(!resumed.resumed, "told, not silently skipped");
    assert_ne!(resumed.epoch, welcome.epoch);
    assert_eq!(resumed.name, welcome.name, "a valid token keeps the name");
    let metrics = scrape(&app).await;
    assert_eq!(
        metrics.value("shopd_chat_resumes_total", &[("result", "incomplete")]),
        Some(1.0)
    );
    let publish = metrics.value("shopd_chat_jetstream_errors_total", &[("op", "publish")]);
    assert_eq!(publish, Some(1.0), "the line that found no stream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_jetstream_chat_goes_on_live_and_a_resume_is_told_it_is_incomplete() {
    let Some(binary) = nats_server("chat without JetStream") else {
        return;
    };
    let nats = Nats::start_with(&binary, "jetstream: disabled\n").await;
    let a = spawn_on_bus(&nats.url()).await;
    let b = spawn_on_bus(&nats.url()).await;
    let (mut ann, welcome) = join_json(a.addr, "degraded", "").await;
    let (mut bob, _) = join_json(b.addr, "degraded", "").await;
    let (mut cid, _) = join_json(a.addr, "degraded", "").await;
    let mine = say_json(&mut ann, "still live").await;
    assert_eq!(
        next_chat_line(&mut bob).await.2,
        "still live",
        "across instances"
    );
    assert_eq!(next_chat_line(&mut cid).await.0, mine);
    drop(ann);
    say_json(&mut cid, "while away").await;

    let (mut ann, resumed) = join_json(a.addr, "degraded", &resume_query(&welcome, mine)).await;
    assert!(!resumed.resumed, "no history to resume from: told so");
    assert_eq!(resumed.name, welcome.name);
    say_json(&mut cid, "after").await;
    // What this instance kept comes first; then the live line.
    let mut texts = Vec::new();
    while texts.last().map(String::as_str) != Some("after") {
        let frame = next_json(&mut ann).await;
        texts.push(frame["text"].as_str().unwrap_or("(sent)").to_owned());
    }
    assert_eq!(texts, ["(sent)", "while away", "after"], "live lines go on");

    let metrics = scrape(&a).await;
    let errors = |op| {
        metrics
            .value("shopd_chat_jetstream_errors_total", &[("op", op)])
            .unwrap_or_else(|| panic!("errors of {op} shown"))
    };
    assert!(errors("stream") >= 1.0);
    assert_eq!(errors("publish"), 0.0, "no line waited on JetStream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_three_replicas_the_history_outlives_a_nats_node() {
    let Some(binary) = nats_server("chat history on a NATS cluster") else {
        return;
    };
    let mut nodes = Nats::cluster(&binary, 3).await;
    let urls: Vec<String> = nodes.iter().map(Nats::url).collect();
    let urls = urls.join(",");
    let spawn = || {
        crate::support::TestApp::builder()
            .bus(&urls)
            .configure(|settings| {
                settings.chat.history_replicas = std::num::NonZero::new(3).unwrap();
            })
            .spawn()
    };
    let (a, b) = (spawn().await, spawn().await);
    // Both rooms follow the stream once their welcomes share its epoch.
    let mut tries = 0;
    let (mut bob, mut client, welcome) = loop {
        let (bob, bob_welcome) = join_json(b.addr, "replicas", "").await;
        let (client, welcome) = join_json(a.addr, "replicas", "").await;
        if welcome.epoch == bob_welcome.epoch {
            break (bob, client, welcome);
        }
        tries += 1;
        assert!(tries < 50, "the rooms never followed the stream");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let jsz = nodes[0]
        .monitor("jsz?accounts=true&streams=true&config=true")
        .await
        .expect("jsz");
    let replicas: Vec<&serde_json::Value> = jsz["account_details"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|account| account["stream_detail"].as_array())
        .flatten()
        .filter(|stream| stream["name"] == STREAM)
        .map(|stream| &stream["config"]["num_replicas"])
        .collect();
    assert_eq!(replicas, [&serde_json::json!(3)], "{jsz}");
    let first = say_json(&mut client, "before").await;
    assert_eq!(next_chat_line(&mut bob).await.0, first);
    drop(client);
    for n in 0..3 {
        say_json(&mut bob, &format!("while away {n}")).await;
    }

    drop(nodes.remove(0));
    // Through the remaining two nodes (after a new leader, if the lost
    // node led the stream), Ann's resume is complete.
    let query = resume_query(&welcome, first);
    let addr = a.addr;
    poll("a complete resume with one node lost", || {
        let query = query.clone();
        async move {
            let (mut ann, again) = join_json(addr, "replicas", &query).await;
            if !again.resumed {
                return false;
            }
            for n in 0..3 {
                let (offset, _, text) = next_chat_line(&mut ann).await;
                assert_eq!((offset, text), (first + 1 + n, format!("while away {n}")));
            }
            true
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_whose_store_timed_out_goes_out_live_once_and_is_not_delivered_again() {
    let Some(binary) = nats_server("chat history in JetStream") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let app = spawn_on_bus(&nats.url()).await;
    let (mut ann, _) = join_json(app.addr, "paused", "").await;
    let (mut bob, _) = join_json(app.addr, "paused", "").await;
    let first = say_json(&mut ann, "before").await;
    assert_eq!(next_chat_line(&mut bob).await.2, "before");
    // The server stops answering: storing the next line times out, so it
    // goes out live; the server stores it once it runs again.
    let signal = |name: &str| {
        let status = std::process::Command::new("kill")
            .args([name, &nats.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    };
    signal("-STOP");
    let during = say_json(&mut ann, "during").await;
    let (offset, _, text) = next_chat_line(&mut bob).await;
    assert_eq!((offset, text.as_str()), (during, "during"));
    signal("-CONT");
    let after = say_json(&mut ann, "after").await;
    let (offset, _, text) = next_chat_line(&mut bob).await;
    assert_eq!(
        (offset, text.as_str()),
        (after, "after"),
        "the stored copy of the line that went out live is not delivered again"
    );
    assert_eq!((during, after), (first + 1, first + 2));
}
