//! A room's link to the bus: its live subscription, the relay that feeds
//! other instances' lines into the room, and its follower of the history
//! stream; and what a room offers the bus (`Inbox`).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::{Subject, Subscriber};
use futures_util::StreamExt;

use super::follow::Follower;
use super::wire::open;
use crate::chat::deliver::Line;

/// `{prefix}.h`: where the history subjects are.
pub(super) fn history_prefix(prefix: &str) -> String {
    format!("{prefix}.h")
}

/// A room's subscription on the bus, and its follower of the history
/// stream; dropping it unsubscribes.
#[derive(Debug)]
pub(crate) struct RoomLink {
    pub(super) subject: Subject,
    pub(super) relay: Option<tokio::task::JoinHandle<()>>,
    pub(super) follower: Option<Follower>,
}

impl RoomLink {
    /// False while the room's lines should come from the history stream
    /// but do not (JetStream down or failing); true without history.
    pub(crate) fn history_live(&self) -> bool {
        self.follower
            .as_ref()
            .is_none_or(|follower| follower.live.load(Ordering::Relaxed))
    }
}

impl Drop for RoomLink {
    fn drop(&mut self) {
        // Dropping the relay's subscriber sends the UNSUB.
        if let Some(relay) = &self.relay {
            relay.abort();
        }
    }
}

/// Where the lines of other instances go: a room of this instance.
pub(crate) trait Inbox: Send + Sync + 'static {
    /// Delivers `line` to every local member, waiting at most `stall` on
    /// a full queue.
    fn deliver_remote(&self, line: &Line, stall: Duration) -> impl Future<Output = ()> + Send;

    /// Delivers `line`, numbered by the history stream, to every local
    /// member and keeps it in the room's history.
    fn deliver_stored(&self, line: Line, stall: Duration) -> impl Future<Output = ()> + Send;

    /// Begins the room's history again from the stream's `lines` under
    /// its `epoch` (`None`: the stream cannot be read).
    fn restart(&self, epoch: Option<Arc<str>>, lines: Vec<Line>);
}

/// Feeds the lines of other instances into `room` until it is gone.
pub(super) async fn relay(
    mut subscriber: Subscriber,
    room: Weak<impl Inbox>,
    instance: u64,
    stall: Duration,
) {
    while let Some(message) = subscriber.next().await {
        let Some(line) = open(&message.payload, instance) else {
            continue;
        };
        let Some(room) = room.upgrade() else {
            break;
        };
        room.deliver_remote(&line, stall).await;
    }
}
