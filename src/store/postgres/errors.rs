//! How PostgreSQL's failures become [`StoreError`]s, the bounded retry of
//! serialization failures, and the once-per-outage log.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// Attempts of one operation when the database asks for a retry (SQLSTATE
/// 40001, which CockroachDB's SERIALIZABLE isolation returns routinely).
pub(super) const ATTEMPTS: u32 = 6;

/// A failure inside one attempt of an operation.
#[derive(Debug)]
pub(super) enum Failure {
    /// The database, or the way to it, failed.
    Db(tokio_postgres::Error),
    /// No connection could be had from the pool.
    Pool(PoolError),
    /// A domain outcome (not found, deleted): final, not retried.
    Store(StoreError),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        Failure::Db(err)
    }
}

impl From<PoolError> for Failure {
    fn from(err: PoolError) -> Self {
        Failure::Pool(err)
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Store(err)
    }
}

impl Failure {
    /// Whether running the operation again may succeed at once.
    pub(super) fn is_retryable(&self) -> bool {
        match self {
            // A deadlock should not happen (every write locks an item before
            // carts, carts in id order), but one is safe to run again.
            Failure::Db(err) => [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
            ]
            .iter()
            .any(|code| err.code() == Some(code)),
            _ => false,
        }
    }

    /// The store error this failure is: the database unreachable, slow or
    /// going away is [`StoreError::Unavailable`] (503), anything else it
    /// says is [`StoreError::Backend`] (500).
    pub(super) fn into_store_error(self) -> StoreError {
        match self {
            Failure::Store(err) => err,
            Failure::Pool(PoolError::Backend(err)) | Failure::Db(err) => {
                if is_unavailable(&err) {
                    StoreError::unavailable(err)
                } else {
                    StoreError::backend(err)
                }
            }
            Failure::Pool(err) => StoreError::unavailable(err),
        }
    }
}

/// Whether `err` means "the database cannot serve now" rather than "it
/// refused this": connection failures, timeouts, shutdowns, overload.
pub(super) fn is_unavailable(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) => {
            let class = &code.code()[..2];
            // 08 connection exception, 53 insufficient resources, 57
            // operator intervention (statement timeout, shutdown), 40001
            // still failing after every retry.
            matches!(class, "08" | "53" | "57") || code == &SqlState::T_R_SERIALIZATION_FAILURE
        }
        // No SQLSTATE: the connection broke, could not be made, or timed
        // out; a value that would not convert is the only other kind.
        None => {
            let text = err.to_string();
            !(text.starts_with("error deserializing") || text.starts_with("error serializing"))
        }
    }
}

/// How long to wait before attempt `attempt` (1-based) after a retryable
/// failure: a few milliseconds, doubling, with jitter so that clashing
/// writers do not clash again.
pub(super) fn backoff(attempt: u32) -> Duration {
    use rand::RngExt;
    let base = 2u64.pow(attempt.min(8));
    Duration::from_micros(rand::rng().random_range(base * 250..=base * 1000))
}

/// Logs an outage once when it starts and once when it ends, not once per
/// failed request.
#[derive(Debug, Default)]
pub(super) struct Outage {
    down: AtomicBool,
    failed: AtomicU64,
}

impl Outage {
    /// Notes the outcome of one operation.
    pub(super) fn note(&self, error: Option<&StoreError>) {
        match error {
            Some(err @ StoreError::Unavailable(_)) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                if !self.down.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        error = %crate::error_chain(err),
                        "the database is unavailable; requests get 503 until it is back"
                    );
                }
            }
            _ => {
                // One relaxed load on the hot path while all is well.
                if self.down.load(Ordering::Relaxed) && self.down.swap(false, Ordering::Relaxed) {
                    let failed = self.failed.swap(0, Ordering::Relaxed);
                    tracing::warn!(failed, "the database is back");
                }
            }
        }
    }
}
