//! [`Watched`]: the socket of one connection, reporting its read and write
//! progress to its [`Progress`].
//!
//! The wrapper also gives hyper's own error replies a body. hyper answers
//! a request it cannot parse (bad request line, bad `Content-Length`, URI
//! too long, too many or too large headers) with an empty 400, 414 or 431
//! before any route sees it. Such a reply is recognised on its way out (a
//! lone response head with `content-length: 0`, which no route of ours
//! sends for these statuses) and replaced by the same status with a JSON
//! `detail`, counted in the metrics under the handler `none`.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::{PeerSlot, Progress};
use crate::http::error::ApiError;
use crate::metrics::Telemetry;

/// A TCP stream that reports its progress and replaces hyper's empty
/// error replies.
pub struct Watched {
    stream: Option<TcpStream>,
    progress: Arc<Progress>,
    telemetry: Telemetry,
    /// Our reply in place of hyper's, and how much of it is sent.
    replacement: Vec<u8>,
    sent: usize,
    /// The peer's connection slot: held as long as the socket, so an
    /// upgraded connection (a chat member) keeps counting.
    _slot: PeerSlot,
}

impl Watched {
    /// Watches `stream` on behalf of `progress`, holding its peer's `slot`.
    pub fn new(
        stream: TcpStream,
        progress: Arc<Progress>,
        telemetry: Telemetry,
        slot: PeerSlot,
    ) -> Watched {
        Watched {
            stream: Some(stream),
            progress,
            telemetry,
            replacement: Vec::new(),
            sent: 0,
            _slot: slot,
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut TcpStream>> {
        match self.stream.as_mut() {
            Some(stream) => Ok(Pin::new(stream)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Tracks the outcome of one write to the socket.
    fn track(&self, poll: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match &poll {
            Poll::Ready(Ok(n)) if *n > 0 => self.progress.on_write_progress(),
            Poll::Pending => self.progress.on_write_blocked(),
            Poll::Ready(_) => {}
        }
        poll
    }

    /// Sends what is left of a replacement reply.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.replacement.len() {
            let (sent, replacement) = (self.sent, std::mem::take(&mut self.replacement));
            let poll = self.stream()?.poll_write(cx, &replacement[sent..]);
            self.replacement = replacement;
            match self.track(poll) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => self.sent += n,
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Takes `buf` in place of hyper's error reply it holds, if it is one.
    fn replaces(&mut self, buf: &[u8]) -> bool {
        if self.progress.upgraded.load(Relaxed) {
            return false;
        }
        let Some(error) = hyper_error(buf) else {
            return false;
        };
        let reply = error.into_closing_reply();
        let status = reply.status;
        self.telemetry.record_request(
            "none",
            &self.progress.method(),
            status,
            self.progress.request_elapsed(),
            0,
            reply.body_len as u64,
        );
        tracing::info!(
            target: "shopd::access",
            method = %self.progress.method(),
            status = status.as_u16(),
            "refused before routing"
        );
        self.replacement = reply.wire;
        self.sent = 0;
        true
    }
}

/// The error a reply written by hyper itself stands for: a lone response
/// head, `content-length: 0`, with a status only hyper's parser produces.
fn hyper_error(buf: &[u8]) -> Option<ApiError> {
    // Most writes are our own replies: leave before looking at them whole.
    if !buf.starts_with(b"HTTP/1.1 4") || !buf.ends_with(b"\r\n\r\n") {
        return None;
    }
    let head = std::str::from_utf8(buf).ok()?.strip_suffix("\r\n\r\n")?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    if head.contains("\r\n\r\n")
        || !head
            .split("\r\n")
            .any(|line| line.eq_ignore_ascii_case("content-length: 0"))
    {
        return None;
    }
    match status {
        "400" => Some(ApiError::BadRequest(
            "Bad Request: the request line or a header is malformed".into(),
        )),
        "414" => Some(ApiError::UriTooLong),
        "431" => Some(ApiError::HeadersTooLarge),
        _ => None,
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        if self.progress.reclaim.load(Relaxed)
            && let Ok(mut slot) = self.progress.returned.lock()
        {
            *slot = self.stream.take();
        }
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        ready!(this.stream()?.poll_read(cx, buf))?;
        let new = &buf.filled()[before..];
        if !new.is_empty() {
            this.progress.on_read(new);
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if this.replaces(buf) {
            // hyper's bytes count as written; ours go out now or on flush.
            if let Poll::Ready(Err(err)) = this.poll_replacement(cx) {
                return Poll::Ready(Err(err));
            }
            return Poll::Ready(Ok(buf.len()));
        }
        let poll = this.stream()?.poll_write(cx, buf);
        this.track(poll)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        if let Some(first) = bufs.iter().find(|buf| !buf.is_empty())
            && hyper_error(first).is_some()
        {
            return Pin::new(this).poll_write(cx, first);
        }
        let poll = this.stream()?.poll_write_vectored(cx, bufs);
        this.track(poll)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        this.stream()?.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        this.stream()?.poll_shutdown(cx)
    }
}
