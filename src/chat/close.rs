//! Why a chat connection is being closed, and the one-shot signal that
//! tells its session to close it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

/// A close code (RFC 6455, section 7.4.1) and the reason sent with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CloseReason {
    /// The close code.
    pub(crate) code: u16,
    /// A short reason for people reading traces; at most 123 bytes.
    pub(crate) text: &'static str,
}

/// Declares each reason as a constant, and [`CloseReason::ALL`] listing
/// them, so a check over every reason cannot miss a new one.
macro_rules! reasons {
    ($($(#[$doc:meta])* $name:ident = $code:literal, $text:literal;)*) => {
        impl CloseReason {
            $(
                $(#[$doc])*
                pub(crate) const $name: CloseReason = CloseReason { code: $code, text: $text };
            )*
            /// Every reason above.
            #[cfg(test)]
            pub(crate) const ALL: &[CloseReason] = &[$(CloseReason::$name),*];
        }
    };
}

reasons! {
    /// The server is stopping.
    GOING_AWAY = 1001, "server shutting down";
    /// Something that is not a WebSocket as RFC 6455 has it.
    PROTOCOL = 1002, "protocol error";
    /// Chat lines are text; binary frames have no meaning here.
    BINARY = 1003, "binary messages are not accepted; send text";
    /// A text frame that is not UTF-8.
    BAD_TEXT = 1007, "text is not valid UTF-8";
    /// The member's outgoing queue stayed full while it read nothing for
    /// the stall timeout.
    TOO_SLOW = 1008, "outgoing queue full and nothing read: reading stalled";
    /// A message over the configured limit.
    TOO_BIG = 1009, "message too big";
    /// The server already holds its most chat connections.
    TRY_AGAIN_LATER = 1013, "too many chat connections; try again later";
    /// A newer connection presented this member's resume token.
    REPLACED = 1008, "replaced by a newer connection with the same resume token";
    /// A resume token not issued for this room, or a `since` that is not
    /// a number.
    BAD_RESUME = 1008, "resume token or query not valid for this room";
    /// A resume token past its expiry.
    EXPIRED = 1008, "resume token expired; join without it";
}

/// The `reason` labels of `shopd_chat_dropped_total`: every close code but
/// 1001 (shopd stopping), which drops nobody.
pub const DROP_REASONS: [&str; 9] = [
    "protocol_error",
    "binary",
    "bad_utf8",
    "stalled",
    "too_large",
    "too_many_connections",
    "replaced",
    "bad_resume",
    "expired_token",
];

impl CloseReason {
    /// Its place in [`DROP_REASONS`]; `None` for a stop of shopd.
    fn dropped_as(self) -> Option<usize> {
        let index = match self {
            CloseReason::PROTOCOL => 0,
            CloseReason::BINARY => 1,
            CloseReason::BAD_TEXT => 2,
            CloseReason::TOO_SLOW => 3,
            CloseReason::TOO_BIG => 4,
            CloseReason::TRY_AGAIN_LATER => 5,
            CloseReason::REPLACED => 6,
            CloseReason::BAD_RESUME => 7,
            CloseReason::EXPIRED => 8,
            _ => return None,
        };
        Some(index)
    }
}

/// Members closed by shopd since start, by reason (see [`DROP_REASONS`]).
#[derive(Debug, Default)]
pub(crate) struct Drops([AtomicU64; DROP_REASONS.len()]);

impl Drops {
    /// Counts a connection closed for `reason` (a closer's, or one closed
    /// without a member's closer).
    pub(crate) fn count(&self, reason: CloseReason) {
        if let Some(index) = reason.dropped_as() {
            self.0[index].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The counts, in the order of [`DROP_REASONS`].
    pub(crate) fn counts(&self) -> [u64; DROP_REASONS.len()] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// Asks a session to close its connection, once, for the first reason given.
///
/// Delivery kicks stalled members through this from the sender's task, the
/// session itself on bad frames, the registry at shutdown; whoever comes
/// first decides the close code.
#[derive(Debug, Default)]
pub(crate) struct Closer {
    reason: OnceLock<CloseReason>,
    fired: CancellationToken,
    /// Where the reason it fired for is counted, if anywhere.
    drops: Option<Arc<Drops>>,
}

impl Closer {
    /// A closer that has not fired and counts nothing.
    #[cfg(test)]
    pub(crate) fn new() -> Closer {
        Closer::default()
    }

    /// A closer that counts the reason it fires for in `drops`.
    pub(crate) fn counting(drops: Arc<Drops>) -> Closer {
        Closer {
            drops: Some(drops),
            ..Closer::default()
        }
    }

    /// Fires with `reason` unless an earlier reason already did.
    pub(crate) fn close(&self, reason: CloseReason) {
        // The reason is stored before waking anyone, so a woken waiter
        // always finds it.
        if self.reason.set(reason).is_ok() {
            if let Some(drops) = &self.drops {
                drops.count(reason);
            }
            self.fired.cancel();
        }
    }

    /// The reason it fired for, if it has.
    pub(crate) fn reason(&self) -> Option<CloseReason> {
        self.reason.get().copied()
    }

    /// Resolves once it has fired.
    pub(crate) async fn fired(&self) {
        self.fired.cancelled().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_reason_wins() {
        let closer = Closer::new();
        assert_eq!(closer.reason(), None);
        closer.close(CloseReason::TOO_SLOW);
        closer.close(CloseReason::GOING_AWAY);
        assert_eq!(closer.reason(), Some(CloseReason::TOO_SLOW));
    }

    #[test]
    fn each_member_is_counted_once_under_its_first_reason_and_a_stop_drops_nobody() {
        let drops = Arc::new(Drops::default());
        let slow = Closer::counting(Arc::clone(&drops));
        slow.close(CloseReason::TOO_SLOW);
        slow.close(CloseReason::TOO_BIG);
        let stopped = Closer::counting(Arc::clone(&drops));
        stopped.close(CloseReason::GOING_AWAY);
        stopped.close(CloseReason::BINARY);
        assert_eq!(drops.counts(), [0, 0, 0, 1, 0, 0, 0, 0, 0]);
        // Every reason but a stop has its own label.
        let labelled: Vec<usize> = CloseReason::ALL
            .iter()
            .filter_map(|reason| reason.dropped_as())
            .collect();
        assert_eq!(labelled, (0..DROP_REASONS.len()).collect::<Vec<_>>());
    }

    #[test]
    fn reasons_fit_in_a_close_frame() {
        assert_eq!(CloseReason::ALL.len(), 10);
        for reason in CloseReason::ALL {
            // A close frame's payload is at most 125 bytes, 2 of them the code.
            assert!(reason.text.len() <= 123, "{reason:?}");
        }
    }
}
