//! The room registry: one room per name, created by its first member and
//! forgotten when its last member leaves.
//!
//! Joining and leaving take the registry lock and then the room's lock, so
//! "last member leaves" and "new member joins the same name" cannot
//! interleave: the joiner either finds the old room (still in the map, not
//! yet empty) or creates a fresh one after the old one is gone. A room's
//! member list is a shared snapshot, replaced on each join and leave:
//! delivery takes it under the room's lock for an instant, then delivers
//! under the room's own order lock only, so busy rooms do not contend with
//! each other.
//!
//! A room numbers its lines in its history and queues them under its
//! order lock, so every member's queue holds them in offset order even
//! when several members (and the bus) speak at once. The lock is held
//! while a line waits for room in a slow member's queue (at most the stall
//! time, after which that member is dropped), so the room's other senders
//! wait that long too.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use tokio::sync::{OnceCell, mpsc};

use super::ChatStats;
use super::bus::{Bus, Claim, Inbox, RoomLink};
use super::close::{CloseReason, Closer, Drops};
use super::deliver::{Line, Member, Progress, deliver};
use super::history::{Catchup, History, RoomHistory, Since};
use super::names::random_name;

/// Every room and the chat figures.
#[derive(Debug)]
pub(crate) struct Registry {
    rooms: Mutex<HashMap<Arc<str>, Arc<Room>>>,
    next_member: AtomicU64,
    /// How long a member with a full queue may make no progress before it
    /// is dropped.
    stall: Duration,
    /// The bus joining this instance's rooms to other instances', if any.
    bus: OnceLock<Bus>,
    // Counted under the registry lock, read without it for the metrics.
    live_rooms: AtomicU64,
    connections: AtomicU64,
    messages: AtomicU64,
    /// Members closed by shopd, by reason.
    drops: Arc<Drops>,
    /// Every room's last lines.
    history: Arc<History>,
}

/// The members of one room, its history and its link to the bus.
#[derive(Debug)]
pub(crate) struct Room {
    members: Mutex<Arc<Vec<Member>>>,
    /// Held while a line is numbered and queued, so queues hold lines in
    /// offset order.
    order: tokio::sync::Mutex<()>,
    history: Arc<History>,
    kept: Arc<Mutex<RoomHistory>>,
    /// Set by the first member's upgrade when there is a bus; unsubscribes
    /// when the room is dropped.
    link: OnceCell<RoomLink>,
    /// The offset of the latest line delivered here, for senders that wait
    /// for their stored line to come back from the bus.
    delivered: tokio::sync::watch::Sender<u64>,
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
    progress: Arc<Progress>,
    /// When it joined (see [`Member::joined`]).
    joined: u64,
}

/// Now, in nanoseconds since the Unix epoch (0 on a clock before it).
fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_nanos()).unwrap_or(u64::MAX)
        })
}

/// Locks `mutex` even if a thread panicked while holding it: every critical
/// section here leaves the data consistent at each step, so the data is
/// still good.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// No rooms yet; members that stop reading are dropped after `stall`;
    /// lines are kept in `history`.
    pub(crate) fn new(stall: Duration, history: History) -> Registry {
        Registry {
            rooms: Mutex::default(),
            next_member: AtomicU64::new(0),
            stall,
            bus: OnceLock::new(),
            live_rooms: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            drops: Arc::default(),
            history: Arc::new(history),
        }
    }

    /// Every room's history.
    pub(crate) fn history(&self) -> &History {
        &self.history
    }

    /// Members closed by shopd, by reason.
    pub(crate) fn drops(&self) -> &Arc<Drops> {
        &self.drops
    }

    /// Joins rooms to other instances' through `bus`; only before the
    /// first member joins. False if a bus was already attached.
    pub(crate) fn attach_bus(&self, bus: Bus) -> bool {
        self.bus.set(bus).is_ok()
    }

    /// The bus, if one is attached.
    pub(crate) fn bus(&self) -> Option<&Bus> {
        self.bus.get()
    }

    /// Adds a member to room `room_name`, creating the room if needed. The
    /// member gets a random name no other member of the room has (with a
    /// bus, ending in this instance's tag, so no other instance's members
    /// have it either), and the receiving end of its outgoing queue of
    /// `queue_len` lines.
    #[cfg(test)]
    pub(crate) fn join(
        self: &Arc<Self>,
        room_name: &str,
        queue_len: usize,
    ) -> (Membership, mpsc::Receiver<Line>) {
        self.join_as(room_name, queue_len, None, false)
    }

    /// [`Registry::join`], under `name` when one is given (a resume: a
    /// member already under that name is closed, the newest connection
    /// wins); with `echo`, the member gets its own lines back.
    pub(crate) fn join_as(
        self: &Arc<Self>,
        room_name: &str,
        queue_len: usize,
        name: Option<&str>,
        echo: bool,
    ) -> (Membership, mpsc::Receiver<Line>) {
        let (outbox, inbox) = mpsc::channel(queue_len.max(1));
        let closer = Arc::new(Closer::counting(Arc::clone(&self.drops)));
        let progress = Arc::new(Progress::new());
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        let joined = now_nanos();
        let draw = || match self.bus() {
            Some(bus) => format!("{}-{}", random_name(), bus.tag()),
            None => random_name(),
        };
        // Drawn before taking any lock; re-drawn only on a clash.
        let wanted = name;
        let mut name = wanted.map_or_else(draw, str::to_owned);

        let mut rooms = lock(&self.rooms);
        let (room_name, room) = match rooms.get_key_value(room_name) {
            Some((key, room)) => (Arc::clone(key), Arc::clone(room)),
            None => {
                let key: Arc<str> = room_name.into();
                let room = Arc::new(Room {
                    members: Mutex::default(),
                    order: tokio::sync::Mutex::new(()),
                    history: Arc::clone(&self.history),
                    kept: self.history.room(&key),
                    link: OnceCell::new(),
                    delivered: tokio::sync::watch::Sender::new(0),
                });
                rooms.insert(Arc::clone(&key), Arc::clone(&room));
                self.live_rooms.fetch_add(1, Ordering::Relaxed);
                (key, room)
            }
        };
        let mut members = lock(&room.members);
        if wanted.is_some() {
            for member in members.iter().filter(|member| *member.name == name) {
                member.closer.close(CloseReason::REPLACED);
            }
        } else {
            while members.iter().any(|member| *member.name == name) {
                name = draw();
            }
        }
        let name: Arc<str> = name.into();
        let mut next = Vec::with_capacity(members.len() + 1);
        next.extend(members.iter().cloned());
        next.push(Member {
            id,
            name: Arc::clone(&name),
            outbox,
            closer: Arc::clone(&closer),
            progress: Arc::clone(&progress),
            echo,
            joined,
        });
        *members = Arc::new(next);
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
            progress,
            joined,
        };
        (membership, inbox)
    }

    /// Whether a member named `name` is connected to room `room_name` here.
    pub(crate) fn has_member(&self, room_name: &str, name: &str) -> bool {
        let room = lock(&self.rooms).get(room_name).map(Arc::clone);
        room.is_some_and(|room| {
            lock(&room.members)
                .iter()
                .any(|member| *member.name == *name)
        })
    }

    /// Rooms, members and messages so far.
    pub(crate) fn stats(&self) -> ChatStats {
        ChatStats {
            rooms: self.live_rooms.load(Ordering::Relaxed),
            connections: self.connections.load(Ordering::Relaxed),
            messages: self.messages.load(Ordering::Relaxed),
            dropped: self.drops.counts(),
            bus: self.bus().map(Bus::stats),
            history: super::HistoryStats::default(),
        }
    }
}

impl Room {
    /// Numbers `line` in the room's history and queues it for the room's
    /// members (see [`deliver`]), in offset order; returns it numbered.
    pub(crate) async fn deliver(&self, line: Line, sender: Option<u64>, stall: Duration) -> Line {
        let _order = self.order.lock().await;
        let line = self.history.append(&self.kept, line, sender);
        let members = Arc::clone(&lock(&self.members));
        deliver(&members, &line, stall).await;
        line
    }
}

impl Inbox for Room {
    /// A line from another instance goes to every member here.
    async fn deliver_remote(&self, line: &Line, stall: Duration) {
        self.deliver(line.clone(), None, stall).await;
    }

    /// A line from the history stream, already numbered, goes to every
    /// member here (its sender's own lines come back this way too).
    async fn deliver_stored(&self, line: Line, stall: Duration) {
        let _order = self.order.lock().await;
        // A line the room holds already went out live here: not again.
        if self.history.append_numbered(&self.kept, &line) {
            let members = Arc::clone(&lock(&self.members));
            deliver(&members, &line, stall).await;
        }
        self.delivered
            .send_modify(|delivered| *delivered = (*delivered).max(line.offset()));
    }

    fn restart(&self, epoch: Option<Arc<str>>, lines: Vec<Line>) {
        self.history.restart(&self.kept, epoch, lines);
    }

    /// A member resumed on another instance: its older connections here
    /// close as a local resume closes them.
    fn close_older(&self, claim: &Claim, instance: u64) -> Option<u64> {
        let members = Arc::clone(&lock(&self.members));
        let mut newer = None;
        for member in members.iter().filter(|member| *member.name == claim.name) {
            if claim.outranks(member.joined, instance) {
                member.closer.close(CloseReason::REPLACED);
            } else {
                newer = newer.max(Some(member.joined));
            }
        }
        newer
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

    /// Where the member's forwarder records that it reads.
    pub(crate) fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Subscribes the room to the bus, if there is one and this is the
    /// room's first member here; returns once the subscription is live,
    /// so the member hears every line sent after this returns.
    pub(crate) async fn link(&self) {
        let Some(bus) = self.registry.bus() else {
            return;
        };
        let stall = self.registry.stall;
        self.room
            .link
            .get_or_init(|| bus.link(&self.room_name, Arc::downgrade(&self.room), stall))
            .await;
    }

    /// Tells the other instances on the bus, if any, that this member
    /// connected with a resume token, so they close its older
    /// connections in the room (the newest wins everywhere). Call once
    /// linked.
    pub(crate) async fn claim(&self) {
        if let (Some(bus), Some(link)) = (self.registry.bus(), self.room.link.get()) {
            bus.claim(link, &self.name, self.joined).await;
        }
    }

    /// Where the room stands, and the kept lines `since` asks for; call
    /// once joined, so no line falls between the two.
    pub(crate) fn catch_up(&self, since: Since<'_>) -> Catchup {
        // While the bus's history is not followed, or the bus is away,
        // this instance may lack lines: no resume is complete (the empty
        // epoch is no room's).
        let away = self.registry.bus().is_some_and(|bus| !bus.connected());
        let unsure = away
            || self
                .room
                .link
                .get()
                .is_some_and(|link| !link.history_live());
        let since = match since {
            Since::Resume { since, .. } if unsure => Since::Resume { since, epoch: "" },
            since => since,
        };
        self.registry.history.catch_up(&self.room.kept, since)
    }

    /// The room's name.
    pub(crate) fn room_name(&self) -> &str {
        &self.room_name
    }

    /// Sends `{name} :: {text}` to every other member of the room (and
    /// back to this one when it takes its own lines): here, waiting while
    /// their queues are full; then once to the bus.
    ///
    /// With the history in the bus, the line is stored there first and
    /// delivered here as it comes back, in the room's order; this waits
    /// for that (at most the stall time), so a fast sender still goes at
    /// the pace of the room's readers. When the bus cannot store it, it
    /// goes out as without history.
    pub(crate) async fn say(&self, text: &str) {
        self.registry.messages.fetch_add(1, Ordering::Relaxed);
        let line = Line::new(&self.name, text);
        let stall = self.registry.stall;
        if let (Some(bus), Some(link)) = (self.registry.bus(), self.room.link.get()) {
            let floor = History::latest(&self.room.kept);
            if let Some(offset) = bus.store(link, &line, self.id, floor).await {
                let mut delivered = self.room.delivered.subscribe();
                let back = delivered.wait_for(|delivered| *delivered >= offset);
                let _ = tokio::time::timeout(stall, back).await;
                return;
            }
        }
        let line = self
            .room
            .deliver(line, Some(self.id), self.registry.stall)
            .await;
        if let (Some(bus), Some(link)) = (self.registry.bus(), self.room.link.get()) {
            bus.publish(link, &line).await;
        }
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        let registry = &self.registry;
        let mut rooms = lock(&registry.rooms);
        let mut members = lock(&self.room.members);
        if members.iter().any(|member| member.id == self.id) {
            let rest: Vec<Member> = members
                .iter()
                .filter(|member| member.id != self.id)
                .cloned()
                .collect();
            *members = Arc::new(rest);
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
mod tests;
