//! The NATS harness of the chat-bus and cluster tests: each test starts
//! its own `nats-server` on free ports and kills it when done.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;
use tempfile::TempDir;

use crate::exposition::scrape;
pub use crate::support::eventually as poll;
pub use crate::support::free_port;
use crate::support::{TestApp, require_tool};

/// The `nats-server` binary, or `None` (after a loud SKIPPED line) when
/// it is not installed; panics under `CI`, where the test must run.
pub fn nats_server(test: &str) -> Option<PathBuf> {
    require_tool("nats-server", test)
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
            .args(["-n", &format!("n{port}")]);
        // JetStream on, where shopd keeps the chat history, unless the
        // config says otherwise; a node of a cluster needs a name for it.
        if !config.contains("jetstream") {
            command
                .arg("-js")
                .arg("-sd")
                .arg(dir.path().join("jetstream"));
        }
        command
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
    /// The server's process id (to pause it with SIGSTOP).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// A monitoring endpoint's JSON, e.g. `subsz?subs=1`.
    pub async fn monitor(&self, path: &str) -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/{path}", self.monitor);
        reqwest::get(url).await.ok()?.json().await.ok()
    }

    /// Until clients can connect: nats-server answers on its monitoring
    /// port before its client port listens, so both are asked. (Not
    /// `healthz`'s status: a node of a cluster reports unhealthy until
    /// the other nodes are up.)
    async fn wait_ready(&self) {
        poll("nats-server to answer", || async {
            self.monitor("healthz").await.is_some()
                && tokio::net::TcpStream::connect(("127.0.0.1", self.port))
                    .await
                    .is_ok()
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

/// shopd in this process on `bus`, with the rate limit out of the way.
pub async fn spawn_on_bus(bus: &str) -> TestApp {
    TestApp::builder()
        .bus(bus)
        .configure(|settings| {
            settings.chat.rate_per_sec = std::num::NonZero::new(1_000_000).unwrap();
            settings.chat.rate_burst = std::num::NonZero::new(1_000_000).unwrap();
        })
        .spawn()
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
