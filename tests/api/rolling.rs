//! Rolling restarts as docs/deploy.md describes them: three shopd
//! processes on one PostgreSQL and one NATS behind a load balancer started
//! from its shipped config, restarted one at a time with SIGTERM (the
//! documented drain) under several clients' reads and writes. No request
//! may fail.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::balancer::{Haproxy, start_haproxy, start_nginx};
use crate::deploy::{BACKENDS, expect, wait_all_up};
use crate::helpers::{ShopdProcess, require_tool, scratch, shopd_command};
use crate::nats::{Nats, nats_server, poll};
use crate::pg::{TestDatabase, fresh_database};
use crate::process::{PATIENCE, exit_within, sigterm, start_command};

/// What docs/deploy.md sets on every instance behind a load balancer.
const DRAIN_SECS: &str = "5";

/// Concurrent clients of the load.
const CLIENTS: usize = 6;

/// One instance of the rolling restart: its data directory and process.
pub(crate) struct Instance {
    pub(crate) process: ShopdProcess,
    pub(crate) data_dir: std::path::PathBuf,
}

/// shopd on `listen` with the documented drain.
pub(crate) fn start_instance(
    cwd: &Path,
    data_dir: &Path,
    listen: &str,
    extra: &[String],
) -> ShopdProcess {
    let mut command = shopd_command(cwd);
    command.env("SHOPD_SHUTDOWN_DRAIN_SECS", DRAIN_SECS);
    // On PostgreSQL shopd refuses a data directory too.
    if !extra.iter().any(|flag| flag == "--database-url") {
        command.arg("--data-dir").arg(data_dir);
    }
    command.args(["--listen", listen]).args(extra);
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
async fn load_client(base: String, item: u64, keys: Option<usize>, stop: Arc<AtomicBool>) -> Tally {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    // With `keys` (this client's number), every write carries an
    // Idempotency-Key of its own, so a balancer may safely send it twice.
    let post = |url: String, key: String| {
        let request = client.post(url);
        match keys {
            Some(number) => request.header("Idempotency-Key", format!("load-{number}-{key}")),
            None => request,
        }
    };
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
        let response = post(format!("{base}/item"), format!("{round}-item"))
            .json(&body)
            .send()
            .await;
        tally.count("POST /item", response, 201).await;
        let Some(id) = cart else {
            let response = post(format!("{base}/cart"), format!("{round}-cart"))
                .send()
                .await;
            cart = tally
                .count("POST /cart", response, 201)
                .await
                .map(|c| c["id"].clone());
            continue;
        };
        let response = post(
            format!("{base}/cart/{id}/add/{item}"),
            format!("{round}-add"),
        )
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

/// The balancer in front, and how the restart learns what it sees.
enum Front<'a> {
    /// HAProxy: its stats page says when an instance is out and back.
    Haproxy(&'a Haproxy),
    /// nginx: no active checks; an instance is back once it answers.
    Nginx,
}

/// A [`Shop`] on a fresh database and a fresh NATS, behind the shipped
/// HAProxy config with every instance up. Fields drop in order: the
/// instances before the proxy, the bus and the database they use.
pub(crate) struct ShopBehindHaproxy {
    pub(crate) shop: Shop,
    pub(crate) proxy: Haproxy,
    pub(crate) nats: Nats,
    pub(crate) database: TestDatabase,
}

/// [`ShopBehindHaproxy`], or `None` (skipped loudly) without NATS,
/// HAProxy or PostgreSQL.
pub(crate) async fn shop_behind_haproxy(test: &str) -> Option<ShopBehindHaproxy> {
    let (Some(nats_binary), Some(haproxy)) = (nats_server(test), require_tool("haproxy", test))
    else {
        return None;
    };
    let database = fresh_database(test).await?;
    let nats = Nats::start(&nats_binary).await;
    let shop = Shop::start(&database.url, &nats.url());
    let proxy = start_haproxy(&haproxy, &shop.addrs()).await;
    wait_all_up(&proxy, 3).await;
    Some(ShopBehindHaproxy {
        shop,
        proxy,
        nats,
        database,
    })
}

/// Three instances on one database and one bus, started with the
/// documented drain; their processes, data directories and flags.
pub(crate) struct Shop {
    pub(crate) instances: Vec<Instance>,
    pub(crate) extra: Vec<String>,
    pub(crate) cwd: tempfile::TempDir,
}

impl Shop {
    pub(crate) fn start(database: &str, bus: &str) -> Shop {
        let (cwd, dir) = scratch();
        let extra: Vec<String> = vec![
            "--database-url".into(),
            database.into(),
            "--chat-bus".into(),
            bus.into(),
        ];
        let instances = (0..3)
            .map(|index| {
                let data_dir = dir.join(format!("shopd{index}"));
                let process = start_instance(cwd.path(), &data_dir, "127.0.0.1:0", &extra);
                Instance { process, data_dir }
            })
            .collect();
        Shop {
            instances,
            extra,
            cwd,
        }
    }

    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.instances.iter().map(|i| i.process.addr).collect()
    }

    /// Restarts every instance in turn, each on its own port, while
    /// `CLIENTS` clients send reads and writes through `base`. Asserts that
    /// none failed; the time from each SIGTERM until the instance was back.
    async fn rolling_restart(&mut self, base: &str, front: &Front<'_>) -> Vec<Duration> {
        let client = reqwest::Client::new();
        let item = client
            .post(format!("{base}/item"))
            .json(&json!({"name": "tea", "price": 2.5}))
            .send()
            .await;
        let item = expect(item, 201).await["id"].as_u64().expect("id");
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..CLIENTS)
            .map(|number| {
                // nginx retries a write only when it carries a key.
                let keys = matches!(front, Front::Nginx).then_some(number);
                tokio::spawn(load_client(base.to_owned(), item, keys, stop.clone()))
            })
            .collect();
        let mut restarts = Vec::new();
        for (index, instance) in self.instances.iter_mut().enumerate() {
            let server = format!("shopd{}", index + 1);
            let started = Instant::now();
            sigterm(&instance.process.child);
            if let Front::Haproxy(proxy) = front {
                // Draining: HAProxy takes it out of both backends while it
                // still serves.
                for backend in BACKENDS {
                    proxy.wait_for(backend, &server, "DOWN").await;
                }
                assert!(
                    instance.process.child.try_wait().expect("wait").is_none(),
                    "out of rotation only after it exited: the drain is too short"
                );
            }
            let status = exit_within(&mut instance.process.child, PATIENCE).expect("shopd exits");
            assert!(status.success(), "{status}");
            let listen = instance.process.addr.to_string();
            let (cwd, data_dir) = (self.cwd.path(), &instance.data_dir);
            instance.process = start_instance(cwd, data_dir, &listen, &self.extra);
            match front {
                Front::Haproxy(proxy) => {
                    for backend in BACKENDS {
                        proxy.wait_for(backend, &server, "UP").await;
                    }
                }
                Front::Nginx => {
                    let ready = instance.process.url("/readyz");
                    poll("the instance to be ready", || async {
                        let answer = client.get(&ready).send().await;
                        answer.is_ok_and(|response| response.status() == 200)
                    })
                    .await;
                }
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
            "rolling restart behind {}: {ok} requests answered, {} failed; SIGTERM to back in rotation: {restarts:?}",
            match front {
                Front::Haproxy(_) => "HAProxy",
                Front::Nginx => "nginx",
            },
            failed.len()
        );
        assert!(failed.is_empty(), "failed requests: {failed:#?}");
        assert!(ok > 100, "the load ran: {ok} requests");
        restarts
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_three_instances_behind_haproxy_under_load_fails_no_request() {
    // Bound, not `..`: the bus and the database live to the end.
    let Some(ShopBehindHaproxy {
        mut shop,
        proxy,
        nats: _nats,
        database: _database,
    }) = shop_behind_haproxy("rolling_restart_haproxy").await
    else {
        return;
    };
    shop.rolling_restart(&proxy.base(), &Front::Haproxy(&proxy))
        .await;
}

/// nginx cannot see a drain: it sends requests to an instance until its
/// listener closes, and a write that was in the listener's queue at that
/// moment fails unless nginx may send it again, which the shipped config
/// allows for writes with an Idempotency-Key. So here every write carries
/// one (without: 3 POSTs of 9,686 requests got a 502 in one run of three).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_of_three_instances_behind_nginx_under_load_fails_no_request() {
    let test = "rolling_restart_nginx";
    let (Some(nats_binary), Some(nginx)) = (nats_server(test), require_tool("nginx", test)) else {
        return;
    };
    let Some(database) = fresh_database(test).await else {
        return;
    };
    let nats = Nats::start(&nats_binary).await;
    let mut shop = Shop::start(&database.url, &nats.url());
    let proxy = start_nginx(&nginx, &shop.addrs()).await;
    shop.rolling_restart(&proxy.base(), &Front::Nginx).await;
}
