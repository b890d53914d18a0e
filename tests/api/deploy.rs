//! The deployment of `deploy/` as documented (docs/deploy.md): shopd
//! processes on one PostgreSQL and one NATS behind HAProxy started from
//! `deploy/haproxy.cfg` as shipped. A bus outage degrades chat only, and a
//! rolling restart of every instance under load fails no request.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::time::timeout;

use crate::balancer::{Haproxy, start_haproxy};
use crate::chat::{join, next_line, say};
use crate::cluster::conversation_goes_on;
use crate::exposition::Exposition;
use crate::helpers::{ShopdProcess, require_tool, scratch, shopd_command, spawn_process};
use crate::nats::{Nats, nats_server};
use crate::pg::fresh_database;
use crate::process::{PATIENCE, exit_within, sigterm, start_command};

/// What docs/deploy.md sets on every instance behind a load balancer.
const DRAIN_SECS: &str = "5";

/// Both backends of the shipped config.
const BACKENDS: [&str; 2] = ["shopd", "shopd_chat"];

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
async fn expect(response: reqwest::Result<reqwest::Response>, want: u16) -> Value {
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

/// Waits until HAProxy has servers `shopd1..=count` up in both backends.
async fn wait_all_up(proxy: &Haproxy, count: usize) {
    for index in 1..=count {
        for backend in BACKENDS {
            proxy
                .wait_for(backend, &format!("shopd{index}"), "UP")
                .await;
        }
    }
}

/// One instance of the rolling restart: its data directory and process.
struct Instance {
    process: ShopdProcess,
    data_dir: std::path::PathBuf,
}

/// shopd on `listen` with the documented drain.
fn start_instance(cwd: &Path, data_dir: &Path, listen: &str, extra: &[String]) -> ShopdProcess {
    let mut command = shopd_command(cwd);
    command
        .env("SHOPD_SHUTDOWN_DRAIN_SECS", DRAIN_SECS)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", listen])
        .args(extra);
    start_command(command).serving("shopd did not start")
}

/// What one load client saw.
#[derive(Default)]
struct Tally {
    ok: u64,
    failed: Vec<String>,
}

impl Tally {
    /// Counts one answer, which must have status `want`; its JSON body.
    async fn count(
        &mut self,
        what: &str,
        response: reqwest::Result<reqwest::Response>,
        want: u16,
    ) -> Option<Value> {
        let failure = match response {
            Ok(response) if response.status().as_u16() == want => {
                if let Ok(body) = response.json::<Value>().await {
                    self.ok += 1;
                    return Some(body);
                }
                "an unreadable body".to_owned()
            }
            Ok(response) => {
                let status = response.status();
                format!("{status}: {}", response.text().await.unwrap_or_default())
            }
            Err(err) => format!("{err:?}"),
        };
        self.failed.push(format!("{what}: {failure}"));
        None
    }
}

/// One client of the load: reads and writes in a loop through `base`, on
/// its own keep-alive connections, until `stop`.
async fn load_client(base: String, item: u64, stop: Arc<AtomicBool>) -> Tally {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut tally = Tally::default();
    let mut cart = None;
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        let response = client.get(format!("{base}/item/{item}")).send().await;
        tally.count("GET /item/{id}", response, 200).await;
        let response = client.get(format!("{base}/item?limit=5")).send().await;
        tally.count("GET /item", response, 200).await;
        let body = json!({"name": format!("load {round}"), "price": 1.5});
        let response = client.post(format!("{base}/item")).json(&body).send().await;
        tally.count("POST /item", response, 201).await;
        let Some(id) = cart else {
            let response = client.post(format!("{base}/cart")).send().await;
            cart = tally
                .count("POST /cart", response, 201)
                .await
                .map(|c| c["id"].clone());
            continue;
        };
        let response = client
            .post(format!("{base}/cart/{id}/add/{item}"))
            .send()
            .await;
        tally
            .count("POST /cart/{id}/add/{item}", response, 200)
            .await;
        let response = client.get(format!("{base}/cart/{id}")).send().await;
        tally.count("GET /cart/{id}", response, 200).await;
        cart = Some(id);
    }
    tally
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_three_instances_behind_haproxy_under_load_fails_no_request() {
    let test = "deploy_rolling_restart";
    let (Some(nats_binary), Some(haproxy)) = (nats_server(test), require_tool("haproxy", test))
    else {
        return;
    };
    let Some(database) = fresh_database(test).await else {
        return;
    };
    let nats = Nats::start(&nats_binary).await;
    let (cwd, dir) = scratch();
    let extra: Vec<String> = vec![
        "--database-url".into(),
        database.url.clone(),
        "--chat-bus".into(),
        nats.url(),
    ];
    let mut instances: Vec<Instance> = (0..3)
        .map(|index| {
            let data_dir = dir.join(format!("shopd{index}"));
            let process = start_instance(cwd.path(), &data_dir, "127.0.0.1:0", &extra);
            Instance { process, data_dir }
        })
        .collect();
    let addrs: Vec<SocketAddr> = instances.iter().map(|i| i.process.addr).collect();
    let proxy = start_haproxy(&haproxy, &addrs).await;
    wait_all_up(&proxy, addrs.len()).await;
    let client = reqwest::Client::new();
    let item = expect(
        client
            .post(format!("{}/item", proxy.base()))
            .json(&json!({"name": "tea", "price": 2.5}))
            .send()
            .await,
        201,
    )
    .await;
    let item = item["id"].as_u64().expect("id");

    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..6)
        .map(|_| tokio::spawn(load_client(proxy.base(), item, stop.clone())))
        .collect();
    let mut restarts = Vec::new();
    for (index, instance) in instances.iter_mut().enumerate() {
        let server = format!("shopd{}", index + 1);
        let started = Instant::now();
        sigterm(&instance.process.child);
        // Draining: HAProxy takes it out of both backends while it serves.
        for backend in BACKENDS {
            proxy.wait_for(backend, &server, "DOWN").await;
        }
        assert!(
            instance.process.child.try_wait().expect("wait").is_none(),
            "out of rotation only after it exited: the drain is too short"
        );
        let status = exit_within(&mut instance.process.child, PATIENCE).expect("shopd exits");
        assert!(status.success(), "{status}");
        let listen = instance.process.addr.to_string();
        instance.process = start_instance(cwd.path(), &instance.data_dir, &listen, &extra);
        for backend in BACKENDS {
            proxy.wait_for(backend, &server, "UP").await;
        }
        restarts.push(started.elapsed());
    }
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    let mut failed = Vec::new();
    for client in clients {
        let tally = client.await.expect("load client");
        ok += tally.ok;
        failed.extend(tally.failed);
    }
    eprintln!(
        "rolling restart: {ok} requests answered, {} failed; SIGTERM to back in rotation: {restarts:?}",
        failed.len()
    );
    assert!(failed.is_empty(), "failed requests: {failed:#?}");
    assert!(ok > 100, "the load ran: {ok} requests");
}
