//! The stop signals and the drain before a stop.
//!
//! SIGTERM (what orchestrators and systemd send) drains first: shopd
//! reports itself not ready ([`Draining`], read by `/readyz`) while it
//! keeps serving for `shutdown_drain_secs`, so a load balancer moves
//! traffic away before the listener closes. SIGINT (Ctrl-C) or a second
//! signal during the drain stops at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Which stop signal arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// SIGTERM: drain, then stop.
    Terminate,
    /// SIGINT (Ctrl-C): stop without a drain.
    Interrupt,
}

/// Whether shopd is draining: set once a stop began, never cleared. A
/// cheap handle; every clone sees the same flag.
#[derive(Debug, Clone, Default)]
pub struct Draining(Arc<AtomicBool>);

impl Draining {
    /// Marks shopd as stopping: `/readyz` answers 503 from now on.
    pub fn begin(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether a stop began.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// SIGTERM and SIGINT, watched from the moment this is built.
pub struct Signals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Starts watching for SIGTERM and SIGINT at once. The handlers are in
    /// place when this returns, so a signal sent right after start-up (say,
    /// as soon as the "listening" line appears) stops shopd cleanly instead
    /// of killing it.
    #[must_use]
    pub fn watch() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let term = signal(SignalKind::terminate())
                .inspect_err(|err| {
                    tracing::warn!(error = %err, "cannot watch SIGTERM; only Ctrl-C stops shopd");
                })
                .ok();
            let int = signal(SignalKind::interrupt()).ok();
            Signals { term, int }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    /// The next stop signal.
    pub async fn next(&mut self) -> Stop {
        #[cfg(unix)]
        {
            let term = async {
                match &mut self.term {
                    Some(term) => term.recv().await,
                    None => std::future::pending().await,
                }
            };
            let int = async {
                match &mut self.int {
                    Some(int) => int.recv().await,
                    None => tokio::signal::ctrl_c().await.ok(),
                }
            };
            tokio::select! {
                _ = term => Stop::Terminate,
                _ = int => Stop::Interrupt,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Stop::Interrupt
        }
    }
}

/// Resolves when the listener should close: at once on SIGINT, after
/// `drain` on SIGTERM, or at a second signal during the drain. Marks
/// `draining` as soon as the first signal arrives, so `/readyz` answers
/// 503 for the whole drain.
pub async fn drained(mut signals: Signals, drain: Duration, draining: Draining) {
    let stop = signals.next().await;
    draining.begin();
    if stop == Stop::Interrupt || drain.is_zero() {
        tracing::info!(?stop, "stop signal received; stopping");
        return;
    }
    tracing::info!(
        drain_secs = drain.as_secs_f64(),
        "SIGTERM received; /readyz answers 503 while requests are still served, then shopd stops"
    );
    tokio::select! {
        () = tokio::time::sleep(drain) => tracing::info!("drain over; stopping"),
        stop = signals.next() => tracing::info!(?stop, "second stop signal; drain cut short"),
    }
}
