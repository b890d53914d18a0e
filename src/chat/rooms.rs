//! The room registry: one room per name, created by its first member and
//! forgotten when its last member leaves.
//!
//! Joining and leaving take the registry lock and then the room's lock, so
//! "last member leaves" and "new member joins the same name" cannot
//! interleave: the joiner either finds the old room (still in the map, not
//! yet empty) or creates a fresh one after the old one is gone. Talking
//! takes only the room's lock, so busy rooms do not contend with each
//! other.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc::{self, error::TrySendError};
use warp::ws::Message;

use super::ChatStats;
use super::close::{CloseReason, Closer};
use super::names::random_name;

/// Every room and the chat figures.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    next_member: AtomicU64,
    // Counted under the registry lock, read without it for the metrics.
    live_rooms: AtomicU64,
    connections: AtomicU64,
    messages: AtomicU64,
}

/// The members of one room.
#[derive(Debug, Default)]
struct Room {
    members: Mutex<Vec<Member>>,
}

/// What the room keeps about one member: where to put its lines and how
/// to kick it.
#[derive(Debug)]
struct Member {
    id: u64,
    name: Arc<str>,
    outbox: mpsc::Sender<Message>,
    closer: Arc<Closer>,
}

/// One member's place in a room; leaving the room is dropping it.
#[derive(Debug)]
pub(crate) struct Membership {
    registry: Arc<Registry>,
    room_name: Arc<str>,
    room: Arc<Room>,
    id: u64,
    name: Arc<str>,
    closer: Arc<Closer>,
}

/// Locks `mutex` even if a thread panicked while holding it: every critical
/// section here leaves the data consistent at each step, so the data is
/// still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// Adds a member to room `room_name`, creating the room if needed. The
    /// member gets a random name no other member of the room has, and the
    /// receiving end of its outgoing queue of `queue_len` lines.
    pub(crate) fn join(
        self: &Arc<Self>,
        room_name: &str,
        queue_len: usize,
    ) -> (Membership, mpsc::Receiver<Message>) {
        let (outbox, inbox) = mpsc::channel(queue_len.max(1));
        let closer = Arc::new(Closer::new());
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        // Drawn before taking any lock; re-drawn only on a clash.
        let mut name = random_name();

        let mut rooms = lock(&self.rooms);
        let (room_name, room) = match rooms.get_key_value(room_name) {
            Some((key, room)) => (Arc::clone(key), Arc::clone(room)),
            None => {
                let key: Arc<str> = room_name.into();
                let room = Arc::new(Room::default());
                rooms.insert(Arc::clone(&key), Arc::clone(&room));
                self.live_rooms.fetch_add(1, Ordering::Relaxed);
                (key, room)
            }
        };
        let mut members = lock(&room.members);
        while members.iter().any(|member| *member.name == name) {
            name = random_name();
        }
        let name: Arc<str> = name.into();
        members.push(Member {
            id,
            name: Arc::clone(&name),
            outbox,
            closer: Arc::clone(&closer),
        });
        self.connections.fetch_add(1, Ordering::Relaxed);
        drop(members);
        drop(rooms);

        let membership = Membership {
            registry: Arc::clone(self),
            room_name,
            room,
            id,
            name,
            closer,
        };
        (membership, inbox)
    }

    /// Rooms, members and messages so far.
    pub(crate) fn stats(&self) -> ChatStats {
        ChatStats {
            rooms: self.live_rooms.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
        }
    }
}

impl Membership {
    /// The member's user name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The signal that closes this member's connection.
    pub(crate) fn closer(&self) -> &Arc<Closer> {
        &self.closer
    }

    /// Queues `{name} :: {text}` for every other member of the room.
    ///
    /// Never waits: a member whose queue is full is told to close (1008)
    /// and skipped, so one slow reader cannot hold up the room.
    pub(crate) fn say(&self, text: &str) {
        self.registry.messages.fetch_add(1, Ordering::Relaxed);
        // Formatted once; each clone shares the same bytes.
        let line = Message::text(format!("{} :: {}", self.name, text));
        let members = lock(&self.room.members);
        for member in members.iter().filter(|member| member.id != self.id) {
            match member.outbox.try_send(line.clone()) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => member.closer.close(CloseReason::TOO_SLOW),
                // Its session is ending and will leave the room shortly.
                Err(TrySendError::Closed(_)) => {}
            }
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let registry = &self.registry;
        let mut rooms = lock(&registry.rooms);
        let mut members = lock(&self.room.members);
        if let Some(index) = members.iter().position(|member| member.id == self.id) {
            members.swap_remove(index);
            registry.connections.fetch_sub(1, Ordering::Relaxed);
        }
        let empty = members.is_empty();
        drop(members);
        // A room leaves the map only here, empty and under the registry
        // lock, so the entry under this name is still our room.
        if empty
            && rooms
                .get(&self.room_name)
                .is_some_and(|room| Arc::ptr_eq(room, &self.room))
        {
            rooms.remove(&self.room_name);
            registry.live_rooms.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(message: &Message) -> &str {
        message.to_str().expect("a text message")
    }

    #[test]
    fn a_room_lives_from_its_first_join_to_its_last_leave() {
        let registry = Arc::new(Registry::default());
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

    #[test]
    fn lines_go_to_the_other_members_in_order_and_are_counted() {
        let registry = Arc::new(Registry::default());
        let (a, mut a_inbox) = registry.join("lobby", 8);
        let (_b, mut b_inbox) = registry.join("lobby", 8);
        let (_c, mut c_inbox) = registry.join("elsewhere", 8);
        a.say("one");
        a.say("two :: three");
        let expected = [
            format!("{} :: one", a.name()),
            format!("{} :: two :: three", a.name()),
        ];
        for line in expected {
            assert_eq!(text(&b_inbox.try_recv().expect("a line")), line);
        }
        assert!(b_inbox.try_recv().is_err());
        assert!(a_inbox.try_recv().is_err(), "no echo");
        assert!(c_inbox.try_recv().is_err(), "rooms are apart");
        assert_eq!(registry.stats().messages, 2);
    }

    #[test]
    fn a_full_queue_closes_its_member_with_1008_and_spares_the_others() {
        let registry = Arc::new(Registry::default());
        let (talker, _talker_inbox) = registry.join("lobby", 2);
        let (slow, _slow_inbox) = registry.join("lobby", 2);
        let (_fast, mut fast_inbox) = registry.join("lobby", 2);
        for round in 0..10 {
            talker.say(&round.to_string());
            assert!(fast_inbox.try_recv().is_ok(), "round {round}");
        }
        assert_eq!(slow.closer().reason(), Some(CloseReason::TOO_SLOW));
        assert_eq!(talker.closer().reason(), None);
    }

    #[test]
    fn names_are_distinct_within_a_room() {
        let registry = Arc::new(Registry::default());
        let members: Vec<_> = (0..200).map(|_| registry.join("crowd", 1)).collect();
        let names: std::collections::HashSet<&str> =
            members.iter().map(|(member, _)| member.name()).collect();
        assert_eq!(names.len(), members.len());
    }

    #[test]
    fn many_threads_joining_and_leaving_the_same_rooms_lose_and_leak_nothing() {
        let registry = Arc::new(Registry::default());
        let threads: Vec<_> = (0..8)
            .map(|thread| {
                let registry = Arc::clone(&registry);
                std::thread::spawn(move || {
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
                            member.say("hi");
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
}
