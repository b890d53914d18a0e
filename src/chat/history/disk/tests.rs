//! Unit tests of the parent module.

use super::*;
use crate::chat::history::{History, Since};

#[test]
fn a_clean_stop_keeps_lines_and_epochs_and_an_unclean_one_changes_epochs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let limits = HistoryLimits::default();
    let name: Arc<str> = "lobby".into();
    let history = History::persistent(limits, dir.path()).expect("open");
    let room = history.room(&name);
    for n in 0..5 {
        history.append(&room, Line::new("ann", &format!("line {n}")), None);
    }
    let before = history.catch_up(&room, Since::Offset(0));
    drop(room);
    history.close();
    drop(history);

    let history = History::persistent(limits, dir.path()).expect("reopen");
    let room = history.room(&name);
    let after = history.catch_up(&room, Since::Offset(0));
    assert_eq!(after, before, "same epoch, same lines");
    history.append(&room, Line::new("bob", "after"), None);
    drop(room);
    // Dropped without close: as after kill -9, once the writer wrote.
    std::thread::sleep(BATCH_PAUSE * 10);
    drop(history);

    let history = History::persistent(limits, dir.path()).expect("reopen");
    let room = history.room(&name);
    let unclean = history.catch_up(&room, Since::Offset(0));
    assert_ne!(unclean.epoch, before.epoch);
    assert_eq!(unclean.latest, 6);
    assert_eq!(unclean.lines.last().map(Line::text), Some("after"));
    drop(room);
    history.close();
    drop(history);

    // A log with a line that does not read: a new epoch, even when clean.
    let log = dir.path().join("chat").join(LOG);
    let mut text = fs::read_to_string(&log).expect("log");
    text.push_str("{\"r\": torn");
    fs::write(&log, text).expect("damage");
    let history = History::persistent(limits, dir.path()).expect("reopen");
    let room = history.room(&name);
    let damaged = history.catch_up(&room, Since::Offset(0));
    assert_ne!(damaged.epoch, unclean.epoch);
    assert_eq!(damaged.latest, 6);
}
