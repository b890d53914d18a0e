//! A real headless Chromium for the chat page's tests, driven through
//! chromedriver with the W3C WebDriver protocol (JSON over HTTP).
//!
//! Each [`Driver`] starts its own chromedriver on a free port and kills it
//! (with every browser it started) when dropped. Browser tests take turns:
//! two cores cannot run several Chromiums and the rest of the suite at once
//! without starving them.

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::support::{eventually, free_port};

/// Only a failure guard: every wait below normally ends well before it.
pub const GUARD: Duration = Duration::from_secs(30);

/// The key under which WebDriver returns an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The WebDriver key code of Enter.
pub const ENTER: &str = "\u{E007}";

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// One browser test at a time.
static TURN: LazyLock<Arc<Mutex<()>>> = LazyLock::new(Arc::default);

/// A running chromedriver.
pub struct Driver {
    child: Child,
    base: String,
    client: reqwest::Client,
    profiles: TempDir,
    sessions: usize,
    _turn: OwnedMutexGuard<()>,
}

/// The browsers' binaries, or `None` after a loud notice when they are
/// missing; with `CI` set, a failure instead.
fn tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let (chromium, chromedriver) = (Path::new(CHROMIUM), Path::new(CHROMEDRIVER));
    if chromium.is_file() && chromedriver.is_file() {
        return Some((chromium.to_owned(), chromedriver.to_owned()));
    }
    crate::support::skip(
        test,
        &format!("{CHROMIUM} or {CHROMEDRIVER} is missing"),
        "Install them (apt-get install -y chromium chromium-driver) to run this test",
    )
}

impl Driver {
    /// Starts chromedriver and waits until it is ready; `None` when the
    /// browser is not installed (see [`tools`]).
    pub async fn start(test: &str) -> Option<Driver> {
        let (_, chromedriver) = tools(test)?;
        let turn = TURN.clone().lock_owned().await;
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so dropping the driver can end the
            // browsers it started too.
            .process_group(0)
            .spawn()
            .expect("start chromedriver");
        let driver = Driver {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            profiles: tempfile::tempdir().expect("temp dir"),
            sessions: 0,
            _turn: turn,
        };
        eventually("chromedriver to be ready", || async {
            let status = driver.client.get(format!("{}/status", driver.base)).send();
            if let Ok(Ok(response)) = tokio::time::timeout(GUARD, status).await
                && let Ok(body) = response.json::<Value>().await
            {
                body["value"]["ready"] == true
            } else {
                false
            }
        })
        .await;
        Some(driver)
    }

    /// A new headless browser with a fresh profile, `width` x `height`.
    pub async fn session(&mut self, width: u32, height: u32) -> Session {
        self.sessions += 1;
        let profile = self
            .profiles
            .path()
            .join(format!("profile-{}", self.sessions));
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-dev-shm-usage".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--hide-scrollbars".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": args},
        }}});
        let created = command(
            &self.client,
            reqwest::Method::POST,
            format!("{}/session", self.base),
            Some(capabilities),
        )
        .await;
        let id = created["sessionId"]
            .as_str()
            .expect("session id")
            .to_owned();
        Session {
            url: format!("{}/session/{id}", self.base),
            client: self.client.clone(),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group holds chromedriver and the browsers it started.
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill(2) touches no memory; the group is the one we made.
        unsafe {
            libc::kill(group, libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Sends one WebDriver command and returns its `value`; a WebDriver error
/// fails the test with the driver's message.
async fn command(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    body: Option<Value>,
) -> Value {
    let mut request = client.request(method.clone(), &url).timeout(GUARD);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("{method} {url}: {err}"));
    let status = response.status();
    let body: Value = response.json().await.expect("WebDriver answers JSON");
    assert!(status.is_success(), "{method} {url}: {status} {body}");
    body["value"].clone()
}

/// One browser window.
pub struct Session {
    url: String,
    client: reqwest::Client,
}

/// An element of the page.
pub struct Element(String);

impl Session {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        command(&self.client, method, format!("{}{path}", self.url), body).await
    }

    /// Loads `url` and waits for its `load` event.
    pub async fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }

    /// The first element matching the CSS `selector`.
    pub async fn find(&self, selector: &str) -> Element {
        let found = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": selector})),
            )
            .await;
        Element(
            found[ELEMENT]
                .as_str()
                .unwrap_or_else(|| panic!("element reference in {found}"))
                .to_owned(),
        )
    }

    /// Types `text` into `element` (focusing it first); [`ENTER`] presses Enter.
    pub async fn type_into(&self, element: &Element, text: &str) {
        let path = format!("/element/{}/value", element.0);
        self.call(reqwest::Method::POST, &path, Some(json!({"text": text})))
            .await;
    }

    /// The text `element` renders.
    pub async fn text(&self, element: &Element) -> String {
        let path = format!("/element/{}/text", element.0);
        let text = self.call(reqwest::Method::GET, &path, None).await;
        text.as_str().expect("text").to_owned()
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns
    /// what it returns.
    pub async fn run(&self, script: &str, args: Value) -> Value {
        let body = json!({"script": script, "args": args});
        self.call(reqwest::Method::POST, "/execute/sync", Some(body))
            .await
    }

    /// Polls `script` until it returns `true`; fails with `what` after
    /// the harness's guard.
    pub async fn wait_until(&self, what: &str, script: &str, args: Value) {
        eventually(what, || async {
            self.run(script, args.clone()).await == true
        })
        .await;
    }

    /// The window as PNG.
    pub async fn screenshot(&self) -> Vec<u8> {
        let encoded = self.call(reqwest::Method::GET, "/screenshot", None).await;
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().expect("base64 text"))
            .expect("base64")
    }

    /// Closes the window and ends the browser.
    pub async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}
