//! One chat connection: the session reads the member's frames and turns
//! them into room lines, at the member's allowed pace and no faster than
//! the room's readers take them (it stops reading while it waits); a
//! forwarder task writes the member's queue to the socket and records its
//! progress. Whoever decides to close (the room, the session, shutdown) fires
//! the member's [`Closer`]; the forwarder then sends the close frame and the
//! session waits, briefly, for the client's answer.
//!
//! A JSON member's forwarder first writes its welcome and the history it
//! is owed, then its queue, rendered as `line` and `sent` frames and
//! without the lines at or below the offset of its welcome (those were in
//! the history, or before it joined).

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{Error as WsError, ProtocolError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::close::{CloseReason, Closer};
use super::deliver::{Line, Progress};
use super::pace::Pace;
use super::protocol::json_line;
use super::rooms::Membership;
use super::upgrade::Socket;

/// How long a closing connection gets to take its close frame and answer
/// it before it is dropped.
pub(crate) const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// Most queued lines written before one flush, to bound a burst's latency.
const BATCH: usize = 256;

/// A member about to be served on its upgraded socket.
pub(crate) struct Session {
    /// The member's place in its room.
    pub(crate) membership: Membership,
    /// The member's outgoing queue.
    pub(crate) inbox: mpsc::Receiver<Line>,
    /// Longest text accepted, in bytes.
    pub(crate) max_message_bytes: usize,
    /// The member's rate limit.
    pub(crate) pace: Pace,
    /// Cancelled when the server stops.
    pub(crate) stop: CancellationToken,
    /// Where the forwarder is tracked, so shutdown can wait for it.
    pub(crate) tasks: TaskTracker,
    /// The frames the member speaks.
    pub(crate) render: Render,
    /// Frames written before the queue: a JSON member's welcome and history.
    pub(crate) prelude: Vec<String>,
}

/// How the forwarder turns lines into frames.
#[derive(Debug, Clone)]
pub(crate) enum Render {
    /// `{name} :: {text}`.
    Plain,
    /// `line` and `sent` frames for member `me`, without the lines at or
    /// below `floor`.
    Json { me: Arc<str>, floor: u64 },
}

impl Render {
    /// The frame of `line`, or `None` when this member skips it.
    fn frame(&self, line: &Line) -> Option<Message> {
        match self {
            Render::Plain => Some(message(line)),
            Render::Json { me, floor } => {
                (line.offset() > *floor).then(|| Message::Text(json_line(line, me).into()))
            }
        }
    }
}

impl Session {
    /// Serves the member until either side closes or the connection breaks,
    /// then leaves the room.
    pub(crate) async fn run(self, socket: Socket) {
        let Session {
            membership,
            inbox,
            max_message_bytes,
            pace,
            stop,
            tasks,
            render,
            prelude,
        } = self;
        let closer = Arc::clone(membership.closer());
        let progress = Arc::clone(membership.progress());
        let (sink, stream) = socket.split();
        let queue = Queue {
            inbox,
            render,
            progress,
        };
        let mut forwarder = tasks.spawn(forward(sink, queue, prelude, closer));
        let reader = Reader {
            membership: &membership,
            max_message_bytes,
            pace,
            stop: &stop,
        };
        reader.read(stream).await;
        // Leave first, so nothing more is queued for a departing member.
        drop(membership);
        // The forwarder ends on its own: its queue is now closed, or it is
        // sending a close frame under its own timeout. This bound is for a
        // write stuck on a peer that vanished without a reset.
        if tokio::time::timeout(CLOSE_TIMEOUT, &mut forwarder)
            .await
            .is_err()
        {
            forwarder.abort();
        }
    }
}

/// The reading half of a session.
struct Reader<'a> {
    membership: &'a Membership,
    max_message_bytes: usize,
    pace: Pace,
    stop: &'a CancellationToken,
}

impl Reader<'_> {
    /// Reads frames until the stream ends, the connection breaks, or a
    /// close handshake begun by either side completes or times out.
    async fn read(mut self, mut stream: SplitStream<Socket>) {
        let membership = self.membership;
        let closer = membership.closer();
        let kicked = closer.fired();
        let stopped = self.stop.cancelled();
        tokio::pin!(kicked, stopped);
        // Set once closing has begun, from either side; until then frames
        // are chat lines, afterwards they are only read to reach the close
        // answer (reading also lets tungstenite send its pongs and close
        // replies).
        let mut deadline: Option<Instant> = None;
        loop {
            let next = tokio::select! {
                biased;
                () = &mut kicked, if deadline.is_none() => {
                    deadline = Some(closing(membership));
                    continue;
                }
                () = &mut stopped, if deadline.is_none() => {
                    closer.close(CloseReason::GOING_AWAY);
                    deadline = Some(closing(membership));
                    continue;
                }
                () = expire(deadline) => break,
                next = stream.next() => next,
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    if let Some(reason) = reason_for(&err) {
                        closer.close(reason);
                    }
                    tracing::debug!(error = %err, member = membership.name(), "chat connection ended");
                    break;
                }
                None => break,
            };
            if deadline.is_some() {
                continue;
            }
            if let Message::Text(text) = &message {
                let text = text.as_str();
                if text.len() > self.max_message_bytes {
                    closer.close(CloseReason::TOO_BIG);
                    continue;
                }
                // No frame is read while this waits (for the member's pace,
                // or for room in the others' queues): the client's sends
                // back up into its socket. Closing cuts the wait short.
                let say = async {
                    self.pace.take().await;
                    membership.say(text).await;
                };
                tokio::select! {
                    biased;
                    () = &mut kicked => deadline = Some(closing(membership)),
                    () = &mut stopped => {
                        closer.close(CloseReason::GOING_AWAY);
                        deadline = Some(closing(membership));
                    }
                    () = say => {}
                }
            } else if message.is_binary() {
                closer.close(CloseReason::BINARY);
            } else if message.is_close() {
                // tungstenite queued the reply; the next read sends it and
                // ends the stream.
                deadline = Some(Instant::now() + CLOSE_TIMEOUT);
            }
            // Pings: tungstenite answers them on the next read. Pongs: nothing to do.
        }
    }
}

/// Logs why the member's closer fired; the deadline for the close answer.
fn closing(membership: &Membership) -> Instant {
    if let Some(reason) = membership.closer().reason() {
        tracing::debug!(
            member = membership.name(),
            code = reason.code,
            reason = reason.text,
            "closing chat connection"
        );
    }
    Instant::now() + CLOSE_TIMEOUT
}

/// Resolves at `deadline`, or never when there is none.
async fn expire(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The close frame owed to the client for a read error, if it can still
/// hear one.
fn reason_for(err: &WsError) -> Option<CloseReason> {
    match err {
        // Over the hard cap set on the socket, which stops reading at once
        // (our own, lower check handles messages up to that cap).
        WsError::Capacity(_) => Some(CloseReason::TOO_BIG),
        WsError::Utf8(_) => Some(CloseReason::BAD_TEXT),
        WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
        WsError::Protocol(_) => Some(CloseReason::PROTOCOL),
        // I/O errors and the like: the peer is gone.
        _ => None,
    }
}

/// A member's outgoing queue, and how its lines become frames.
struct Queue {
    inbox: mpsc::Receiver<Line>,
    render: Render,
    progress: Arc<Progress>,
}

/// Writes `prelude`, then the member's queue to the socket until the queue
/// closes (the member left), a write fails, or the closer fires; then sends
/// the close frame, dropping whatever is still queued.
async fn forward(
    mut sink: SplitSink<Socket, Message>,
    mut queue: Queue,
    prelude: Vec<String>,
    closer: Arc<Closer>,
) {
    let kicked = closer.fired();
    tokio::pin!(kicked);
    let greet = async {
        for frame in prelude {
            sink.feed(Message::Text(frame.into())).await?;
        }
        sink.flush().await
    };
    tokio::select! {
        biased;
        () = &mut kicked => {}
        greeted = greet => if greeted.is_err() {
            return;
        },
    }
    while closer.reason().is_none() {
        let first = tokio::select! {
            biased;
            () = &mut kicked => break,
            next = queue.inbox.recv() => match next {
                Some(line) => line,
                None => return,
            },
        };
        // A write stuck on a client that does not read is abandoned when
        // the closer fires; the frames already handed over stay in order.
        tokio::select! {
            biased;
            () = &mut kicked => break,
            written = write_batch(&mut sink, first, &mut queue) => {
                if written.is_err() {
                    return;
                }
                queue.progress.mark();
            }
        }
    }
    if let Some(reason) = closer.reason() {
        let frame = close_frame(reason);
        // A client that never reads never takes it: give up in time.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(frame)).await;
    }
}

/// Writes `first` and what else is already queued, then flushes once: one
/// system call for a burst instead of one per line. Each line taken from
/// the queue counts as progress.
async fn write_batch(
    sink: &mut SplitSink<Socket, Message>,
    first: Line,
    queue: &mut Queue,
) -> Result<(), WsError> {
    queue.progress.mark();
    if let Some(frame) = queue.render.frame(&first) {
        sink.feed(frame).await?;
    }
    for _ in 1..BATCH {
        match queue.inbox.try_recv() {
            Ok(line) => {
                queue.progress.mark();
                if let Some(frame) = queue.render.frame(&line) {
                    sink.feed(frame).await?;
                }
            }
            Err(_) => break,
        }
    }
    sink.flush().await
}

/// The close frame that says `reason`.
fn close_frame(reason: CloseReason) -> Message {
    Message::Close(Some(CloseFrame {
        code: reason.code.into(),
        reason: reason.text.into(),
    }))
}

/// Answers a refused upgrade: the close frame for `reason`, then a short
/// wait for the client's answer. Nothing else is sent.
pub(crate) async fn refuse(mut socket: Socket, reason: CloseReason) {
    let frame = close_frame(reason);
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
        socket.send(frame).await?;
        while let Some(next) = socket.next().await {
            next?;
        }
        Ok::<(), WsError>(())
    })
    .await;
}

/// The text frame of `line`, sharing its bytes.
fn message(line: &Line) -> Message {
    // A line is UTF-8 by construction; the check is that of `as_str`.
    Message::Text(Utf8Bytes::try_from(line.bytes().clone()).unwrap_or_default())
}
