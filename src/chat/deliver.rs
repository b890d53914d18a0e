//! Delivery of one line to a room's members, with flow control: the line
//! and its queues, how a member shows that it reads, and the wait for room
//! in a full queue.
//!
//! The same path serves a member's own lines and, with a chat bus, lines
//! from other instances: neither knows the socket library's message type.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::time::Instant;

use super::close::{CloseReason, Closer};

/// One chat line, `{name} :: {text}`, as UTF-8 bytes shared by every queue
/// it sits in (cloning it copies no text), with its offset in its room and
/// the member that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Line {
    bytes: Bytes,
    /// Bytes of the sender's name at the start of `bytes`.
    name_len: usize,
    /// Its place in the room's history (0 until the room numbers it).
    offset: u64,
    /// The member of this instance that sent it; `None` from the bus.
    sender: Option<u64>,
}

/// Between the sender's name and the text.
const SEPARATOR: &str = " :: ";

impl Line {
    /// The line `name` says `text`, not yet numbered.
    pub(crate) fn new(name: &str, text: &str) -> Line {
        Line {
            bytes: Bytes::from(format!("{name}{SEPARATOR}{text}")),
            name_len: name.len(),
            offset: 0,
            sender: None,
        }
    }

    /// A line received as bytes, if they are UTF-8 with a separator.
    pub(crate) fn from_utf8(bytes: Bytes) -> Option<Line> {
        let text = std::str::from_utf8(&bytes).ok()?;
        // Names never hold the separator: the first one ends the name.
        let name_len = text.find(SEPARATOR)?;
        Some(Line {
            bytes,
            name_len,
            offset: 0,
            sender: None,
        })
    }

    /// The same line numbered `offset`, sent by member `sender`.
    pub(crate) fn numbered(mut self, offset: u64, sender: Option<u64>) -> Line {
        self.offset = offset;
        self.sender = sender;
        self
    }

    /// The whole line as text.
    pub(crate) fn as_str(&self) -> &str {
        // Only built from a `String` or checked UTF-8.
        std::str::from_utf8(&self.bytes).unwrap_or_default()
    }

    /// The sender's name.
    pub(crate) fn from(&self) -> &str {
        self.as_str().get(..self.name_len).unwrap_or_default()
    }

    /// What the sender said.
    pub(crate) fn text(&self) -> &str {
        self.as_str()
            .get(self.name_len + SEPARATOR.len()..)
            .unwrap_or_default()
    }

    /// Its offset in its room.
    pub(crate) fn offset(&self) -> u64 {
        self.offset
    }

    /// The member of this instance that sent it, if one did.
    pub(crate) fn sender(&self) -> Option<u64> {
        self.sender
    }

    /// The line's bytes.
    pub(crate) fn bytes(&self) -> &Bytes {
        &self.bytes
    }
}

/// When a member last took a line from its queue or finished writing to
/// its socket: the proof that it reads.
#[derive(Debug)]
pub(crate) struct Progress {
    /// Milliseconds since [`epoch`].
    last: AtomicU64,
}

/// The zero of [`Progress`] times.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Progress {
    /// Progress made now.
    pub(crate) fn new() -> Progress {
        let progress = Progress {
            last: AtomicU64::new(0),
        };
        progress.mark();
        progress
    }

    /// Records progress now.
    pub(crate) fn mark(&self) {
        let now = epoch().elapsed().as_millis() as u64;
        self.last.store(now, Ordering::Relaxed);
    }

    /// When progress was last made.
    fn last(&self) -> Instant {
        epoch() + Duration::from_millis(self.last.load(Ordering::Relaxed))
    }
}

/// What a room keeps about one member: its name, and what delivery needs:
/// its queue, its closer, its progress.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    /// Which member (unique for the life of the process).
    pub(crate) id: u64,
    /// Its user name.
    pub(crate) name: Arc<str>,
    /// The member's outgoing queue.
    pub(crate) outbox: mpsc::Sender<Line>,
    /// Closes the member's connection.
    pub(crate) closer: Arc<Closer>,
    /// Updated by the member's forwarder.
    pub(crate) progress: Arc<Progress>,
    /// Whether it gets its own lines back (as `sent` acknowledgements).
    pub(crate) echo: bool,
    /// When it joined, in nanoseconds since the Unix epoch: across
    /// instances, of two connections under one name the older loses.
    pub(crate) joined: u64,
}

/// Queues `line` for every member of `members` but its sender (unless the
/// sender takes its own lines back), in the order lines are given to it by
/// one caller.
///
/// Waits while a member's queue is full: the caller (a sender's reader
/// loop, or the bus) slows down to the pace of the slowest member that
/// reads. A member whose queue stays full and that has made no progress
/// for `stall` is closed with 1008 and skipped, so no caller waits on one
/// stuck member for longer than `stall`.
pub(crate) async fn deliver(members: &[Member], line: &Line, stall: Duration) {
    let mut full = Vec::new();
    let skip = |member: &&Member| Some(member.id) == line.sender() && !member.echo;
    for member in members.iter().filter(|member| !skip(member)) {
        if member.closer.reason().is_some() {
            continue;
        }
        match member.outbox.try_send(line.clone()) {
            Err(TrySendError::Full(_)) => full.push(member),
            // Queued; or its session is ending and will leave the room shortly.
            Ok(()) | Err(TrySendError::Closed(_)) => {}
        }
    }
    if !full.is_empty() {
        join_all(
            full.into_iter()
                .map(|member| wait_and_send(member, line, stall)),
        )
        .await;
    }
}

/// Waits for room in `member`'s queue, then queues `line`; or closes the
/// member with 1008 once it has made no progress for `stall`.
async fn wait_and_send(member: &Member, line: &Line, stall: Duration) {
    let kicked = member.closer.fired();
    tokio::pin!(kicked);
    loop {
        let deadline = member.progress.last() + stall;
        tokio::select! {
            biased;
            () = &mut kicked => return,
            permit = member.outbox.reserve() => {
                if let Ok(permit) = permit {
                    permit.send(line.clone());
                }
                return;
            }
            () = tokio::time::sleep_until(deadline) => {
                // It may have moved meanwhile (while another sender took
                // the freed place): wait on from its latest progress.
                if member.progress.last() + stall <= Instant::now() {
                    member.closer.close(CloseReason::TOO_SLOW);
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::Poll;

    use super::*;

    fn member(id: u64, queue: usize) -> (Member, mpsc::Receiver<Line>) {
        let (outbox, inbox) = mpsc::channel(queue);
        let member = Member {
            id,
            name: format!("m{id}").into(),
            outbox,
            closer: Arc::new(Closer::new()),
            progress: Arc::new(Progress::new()),
            echo: false,
            joined: id,
        };
        (member, inbox)
    }

    #[test]
    fn a_line_is_its_name_the_separator_and_its_text() {
        let line = Line::new("ann", "hi :: there");
        assert_eq!(line.as_str(), "ann :: hi :: there");
        assert_eq!((line.from(), line.text()), ("ann", "hi :: there"));
        assert!(Line::from_utf8(Bytes::from_static(b"\xff")).is_none());
        let parsed = Line::from_utf8(Bytes::from_static(b"bob :: a :: b")).expect("a line");
        assert_eq!((parsed.from(), parsed.text()), ("bob", "a :: b"));
    }

    #[tokio::test]
    async fn a_full_queue_makes_delivery_wait_until_its_member_reads() {
        let (fast, mut fast_inbox) = member(1, 1);
        let (slow, mut slow_inbox) = member(2, 1);
        let members = [fast, slow.clone()];
        deliver(&members, &Line::new("a", "1"), Duration::from_secs(30)).await;
        assert!(fast_inbox.try_recv().is_ok());
        let second = Line::new("a", "2");
        let waiting = deliver(&members, &second, Duration::from_secs(30));
        tokio::pin!(waiting);
        let pending =
            std::future::poll_fn(|cx| Poll::Ready(waiting.as_mut().poll(cx).is_pending())).await;
        assert!(pending, "waits for the slow member");
        assert_eq!(
            slow_inbox
                .recv()
                .await
                .map(|l| l.as_str().to_owned())
                .as_deref(),
            Some("a :: 1")
        );
        slow.progress.mark();
        waiting.await;
        assert_eq!(slow_inbox.try_recv().ok(), Some(second.clone()));
        assert_eq!(slow.closer.reason(), None);
    }

    #[tokio::test]
    async fn a_member_that_makes_no_progress_is_closed_with_1008_after_the_stall_time() {
        let (stuck, _stuck_inbox) = member(1, 1);
        let (fine, mut fine_inbox) = member(2, 8);
        let members = [stuck.clone(), fine];
        let stall = Duration::from_millis(50);
        for round in 0..3 {
            deliver(&members, &Line::new("a", &round.to_string()), stall).await;
        }
        assert_eq!(stuck.closer.reason(), Some(CloseReason::TOO_SLOW));
        for round in 0..3 {
            let line = fine_inbox.try_recv().expect("delivered");
            assert_eq!(line.as_str(), format!("a :: {round}"));
        }
    }

    #[tokio::test]
    async fn the_sender_itself_gets_nothing() {
        let (me, mut my_inbox) = member(1, 4);
        let (other, mut other_inbox) = member(2, 4);
        deliver(
            &[me, other],
            &Line::new("a", "x").numbered(1, Some(1)),
            Duration::from_secs(1),
        )
        .await;
        assert!(my_inbox.try_recv().is_err());
        assert!(other_inbox.try_recv().is_ok());
    }
}
