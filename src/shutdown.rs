//! The stop signal: SIGTERM or SIGINT (Ctrl-C).

use std::future::Future;

/// Starts watching for SIGTERM and SIGINT at once, and returns a future
/// that resolves on the first of them. The handlers are in place when this
/// returns, so a signal sent right after start-up (say, as soon as the
/// "listening" line appears) stops shopd cleanly instead of killing it.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let term = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::terminate())
            .inspect_err(|err| {
                tracing::warn!(error = %err, "cannot watch SIGTERM; only Ctrl-C stops shopd");
            })
            .ok()
    };
    #[cfg(unix)]
    let int = {
        use tokio::signal::unix::{SignalKind, signal};
        signal(SignalKind::interrupt()).ok()
    };
    async move {
        #[cfg(unix)]
        {
            let term = async {
                match term {
                    Some(mut term) => term.recv().await,
                    None => std::future::pending().await,
                }
            };
            let int = async {
                match int {
                    Some(mut int) => int.recv().await,
                    None => tokio::signal::ctrl_c().await.ok(),
                }
            };
            tokio::select! {
                _ = term => {}
                _ = int => {}
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stop signal received; draining");
    }
}
