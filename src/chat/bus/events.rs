//! The connection's events: whether the client is connected now, and
//! slow-consumer events counted and logged at most every few seconds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::Event;

/// At most one slow-consumer log line per this period.
const SLOW_LOG_EVERY: Duration = Duration::from_secs(10);

/// Kept up to date by the client's event callback.
#[derive(Default)]
pub(super) struct State {
    pub(super) connected: AtomicBool,
    pub(super) slow_consumers: AtomicU64,
    /// Milliseconds since start of the last slow-consumer log line, plus one.
    slow_logged: AtomicU64,
    pub(super) started: std::sync::OnceLock<std::time::Instant>,
}

impl State {
    /// Follows the connection and counts slow-consumer events; logs each
    /// outage once.
    pub(super) fn on_event(&self, event: &Event, urls: &str) {
        match event {
            Event::Connected => {
                if !self.connected.swap(true, Ordering::Relaxed) {
                    tracing::info!(bus = urls, "chat bus connected");
                }
            }
            Event::Disconnected | Event::Closed => {
                if self.connected.swap(false, Ordering::Relaxed) {
                    tracing::warn!(
                        bus = urls,
                        "chat bus disconnected: chat goes on within this instance; reconnecting"
                    );
                }
            }
            Event::SlowConsumer(_)
            | Event::ServerError(async_nats::ServerError::SlowConsumer(_)) => {
                let total = self.slow_consumers.fetch_add(1, Ordering::Relaxed) + 1;
                let now = self
                    .started
                    .get()
                    .map_or(0, |start| start.elapsed().as_millis() as u64)
                    + 1;
                let last = self.slow_logged.load(Ordering::Relaxed);
                let due =
                    last == 0 || now.saturating_sub(last) >= SLOW_LOG_EVERY.as_millis() as u64;
                if due
                    && self
                        .slow_logged
                        .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                        .is_ok()
                {
                    tracing::warn!(
                        bus = urls,
                        dropped = total,
                        "chat bus slow consumer: lines from other instances dropped"
                    );
                }
            }
            other => tracing::debug!(bus = urls, event = %other, "chat bus event"),
        }
    }
}
