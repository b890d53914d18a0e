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

/// nginx on loopback, in the foreground; stopped when dropped.
pub struct Nginx {
    child: Child,
    /// The shop's address (`listen`).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `deploy/nginx.conf` with its `listen` on `port`, each upstream's
/// `server` lines replaced by one line per instance of `backends` (keeping
/// the shipped line's parameters), and its pid file and temp directories
/// under `dir`. Nothing else changes.
pub fn nginx_config(backends: &[SocketAddr], dir: &Path, port: u16) -> String {
    let shipped = include_str!("../../deploy/nginx.conf");
    let mut config = String::new();
    let mut servers_written = false;
    for line in shipped.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let mut words = line.split_whitespace();
        let directive = words.next().unwrap_or_default();
        let path_in_dir = |name: &str| format!("{}", dir.join(name).display());
        match directive {
            "listen" => config.push_str(&format!("{indent}listen 127.0.0.1:{port};\n")),
            "pid" => config.push_str(&format!("pid {};\n", path_in_dir("nginx.pid"))),
            "client_body_temp_path" | "proxy_temp_path" => {
                let path = path_in_dir(directive);
                config.push_str(&format!("{indent}{directive} {path};\n"));
            }
            "server" if line.trim_end().ends_with(';') => {
                // `server ADDRESS PARAMETERS...;` in an upstream.
                let parameters: Vec<&str> = words.skip(1).collect();
                if !servers_written {
                    for backend in backends {
                        let rest = parameters.join(" ");
                        let rest = rest.trim_end_matches(';');
                        config.push_str(&format!("{indent}server {backend} {rest};\n"));
                    }
                    servers_written = true;
                }
            }
            _ => {
                servers_written = false;
                config.push_str(line);
                config.push('\n');
            }
        }
    }
    config
}

/// Starts nginx from `deploy/nginx.conf` in front of `backends` (see
/// [`nginx_config`]), in the foreground; ready once it accepts.
pub async fn start_nginx(binary: &Path, backends: &[SocketAddr]) -> Nginx {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let config = nginx_config(backends, dir.path(), port);
    let file = dir.path().join("nginx.conf");
    std::fs::write(&file, config).expect("write nginx.conf");
    let log = std::fs::File::create(dir.path().join("nginx.log")).expect("log file");
    let child = Command::new(binary)
        .arg("-c")
        .arg(&file)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log file"))
        .stderr(log)
        .spawn()
        .expect("start nginx");
    let nginx = Nginx { child, port, dir };
    poll("nginx to accept", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;
    nginx
}

impl Nginx {
    /// The shop's base URL through nginx.
    pub fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What nginx wrote (its error log), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nginx.log")).unwrap_or_default()
    }
}
