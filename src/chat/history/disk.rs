//! The history's files in the data directory, `DATA_DIR/chat/`:
//!
//! - `history.log`: one JSON object a line, `{"r": room, "e": epoch,
//!   "o": offset, "f": sender, "t": text}`, appended by a writer thread in
//!   batches (a write every few milliseconds at most, never an fsync per
//!   line), rewritten from memory when it grows to twice what is kept, at
//!   start and at a clean stop (temporary file, fsync, rename);
//! - `state`: `clean` once a stop has written and fsynced everything,
//!   `open` while shopd runs. A start that finds `open` (kill -9, a crash,
//!   power loss) cannot know which lines it missed, so every room gets a
//!   new epoch; a torn last line of the log is ignored.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HistoryLimits, RoomHistory, new_epoch};
use crate::chat::deliver::Line;

const LOG: &str = "history.log";
const STATE: &str = "state";
const CLEAN: &str = "shopd chat history 1\nclean\n";
const OPEN: &str = "shopd chat history 1\nopen\n";
/// The writer waits this long after the first pending line, so a busy
/// room's lines go out in one write.
const BATCH_PAUSE: Duration = Duration::from_millis(20);
/// Pending bytes beyond this are dropped (the disk is far behind); a clean
/// stop rewrites everything from memory anyway.
const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
/// The log is rewritten once it has grown by this much and by twice what
/// was kept at the last rewrite.
const MIN_REWRITE_BYTES: u64 = 8 * 1024 * 1024;

/// A room's kept lines, as the log's rewrite takes them.
pub(super) type Snapshot = Vec<(Arc<str>, Arc<str>, Vec<Line>)>;

#[derive(Serialize)]
struct Record<'a> {
    r: &'a str,
    e: &'a str,
    o: u64,
    f: &'a str,
    t: &'a str,
}

#[derive(Deserialize)]
struct OwnedRecord {
    r: String,
    e: String,
    o: u64,
    f: String,
    t: String,
}

/// The writer's handle.
#[derive(Debug)]
pub(super) struct Disk {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    pending: Mutex<Pending>,
    wake: Condvar,
    /// Set by the writer when the log is due for a rewrite; taken by the
    /// next append, which hands over a snapshot.
    rewrite_due: AtomicBool,
    /// Lines dropped because the writer was far behind.
    dropped: AtomicU64,
}

#[derive(Debug, Default)]
struct Pending {
    records: Vec<(Arc<str>, Arc<str>, Line)>,
    bytes: usize,
    rewrite: Option<Snapshot>,
    stop: bool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Disk {
    /// Reads the history in `data_dir/chat` (new epochs after an unclean
    /// stop), marks it open, and starts the writer.
    pub(super) fn open(
        data_dir: &Path,
        limits: HistoryLimits,
    ) -> io::Result<(Vec<RoomHistory>, Disk)> {
        let dir = data_dir.join("chat");
        fs::create_dir_all(&dir)?;
        let clean = fs::read_to_string(dir.join(STATE)).is_ok_and(|state| state == CLEAN);
        let (mut rooms, whole) = load(&dir.join(LOG), limits)?;
        // A line that does not read (a torn end, damage): lines after it
        // are lost, so offsets cannot be trusted under the old epochs.
        if !clean || !whole {
            for room in &mut rooms {
                room.epoch = new_epoch();
            }
            if !rooms.is_empty() {
                tracing::warn!(
                    rooms = rooms.len(),
                    "chat history: the last stop was not clean; every room's history begins a new epoch"
                );
            }
        }
        let snapshot: Snapshot = rooms
            .iter()
            .map(|room| {
                let lines = room.lines.iter().cloned().collect();
                (Arc::clone(&room.name), Arc::clone(&room.epoch), lines)
            })
            .collect();
        rewrite_log(&dir, &snapshot, &[])?;
        replace(&dir, STATE, OPEN.as_bytes())?;
        let shared = Arc::new(Shared {
            dir,
            pending: Mutex::default(),
            wake: Condvar::new(),
            rewrite_due: AtomicBool::new(false),
            dropped: AtomicU64::new(0),
        });
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(shared.dir.join(LOG))?;
        let for_writer = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name("chat-history".into())
            .spawn(move || write_loop(&for_writer, log))?;
        Ok((
            rooms,
            Disk {
                shared,
                writer: Mutex::new(Some(writer)),
            },
        ))
    }

    /// Queues `line` of room `room` under `epoch` for the writer.
    pub(super) fn append(&self, room: &Arc<str>, epoch: &Arc<str>, line: &Line) {
        let mut pending = lock(&self.shared.pending);
        if pending.stop || pending.bytes > MAX_PENDING_BYTES {
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        pending.bytes += line.bytes().len();
        let first = pending.records.is_empty();
        pending
            .records
            .push((Arc::clone(room), Arc::clone(epoch), line.clone()));
        drop(pending);
        if first {
            self.shared.wake.notify_one();
        }
    }

    /// Whether the log is due for a rewrite; true once per rewrite.
    pub(super) fn take_rewrite_due(&self) -> bool {
        self.shared.rewrite_due.swap(false, Ordering::Relaxed)
    }

    /// Has the writer rewrite the log from `snapshot`.
    pub(super) fn rewrite(&self, snapshot: Snapshot) {
        let mut pending = lock(&self.shared.pending);
        if !pending.stop {
            pending.rewrite = Some(snapshot);
            drop(pending);
            self.shared.wake.notify_one();
        }
    }

    /// Writes `snapshot` as the whole log, fsynced, marks the history
    /// clean and stops the writer.
    pub(super) fn close(&self, snapshot: &Snapshot) {
        {
            let mut pending = lock(&self.shared.pending);
            pending.stop = true;
            pending.records.clear();
            pending.rewrite = None;
        }
        self.shared.wake.notify_one();
        if let Some(writer) = lock(&self.writer).take() {
            let _ = writer.join();
        }
        let written = rewrite_log(&self.shared.dir, snapshot, &[])
            .and_then(|_| replace(&self.shared.dir, STATE, CLEAN.as_bytes()));
        match written {
            Ok(()) => tracing::debug!("chat history written"),
            Err(err) => {
                tracing::warn!(error = %err, "chat history: cannot write it at stop; the next start begins new epochs");
            }
        }
    }
}

/// The writer thread: appends pending lines in batches; rewrites the log
/// when asked.
fn write_loop(shared: &Shared, mut log: File) {
    let mut since_rewrite: u64 = 0;
    let mut kept_at_rewrite: u64 = 0;
    loop {
        let (records, rewrite, stop) = {
            let mut pending = lock(&shared.pending);
            while pending.records.is_empty() && pending.rewrite.is_none() && !pending.stop {
                pending = shared
                    .wake
                    .wait(pending)
                    .unwrap_or_else(PoisonError::into_inner);
            }
            if !pending.stop {
                // Gather the lines that follow closely.
                drop(pending);
                std::thread::sleep(BATCH_PAUSE);
                pending = lock(&shared.pending);
            }
            pending.bytes = 0;
            (
                std::mem::take(&mut pending.records),
                pending.rewrite.take(),
                pending.stop,
            )
        };
        if stop {
            return;
        }
        let result = match rewrite {
            Some(snapshot) => rewrite_log(&shared.dir, &snapshot, &records).and_then(|bytes| {
                kept_at_rewrite = bytes;
                since_rewrite = 0;
                log = OpenOptions::new().append(true).open(shared.dir.join(LOG))?;
                Ok(())
            }),
            None => {
                let mut buffer = Vec::new();
                for (room, epoch, line) in &records {
                    encode(&mut buffer, room, epoch, line);
                }
                since_rewrite += buffer.len() as u64;
                log.write_all(&buffer)
            }
        };
        if let Err(err) = result {
            tracing::warn!(error = %err, "chat history: cannot write its log");
        }
        if since_rewrite > MIN_REWRITE_BYTES.max(kept_at_rewrite.saturating_mul(2)) {
            shared.rewrite_due.store(true, Ordering::Relaxed);
        }
    }
}

fn encode(buffer: &mut Vec<u8>, room: &str, epoch: &str, line: &Line) {
    let record = Record {
        r: room,
        e: epoch,
        o: line.offset(),
        f: line.from(),
        t: line.text(),
    };
    if serde_json::to_writer(&mut *buffer, &record).is_ok() {
        buffer.push(b'\n');
    }
}

/// Writes `snapshot`, then those of `records` it does not hold, as the
/// whole log: temporary file, fsync, rename. Returns the bytes written.
fn rewrite_log(
    dir: &Path,
    snapshot: &Snapshot,
    records: &[(Arc<str>, Arc<str>, Line)],
) -> io::Result<u64> {
    let mut latest: HashMap<&str, (&str, u64)> = HashMap::new();
    let mut buffer = Vec::new();
    for (room, epoch, lines) in snapshot {
        for line in lines {
            encode(&mut buffer, room, epoch, line);
        }
        if let Some(last) = lines.last() {
            latest.insert(room, (epoch, last.offset()));
        }
    }
    for (room, epoch, line) in records {
        let held = latest
            .get(&**room)
            .is_some_and(|(e, offset)| *e == &**epoch && line.offset() <= *offset);
        if !held {
            encode(&mut buffer, room, epoch, line);
        }
    }
    replace(dir, LOG, &buffer)?;
    Ok(buffer.len() as u64)
}

/// Replaces `dir/name` with `bytes` atomically and durably.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// The rooms in the log at `path`, least recently used first, within
/// `limits`, and whether every line read; reading stops at the first line
/// that does not parse (a torn end).
fn load(path: &Path, limits: HistoryLimits) -> io::Result<(Vec<RoomHistory>, bool)> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), true)),
        Err(err) => return Err(err),
    };
    let mut whole = true;
    let mut rooms: HashMap<Arc<str>, RoomHistory> = HashMap::new();
    let mut used = 0;
    for text in BufReader::new(file).split(b'\n') {
        let Ok(record) = serde_json::from_slice::<OwnedRecord>(&text?) else {
            whole = false;
            break;
        };
        used += 1;
        let name: Arc<str> = record.r.into();
        let room = rooms
            .entry(Arc::clone(&name))
            .or_insert_with(|| RoomHistory {
                name,
                epoch: record.e.as_str().into(),
                latest: 0,
                lines: std::collections::VecDeque::new(),
                bytes: 0,
                used,
            });
        if *room.epoch != *record.e || record.o <= room.latest {
            // Another epoch began (the room was forgotten and begun again):
            // only the newer lines count.
            room.epoch = record.e.as_str().into();
            room.lines.clear();
            room.bytes = 0;
        }
        let line = Line::new(&record.f, &record.t).numbered(record.o, None);
        room.latest = record.o;
        room.used = used;
        room.bytes += line.bytes().len();
        room.lines.push_back(line);
        while room.lines.len() > limits.lines
            || (room.bytes > limits.room_bytes && room.lines.len() > 1)
        {
            if let Some(old) = room.lines.pop_front() {
                room.bytes -= old.bytes().len();
            }
        }
    }
    let mut rooms: Vec<RoomHistory> = rooms.into_values().collect();
    rooms.sort_by_key(|room| std::cmp::Reverse(room.used));
    rooms.truncate(limits.rooms.max(1));
    rooms.reverse();
    Ok((rooms, whole))
}

#[cfg(test)]
mod tests;
