//! shopd in this process for a test: one builder for every store and
//! setting, and typed request helpers on the running app.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};
use shopd::store::Store;
use shopd::{App, AppError, Settings};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::pg::TestDatabase;

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

/// How a test wants its shopd: settings, data directory, store, chat bus.
/// `TestApp::builder()...spawn().await` starts it on port 0.
pub struct AppBuilder {
    dir: TempDir,
    settings: Settings,
    database: Option<TestDatabase>,
}

/// Settings for a test over `dir`, listening on a free port.
pub fn test_settings(dir: &Path) -> Settings {
    let mut settings = Settings::default();
    settings.storage.data_dir = dir.to_path_buf();
    settings.server.listen = ([127, 0, 0, 1], 0).into();
    settings
}

impl AppBuilder {
    /// Default settings over a fresh temp dir, on the embedded store.
    fn new() -> AppBuilder {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = test_settings(dir.path());
        AppBuilder {
            dir,
            settings,
            database: None,
        }
    }

    /// Over an existing data directory (e.g. to restart on it).
    pub fn in_dir(mut self, dir: TempDir) -> AppBuilder {
        self.settings.storage.data_dir = dir.path().to_path_buf();
        self.dir = dir;
        self
    }

    /// On PostgreSQL database `database` instead of the data directory.
    pub fn postgres(mut self, database: TestDatabase) -> AppBuilder {
        self.settings.storage.database_url = Some(database.url.parse().expect("a postgres:// URL"));
        self.database = Some(database);
        self
    }

    /// On the PostgreSQL database at `url`, which another test app owns
    /// (a second instance of one shop).
    pub fn shared_postgres(self, url: &str) -> AppBuilder {
        let url: shopd::config::DatabaseUrl = url.parse().expect("a postgres:// URL");
        self.postgres(TestDatabase::borrowed(&url))
    }

    /// Joined to the NATS chat bus at `urls` (comma separated).
    pub fn bus(mut self, urls: &str) -> AppBuilder {
        self.settings.chat.bus = Some(urls.parse().expect("bus URLs"));
        self
    }

    /// Settings changed by `configure`.
    pub fn configure(mut self, configure: impl FnOnce(&mut Settings)) -> AppBuilder {
        configure(&mut self.settings);
        self
    }

    /// Starts shopd, which must start: see [`AppBuilder::start`].
    pub async fn spawn(self) -> TestApp {
        self.start()
            .await
            .unwrap_or_else(|err| panic!("shopd did not start: {}", shopd::error_chain(&err)))
    }

    /// Starts shopd on its store (PostgreSQL when a database URL is set,
    /// else the data directory) and serves it on port 0 in a task of this
    /// runtime; or the error that stopped it (a damaged store, a newer
    /// schema, ...).
    pub async fn start(self) -> Result<TestApp, AppError> {
        let listener = shopd::bind(self.settings.server.listen).await?;
        Ok(if self.settings.storage.database_url.is_some() {
            let app = App::connect(self.settings).await?;
            serving(app, listener, self.dir, self.database)
        } else {
            let app = App::open(self.settings)?;
            serving(app, listener, self.dir, self.database)
        })
    }

    /// Starts shopd over `store` (e.g. a double that fails on purpose).
    pub async fn spawn_on<S: Store>(self, store: S) -> TestApp {
        let listener = shopd::bind(self.settings.server.listen)
            .await
            .expect("bind port 0");
        serving(
            App::with_store(store, self.settings),
            listener,
            self.dir,
            self.database,
        )
    }
}

/// `app` serving on `listener` in a task of this runtime.
fn serving<S: Store>(
    app: App<S>,
    listener: tokio::net::TcpListener,
    dir: TempDir,
    database: Option<TestDatabase>,
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
        database,
        shutdown: Some(tx),
        server: Some(server),
    }
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

    /// The builder for shopd on this backend.
    pub fn builder(self) -> AppBuilder {
        match self {
            Backend::Sled => TestApp::builder(),
            Backend::Postgres(database) => TestApp::builder().postgres(database),
        }
    }

    /// shopd with default settings on this backend.
    pub async fn spawn(self) -> TestApp {
        self.builder().spawn().await
    }

    /// shopd with settings changed by `configure` on this backend.
    pub async fn spawn_with(self, configure: impl FnOnce(&mut Settings)) -> TestApp {
        self.builder().configure(configure).spawn().await
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
                let $backend = crate::support::Backend::Sled;
                $body
            }

            #[tokio::test]
            async fn postgres() {
                let Some($backend) = crate::support::Backend::postgres(module_path!()).await else {
                    return;
                };
                $body
            }
        }
    )*};
}
pub(crate) use backend_tests;

impl TestApp {
    /// How the test wants its shopd; `.spawn().await` starts it.
    pub fn builder() -> AppBuilder {
        AppBuilder::new()
    }

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
