//! Scheduled backups (`backup_dir`, `backup_every_secs`, `backup_keep`) and
//! the streamed online export: what a backup holds, restored with
//! `shopd import`; pruning; failures counted, logged once and recovered
//! from; one instance at a time on PostgreSQL.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use shopd::config::Secret;
use shopd::ops::files;
use shopd::store::Snapshot;

use super::fixtures::{api_view, fill, run, stderr};
use super::{TOKEN, admin_export};
use crate::helpers::{
    Backend, backend_tests, scratch, spawn_app, spawn_app_in, spawn_app_with, spawn_process,
};
use crate::nats::metric;
use crate::support::eventually;

const LAST_SUCCESS: &str = "shopd_backup_last_success_timestamp_seconds";
const FAILURES: &str = "shopd_backup_failures_total";

/// The backups in `dir`, newest first.
fn backups_in(dir: &Path) -> Vec<(SystemTime, PathBuf)> {
    files::list(dir).unwrap_or_default()
}

fn unix_secs(time: SystemTime) -> f64 {
    time.duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

backend_tests! {
    async fn the_streamed_export_is_byte_for_byte_the_format_as_before(backend) {
        let app = Arc::new(backend.spawn_with(|s| s.admin.token = Some(Secret::new(TOKEN))).await);
        fill(&app).await;
        // Long names: the export spans several 64 KiB chunks.
        let name = "n".repeat(900);
        let creating: Vec<_> = (0..8)
            .map(|_| {
                let (app, name) = (app.clone(), name.clone());
                tokio::spawn(async move {
                    for _ in 0..50 {
                        app.create_item(&name, 0.1).await;
                    }
                })
            })
            .collect();
        for task in creating {
            task.await.unwrap();
        }
        let response = admin_export(&app).await;
        assert_eq!(response.status(), 200);
        let streamed = response.bytes().await.unwrap();
        assert!(streamed.len() > 5 * 64 * 1024, "{} bytes", streamed.len());
        let snapshot = Snapshot::read(&streamed[..]).expect("a whole export");
        assert_eq!(snapshot.items.len(), 425);
        assert_eq!(snapshot.carts.len(), 12);
        // The whole-snapshot writer of before gives the very same bytes.
        assert_eq!(snapshot.to_bytes(), streamed.to_vec());
    }

    async fn a_scheduled_backup_under_writes_restores_every_write_acknowledged_before_its_moment(backend) {
        let (_backups, dir) = scratch();
        let app = {
            let dir = dir.clone();
            Arc::new(
                backend
                    .spawn_with(move |s| {
                        s.backup.dir = Some(dir);
                        s.backup.every = Duration::from_secs(1);
                    })
                    .await,
            )
        };
        // (id, price, sent, acknowledged) of every item created; per
        // writer, (sent, acknowledged) of every add to its cart.
        type Created = (u64, f64, SystemTime, SystemTime);
        let created: Arc<Mutex<Vec<Created>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writers: Vec<_> = (0..4u32)
            .map(|w| {
                let (app, created, stop) = (app.clone(), created.clone(), stop.clone());
                tokio::spawn(async move {
                    let cart = app.create_cart().await;
                    let mut adds = Vec::new();
                    let mut n = 0u32;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        n += 1;
                        let price = f64::from(n) * 0.1 + f64::from(w);
                        let sent = SystemTime::now();
                        let item = app.create_item(&format!("w{w}"), price).await;
                        let acked = SystemTime::now();
                        // As read back (the tests' JSON parser may round the last bit).
                        let (id, price) = (item["id"].as_u64().unwrap(), item["price"].as_f64().unwrap());
                        created.lock().unwrap().push((id, price, sent, acked));
                        let sent = SystemTime::now();
                        app.add(cart, id).await;
                        adds.push((sent, SystemTime::now()));
                    }
                    (cart, adds)
                })
            })
            .collect();
        // The first backup is taken at once (none exists yet); the second
        // and later ones while the writers go on.
        eventually("two scheduled backups", || {
            let found = backups_in(&dir).len() >= 2;
            async move { found }
        })
        .await;
        let observed = SystemTime::now();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut carts = Vec::new();
        for writer in writers {
            carts.push(writer.await.unwrap());
        }
        let (moment, newest) = backups_in(&dir).swap_remove(0);
        let live = api_view(&app).await;

        let (_cwd, cwd) = scratch();
        let target = tempfile::tempdir().unwrap();
        let out = run(
            &cwd,
            &["import", "--data-dir", target.path().to_str().unwrap(), "--in", newest.to_str().unwrap()],
            None,
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let restored = spawn_app_in(target, |_| {}).await;
        let (items, restored_carts) = api_view(&restored).await;

        // Every restored item is the shop's item, unchanged.
        let by_id = |list: &[Value], id: u64| list.iter().find(|v| v["id"] == id).cloned();
        for item in &items {
            assert_eq!(Some(item.clone()), by_id(&live.0, item["id"].as_u64().unwrap()));
        }
        let created = created.lock().unwrap().clone();
        let mut before = 0;
        for (id, price, sent, acked) in created {
            let found = by_id(&items, id);
            if acked < moment {
                before += 1;
                let found = found.unwrap_or_else(|| panic!("item {id}, acknowledged before the backup, is missing"));
                assert_eq!(found["price"].as_f64(), Some(price));
            } else if sent > observed {
                assert!(found.is_none(), "item {id}, sent after the backup was complete, is in it");
            }
        }
        assert!(before > 0, "no write was acknowledged before the backup");
        // Adds: every one acknowledged before the moment is in the cart,
        // none sent after the backup was seen complete.
        for (cart, adds) in carts {
            let quantity = by_id(&restored_carts, cart).map_or(0, |c| {
                let lines = c["items"].as_array().unwrap().iter();
                lines.map(|line| line["quantity"].as_u64().unwrap()).sum()
            });
            let acked = adds.iter().filter(|(_, acked)| *acked < moment).count() as u64;
            let sent = adds.iter().filter(|(sent, _)| *sent < observed).count() as u64;
            assert!((acked..=sent).contains(&quantity), "cart {cart}: {quantity} not in {acked}..={sent}");
        }
    }
}

#[tokio::test]
async fn old_backups_beyond_backup_keep_go_once_a_new_one_is_complete_and_nothing_else_does() {
    // Without the settings there are no backup metrics.
    let plain = spawn_app().await;
    assert_eq!(metric(&plain, LAST_SUCCESS).await, None);
    assert_eq!(metric(&plain, FAILURES).await, None);

    let (_backups, dir) = scratch();
    let old = dir.join("shopd-backup-20000101T000000.000Z.ndjson");
    std::fs::write(&old, "an old backup").unwrap();
    let others = [
        ("notes.txt", "the operator's"),
        ("shopd-backup-latest.ndjson", "not a shopd name"),
    ];
    for (name, text) in others {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let app = {
        let dir = dir.clone();
        spawn_app_with(move |s| {
            s.backup.dir = Some(dir);
            s.backup.every = Duration::from_secs(1);
            s.backup.keep = 2.try_into().unwrap();
        })
        .await
    };
    app.create_item("Tea", 2.5).await;
    // Three backups at least, then the two newest are all that is kept.
    let mut seen = HashSet::new();
    eventually("three backups taken, two kept", || {
        let found = backups_in(&dir);
        if let Some((_, newest)) = found.first() {
            seen.insert(newest.clone());
        }
        let done = seen.len() >= 3 && found.len() == 2 && !old.exists();
        async move { done }
    })
    .await;
    for (name, text) in others {
        assert_eq!(std::fs::read_to_string(dir.join(name)).unwrap(), text);
    }
    // Each kept one is a whole export. A backup a second goes on, so the
    // oldest listed may be pruned before it is read: skip such a one.
    let mut read = 0;
    for (_, path) in backups_in(&dir) {
        let text = match std::fs::read(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => panic!("{}: {err}", path.display()),
        };
        assert_eq!(Snapshot::read(&text[..]).unwrap().items.len(), 1);
        read += 1;
    }
    assert!(read > 0, "no kept backup could be read");
    // The metric is the newest backup's own moment.
    eventually("the metric shows the newest backup", || async {
        let newest = unix_secs(backups_in(&dir)[0].0);
        let shown = metric(&app, LAST_SUCCESS).await;
        shown.is_some_and(|shown| (shown - newest).abs() < 0.001)
    })
    .await;
    assert_eq!(metric(&app, FAILURES).await, Some(0.0));
    assert_eq!(
        metric(&app, "shopd_backup_interval_seconds").await,
        Some(1.0)
    );
    assert!(metric(&app, "shopd_backup_duration_seconds").await.unwrap() > 0.0);
    app.stop().await;
    // After a restart (an hour apart: no new backup is due yet), the
    // metric is still the newest backup's time, read from the directory.
    let newest = unix_secs(backups_in(&dir)[0].0);
    let again = {
        let dir = dir.clone();
        spawn_app_with(move |s| {
            s.backup.dir = Some(dir);
            s.backup.every = Duration::from_secs(3600);
        })
        .await
    };
    let shown = metric(&again, LAST_SUCCESS).await.unwrap();
    assert!((shown - newest).abs() < 0.001, "{shown} != {newest}");
    assert_eq!(backups_in(&dir).len(), 2);
}

/// The value of an unlabelled sample in a `/metrics` text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        line.strip_prefix(name)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn a_backup_dir_that_cannot_be_made_counts_failures_logs_once_and_the_next_good_tick_succeeds() {
    let (_cwd, cwd) = scratch();
    // A directory under a regular file cannot be created, even by root.
    let blocker = cwd.join("blocker");
    std::fs::write(&blocker, "a file").unwrap();
    let dir = blocker.join("backups");
    let mut shopd = spawn_process(
        &cwd,
        &cwd.join("data"),
        &[
            "--backup-dir",
            dir.to_str().unwrap(),
            "--backup-every-secs",
            "1",
        ],
    );
    let client = reqwest::blocking::Client::new();
    let scrape = || {
        client
            .get(shopd.url("/metrics"))
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while sample(&scrape(), FAILURES).unwrap_or(0.0) < 3.0 {
        assert!(Instant::now() < deadline, "three failures never counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(sample(&scrape(), LAST_SUCCESS), Some(0.0));
    // Fixed: the next tick succeeds.
    std::fs::remove_file(&blocker).unwrap();
    while backups_in(&dir).is_empty() || sample(&scrape(), LAST_SUCCESS) == Some(0.0) {
        assert!(Instant::now() < deadline, "no backup after the fix");
        std::thread::sleep(Duration::from_millis(50));
    }
    let failures = sample(&scrape(), FAILURES).unwrap();
    assert!(failures >= 3.0);
    let logs = shopd.stop_for_logs();
    let failed: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("scheduled backup failed"))
        .collect();
    assert_eq!(
        failed.len(),
        1,
        "logged once for {failures} failures: {logs}"
    );
    assert!(
        failed[0].contains("Not a directory") && failed[0].contains("blocker"),
        "the cause and the path: {}",
        failed[0]
    );
    // Nothing half-written is left.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| files::time_of(n.to_str().unwrap()).is_some()),
        "{names:?}"
    );
}

#[tokio::test]
async fn on_postgresql_a_tick_is_skipped_while_another_instance_holds_the_backup_lock() {
    let Some(Backend::Postgres(database)) = Backend::postgres(
        "on_postgresql_a_tick_is_skipped_while_another_instance_holds_the_backup_lock",
    )
    .await
    else {
        return;
    };
    // Another instance's backup, as far as the database can tell.
    let holder = database.client().await;
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&shopd::store::BACKUP_LOCK])
        .await
        .unwrap();
    let (_backups, dir) = scratch();
    let app = {
        let dir = dir.clone();
        Backend::Postgres(database)
            .spawn_with(move |s| {
                s.backup.dir = Some(dir);
                s.backup.every = Duration::from_secs(1);
            })
            .await
    };
    app.create_item("Tea", 2.5).await;
    // Ticks come and go (the first at once): each skipped, none a failure.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(backups_in(&dir).is_empty());
    assert_eq!(metric(&app, FAILURES).await, Some(0.0));
    assert_eq!(metric(&app, LAST_SUCCESS).await, Some(0.0));
    holder
        .execute(
            "SELECT pg_advisory_unlock($1)",
            &[&shopd::store::BACKUP_LOCK],
        )
        .await
        .unwrap();
    eventually("a backup once the lock is free", || {
        let found = !backups_in(&dir).is_empty();
        async move { found }
    })
    .await;
    let (_, path) = backups_in(&dir).swap_remove(0);
    let text = std::fs::read(path).unwrap();
    assert_eq!(Snapshot::read(&text[..]).unwrap().items.len(), 1);
}
