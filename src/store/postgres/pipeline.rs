//! Transactions in few round trips: `BEGIN` goes out with the first
//! statements and `COMMIT` with the last ones (tokio-postgres sends the
//! queries of futures polled together back to back, and the server runs
//! them in order). A transaction whose statements need no answer before
//! the next is sent is one round trip; a
//! read-modify-write (lock and read, compute in Rust, write) is two.
//!
//! A statement that fails aborts the transaction, so everything sent
//! after it in the same transaction fails too, and a `COMMIT` after it
//! rolls back: the first error, in the order sent, is the one reported.
//! A transaction dropped while open (an error, or a request that went
//! away before its `COMMIT` was sent) sends `ROLLBACK` before the
//! connection goes back to the pool.

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Waker};

use deadpool_postgres::ClientWrapper;
use futures_util::future::join;

/// A transaction on one pooled connection, begun or not.
pub(super) struct PipelinedTx<'a> {
    client: &'a ClientWrapper,
    /// Whether a `BEGIN` was sent and no `COMMIT` yet.
    open: AtomicBool,
}

type Answer<T> = Result<T, tokio_postgres::Error>;

impl<'a> PipelinedTx<'a> {
    /// A transaction on `client`, not begun yet.
    pub(super) fn new(client: &'a ClientWrapper) -> Self {
        PipelinedTx {
            client,
            open: AtomicBool::new(false),
        }
    }

    /// The connection, to prepare statements and build the queries given
    /// to the methods below (built, not polled: they are sent when these
    /// poll them). Prepare every statement first: a query whose first
    /// poll has to wait (for a statement to be prepared) goes out after
    /// the queries polled after it, `COMMIT` included.
    pub(super) fn client(&self) -> &'a ClientWrapper {
        self.client
    }

    /// Sends `BEGIN` and then `first` together; what `first` returns.
    pub(super) async fn begin_with<T>(&self, first: impl Future<Output = Answer<T>>) -> Answer<T> {
        self.open.store(true, Ordering::Relaxed);
        let (begun, out) = join(self.client.batch_execute("BEGIN"), first).await;
        begun?;
        out
    }

    /// Sends `last` and then `COMMIT` together; what `last` returns. When
    /// `last` fails, the `COMMIT` rolls back.
    pub(super) async fn commit_with<T>(&self, last: impl Future<Output = Answer<T>>) -> Answer<T> {
        let all = join(last, self.client.batch_execute("COMMIT"));
        let (out, committed) = self.closing(all).await;
        let out = out?;
        committed?;
        Ok(out)
    }

    /// Runs `all`, whose last query is the `COMMIT`: once it has been
    /// polled (so every query in it is sent) the transaction no longer
    /// needs a `ROLLBACK` when dropped.
    async fn closing<T>(&self, all: impl Future<Output = T>) -> T {
        let mut all = pin!(all);
        let first = poll_fn(|cx| Poll::Ready(all.as_mut().poll(cx))).await;
        self.open.store(false, Ordering::Relaxed);
        match first {
            Poll::Ready(out) => out,
            Poll::Pending => all.await,
        }
    }
}

impl Drop for PipelinedTx<'_> {
    fn drop(&mut self) {
        if !self.open.load(Ordering::Relaxed) {
            return;
        }
        // Queued on the connection by the first poll, ahead of whatever
        // its next user sends; the answer is not awaited.
        let rollback = pin!(self.client.batch_execute("ROLLBACK"));
        let _ = rollback.poll(&mut Context::from_waker(Waker::noop()));
    }
}
