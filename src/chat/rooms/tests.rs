//! Unit tests of the parent module.

use futures_util::FutureExt;

use super::*;

fn registry() -> Arc<Registry> {
    Arc::new(Registry::new(
        Duration::from_secs(30),
        History::in_memory(crate::chat::history::HistoryLimits::default()),
    ))
}

#[test]
fn a_room_lives_from_its_first_join_to_its_last_leave() {
    let registry = registry();
    let (a, _a_inbox) = registry.join("lobby", 8);
    let (b, _b_inbox) = registry.join("lobby", 8);
    let (c, _c_inbox) = registry.join("other", 8);
    assert_eq!(registry.stats().rooms, 2);
    assert_eq!(registry.stats().connections, 3);
    drop(a);
    assert_eq!(registry.stats().rooms, 2);
    drop(b);
    drop(c);
    assert_eq!(registry.stats(), ChatStats::default());
    assert!(lock(&registry.rooms).is_empty());
}

#[tokio::test]
async fn lines_go_to_the_other_members_in_order_and_are_counted() {
    let registry = registry();
    let (a, mut a_inbox) = registry.join("lobby", 8);
    let (_b, mut b_inbox) = registry.join("lobby", 8);
    let (_c, mut c_inbox) = registry.join("elsewhere", 8);
    a.say("one").await;
    a.say("two :: three").await;
    let expected = [
        format!("{} :: one", a.name()),
        format!("{} :: two :: three", a.name()),
    ];
    for line in expected {
        assert_eq!(b_inbox.try_recv().expect("a line").as_str(), line);
    }
    assert!(b_inbox.try_recv().is_err());
    assert!(a_inbox.try_recv().is_err(), "no echo");
    assert!(c_inbox.try_recv().is_err(), "rooms are apart");
    assert_eq!(registry.stats().messages, 2);
}

#[test]
fn names_are_distinct_within_a_room() {
    let registry = registry();
    let members: Vec<_> = (0..200).map(|_| registry.join("crowd", 1)).collect();
    let names: std::collections::HashSet<&str> =
        members.iter().map(|(member, _)| member.name()).collect();
    assert_eq!(names.len(), members.len());
}

#[test]
fn many_threads_joining_and_leaving_the_same_rooms_lose_and_leak_nothing() {
    let registry = registry();
    let threads: Vec<_> = (0..8)
        .map(|thread| {
            let registry = Arc::clone(&registry);
            std::thread::spawn(move || {
                // Delivery's timers need a runtime to register with.
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build()
                    .expect("runtime");
                let _context = runtime.enter();
                let mut held = Vec::new();
                for round in 0..2000 {
                    let room = format!("room-{}", (thread + round) % 3);
                    held.push(registry.join(&room, 4));
                    // Leave in a different order than joining, and keep
                    // rooms hovering around one member.
                    if held.len() > 2 {
                        held.swap_remove(round % held.len());
                    }
                    if let Some((member, _)) = held.last() {
                        // Gives up at the first full queue: nobody reads.
                        let _ = member.say("hi").now_or_never();
                    }
                }
                held
            })
        })
        .collect();
    let mut survivors = Vec::new();
    for thread in threads {
        survivors.extend(thread.join().expect("no panic"));
    }
    let stats = registry.stats();
    assert_eq!(stats.connections, survivors.len() as u64);
    let in_rooms: usize = lock(&registry.rooms)
        .values()
        .map(|room| lock(&room.members).len())
        .sum();
    assert_eq!(in_rooms, survivors.len(), "no member lost");
    for (member, _) in &survivors {
        let rooms = lock(&registry.rooms);
        let listed = rooms.get(&member.room_name).expect("its room is listed");
        assert!(Arc::ptr_eq(listed, &member.room), "not in a forgotten room");
    }
    assert_eq!(stats.rooms, lock(&registry.rooms).len() as u64);
    drop(survivors);
    assert_eq!(registry.stats().rooms, 0, "no empty room left behind");
    assert_eq!(registry.stats().connections, 0);
    assert!(lock(&registry.rooms).is_empty());
}

#[test]
fn another_instances_claim_closes_only_older_connections_of_that_name() {
    let registry = registry();
    let (ann, _ann_inbox) = registry.join("lobby", 8);
    let (bob, _bob_inbox) = registry.join("lobby", 8);
    let claim = |joined| Claim {
        name: ann.name().to_owned(),
        joined,
        instance: 2,
    };
    // An older claim loses: Ann stays, and her time goes back as the answer.
    assert_eq!(ann.room.close_older(&claim(0), 1), Some(ann.joined));
    assert_eq!(ann.closer().reason(), None);
    // Same time: the lower instance id is the older.
    assert_eq!(
        ann.room.close_older(&claim(ann.joined), 3),
        Some(ann.joined)
    );
    assert_eq!(ann.closer().reason(), None);
    assert_eq!(ann.room.close_older(&claim(ann.joined), 1), None);
    assert_eq!(ann.closer().reason(), Some(CloseReason::REPLACED));
    assert_eq!(bob.closer().reason(), None, "another name");
}
