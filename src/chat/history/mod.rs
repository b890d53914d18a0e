//! Per-room history: the last lines of each room, numbered by an offset
//! that increases within the room, under the room's epoch.
//!
//! A room's epoch is a random string drawn when its history begins; it
//! changes whenever the history may have been lost: the room was forgotten
//! (too many rooms kept), shopd restarted without a persistent history, or
//! shopd stopped uncleanly (see `disk`). Offsets are only comparable under
//! one epoch, so a resume never silently skips lines.
//!
//! Bounds: `lines` lines and `room_bytes` bytes of line text per room (the
//! oldest go first), and `rooms` rooms (the least recently used room
//! without members here goes first). A room with members is never
//! forgotten, so its members' offsets never go back.
//!
//! Here: the rooms and their bounds; `disk`: the log in the data directory
//! that makes history survive a restart of the embedded store.

mod disk;

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rand::RngExt;

use super::deliver::Line;
use disk::Disk;

/// The bounds of the history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryLimits {
    /// Lines kept per room; 0 keeps none (offsets still count).
    pub lines: usize,
    /// Bytes of lines (`{name} :: {text}`) kept per room.
    pub room_bytes: usize,
    /// Rooms whose history is kept.
    pub rooms: usize,
}

impl Default for HistoryLimits {
    /// 100 lines and 256 KiB per room, 1000 rooms.
    fn default() -> Self {
        HistoryLimits {
            lines: 100,
            room_bytes: 256 * 1024,
            rooms: 1000,
        }
    }
}

/// History figures for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryStats {
    /// Rooms with a history.
    pub rooms: u64,
    /// Lines kept, over all rooms.
    pub lines: u64,
    /// Bytes of the lines kept, over all rooms.
    pub bytes: u64,
    /// Resumes that gave every missed line.
    pub resumes_complete: u64,
    /// Resumes that could not (offset too old, epoch changed).
    pub resumes_incomplete: u64,
}

/// Every room's history; shared by the registry.
#[derive(Debug)]
pub(crate) struct History {
    limits: HistoryLimits,
    rooms: Mutex<Map>,
    lines: AtomicU64,
    bytes: AtomicU64,
    resumes: [AtomicU64; 2],
    /// Where lines are written for the next start, on the embedded store.
    disk: Option<Disk>,
}

#[derive(Debug, Default)]
struct Map {
    rooms: HashMap<Arc<str>, Arc<Mutex<RoomHistory>>>,
    /// Increases with each use of a room: the least recent goes first.
    clock: u64,
}

/// One room's history.
#[derive(Debug)]
pub(crate) struct RoomHistory {
    name: Arc<str>,
    epoch: Arc<str>,
    /// The offset of the room's latest line (0: none yet).
    latest: u64,
    lines: VecDeque<Line>,
    bytes: usize,
    used: u64,
}

/// What a joining member is owed: where the room stands and the lines it
/// missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Catchup {
    /// The room's epoch.
    pub(crate) epoch: Arc<str>,
    /// The room's latest offset when the member joined.
    pub(crate) latest: u64,
    /// The kept lines it asked for, in offset order.
    pub(crate) lines: Vec<Line>,
    /// Whether a requested resume is complete.
    pub(crate) resumed: bool,
}

/// What a joining member asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since<'a> {
    /// No history: only lines after joining.
    Nothing,
    /// Kept lines above this offset (a new member's `since`).
    Offset(u64),
    /// A resume: lines above `since` under `epoch`.
    Resume { since: u64, epoch: &'a str },
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A fresh epoch: 64 random bits in hex.
fn new_epoch() -> Arc<str> {
    let bits: u64 = rand::rng().random();
    format!("{bits:016x}").into()
}

impl History {
    /// A history kept in memory only: a restart begins new epochs.
    pub(crate) fn in_memory(limits: HistoryLimits) -> History {
        History::from_parts(limits, HashMap::new(), None)
    }

    /// A history kept in `dir` too, read back from it; after an unclean
    /// stop every room gets a new epoch.
    pub(crate) fn persistent(limits: HistoryLimits, dir: &Path) -> std::io::Result<History> {
        if limits.lines == 0 {
            return Ok(History::in_memory(limits));
        }
        let (loaded, disk) = Disk::open(dir, limits)?;
        let mut rooms = HashMap::new();
        for room in loaded {
            rooms.insert(Arc::clone(&room.name), Arc::new(Mutex::new(room)));
        }
        Ok(History::from_parts(limits, rooms, Some(disk)))
    }

    fn from_parts(
        limits: HistoryLimits,
        rooms: HashMap<Arc<str>, Arc<Mutex<RoomHistory>>>,
        disk: Option<Disk>,
    ) -> History {
        let (mut lines, mut bytes) = (0, 0);
        for room in rooms.values() {
            let room = lock(room);
            lines += room.lines.len() as u64;
            bytes += room.bytes as u64;
        }
        let clock = rooms.len() as u64;
        History {
            limits,
            rooms: Mutex::new(Map { rooms, clock }),
            lines: AtomicU64::new(lines),
            bytes: AtomicU64::new(bytes),
            resumes: [AtomicU64::new(0), AtomicU64::new(0)],
            disk,
        }
    }

    /// The history of room `name`, begun if it has none; held by the live
    /// room so it is not forgotten while the room has members.
    pub(crate) fn room(&self, name: &Arc<str>) -> Arc<Mutex<RoomHistory>> {
        let mut map = lock(&self.rooms);
        map.clock += 1;
        let used = map.clock;
        if let Some(room) = map.rooms.get(name) {
            lock(room).used = used;
            return Arc::clone(room);
        }
        if map.rooms.len() >= self.limits.rooms.max(1) {
            self.forget_one(&mut map);
        }
        let room = Arc::new(Mutex::new(RoomHistory {
            name: Arc::clone(name),
            epoch: new_epoch(),
            latest: 0,
            lines: VecDeque::new(),
            bytes: 0,
            used,
        }));
        map.rooms.insert(Arc::clone(name), Arc::clone(&room));
        room
    }

    /// Forgets the least recently used room nobody holds (none: the map
    /// grows past its bound until a room empties).
    fn forget_one(&self, map: &mut Map) {
        let oldest = map
            .rooms
            .iter()
            .filter(|(_, room)| Arc::strong_count(room) == 1)
            .min_by_key(|(_, room)| lock(room).used)
            .map(|(name, _)| Arc::clone(name));
        if let Some(name) = oldest
            && let Some(room) = map.rooms.remove(&name)
        {
            let room = lock(&room);
            self.lines
                .fetch_sub(room.lines.len() as u64, Ordering::Relaxed);
            self.bytes.fetch_sub(room.bytes as u64, Ordering::Relaxed);
        }
    }

    /// Numbers `line` as the next line of `room` and keeps it; the caller
    /// holds the room's order so lines reach members in offset order.
    pub(crate) fn append(
        &self,
        room: &Mutex<RoomHistory>,
        line: Line,
        sender: Option<u64>,
    ) -> Line {
        let mut guard = lock(room);
        guard.latest += 1;
        let line = line.numbered(guard.latest, sender);
        self.keep(guard, &line);
        line
    }

    /// Keeps `line`, numbered elsewhere (by the history stream of a chat
    /// bus), as a line of `room`; false, keeping nothing, when the room
    /// holds that very line at that offset already. That happens when
    /// storing a line timed out although the stream took it: the line
    /// went out live under the same offset, and the stream then delivers
    /// it again.
    pub(crate) fn append_numbered(&self, room: &Mutex<RoomHistory>, line: &Line) -> bool {
        let mut guard = lock(room);
        let offset = line.offset();
        let held = offset <= guard.latest
            && guard
                .lines
                .iter()
                .rev()
                .take_while(|kept| kept.offset() >= offset)
                .any(|kept| kept.offset() == offset && kept.bytes() == line.bytes());
        if held {
            return false;
        }
        guard.latest = guard.latest.max(offset);
        self.keep(guard, line);
        true
    }

    /// Keeps `line` in `room`, dropping the oldest lines over the bounds.
    fn keep(&self, mut room: MutexGuard<'_, RoomHistory>, line: &Line) {
        if self.limits.lines == 0 {
            return;
        }
        let size = line.bytes().len();
        room.lines.push_back(line.clone());
        room.bytes += size;
        let (mut lines, mut bytes) = (1_i64, size as i64);
        while room.lines.len() > self.limits.lines
            || (room.bytes > self.limits.room_bytes && room.lines.len() > 1)
        {
            if let Some(old) = room.lines.pop_front() {
                room.bytes -= old.bytes().len();
                lines -= 1;
                bytes -= old.bytes().len() as i64;
            }
        }
        add(&self.lines, lines);
        add(&self.bytes, bytes);
        if let Some(disk) = &self.disk {
            disk.append(&room.name, &room.epoch, line);
            drop(room);
            if disk.take_rewrite_due() {
                disk.rewrite(self.snapshot());
            }
        }
    }

    /// Begins `room` again from `lines` (in offset order) under `epoch`, as
    /// the history stream of a chat bus holds it; `None`: the stream cannot
    /// be read, so a fresh epoch, which no resume asks for.
    pub(crate) fn restart(
        &self,
        room: &Mutex<RoomHistory>,
        epoch: Option<Arc<str>>,
        lines: Vec<Line>,
    ) {
        let mut room = lock(room);
        let (old_lines, old_bytes) = (room.lines.len() as i64, room.bytes as i64);
        // Offsets only grow here, even under a new epoch, so that no
        // member sees one go back.
        let last = lines.last().map_or(0, Line::offset);
        room.latest = room.latest.max(last);
        room.epoch = epoch.unwrap_or_else(new_epoch);
        room.lines = lines.into();
        room.bytes = room.lines.iter().map(|line| line.bytes().len()).sum();
        let limits = self.limits;
        while room.lines.len() > limits.lines
            || (room.bytes > limits.room_bytes && room.lines.len() > 1)
        {
            if let Some(old) = room.lines.pop_front() {
                room.bytes -= old.bytes().len();
            }
        }
        add(&self.lines, room.lines.len() as i64 - old_lines);
        add(&self.bytes, room.bytes as i64 - old_bytes);
    }

    /// The offset of `room`'s latest line.
    pub(crate) fn latest(room: &Mutex<RoomHistory>) -> u64 {
        lock(room).latest
    }

    /// Where `room` stands and the kept lines `since` asks for. Taken after
    /// the member joined, so every later line reaches its queue too (the
    /// session drops those at or below `latest`).
    pub(crate) fn catch_up(&self, room: &Mutex<RoomHistory>, since: Since<'_>) -> Catchup {
        let room = lock(room);
        let first_kept = room.lines.front().map_or(room.latest + 1, Line::offset);
        let above = |floor: u64| -> Vec<Line> {
            room.lines
                .iter()
                .filter(|line| line.offset() > floor)
                .cloned()
                .collect()
        };
        let (lines, resumed) = match since {
            Since::Nothing => (Vec::new(), false),
            Since::Offset(since) => (above(since), false),
            Since::Resume { since, epoch } => {
                // Lines above `since` must all be kept: none skipped (a
                // line that went out while the bus's history could not
                // keep it leaves a gap in the offsets).
                let contiguous = room
                    .lines
                    .iter()
                    .filter(|line| line.offset() > since)
                    .zip(since.saturating_add(1)..)
                    .all(|(line, expected)| line.offset() == expected);
                let complete = *room.epoch == *epoch
                    && since <= room.latest
                    && since.saturating_add(1) >= first_kept
                    && contiguous;
                let counter = usize::from(!complete);
                self.resumes[counter].fetch_add(1, Ordering::Relaxed);
                if complete {
                    (above(since), true)
                } else {
                    (above(0), false)
                }
            }
        };
        Catchup {
            epoch: Arc::clone(&room.epoch),
            latest: room.latest,
            lines,
            resumed,
        }
    }

    /// Figures for the metrics.
    pub(crate) fn stats(&self) -> HistoryStats {
        HistoryStats {
            rooms: lock(&self.rooms).rooms.len() as u64,
            lines: self.lines.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            resumes_complete: self.resumes[0].load(Ordering::Relaxed),
            resumes_incomplete: self.resumes[1].load(Ordering::Relaxed),
        }
    }

    /// Every room's kept lines, for the log's rewrite.
    fn snapshot(&self) -> disk::Snapshot {
        let map = lock(&self.rooms);
        let mut rooms: Vec<_> = map
            .rooms
            .values()
            .map(|room| {
                let room = lock(room);
                let lines = room.lines.iter().cloned().collect();
                (
                    room.used,
                    (Arc::clone(&room.name), Arc::clone(&room.epoch), lines),
                )
            })
            .collect();
        // Least recent first, so a reload keeps the same order of use.
        rooms.sort_by_key(|(used, _)| *used);
        rooms.into_iter().map(|(_, room)| room).collect()
    }

    /// Writes what is pending and marks the history as cleanly stopped, so
    /// the next start keeps its epochs.
    pub(crate) fn close(&self) {
        if let Some(disk) = &self.disk {
            disk.close(&self.snapshot());
        }
    }
}

fn add(counter: &AtomicU64, delta: i64) {
    if delta >= 0 {
        counter.fetch_add(delta as u64, Ordering::Relaxed);
    } else {
        counter.fetch_sub(delta.unsigned_abs(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
