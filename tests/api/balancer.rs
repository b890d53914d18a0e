//! The load balancers of `deploy/` as the tests run them: HAProxy started
//! from `deploy/haproxy.cfg` exactly as shipped, with only its listen
//! addresses and its servers' addresses replaced by free ports and the
//! instances under test.
#![allow(dead_code)] // Not every test module uses every helper.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use crate::nats::{free_port, poll};

/// HAProxy on loopback; killed when dropped.
pub struct Haproxy {
    child: Child,
    /// The shop's address (the `shop` frontend).
    pub port: u16,
    /// The stats page's port (`listen stats`).
    pub stats_port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `deploy/haproxy.cfg` with every `bind` on a free port (the first one,
/// the shop's, first in the list returned) and every backend's `server`
/// lines replaced by one line per instance of `backends`, named `shopd1`,
/// `shopd2`, ... and keeping the shipped line's options. Nothing else
/// changes.
pub fn haproxy_config(backends: &[SocketAddr]) -> (String, Vec<u16>) {
    let shipped = include_str!("../../deploy/haproxy.cfg");
    let mut config = String::new();
    let mut ports = Vec::new();
    let mut servers_written = false;
    for line in shipped.lines() {
        let trimmed = line.trim_start();
        if !line.starts_with(' ') {
            // A new section: its servers are yet to be written.
            servers_written = false;
        }
        let mut words = trimmed.split_whitespace();
        match words.next() {
            Some("bind") => {
                let port = free_port();
                ports.push(port);
                config.push_str(&format!("    bind 127.0.0.1:{port}\n"));
            }
            Some("server") => {
                // `server NAME ADDRESS OPTIONS...`: the options stay.
                let options: Vec<&str> = words.skip(2).collect();
                if !servers_written {
                    for (index, backend) in backends.iter().enumerate() {
                        config.push_str(&format!(
                            "    server shopd{} {backend} {}\n",
                            index + 1,
                            options.join(" ")
                        ));
                    }
                    servers_written = true;
                }
            }
            _ => {
                config.push_str(line);
                config.push('\n');
            }
        }
    }
    assert!(
        ports.len() == 2,
        "deploy/haproxy.cfg binds the shop and the stats page"
    );
    (config, ports)
}

/// Starts HAProxy from `deploy/haproxy.cfg` in front of `backends`
/// (see [`haproxy_config`]); ready once its stats page answers.
pub async fn start_haproxy(binary: &Path, backends: &[SocketAddr]) -> Haproxy {
    let (config, ports) = haproxy_config(backends);
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("haproxy.cfg");
    std::fs::write(&file, config).expect("write haproxy.cfg");
    let log = std::fs::File::create(dir.path().join("haproxy.log")).expect("log file");
    let child = Command::new(binary)
        .arg("-f")
        .arg(&file)
        .arg("-db")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start haproxy");
    let haproxy = Haproxy {
        child,
        port: ports[0],
        stats_port: ports[1],
        dir,
    };
    poll("HAProxy's stats page", || async {
        haproxy.stats().await.is_some()
    })
    .await;
    haproxy
}

impl Haproxy {
    /// The shop's base URL through HAProxy.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The shop's address through HAProxy.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The stats page as CSV rows, or `None` while it does not answer.
    pub async fn stats(&self) -> Option<Vec<Vec<String>>> {
        let url = format!("http://127.0.0.1:{}/;csv", self.stats_port);
        let text = reqwest::get(url).await.ok()?.text().await.ok()?;
        Some(
            text.lines()
                .filter(|line| !line.starts_with('#'))
                .map(|line| line.split(',').map(str::to_owned).collect())
                .collect(),
        )
    }

    /// Server `server`'s status (`UP`, `DOWN`, `UP 1/2`, ...) in `backend`.
    pub async fn status(&self, backend: &str, server: &str) -> Option<String> {
        // Columns: pxname, svname, ..., status is the 18th.
        self.stats().await?.into_iter().find_map(|row| {
            (row.first().map(String::as_str) == Some(backend)
                && row.get(1).map(String::as_str) == Some(server))
            .then(|| row.get(17).cloned())
            .flatten()
        })
    }

    /// Waits until `server` is `want` (exactly, e.g. `UP` or `DOWN`) in
    /// `backend`.
    pub async fn wait_for(&self, backend: &str, server: &str, want: &str) {
        poll(
            &format!("HAProxy to see {backend}/{server} {want}"),
            || async { self.status(backend, server).await.as_deref() == Some(want) },
        )
        .await;
    }

    /// What HAProxy wrote (its log and warnings), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("haproxy.log")).unwrap_or_default()
    }
}
