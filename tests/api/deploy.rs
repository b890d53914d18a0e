//! The deployment of `deploy/` as documented (docs/deploy.md): shopd
//! processes on one PostgreSQL and one NATS behind HAProxy started from
//! `deploy/haproxy.cfg` as shipped: a bus outage degrades chat only; and
//! both shipped balancers pass the client's address on (the rolling
//! restarts are in `rolling.rs`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::balancer::{Haproxy, start_haproxy, start_nginx};
use crate::chat::{join, next_line, say};
use crate::cluster::conversation_goes_on;
use crate::exposition::Exposition;
use crate::helpers::{ShopdProcess, require_tool, scratch, spawn_process};
use crate::nats::{Nats, nats_server};
use crate::pg::fresh_database;

/// Both backends of the shipped config.
pub const BACKENDS: [&str; 2] = ["shopd", "shopd_chat"];

/// The instance's `shopd_chat_bus_connected`.
async fn bus_gauge(client: &reqwest::Client, instance: &ShopdProcess) -> Option<f64> {
    let text = client
        .get(instance.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Exposition::parse(&text).value("shopd_chat_bus_connected", &[])
}

/// `count` rounds of the course's flow through `base`: create an item, a
/// cart, add the item, read both; every answer a success.
async fn shop_flow(client: &reqwest::Client, base: &str, count: usize) {
    for round in 0..count {
        let item: Value = expect(
            client
                .post(format!("{base}/item"))
                .json(&json!({"name": format!("tea {round}"), "price": 2.5}))
                .send()
                .await,
            201,
        )
        .await;
        let cart: Value = expect(client.post(format!("{base}/cart")).send().await, 201).await;
        let (item, cart) = (&item["id"], &cart["id"]);
        let add = client.post(format!("{base}/cart/{cart}/add/{item}"));
        expect(add.send().await, 200).await;
        expect(client.get(format!("{base}/item/{item}")).send().await, 200).await;
        let read: Value = expect(client.get(format!("{base}/cart/{cart}")).send().await, 200).await;
        assert_eq!(read["price"], json!(2.5));
    }
}

/// The JSON body of `response`, which must have status `want`.
pub async fn expect(response: reqwest::Result<reqwest::Response>, want: u16) -> Value {
    let response = response.expect("an answer");
    let status = response.status().as_u16();
    let body = response.text().await.expect("a body");
    assert_eq!(status, want, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_nats_node_down_the_shop_answers_through_haproxy_and_chat_is_local_until_the_bus_returns()
 {
    let test = "deploy_bus_outage";
    let (Some(nats_binary), Some(haproxy)) = (nats_server(test), require_tool("haproxy", test))
    else {
        return;
    };
    let Some(database) = fresh_database(test).await else {
        return;
    };
    let nodes = Nats::cluster(&nats_binary, 2).await;
    let first_port = nodes[0].port;
    let bus: Vec<String> = nodes.iter().map(Nats::url).collect();
    let bus = bus.join(",");
    let (cwd, dir) = scratch();
    let extra = ["--database-url", database.url.as_str(), "--chat-bus", &bus];
    let a = spawn_process(cwd.path(), &dir.join("a"), &extra);
    let b = spawn_process(cwd.path(), &dir.join("b"), &extra);
    let proxy = start_haproxy(&haproxy, &[a.addr, b.addr]).await;
    wait_all_up(&proxy, 2).await;
    let client = reqwest::Client::new();
    let base = proxy.base();
    let ready = expect(client.get(format!("{base}/readyz")).send().await, 200).await;
    assert_eq!(ready, json!({"status": "ok", "chat_bus": "connected"}));

    drop(nodes);
    for server in ["shopd1", "shopd2"] {
        proxy.wait_for("shopd_chat", server, "DOWN").await;
    }
    for instance in [&a, &b] {
        assert_eq!(bus_gauge(&client, instance).await, Some(0.0));
        let chat = client.get(instance.url("/readyz/chat")).send().await;
        assert_eq!(chat.expect("an answer").status(), 503);
    }
    // The API stays in rotation: items and carts answer through HAProxy.
    for server in ["shopd1", "shopd2"] {
        let status = proxy.status("shopd", server).await;
        assert_eq!(status.as_deref(), Some("UP"), "{}", proxy.log());
    }
    for _ in 0..4 {
        let ready = expect(client.get(format!("{base}/readyz")).send().await, 200).await;
        assert_eq!(ready, json!({"status": "ok", "chat_bus": "disconnected"}));
    }
    shop_flow(&client, &base, 10).await;
    // Chat degrades as documented: new chats are still taken (by every
    // ready instance, the chat backend having none), and rooms are local
    // to each instance.
    let mut carl = join(proxy.addr(), "foyer").await;
    let _dina = join(proxy.addr(), "foyer").await;
    let mut ann = join(a.addr, "lobby").await;
    let mut amy = join(a.addr, "lobby").await;
    let mut bob = join(b.addr, "lobby").await;
    say(&mut ann, "local while the bus is down").await;
    assert_eq!(next_line(&mut amy).await.1, "local while the bus is down");
    let crossed = timeout(Duration::from_millis(500), next_line(&mut bob)).await;
    assert!(crossed.is_err(), "a line crossed a bus that is down");

    // The bus comes back (one node, on its old port): chats go to the chat
    // backend again and rooms span the instances.
    let _nats = Nats::spawn(&nats_binary, first_port, None, &[], "").await;
    for server in ["shopd1", "shopd2"] {
        proxy.wait_for("shopd_chat", server, "UP").await;
    }
    let ready = expect(client.get(format!("{base}/readyz")).send().await, 200).await;
    assert_eq!(ready, json!({"status": "ok", "chat_bus": "connected"}));
    conversation_goes_on(&mut ann, &mut bob, 10).await;
    conversation_goes_on(&mut bob, &mut amy, 10).await;
    // Wherever HAProxy put carl, his room now reaches both instances.
    let mut eve = join(a.addr, "foyer").await;
    let mut fay = join(b.addr, "foyer").await;
    conversation_goes_on(&mut carl, &mut eve, 5).await;
    conversation_goes_on(&mut carl, &mut fay, 5).await;
}

/// The instance's `shopd_chat_connections`.
async fn chat_members(client: &reqwest::Client, instance: &ShopdProcess) -> Option<f64> {
    let text = client
        .get(instance.url("/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    Exposition::parse(&text).value("shopd_chat_connections", &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_one_instance_is_off_the_bus_haproxy_sends_new_chats_to_the_others_and_api_requests_to_both()
 {
    let test = "deploy_partial_bus_outage";
    let (Some(nats_binary), Some(haproxy)) = (nats_server(test), require_tool("haproxy", test))
    else {
        return;
    };
    let Some(database) = fresh_database(test).await else {
        return;
    };
    // Two lone NATS servers: A loses its bus, B keeps its own.
    let lost = Nats::start(&nats_binary).await;
    let kept = Nats::start(&nats_binary).await;
    let (cwd, dir) = scratch();
    let on = |nats: &Nats| {
        [
            "--database-url".to_owned(),
            database.url.clone(),
            "--chat-bus".to_owned(),
            nats.url(),
        ]
    };
    let a_flags = on(&lost);
    let b_flags = on(&kept);
    let a_flags: Vec<&str> = a_flags.iter().map(String::as_str).collect();
    let b_flags: Vec<&str> = b_flags.iter().map(String::as_str).collect();
    let a = spawn_process(cwd.path(), &dir.join("a"), &a_flags);
    let b = spawn_process(cwd.path(), &dir.join("b"), &b_flags);
    let proxy = start_haproxy(&haproxy, &[a.addr, b.addr]).await;
    wait_all_up(&proxy, 2).await;

    drop(lost);
    proxy.wait_for("shopd_chat", "shopd1", "DOWN").await;
    let client = reqwest::Client::new();
    let mut members = Vec::new();
    for _ in 0..4 {
        members.push(join(proxy.addr(), "lobby").await);
    }
    assert_eq!(chat_members(&client, &a).await, Some(0.0), "none on A");
    assert_eq!(chat_members(&client, &b).await, Some(4.0), "all on B");
    // The API backend keeps both.
    assert_eq!(proxy.status("shopd", "shopd1").await.as_deref(), Some("UP"));
    shop_flow(&client, &proxy.base(), 2).await;
}

/// Waits until HAProxy has servers `shopd1..=count` up in both backends.
pub async fn wait_all_up(proxy: &Haproxy, count: usize) {
    for index in 1..=count {
        for backend in BACKENDS {
            proxy
                .wait_for(backend, &format!("shopd{index}"), "UP")
                .await;
        }
    }
}

/// A stand-in backend that answers 200 to anything and keeps each
/// request's head: what the balancer sends, header by header.
async fn recording_backend() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let heads = Arc::new(Mutex::new(Vec::new()));
    let recorded = heads.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let recorded = recorded.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&head).to_lowercase();
                recorded.lock().expect("lock").push(head);
                let reply = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{}";
                let _ = socket.write_all(reply.as_bytes()).await;
            });
        }
    });
    (addr, heads)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_shipped_balancers_send_the_clients_address_in_x_forwarded_for() {
    let test = "deploy_forwarded_for";
    let (Some(haproxy), Some(nginx)) = (require_tool("haproxy", test), require_tool("nginx", test))
    else {
        return;
    };
    let (backend, heads) = recording_backend().await;
    let haproxy = start_haproxy(&haproxy, &[backend]).await;
    let nginx = start_nginx(&nginx, &[backend]).await;
    let client = reqwest::Client::new();
    for (front, base) in [("haproxy", haproxy.base()), ("nginx", nginx.base())] {
        let path = format!("/item/{front}");
        let response = client.get(format!("{base}{path}")).send().await;
        assert_eq!(response.expect("an answer").status(), 200, "{front}");
        let heads = heads.lock().expect("lock").clone();
        let head = heads
            .iter()
            .find(|head| head.starts_with(&format!("get {path} ")))
            .unwrap_or_else(|| panic!("{front} passed the request on: {heads:?}"));
        assert!(
            head.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"),
            "{front}: {head}"
        );
    }
}
