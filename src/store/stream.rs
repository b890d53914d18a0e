//! How an export leaves a store: in chunks of about [`CHUNK_BYTES`]
//! through a channel of [`CHUNKS_IN_FLIGHT`] chunks to whoever reads it (an
//! HTTP response body, a backup file). The store writes while the reader
//! reads, and waits when the reader is behind, so an export holds a few
//! chunks in memory however large the store is.
//!
//! A reader that takes nothing for [`STALL`] ends the export (its snapshot
//! is released): an export whose client stopped reading must not hold the
//! store's snapshot and a scan worker forever.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{StoreError, StoreResult};

/// Bytes gathered before a chunk is handed on.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Chunks written and not yet read, at most.
pub const CHUNKS_IN_FLIGHT: usize = 4;
/// Longest wait for the reader to take a chunk.
pub const STALL: Duration = Duration::from_secs(60);

/// The writing end of an export: where a store sends its chunks.
#[derive(Debug)]
pub struct Chunks {
    tx: mpsc::Sender<Bytes>,
    stall: Duration,
}

/// Which export: one asked for now, or a scheduled backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportMode {
    /// Taken now, whatever else runs (`GET /admin/export`, `shopd export`).
    Online,
    /// A scheduled backup: one instance of a shop at a time. A store
    /// shared by several instances (PostgreSQL) takes it only when no
    /// other instance is taking one, and otherwise skips it.
    Scheduled,
}

impl Chunks {
    /// A channel for one export: its writing end and its reading end.
    #[must_use]
    pub fn channel() -> (Chunks, mpsc::Receiver<Bytes>) {
        Chunks::channel_with_stall(STALL)
    }

    /// [`Chunks::channel`] with another stall limit.
    #[must_use]
    pub fn channel_with_stall(stall: Duration) -> (Chunks, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(CHUNKS_IN_FLIGHT);
        (Chunks { tx, stall }, rx)
    }

    /// Whether `buffer` holds a chunk's worth.
    #[must_use]
    pub fn is_due(buffer: &[u8]) -> bool {
        buffer.len() >= CHUNK_BYTES
    }

    /// Hands on `buffer`'s bytes (leaving it empty, its capacity kept
    /// for the next chunk); waits while the reader is behind.
    pub async fn send(&self, buffer: &mut Vec<u8>) -> StoreResult<()> {
        if buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::copy_from_slice(buffer);
        buffer.clear();
        match tokio::time::timeout(self.stall, self.tx.send(chunk)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(gone("the export's reader went away")),
            Err(_) => Err(gone(&format!(
                "the export's reader took nothing for {} s",
                self.stall.as_secs()
            ))),
        }
    }

    /// [`Chunks::send`] from a blocking thread (one of tokio's: the
    /// runtime is reached through its handle).
    pub fn send_blocking(&self, buffer: &mut Vec<u8>) -> StoreResult<()> {
        let runtime = tokio::runtime::Handle::try_current().map_err(StoreError::backend)?;
        runtime.block_on(self.send(buffer))
    }
}

fn gone(why: &str) -> StoreError {
    StoreError::backend(std::io::Error::new(std::io::ErrorKind::BrokenPipe, why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reader_that_takes_nothing_ends_the_export_and_one_that_goes_away_too() {
        let (chunks, mut rx) = Chunks::channel_with_stall(Duration::from_millis(50));
        for n in 0..CHUNKS_IN_FLIGHT {
            let mut buffer = vec![b'x'; n + 1];
            chunks.send(&mut buffer).await.unwrap();
            assert!(buffer.is_empty());
        }
        let stalled = chunks.send(&mut vec![b'y']).await.unwrap_err();
        assert!(crate::error_chain(&stalled).contains("took nothing for"));
        assert_eq!(rx.recv().await.unwrap(), Bytes::from_static(b"x"));
        drop(rx);
        let gone = chunks.send(&mut vec![b'z']).await.unwrap_err();
        assert!(crate::error_chain(&gone).contains("went away"));
        // Nothing to send is no chunk.
        chunks.send(&mut Vec::new()).await.unwrap();
    }
}
