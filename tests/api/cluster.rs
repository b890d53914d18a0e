//! shopd as a cluster: the chat bus surviving the loss of the NATS node an
//! instance is connected to, and two shopd processes on one PostgreSQL and
//! one NATS behind HAProxy configured by `deploy/haproxy.cfg`.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::timeout;

use crate::balancer::start_haproxy;
use crate::chat::{Client, GUARD, join, next_line, say};
use crate::exposition::Exposition;
use crate::helpers::{require_tool, scratch, spawn_process};
use crate::nats::{Nats, metric, nats_server, poll, spawn_on_bus};
use crate::pg::fresh_database;

/// Sends probes from `from` until one reaches `to` (lines sent while an
/// instance is away from the bus may be lost), then `count` lines that
/// must all arrive, in order, once each, after any late probes.
pub async fn conversation_goes_on(from: &mut Client, to: &mut Client, count: usize) {
    let mut round = 0;
    loop {
        round += 1;
        assert!(round < 500, "no line crossed the bus");
        say(from, &format!("probe {round}")).await;
        if timeout(Duration::from_millis(100), next_line(to))
            .await
            .is_ok()
        {
            break;
        }
    }
    let texts: Vec<String> = (0..count).map(|i| format!("after {i}")).collect();
    for text in &texts {
        say(from, text).await;
    }
    let mut heard = Vec::new();
    while heard.len() < count {
        let (_, text) = next_line(to).await;
        if heard.is_empty() && text.starts_with("probe ") {
            continue;
        }
        heard.push(text);
    }
    assert_eq!(heard, texts, "in order, nothing duplicated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_nats_node_dies_reconnects_to_another_and_the_chat_goes_on() {
    let Some(binary) = nats_server("nats_failover") else {
        return;
    };
    let mut nodes = Nats::cluster(&binary, 3).await;
    // A knows only node 0 at first and learns the others from it; B is on
    // node 1.
    let a = spawn_on_bus(&nodes[0].url()).await;
    let b = spawn_on_bus(&nodes[1].url()).await;
    let mut ann = join(a.addr, "lobby").await;
    let mut bob = join(b.addr, "lobby").await;
    conversation_goes_on(&mut ann, &mut bob, 50).await;
    conversation_goes_on(&mut bob, &mut ann, 50).await;

    drop(nodes.remove(0));
    poll("A to be back on the bus", || async {
        a.get("/readyz").await.status() == 200
            && metric(&a, "shopd_chat_bus_connected").await == Some(1.0)
    })
    .await;
    conversation_goes_on(&mut ann, &mut bob, 200).await;
    conversation_goes_on(&mut bob, &mut ann, 200).await;
    // A now has a client connection on one of the surviving nodes.
    let mut clients = 0;
    for node in &nodes {
        let connz = node.monitor("connz").await.expect("connz");
        clients += connz["num_connections"].as_u64().unwrap_or(0);
    }
    assert_eq!(clients, 2, "both instances on the surviving nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_behind_haproxy_are_one_shop_and_one_chat() {
    let test = "haproxy_end_to_end";
    let (Some(nats_binary), Some(haproxy)) = (nats_server(test), require_tool("haproxy", test))
    else {
        return;
    };
    let Some(database) = fresh_database(test).await else {
        return;
    };
    let nats = Nats::start(&nats_binary).await;
    let (cwd, dir) = scratch();
    let extra = [
        "--database-url",
        database.url.as_str(),
        "--chat-bus",
        &nats.url(),
    ];
    let one = spawn_process(cwd.path(), &dir.join("one"), &extra);
    let two = spawn_process(cwd.path(), &dir.join("two"), &extra);
    let proxy = start_haproxy(&haproxy, &[one.addr, two.addr]).await;
    let base = proxy.base();
    let client = reqwest::Client::new();
    poll("HAProxy and both instances to be ready", || async {
        let mut ready = true;
        for url in [
            one.url("/readyz"),
            two.url("/readyz"),
            format!("{base}/readyz"),
        ] {
            ready &= client
                .get(&url)
                .send()
                .await
                .is_ok_and(|response| response.status() == 200);
        }
        ready
    })
    .await;

    // The course's flow, each request to whichever instance HAProxy picks.
    let post = |path: &str, body: Option<Value>| {
        let request = client.post(format!("{base}{path}"));
        match body {
            Some(body) => request.json(&body),
            None => request,
        }
        .send()
    };
    let mut items = Vec::new();
    for (name, price) in [("tea", 2.5), ("cake", 4.25)] {
        let response = post("/item", Some(json!({"name": name, "price": price})))
            .await
            .expect("POST /item");
        assert_eq!(response.status(), 201);
        let item: Value = response.json().await.expect("item");
        items.push(item["id"].as_u64().expect("id"));
    }
    let response = post("/cart", None).await.expect("POST /cart");
    assert_eq!(response.status(), 201);
    let cart: Value = response.json().await.expect("cart");
    let cart = cart["id"].as_u64().expect("cart id");
    for item in [items[0], items[1], items[0]] {
        let response = post(&format!("/cart/{cart}/add/{item}"), None)
            .await
            .expect("add");
        assert_eq!(response.status(), 200);
    }
    for _ in 0..4 {
        let response = client
            .get(format!("{base}/cart/{cart}"))
            .send()
            .await
            .expect("GET cart");
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.expect("cart");
        assert_eq!(body["price"], json!(2.5 * 2.0 + 4.25));
        assert_eq!(body["items"][0]["quantity"], json!(2));
    }

    // Two chat connections in a row: the chat backend gives the next one to
    // the instance with the fewest, so they land on different instances.
    let mut ann = join(proxy.addr(), "lobby").await;
    let mut bob = join(proxy.addr(), "lobby").await;
    let mut per_instance = Vec::new();
    for instance in [&one, &two] {
        let text = client
            .get(instance.url("/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let connections = Exposition::parse(&text).value("shopd_chat_connections", &[]);
        per_instance.push(connections);
    }
    assert_eq!(per_instance, [Some(1.0), Some(1.0)], "one member on each");
    say(&mut ann, "hello through HAProxy").await;
    let heard = timeout(GUARD, next_line(&mut bob)).await.expect("in time");
    assert_eq!(heard.1, "hello through HAProxy");
    say(&mut bob, "hello back").await;
    assert_eq!(next_line(&mut ann).await.1, "hello back");
}
