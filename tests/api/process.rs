//! shopd as a child process, for the tests that need the built binary
//! (signals, exit codes, refusals at start-up, several instances): one
//! command builder, one start that reports serving or refusing, and the
//! bounded waits for an exit.
#![allow(dead_code)] // Not every test module uses every helper.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest a start-up may take before the test calls it a hang: a
/// liveness bound, generous on a busy machine, not a timing claim.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The shopd binary running as a child process; killed when dropped.
pub struct ShopdProcess {
    pub child: Child,
    pub addr: SocketAddr,
}

impl ShopdProcess {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Stops shopd with SIGTERM, waits for it, and returns what it
    /// logged (its stderr, which must have been piped).
    pub fn stop_for_logs(&mut self) -> String {
        sigterm(&self.child);
        let placeholder = Command::new("true").spawn().expect("spawn true");
        let output = std::mem::replace(&mut self.child, placeholder)
            .wait_with_output()
            .expect("shopd's output");
        String::from_utf8_lossy(&output.stderr).into_owned()
    }
}

impl Drop for ShopdProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Command for the built binary, run in `cwd` (so no stray ./config.toml is read).
pub fn shopd_command(cwd: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_shopd"));
    command
        .current_dir(cwd)
        .env_remove("RUST_LOG")
        .env("SHOPD_LOG_LEVEL", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, _) in std::env::vars() {
        if key.starts_with("SHOPD_") && key != "SHOPD_LOG_LEVEL" {
            command.env_remove(key);
        }
    }
    command
}

/// The server's command: serving `data_dir` on a free port, with `extra` flags.
/// On PostgreSQL (`--database-url` in `extra`) no data directory is given:
/// shopd refuses the two together.
pub fn serve_command(cwd: &Path, data_dir: &Path, extra: &[&str]) -> Command {
    let mut command = shopd_command(cwd);
    if !extra.contains(&"--database-url") {
        command.arg("--data-dir").arg(data_dir);
    }
    command.args(["--listen", "127.0.0.1:0"]).args(extra);
    command
}

/// How a start ended.
pub enum Start {
    /// It exited before serving: its status and stderr.
    Refused(ExitStatus, String),
    /// It serves.
    Serving(ShopdProcess),
}

impl Start {
    /// The serving process; panics with `what` (and the refusal's status and
    /// stderr) when it was refused.
    pub fn serving(self, what: &str) -> ShopdProcess {
        match self {
            Start::Serving(process) => process,
            Start::Refused(status, stderr) => panic!("{what} ({status}): {stderr}"),
        }
    }
}

/// Runs a server `command` and waits (within [`PATIENCE`]) for its
/// "listening" line or its exit.
pub fn start_command(mut command: Command) -> Start {
    let mut child = command.spawn().expect("start shopd");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("shopd neither served nor exited within {PATIENCE:?}")
    });
    match line.trim().strip_prefix("shopd listening on http://") {
        Some(addr) => Start::Serving(ShopdProcess {
            child,
            addr: addr.parse().expect("address"),
        }),
        None => {
            let status = wait(&mut child);
            let mut stderr = String::new();
            let _ = child
                .stderr
                .take()
                .expect("stderr")
                .read_to_string(&mut stderr);
            Start::Refused(status, stderr)
        }
    }
}

/// Starts the binary over `data_dir` on a free port: serving or refused.
pub fn start(cwd: &Path, data_dir: &Path, extra: &[&str]) -> Start {
    start_command(serve_command(cwd, data_dir, extra))
}

/// Starts the binary over `data_dir` on a free port; it must serve.
pub fn spawn_process(cwd: &Path, data_dir: &Path, extra: &[&str]) -> ShopdProcess {
    start(cwd, data_dir, extra).serving("shopd did not start")
}

/// The child's exit status, or `None` (and the child killed) when it has
/// not exited within `patience`: a liveness bound, not a timing claim.
pub fn exit_within(child: &mut Child, patience: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + patience;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break Some(status);
        }
        if Instant::now() > deadline {
            break None;
        }
        // Polling for the exit; nothing waits for start-up here.
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = child.kill();
    let _ = child.wait();
    status
}

/// The child's exit status; it must exit within [`PATIENCE`].
pub fn wait(child: &mut Child) -> ExitStatus {
    exit_within(child, PATIENCE).expect("shopd did not exit")
}

/// Sends SIGTERM to `child`.
pub fn sigterm(child: &Child) {
    let pid = i32::try_from(child.id()).expect("a pid");
    // SAFETY: kill(2) on our own child process; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}

/// Stops `child` with SIGTERM and returns its exit status.
pub fn terminate(child: &mut Child) -> ExitStatus {
    sigterm(child);
    wait(child)
}
