//! A full disk under the embedded store: writes fail with an error answer,
//! nothing crashes, `/readyz` says the store failed, SIGTERM still exits
//! at once, and a restart once there is room serves every acknowledged
//! write. The data directory sits on a small tmpfs of its own (`mount -t
//! tmpfs`, which needs root, as CI runs, or CAP_SYS_ADMIN); where the mount
//! is refused the test skips loudly with the reason, and fails under CI.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::scratch;
use crate::process::{exit_within, sigterm, spawn_process};
use crate::support::skip;

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    /// A tmpfs of `size`, or `None` after a loud skip naming why the mount
    /// was refused.
    fn mount(size: &str, test: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("disk");
        std::fs::create_dir(&path).expect("mount point");
        let remedy = "Run it as root, or in a container with CAP_SYS_ADMIN \
                      (docker run --cap-add SYS_ADMIN)";
        let mounted = match Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .output()
        {
            Ok(mounted) => mounted,
            Err(err) => return skip(test, &format!("cannot run `mount`: {err}"), remedy),
        };
        if !mounted.status.success() {
            let why = format!(
                "`mount -t tmpfs` was refused ({}): {}",
                mounted.status,
                String::from_utf8_lossy(&mounted.stderr).trim()
            );
            return skip(test, &why, remedy);
        }
        Some(SmallDisk { path, _dir: dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Writes `path` until the disk is full, in ever smaller pieces.
fn fill(path: &Path) {
    let mut file = std::fs::File::create(path).unwrap();
    for size in [1 << 20, 1 << 12, 1] {
        let chunk = vec![7u8; size];
        while file.write_all(&chunk).is_ok() {}
    }
}

fn status_of(response: reqwest::Result<reqwest::blocking::Response>) -> u16 {
    response.map_or(0, |r| r.status().as_u16())
}

#[test]
fn a_full_disk_fails_writes_cleanly_and_a_restart_with_room_serves_every_acknowledged_write() {
    let Some(disk) = SmallDisk::mount("8m", "the full-disk test") else {
        return;
    };
    let (_cwd_dir, cwd) = scratch();
    let data = disk.path.join("data");
    let mut server = spawn_process(&cwd, &data, &["--max-name-chars", "4096"]);
    let client = reqwest::blocking::Client::new();
    let (item_url, readyz) = (server.url("/item"), server.url("/readyz"));
    let create = |name: &str| {
        client
            .post(&item_url)
            .json(&json!({"name": name, "price": 1.0}))
            .send()
    };
    let mut acked: Vec<Value> = Vec::new();
    for i in 0..20 {
        let response = create(&format!("before {i}")).unwrap();
        assert_eq!(response.status(), 201);
        acked.push(response.json().unwrap());
    }

    fill(&disk.path.join("filler"));
    let mut failed = 0;
    for i in 0..500 {
        let response =
            create(&format!("{i} {}", "x".repeat(2000))).expect("an answer, not a crash");
        match response.status().as_u16() {
            201 => acked.push(response.json().unwrap()),
            500 | 503 => failed += 1,
            other => panic!("a write on a full disk answered {other}"),
        }
        if failed >= 5 {
            break;
        }
    }
    assert!(failed >= 5, "writes kept succeeding on a full disk");
    assert_eq!(status_of(client.get(&readyz).send()), 503);
    assert_eq!(status_of(client.get(server.url("/healthz")).send()), 200);
    assert!(server.child.try_wait().unwrap().is_none(), "shopd died");

    // Room again: sled writes nothing more in this process (its first I/O
    // error is final), so the store stays failed until a restart...
    std::fs::remove_file(disk.path.join("filler")).unwrap();
    let status = status_of(create("after"));
    assert!(status == 500 || status == 503, "{status}");
    assert_eq!(status_of(client.get(&readyz).send()), 503);

    // ... which SIGTERM allows at once.
    sigterm(&server.child);
    let exit = exit_within(&mut server.child, Duration::from_secs(20)).expect("shopd did not exit");
    assert!(exit.success(), "exit {exit:?}");
    drop(server);

    let server = spawn_process(&cwd, &data, &["--max-list-limit", "100000"]);
    let client = reqwest::blocking::Client::new();
    let listed: Value = client
        .get(server.url("/item?limit=100000"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let listed = listed.as_array().unwrap();
    for item in &acked {
        assert!(listed.contains(item), "acknowledged {item} is gone");
    }
    let highest = acked
        .iter()
        .map(|item| item["id"].as_u64().unwrap())
        .max()
        .unwrap();
    let response = client
        .post(server.url("/item"))
        .json(&json!({"name": "after restart", "price": 1.0}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    let item: Value = response.json().unwrap();
    assert!(
        item["id"].as_u64().unwrap() > highest,
        "{item} reuses an id"
    );
}
