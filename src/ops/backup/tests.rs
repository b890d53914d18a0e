//! The scheduler's unit tests: a backup stopped by shutdown, and when
//! backups are off.

use std::num::NonZeroUsize;

use super::*;
use crate::domain::NewItem;
use crate::store::{Durability, SledStore};

fn scheduler(store: SledStore, dir: &Path) -> Backups<SledStore> {
    let settings = config::Backup {
        dir: Some(dir.to_path_buf()),
        every: Duration::from_secs(3600),
        keep: NonZeroUsize::new(2).unwrap(),
    };
    Backups::new(store, &settings, &Telemetry::new()).expect("backups are on")
}

#[tokio::test]
async fn a_backup_stopped_by_shutdown_keeps_nothing_and_is_no_failure() {
    let data = tempfile::tempdir().unwrap();
    let store = SledStore::open(data.path(), Durability::Periodic, 500).unwrap();
    store
        .create_item(
            NewItem {
                name: "Tea".into(),
                price: 2.5,
            },
            None,
        )
        .await
        .unwrap();
    let backups = tempfile::tempdir().unwrap();
    let mut scheduler = scheduler(store.clone(), backups.path());
    let stop = CancellationToken::new();
    stop.cancel();
    assert!(matches!(
        scheduler.tick(&stop).await,
        Some(Outcome::Stopped)
    ));
    assert!(scheduler.failing.is_none());
    let left: Vec<_> = std::fs::read_dir(backups.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
    // The next tick, not stopped, takes it.
    let taken = scheduler.tick(&CancellationToken::new()).await;
    let Some(Outcome::Taken { path, counts }) = taken else {
        panic!("{taken:?}");
    };
    assert_eq!((counts.items, counts.carts), (1, 0));
    let text = std::fs::read(&path).unwrap();
    assert_eq!(
        crate::store::Snapshot::read(&text[..]).unwrap().items.len(),
        1
    );
    store.close().await.unwrap();
}

#[test]
fn backups_are_off_without_a_directory_or_an_interval() {
    let data = tempfile::tempdir().unwrap();
    let store = SledStore::open(data.path(), Durability::Periodic, 500).unwrap();
    let telemetry = Telemetry::new();
    let off = config::Backup::default();
    assert!(Backups::new(store.clone(), &off, &telemetry).is_none());
    let no_interval = config::Backup {
        dir: Some(data.path().join("backups")),
        ..config::Backup::default()
    };
    assert!(Backups::new(store, &no_interval, &telemetry).is_none());
}

#[tokio::test]
async fn a_tick_after_another_instance_backed_up_into_the_same_directory_is_skipped() {
    let data = tempfile::tempdir().unwrap();
    let store = SledStore::open(data.path(), Durability::Periodic, 500).unwrap();
    let backups = tempfile::tempdir().unwrap();
    // Another instance's backup, a minute ago: within half the interval.
    let theirs = files::name_at(SystemTime::now() - Duration::from_secs(60));
    std::fs::write(backups.path().join(&theirs), "theirs").unwrap();
    let mut scheduler = scheduler(store.clone(), backups.path());
    let skipped = scheduler.tick(&CancellationToken::new()).await;
    assert!(matches!(skipped, Some(Outcome::Skipped)), "{skipped:?}");
    assert_eq!(files::list(backups.path()).unwrap().len(), 1);
    // Half an interval old: this instance takes the next one.
    let old = SystemTime::now() - Duration::from_secs(1800);
    std::fs::rename(
        backups.path().join(&theirs),
        backups.path().join(files::name_at(old)),
    )
    .unwrap();
    let taken = scheduler.tick(&CancellationToken::new()).await;
    assert!(matches!(taken, Some(Outcome::Taken { .. })), "{taken:?}");
    store.close().await.unwrap();
}
