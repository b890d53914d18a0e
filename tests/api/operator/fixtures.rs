//! The operator tests' fixtures: shopd at a chosen log level, a bounded
//! wait for its exit, and a pipe nobody reads.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use crate::helpers::scratch;
use crate::process::{ShopdProcess, exit_within, serve_command, sigterm, start_command};

/// shopd serving `data_dir` and logging at `log_level`.
pub fn serve_with_log_level(cwd: &Path, data_dir: &Path, log_level: &str) -> ShopdProcess {
    let mut command = serve_command(cwd, data_dir, &[]);
    command.env("SHOPD_LOG_LEVEL", log_level);
    start_command(command).serving("shopd did not start")
}

/// The child's exit status, or `None` (and the child killed) when it has
/// not exited within 20 s: a liveness bound, generous on a busy machine,
/// not a timing claim.
pub fn exit_within_20s(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    exit_within(child, Duration::from_secs(20))
}

/// A pipe whose buffer is already full, and its read end, which nobody
/// reads: a child's writes to the write end block.
pub fn full_pipe() -> (std::os::fd::OwnedFd, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: pipe(2) fills the two descriptors we pass, which we then own.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0);
    let (read, write) = unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    };
    let chunk = [b'x'; 4096];
    // SAFETY: fcntl(2) and write(2) on a descriptor we own, from a live buffer.
    unsafe {
        let flags = libc::fcntl(fds[1], libc::F_GETFL);
        libc::fcntl(fds[1], libc::F_SETFL, flags | libc::O_NONBLOCK);
        while libc::write(fds[1], chunk.as_ptr().cast(), chunk.len()) > 0 {}
        libc::fcntl(fds[1], libc::F_SETFL, flags);
    }
    (read, write)
}

/// Runs shopd with `log_level`, sends `GET /item/7` and `GET /healthz`, stops
/// it with SIGTERM and returns everything it wrote on stderr.
pub fn stderr_after_two_requests(log_level: &str) -> String {
    let (_cwd_dir, cwd) = scratch();
    let (_data, data_dir) = scratch();
    let mut server = serve_with_log_level(&cwd, &data_dir, log_level);
    let client = reqwest::blocking::Client::new();
    let missing = client.get(server.url("/item/7")).send().unwrap();
    assert_eq!(missing.status(), 404);
    let health = client.get(server.url("/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
    sigterm(&server.child);
    let mut stderr = String::new();
    server
        .child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let status =
        exit_within_20s(&mut server.child).expect("shopd did not exit within 20 s of SIGTERM");
    assert!(status.success(), "{status:?}");
    stderr
}
