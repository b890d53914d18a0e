//! Unit tests of the parent module.

use super::*;

fn said(history: &History, room: &Mutex<RoomHistory>, text: &str) -> Line {
    history.append(room, Line::new("ann", text), None)
}

#[test]
fn offsets_increase_and_the_oldest_lines_go_first() {
    let history = History::in_memory(HistoryLimits {
        lines: 3,
        ..HistoryLimits::default()
    });
    let room = history.room(&"lobby".into());
    for n in 1..=5 {
        assert_eq!(said(&history, &room, &n.to_string()).offset(), n);
    }
    let all = history.catch_up(&room, Since::Offset(0));
    let kept: Vec<u64> = all.lines.iter().map(Line::offset).collect();
    assert_eq!((all.latest, kept), (5, vec![3, 4, 5]));
    assert_eq!(history.stats().lines, 3);
}

#[test]
fn a_resume_is_complete_only_within_the_kept_lines_and_the_same_epoch() {
    let history = History::in_memory(HistoryLimits {
        lines: 3,
        ..HistoryLimits::default()
    });
    let room = history.room(&"lobby".into());
    for n in 1..=5 {
        said(&history, &room, &n.to_string());
    }
    let epoch = history.catch_up(&room, Since::Nothing).epoch;
    let resume = |since| {
        history.catch_up(
            &room,
            Since::Resume {
                since,
                epoch: &epoch,
            },
        )
    };
    let ok = resume(2);
    assert!(ok.resumed);
    assert_eq!(
        ok.lines.iter().map(Line::offset).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert!(resume(5).resumed && resume(5).lines.is_empty());
    assert!(!resume(1).resumed, "line 2 is gone");
    assert!(!resume(6).resumed, "an offset the room never reached");
    let other = history.catch_up(
        &room,
        Since::Resume {
            since: 4,
            epoch: "0",
        },
    );
    assert!(!other.resumed);
    assert_eq!(other.lines.len(), 3, "what is kept");
    let stats = history.stats();
    assert_eq!((stats.resumes_complete, stats.resumes_incomplete), (3, 3));
}

#[test]
fn bytes_per_room_and_rooms_are_bounded_but_a_held_room_is_kept() {
    let history = History::in_memory(HistoryLimits {
        lines: 100,
        room_bytes: 40,
        rooms: 2,
    });
    let held = history.room(&"held".into());
    for _ in 0..10 {
        said(&history, &held, "0123456789");
    }
    assert_eq!(history.catch_up(&held, Since::Offset(0)).lines.len(), 2);
    drop(history.room(&"a".into()));
    drop(history.room(&"b".into()));
    drop(history.room(&"c".into()));
    assert_eq!(history.stats().rooms, 2);
    assert_eq!(history.catch_up(&held, Since::Nothing).latest, 10);
    assert!(Arc::ptr_eq(&history.room(&"held".into()), &held));
}

#[test]
fn with_no_lines_kept_offsets_still_count() {
    let history = History::in_memory(HistoryLimits {
        lines: 0,
        ..HistoryLimits::default()
    });
    let room = history.room(&"lobby".into());
    assert_eq!(said(&history, &room, "a").offset(), 1);
    assert_eq!(said(&history, &room, "b").offset(), 2);
    assert!(history.catch_up(&room, Since::Offset(0)).lines.is_empty());
    assert_eq!(history.stats().lines, 0);
}

#[test]
fn lines_numbered_by_the_bus_keep_their_offsets_and_a_gap_makes_a_resume_incomplete() {
    let history = History::in_memory(HistoryLimits::default());
    let room = history.room(&"lobby".into());
    let stored = |offset: u64| Line::new("ann", &offset.to_string()).numbered(offset, None);
    history.restart(&room, Some("e1".into()), vec![stored(1), stored(2)]);
    assert!(history.append_numbered(&room, &stored(3)));
    // Offset 4 went out live only while the stream could not keep it.
    assert!(history.append_numbered(&room, &stored(5)));
    // The stream delivering a line kept here already: kept once.
    assert!(!history.append_numbered(&room, &stored(5)));
    assert!(!history.append_numbered(&room, &stored(3)));
    let resume = |since| history.catch_up(&room, Since::Resume { since, epoch: "e1" });
    let ok = resume(5);
    assert!(ok.resumed, "nothing missed");
    assert_eq!(ok.latest, 5);
    for since in [1, 3] {
        let gap = resume(since);
        assert!(!gap.resumed, "4 is missing after {since}");
        assert_eq!(gap.lines.len(), 4, "every kept line instead");
    }

    // The stream made again: a new epoch, offsets never go back.
    history.restart(&room, Some("e2".into()), Vec::new());
    let now = history.catch_up(&room, Since::Nothing);
    assert_eq!((&*now.epoch, now.latest), ("e2", 5));
    assert!(!resume(5).resumed, "the old epoch");
    assert_eq!(history.stats().lines, 0);
    // Unreadable: a fresh epoch nobody resumes under.
    history.restart(&room, None, Vec::new());
    assert_ne!(&*history.catch_up(&room, Since::Nothing).epoch, "e2");
}

#[test]
fn a_line_the_stream_delivers_again_is_kept_once_and_another_under_its_offset_is_kept() {
    let history = History::in_memory(HistoryLimits::default());
    let room = history.room(&"lobby".into());
    // Said while storing timed out: it went out live as offset 1.
    let live = history.append(&room, Line::new("ann", "hi"), None);
    assert_eq!(live.offset(), 1);
    // The stream took it after all and delivers it under the same offset.
    let stored = Line::new("ann", "hi").numbered(1, None);
    assert!(!history.append_numbered(&room, &stored));
    // Another instance's line under that offset (a gap while the stream
    // was away) is another line: kept.
    let other = Line::new("bob", "hi").numbered(1, None);
    assert!(history.append_numbered(&room, &other));
    assert_eq!(history.stats().lines, 2);
}
