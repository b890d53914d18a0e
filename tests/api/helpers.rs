//! Starting shopd for a test, in-process or as the built binary, and typed
//! request helpers.
#![allow(dead_code)] // Not every test module uses every helper.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use shopd::{App, AppError, Settings};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::pg::TestDatabase;
pub use crate::process::{ShopdProcess, shopd_command, spawn_process};

/// A shopd serving in this process on a fresh data directory (or a fresh
/// PostgreSQL database).
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub dir: TempDir,
    /// The database, with the PostgreSQL backend; dropped after the server.
    pub database: Option<TestDatabase>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), AppError>>>,
}

/// Which store a test runs shopd on.
pub enum Backend {
    /// The embedded store in a fresh temp dir.
    Sled,
    /// PostgreSQL, on a fresh database.
    Postgres(TestDatabase),
}

impl Backend {
    /// PostgreSQL on a fresh database, or `None` when this machine has none
    /// (the test then skips, loudly).
    pub async fn postgres(test: &str) -> Option<Backend> {
        crate::pg::fresh_database(test).await.map(Backend::Postgres)
    }

    /// shopd with default settings on this backend.
    pub async fn spawn(self) -> TestApp {
        self.spawn_with(|_| {}).await
    }

    /// shopd with settings changed by `configure` on this backend.
    pub async fn spawn_with(self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        match self {
            Backend::Sled => spawn_app_with(configure).await,
            Backend::Postgres(database) => spawn_pg_app(database, configure).await,
        }
    }
}

/// Runs each test once per backend: `async fn name(backend) { .. }` becomes
/// a module `name` with the tests `sled` and `postgres`, where `backend` is
/// a [`Backend`] to spawn shopd on.
macro_rules! backend_tests {
    ($($(#[$meta:meta])* async fn $name:ident($backend:ident) $body:block)*) => {$(
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test]
            async fn sled() {
                let $backend = crate::helpers::Backend::Sled;
                $body
            }

            #[tokio::test]
            async fn postgres() {
                let Some($backend) = crate::helpers::Backend::postgres(module_path!()).await else {
                    return;
                };
                $body
            }
        }
    )*};
}
pub(crate) use backend_tests;

/// shopd on PostgreSQL database `database`, settings changed by `configure`.
pub async fn spawn_pg_app(
    database: TestDatabase,
    configure: impl FnOnce(&mut Settings),
) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut settings = test_settings(dir.path());
    settings.storage.database_url = Some(database.url.parse().expect("a postgres:// URL"));
    configure(&mut settings);
    let listener = shopd::bind(settings.server.listen)
        .await
        .expect("bind port 0");
    let app = App::connect(settings)
        .await
        .expect("connect to the database");
    let mut app = serving(app, listener, dir);
    app.database = Some(database);
    app
}

/// shopd with default settings on a fresh temp dir and a free port.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Settings for a test over `dir`, listening on a free port.
pub fn test_settings(dir: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.storage.data_dir = dir.to_path_buf();
    settings.server.listen = ([127, 0, 0, 1], 0).into();
    settings
}

/// shopd with settings changed by `configure`.
pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    spawn_app_in(dir, configure).await
}

/// shopd over an existing data directory (e.g. to restart on it).
pub async fn spawn_app_in(dir: TempDir, configure: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings(dir.path());
    configure(&mut settings);
    let listener = shopd::bind(settings.server.listen)
        .await
        .expect("bind port 0");
    let app = App::open(settings).expect("open the store");
    serving(app, listener, dir)
}

/// shopd over `store`, e.g. a double that fails on purpose.
pub async fn spawn_app_on<S: shopd::store::Store>(store: S) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = test_settings(dir.path());
    let listener = shopd::bind(settings.server.listen)
        .await
        .expect("bind port 0");
    serving(App::with_store(store, settings), listener, dir)
}

/// `app` serving on `listener` in a task of this runtime.
fn serving<S: shopd::store::Store>(
    app: App<S>,
    listener: tokio::net::TcpListener,
    dir: TempDir,
) -> TestApp {
    let addr = listener.local_addr().expect("local addr");
    let (tx, rx) = oneshot::channel::<()>();
    let server = tokio::spawn(app.serve(listener, async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        dir,
        database: None,
        shutdown: Some(tx),
        server: Some(server),
    }
}

impl TestApp {
    /// The full URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops the server as SIGTERM would and waits until storage is closed;
    /// gives back the data directory.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("clean shutdown");
        }
        // Take the directory out without running TestApp's Drop on it.
        std::mem::replace(&mut self.dir, tempfile::tempdir().expect("temp dir"))
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("GET")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.client
            .delete(self.url(path))
            .send()
            .await
            .expect("DELETE")
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.client.post(self.url(path)).send().await.expect("POST")
    }

    pub async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        body: &Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .json(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn send_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .body(body)
            .send()
            .await
            .expect("request")
    }

    /// Creates an item and returns it.
    pub async fn create_item(&self, name: &str, price: f64) -> Value {
        let response = self
            .send_json(
                reqwest::Method::POST,
                "/item",
                &json!({"name": name, "price": price}),
            )
            .await;
        assert_eq!(response.status(), 201, "creating item {name}");
        response.json().await.expect("item JSON")
    }

    /// Creates a cart and returns its id.
    pub async fn create_cart(&self) -> u64 {
        let response = self.post("/cart").await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.expect("cart JSON");
        body["id"].as_u64().expect("cart id")
    }

    /// Adds an item to a cart, expecting success; returns the cart.
    pub async fn add(&self, cart: u64, item: u64) -> Value {
        let response = self.post(&format!("/cart/{cart}/add/{item}")).await;
        assert_eq!(response.status(), 200, "adding item {item} to cart {cart}");
        response.json().await.expect("cart JSON")
    }

    /// A GET expected to succeed, as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).await;
        assert_eq!(response.status(), 200, "GET {path}");
        response.json().await.expect("JSON")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The 422 `detail` entries' `(loc, type)` pairs, for compact assertions.
pub async fn issues(response: reqwest::Response) -> Vec<(String, String)> {
    assert_eq!(response.status(), 422);
    let body: Value = response.json().await.expect("422 JSON");
    body["detail"]
        .as_array()
        .expect("detail list")
        .iter()
        .map(|issue| {
            let loc: Vec<String> = issue["loc"]
                .as_array()
                .expect("loc")
                .iter()
                .map(|part| match part {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            assert!(issue["msg"].as_str().is_some_and(|m| !m.is_empty()));
            (
                loc.join("."),
                issue["type"].as_str().expect("type").to_owned(),
            )
        })
        .collect()
}

/// The `detail` sentence of an error reply with the expected status.
pub async fn detail(response: reqwest::Response, status: u16) -> String {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("error JSON");
    body["detail"].as_str().expect("detail sentence").to_owned()
}

/// A fresh directory to use as a working directory or data directory.
pub fn scratch() -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    (dir, path)
}

/// An external tool a test needs, on the `PATH` or in `/usr/sbin`. Missing:
/// a loud skip locally, a failure in CI (when `CI` is set), so CI never
/// passes by skipping.
pub fn require_tool(name: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file());
    if found.is_none() {
        // The Debian package that ships it.
        let package = match name {
            "promtool" => "prometheus",
            other => other,
        };
        let install = format!("apt-get install -y {package}");
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: `{name}` is not on PATH and CI is set; install it ({install})"
        );
        // Straight to stderr: the test harness hides `eprintln!` of passing tests.
        let bar = "!".repeat(72);
        let notice = format!(
            "\n{bar}\nSKIPPED {test}: `{name}` is not on PATH.\nInstall it ({install}) to run this test; with CI set it fails instead.\n{bar}\n"
        );
        let _ = std::io::stderr().write_all(notice.as_bytes());
    }
    found
}
