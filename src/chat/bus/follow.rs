//! Following one room's history stream: while a room has members here, a
//! task reads the room's stored lines in stream order (which is offset
//! order) and delivers each to the room's members here, the lines of this
//! instance's own members included. So every instance delivers a room's
//! lines in the same order, numbered alike.
//!
//! At the start the lines already kept only fill the room's history (a
//! member joining gets what it asks for of them); what follows is live.
//! When following breaks (JetStream down, the stream deleted) the task
//! counts the error and starts again after a pause: from the next line it
//! has not seen when the stream is the same one, from the stream's first
//! kept line, under the new epoch, when the stream was made again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::{Notify, oneshot};

use super::Inbox;
use super::journal::{Cursor, Follow, Journal, JournalOp, offset_of};
use super::wire::open_stored;
use crate::chat::deliver::Line;

/// Longest wait for the kept lines of a room before its first member
/// goes ahead without them (its resume is then incomplete).
const FIRST_READ_WAIT: Duration = Duration::from_secs(3);
/// Longest wait for one kept line while reading them.
const LINE_WAIT: Duration = Duration::from_secs(2);
/// Pauses between attempts to follow again: the first, then doubled up
/// to the last.
const RETRY_FIRST: Duration = Duration::from_millis(250);
const RETRY_MAX: Duration = Duration::from_secs(4);

/// A room's follower; dropping it stops following.
#[derive(Debug)]
pub(crate) struct Follower {
    /// The room's history subject.
    pub(super) subject: String,
    /// The room's last stored line known here.
    pub(super) cursor: Arc<Mutex<Cursor>>,
    /// Whether the room's lines come from the stream now; while not, lines
    /// go out live only.
    pub(super) live: Arc<AtomicBool>,
    /// Tells the task to follow again (the stream was made again).
    kick: Arc<Notify>,
    /// Held while this instance stores a line of the room: its members'
    /// lines go one at a time instead of refusing each other's expected
    /// sequence.
    pub(super) storing: tokio::sync::Mutex<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Follower {
    /// Follows the room again from the stream as it is now; its lines go
    /// out live only until then.
    pub(super) fn restart(&self) {
        self.live.store(false, Ordering::Relaxed);
        self.kick.notify_one();
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the follower task works with.
struct Task<R> {
    journal: Arc<Journal>,
    subject: String,
    room: Weak<R>,
    instance: u64,
    stall: Duration,
    cursor: Arc<Mutex<Cursor>>,
    live: Arc<AtomicBool>,
    kick: Arc<Notify>,
}

/// Starts following `subject` for `room`; returns once the room's kept
/// lines are in its history (or could not be read in time).
pub(super) async fn start<R: Inbox>(
    journal: Arc<Journal>,
    subject: String,
    room: Weak<R>,
    instance: u64,
    stall: Duration,
) -> Follower {
    let cursor = Arc::new(Mutex::new(Cursor::default()));
    let live = Arc::new(AtomicBool::new(false));
    let kick = Arc::new(Notify::new());
    let (ready, started) = oneshot::channel();
    let task = Task {
        kick: Arc::clone(&kick),
        journal,
        subject: subject.clone(),
        room: room.clone(),
        instance,
        stall,
        cursor: Arc::clone(&cursor),
        live: Arc::clone(&live),
    };
    let task = tokio::spawn(task.run(ready));
    if tokio::time::timeout(FIRST_READ_WAIT, started)
        .await
        .is_err()
        && let Some(room) = room.upgrade()
    {
        room.restart(None, Vec::new());
    }
    Follower {
        subject,
        cursor,
        live,
        kick,
        storing: tokio::sync::Mutex::new(()),
        task,
    }
}

impl<R: Inbox> Task<R> {
    async fn run(self, ready: oneshot::Sender<()>) {
        let mut ready = Some(ready);
        // The stream's epoch while following it; none until its kept
        // lines are read.
        let mut epoch: Option<Arc<str>> = None;
        let mut pause = RETRY_FIRST;
        loop {
            let from = epoch.is_some().then(|| {
                self.cursor
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .seq
                    + 1
            });
            match self.journal.follow(&self.subject, from).await {
                Ok(follow) if from.is_some() && Some(&follow.epoch) != epoch.as_ref() => {
                    // The stream was lost and made again: begin anew.
                    epoch = None;
                    // Offsets go on from the highest known here.
                    self.cursor
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .seq = 0;
                    continue;
                }
                Ok(mut follow) => {
                    if from.is_none() {
                        let Some(lines) = self.read_kept(&mut follow).await else {
                            self.give_up(&mut ready);
                            tokio::time::sleep(pause).await;
                            pause = (pause * 2).min(RETRY_MAX);
                            continue;
                        };
                        let Some(room) = self.room.upgrade() else {
                            return;
                        };
                        room.restart(Some(Arc::clone(&follow.epoch)), lines);
                        epoch = Some(Arc::clone(&follow.epoch));
                    }
                    self.live.store(true, Ordering::Relaxed);
                    if let Some(ready) = ready.take() {
                        let _ = ready.send(());
                    }
                    pause = RETRY_FIRST;
                    if !self.deliver(&mut follow).await {
                        return;
                    }
                    self.live.store(false, Ordering::Relaxed);
                }
                Err(()) => self.give_up(&mut ready),
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(RETRY_MAX);
        }
    }

    /// The first attempt failed: the room goes on without its kept lines.
    fn give_up(&self, ready: &mut Option<oneshot::Sender<()>>) {
        self.live.store(false, Ordering::Relaxed);
        if let Some(ready) = ready.take() {
            if let Some(room) = self.room.upgrade() {
                room.restart(None, Vec::new());
            }
            let _ = ready.send(());
        }
    }

    /// The lines already kept when following began.
    async fn read_kept(&self, follow: &mut Follow) -> Option<Vec<Line>> {
        let mut lines = Vec::new();
        for _ in 0..follow.pending {
            let next = tokio::time::timeout(LINE_WAIT, follow.messages.next()).await;
            let message = match next {
                Ok(Some(Ok(message))) => message,
                Ok(Some(Err(err))) => {
                    self.journal.failed(JournalOp::Read, &err);
                    return None;
                }
                Ok(None) => {
                    self.journal.failed(JournalOp::Read, &"the stream ended");
                    return None;
                }
                Err(_) => {
                    self.journal
                        .failed(JournalOp::Read, &"timed out reading kept lines");
                    return None;
                }
            };
            let Some((line, pending)) = self.line(&message) else {
                continue;
            };
            lines.push(line);
            if pending == 0 {
                break;
            }
        }
        Some(lines)
    }

    /// Delivers new lines until following breaks (true) or the room is
    /// gone (false).
    async fn deliver(&self, follow: &mut Follow) -> bool {
        loop {
            let next = tokio::select! {
                () = self.kick.notified() => return true,
                next = follow.messages.next() => next,
            };
            let Some(next) = next else {
                break;
            };
            let message = match next {
                Ok(message) => message,
                Err(err) => {
                    self.journal.failed(JournalOp::Follow, &err);
                    return true;
                }
            };
            let Some((line, _)) = self.line(&message) else {
                continue;
            };
            let Some(room) = self.room.upgrade() else {
                return false;
            };
            room.deliver_stored(line, self.stall).await;
        }
        self.journal
            .failed(JournalOp::Follow, &"the stream of new lines ended");
        true
    }

    /// The line a stored message holds, numbered, and the count of
    /// messages after it; moves the cursor past it.
    fn line(&self, message: &async_nats::jetstream::Message) -> Option<(Line, u64)> {
        let info = message.info().ok()?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        let offset = offset_of(message.headers.as_ref())?;
        self.cursor
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .advance(seq, offset);
        let line = open_stored(&message.payload, offset, self.instance)?;
        Some((line, pending))
    }
}
