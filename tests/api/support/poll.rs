//! Waiting for something to become true, without sleeping for a guessed
//! time: poll it, and fail loudly if it never happens.

use std::future::Future;
use std::time::{Duration, Instant};

/// How long a wait may last before the test calls it a hang: a liveness
/// bound, generous on a busy machine, not a timing claim.
pub const GUARD: Duration = Duration::from_secs(60);

/// Polls `check` every 10 ms until it holds; panics naming `what` after
/// [`GUARD`].
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + GUARD;
    while !check().await {
        assert!(
            Instant::now() < deadline,
            "waited {GUARD:?} for {what}, in vain"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
