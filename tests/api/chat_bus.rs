//! Chat rooms spanning shopd instances over a NATS bus: delivery, order,
//! isolation, names, subscriptions, start-up checks, and what the metrics
//! and `/readyz` say while the bus is away. Also the NATS harness the
//! cluster tests share: each test starts its own `nats-server` on free
//! ports and kills it when done.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;
use tokio::time::timeout;

use crate::chat::{GUARD, join, next_line, say};
use crate::exposition::scrape;
use crate::helpers::{TestApp, detail, require_tool, scratch, shopd_command, spawn_app_with};

/// The `nats-server` binary, or `None` (after a loud SKIPPED line) when
/// it is not installed; panics under `CI`, where the test must run.
pub fn nats_server(test: &str) -> Option<PathBuf> {
    require_tool("nats-server", test)
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// One `nats-server` on loopback; killed when dropped.
pub struct Nats {
    child: Child,
    /// Client port.
    pub port: u16,
    /// Monitoring (HTTP) port.
    pub monitor: u16,
    _dir: TempDir,
}

impl Nats {
    /// A lone server with the default settings.
    pub async fn start(binary: &Path) -> Nats {
        Nats::spawn(binary, free_port(), None, &[], "").await
    }

    /// A lone server whose config file holds `config` (e.g. `max_payload: 2048`).
    pub async fn start_with(binary: &Path, config: &str) -> Nats {
        Nats::spawn(binary, free_port(), None, &[], config).await
    }

    /// `count` servers routed to each other as one cluster named `shopd`,
    /// ready once every node sees all the others.
    pub async fn cluster(binary: &Path, count: usize) -> Vec<Nats> {
        let routes: Vec<u16> = (0..count).map(|_| free_port()).collect();
        let mut nodes = Vec::new();
        for (index, &route) in routes.iter().enumerate() {
            let others: Vec<u16> = routes
                .iter()
                .enumerate()
                .filter(|(other, _)| *other != index)
                .map(|(_, port)| *port)
                .collect();
            nodes.push(Nats::spawn(binary, free_port(), Some(route), &others, "").await);
        }
        for node in &nodes {
            node.wait_for_routes(count - 1).await;
        }
        nodes
    }

    /// A server on `port`, routed to `others` when `route` is set.
    pub async fn spawn(
        binary: &Path,
        port: u16,
        route: Option<u16>,
        others: &[u16],
        config: &str,
    ) -> Nats {
        let dir = tempfile::tempdir().expect("temp dir");
        let monitor = free_port();
        let mut command = Command::new(binary);
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &monitor.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !config.is_empty() {
            let file = dir.path().join("nats.conf");
            std::fs::write(&file, config).expect("write nats.conf");
            command.arg("-c").arg(file);
        }
        if let Some(route) = route {
            let routes: Vec<String> = others
                .iter()
                .map(|other| format!("nats://127.0.0.1:{other}"))
                .collect();
            command
                .args(["--cluster", &format!("nats://127.0.0.1:{route}")])
                .args(["--cluster_name", "shopd"])
                .args(["--routes", &routes.join(",")]);
        }
        let child = command.spawn().expect("start nats-server");
        let nats = Nats {
            child,
            port,
            monitor,
            _dir: dir,
        };
        nats.wait_ready().await;
        nats
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A monitoring endpoint's JSON, e.g. `subsz?subs=1`.
    pub async fn monitor(&self, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/{path}", self.monitor);
        reqwest::get(url).await.ok()?.json().await.ok()
    }

    async fn wait_ready(&self) {
        poll("nats-server to answer", || async {
            self.monitor("healthz").await.is_some()
        })
        .await;
    }

    async fn wait_for_routes(&self, routes: usize) {
        poll("the NATS cluster to form", || async {
            self.monitor("routez")
                .await
                .and_then(|routez| routez["num_routes"].as_u64())
                .is_some_and(|n| n as usize >= routes)
        })
        .await;
    }

    /// Subjects with a subscription on this server under `prefix`, one
    /// entry per subscription.
    pub async fn subjects(&self, prefix: &str) -> Vec<String> {
        let subsz = self.monitor("subsz?subs=1").await.expect("subsz");
        subsz["subscriptions_list"]
            .as_array()
            .map(|list| {
                list.iter()
                    .filter_map(|sub| sub["subject"].as_str())
                    .filter(|subject| subject.starts_with(prefix))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 20 ms until it holds; panics after a minute.
pub async fn poll<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "waited a minute for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// shopd in this process on `bus`, with the rate limit out of the way.
pub async fn spawn_on_bus(bus: &str) -> TestApp {
    let urls = bus.parse().expect("bus URLs");
    spawn_app_with(|settings| {
        settings.chat_bus = Some(urls);
        settings.chat_rate_per_sec = 1_000_000;
        settings.chat_rate_burst = 1_000_000;
    })
    .await
}

/// The subject of room `name` under the default prefix.
pub fn subject(name: &str) -> String {
    let hex: String = name.bytes().map(|b| format!("{b:02x}")).collect();
    format!("shopd.chat.{hex}")
}

/// The value of an unlabelled sample in `/metrics`, if present.
pub async fn metric(app: &TestApp, name: &str) -> Option<f64> {
    scrape(app).await.value(name, &[])
}

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
    assert_eq!(nats.subjects("shopd.chat.").await, vec![room.clone(); 2]);

    drop(ann);
    poll("A to unsubscribe", || async {
        nats.subjects("shopd.chat.").await == vec![room.clone()]
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
        nats.subjects("shopd.chat.").await.is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gauge_and_readyz_follow_the_bus_and_chat_resumes_when_it_returns() {
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
    assert_eq!(a.get("/readyz").await.status(), 200);
    assert_eq!(metric(&a, "shopd_chat_bus_connected").await, Some(1.0));
    let text = a.get("/metrics").await.text().await.expect("metrics");
    assert!(text.contains("# HELP shopd_chat_bus_connected "), "{text}");

    drop(nats);
    poll("A to see the bus gone", || async {
        metric(&a, "shopd_chat_bus_connected").await == Some(0.0)
    })
    .await;
    let why = detail(a.get("/readyz").await, 503).await;
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
            app.get("/readyz").await.status() == 200
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
    let fits = spawn_app_with(|settings| {
        settings.chat_bus = Some(nats.url().parse().expect("URL"));
        settings.chat_max_message_bytes = 4000;
    })
    .await;
    assert_eq!(fits.get("/readyz").await.status(), 200);
}
