//! Stopping behind a load balancer: SIGTERM drains (`/readyz` answers 503
//! while requests are still served for `shutdown_drain_secs`), SIGINT or a
//! second signal skips the drain; and the open-file limit raised at start
//! to what the connection settings need.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::Child;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::scratch;
use crate::process::{PATIENCE, ShopdProcess, exit_within, serve_command, sigterm, start_command};

/// Sends `signal` to `child`.
fn send(child: &Child, signal: libc::c_int) {
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on our own child process; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// A fresh client per call, so each request opens a new connection: the
/// listener itself must still accept during the drain.
fn status(method: reqwest::Method, url: &str, body: Option<&Value>) -> u16 {
    let client = reqwest::blocking::Client::new();
    let mut request = client.request(method, url);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().expect("served").status().as_u16()
}

/// Polls `url` until it answers `want` (within [`PATIENCE`]).
fn eventually_status(url: &str, want: u16) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if status(reqwest::Method::GET, url, None) == want {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered {want}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sigterm_makes_readyz_fail_while_requests_are_still_served_and_a_second_signal_ends_the_drain() {
    let (_dir, cwd) = scratch();
    // A drain far longer than the test: only the second signal ends it.
    let mut shop: ShopdProcess = start_command(serve_command(
        &cwd,
        &cwd.join("data"),
        &["--shutdown-drain-secs", "3600"],
    ))
    .serving("shopd did not start");
    let item = json!({"name": "tea", "price": 2.5});
    assert_eq!(
        status(reqwest::Method::POST, &shop.url("/item"), Some(&item)),
        201
    );
    assert_eq!(
        status(reqwest::Method::GET, &shop.url("/readyz"), None),
        200
    );

    sigterm(&shop.child);
    eventually_status(&shop.url("/readyz"), 503);
    let why: Value = reqwest::blocking::get(shop.url("/readyz"))
        .expect("served")
        .json()
        .expect("JSON");
    assert!(
        why["detail"]
            .as_str()
            .is_some_and(|d| d.contains("shutting down")),
        "{why}"
    );
    assert_eq!(
        status(reqwest::Method::GET, &shop.url("/readyz/chat"), None),
        503
    );
    // Still serving, reads and writes, on new connections.
    assert_eq!(
        status(reqwest::Method::GET, &shop.url("/item/1"), None),
        200
    );
    assert_eq!(
        status(reqwest::Method::POST, &shop.url("/item"), Some(&item)),
        201
    );
    assert_eq!(
        status(reqwest::Method::GET, &shop.url("/healthz"), None),
        200
    );
    assert!(
        shop.child.try_wait().expect("wait").is_none(),
        "still running"
    );

    sigterm(&shop.child);
    let exit = exit_within(&mut shop.child, PATIENCE).expect("the second signal ends the drain");
    assert!(exit.success(), "{exit}");
}

#[test]
fn sigint_stops_at_once_without_a_drain() {
    let (_dir, cwd) = scratch();
    let mut shop = start_command(serve_command(
        &cwd,
        &cwd.join("data"),
        &["--shutdown-drain-secs", "3600"],
    ))
    .serving("shopd did not start");
    assert_eq!(
        status(reqwest::Method::GET, &shop.url("/readyz"), None),
        200
    );
    send(&shop.child, libc::SIGINT);
    let exit = exit_within(&mut shop.child, PATIENCE).expect("SIGINT skips the drain");
    assert!(exit.success(), "{exit}");
}

#[test]
fn without_a_drain_sigterm_stops_at_once() {
    let (_dir, cwd) = scratch();
    let mut shop =
        start_command(serve_command(&cwd, &cwd.join("data"), &[])).serving("shopd did not start");
    sigterm(&shop.child);
    let exit = exit_within(&mut shop.child, PATIENCE).expect("the default drain is 0");
    assert!(exit.success(), "{exit}");
}

/// The soft and hard "Max open files" of a running process.
fn open_file_limits(child: &Child) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", child.id())).expect("limits");
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .expect("a Max open files line");
    let numbers: Vec<u64> = line
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

/// shopd started with the open-file limits `soft` and `hard` (lowering a
/// limit needs no privilege), with `extra` flags.
fn start_with_limits(cwd: &std::path::Path, soft: u64, hard: u64, extra: &[&str]) -> ShopdProcess {
    let mut command = serve_command(cwd, &cwd.join("data"), extra);
    command.env("SHOPD_LOG_LEVEL", "info");
    // SAFETY: setrlimit(2) only, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    start_command(command).serving("shopd did not start")
}

/// What shopd printed on stderr once stopped.
fn stderr_after_stop(mut shop: ShopdProcess) -> String {
    sigterm(&shop.child);
    let mut stderr = String::new();
    shop.child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read stderr");
    stderr
}

#[test]
fn the_soft_open_file_limit_is_raised_to_what_the_connection_settings_need() {
    let (_dir, cwd) = scratch();
    let (_, hard) = rlimit_of_this_process();
    // 1,000 HTTP and 2,000 chat connections, plus the 128 shopd keeps aside.
    let needed = 1000 + 2000 + 128;
    assert!(
        hard >= needed,
        "this test needs a hard open-file limit of {needed}; it is {hard}"
    );
    let shop = start_with_limits(
        &cwd,
        256,
        hard,
        &[
            "--max-connections",
            "1000",
            "--chat-max-connections",
            "2000",
        ],
    );
    assert_eq!(open_file_limits(&shop.child), (needed, hard));
    let stderr = stderr_after_stop(shop);
    assert!(!stderr.contains("open-file limit is below"), "{stderr}");
}

#[test]
fn a_hard_limit_below_the_need_is_used_whole_and_the_warning_names_the_settings() {
    let (_dir, cwd) = scratch();
    let shop = start_with_limits(&cwd, 256, 1024, &[]);
    assert_eq!(open_file_limits(&shop.child), (1024, 1024));
    // It still serves.
    assert_eq!(
        status(reqwest::Method::GET, &shop.url("/healthz"), None),
        200
    );
    let stderr = stderr_after_stop(shop);
    assert!(
        stderr.contains("open-file limit is below")
            && stderr.contains("max_connections")
            && stderr.contains("chat_max_connections")
            && stderr.contains("LimitNOFILE"),
        "{stderr}"
    );
}

/// This test process's own open-file limits.
fn rlimit_of_this_process() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit(2) into a local struct.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) },
        0
    );
    (limit.rlim_cur, limit.rlim_max)
}

#[test]
fn a_drain_ends_by_itself_and_shopd_exits_cleanly() {
    let (_dir, cwd) = scratch();
    let mut shop = start_command(serve_command(
        &cwd,
        &cwd.join("data"),
        &["--shutdown-drain-secs", "1"],
    ))
    .serving("shopd did not start");
    sigterm(&shop.child);
    let exit = exit_within(&mut shop.child, PATIENCE).expect("the drain ends");
    assert!(exit.success(), "{exit}");
}
