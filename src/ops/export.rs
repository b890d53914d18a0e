//! An export in motion: the store writes chunks in its own task (see
//! [`crate::store::stream`]) while a reader takes them, either as a
//! [`Stream`](futures_util::Stream) (an HTTP response body) or into a file
//! ([`export_to`]). Either way memory holds a few chunks, not the store.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::store::{Chunks, ExportCounts, ExportMode, Store, StoreError, StoreResult};

type Outcome = StoreResult<Option<ExportCounts>>;

/// An export running in its own task, read chunk by chunk; after the last
/// chunk, an export that failed midway yields one error (so a response
/// body is cut off rather than ended as if complete).
pub struct ExportStream {
    rx: mpsc::Receiver<Bytes>,
    task: Option<JoinHandle<Outcome>>,
}

impl ExportStream {
    /// Starts an online export of `store`.
    pub fn start<S: Store>(store: &S) -> ExportStream {
        let (chunks, rx) = Chunks::channel();
        let store = store.clone();
        let task = tokio::spawn(async move { store.export(chunks, ExportMode::Online).await });
        ExportStream {
            rx,
            task: Some(task),
        }
    }

    /// The first chunk, or why the export failed before writing any (the
    /// store busy or unreachable): for an HTTP reply, which can still
    /// carry an error status then.
    pub async fn first(&mut self) -> StoreResult<Option<Bytes>> {
        if let Some(chunk) = self.rx.recv().await {
            return Ok(Some(chunk));
        }
        match self.task.take() {
            Some(task) => joined(task.await).map(|_| None),
            None => Ok(None),
        }
    }
}

fn joined(outcome: Result<Outcome, tokio::task::JoinError>) -> Outcome {
    outcome.map_err(StoreError::backend)?
}

impl futures_util::Stream for ExportStream {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(chunk) = std::task::ready!(self.rx.poll_recv(cx)) {
            return Poll::Ready(Some(Ok(chunk)));
        }
        let Some(task) = self.task.as_mut() else {
            return Poll::Ready(None);
        };
        let outcome = joined(std::task::ready!(Pin::new(task).poll(cx)));
        self.task = None;
        match outcome {
            Ok(_) => Poll::Ready(None),
            Err(err) => {
                let message = crate::error_chain(&err);
                tracing::error!(error = %message, "an export failed midway; its reader gets it cut off");
                Poll::Ready(Some(Err(std::io::Error::other(message))))
            }
        }
    }
}

use std::future::Future as _;

/// Why [`export_to`] failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The store failed (or was busy).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The output could not be written.
    #[error("cannot write the export")]
    Write(#[source] std::io::Error),
}

/// Exports `store` into `out` (written on a blocking thread, chunk by
/// chunk, as the store produces them); returns `out` and the counts, or
/// `None` when a scheduled export was skipped (another instance takes
/// it). On a write failure the export stops and the write error is
/// reported (not the store's "reader went away").
pub async fn export_to<S: Store, W: Write + Send + 'static>(
    store: &S,
    mode: ExportMode,
    mut out: W,
) -> Result<Option<(W, ExportCounts)>, WriteError> {
    let (chunks, mut rx) = Chunks::channel();
    let writer = tokio::task::spawn_blocking(move || -> std::io::Result<W> {
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)?;
        }
        out.flush()?;
        Ok(out)
    });
    let (exported, written) = tokio::join!(store.export(chunks, mode), writer);
    let written = written
        .map_err(|err| WriteError::Write(std::io::Error::other(err)))?
        .map_err(WriteError::Write)?;
    Ok(exported?.map(|counts| (written, counts)))
}
