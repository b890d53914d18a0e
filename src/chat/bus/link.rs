//! A room's link to the bus: its live subscription, the relay that feeds
//! other instances' lines into the room, and its follower of the history
//! stream; and what a room offers the bus (`Inbox`).
//!
//! The relay also takes other instances' claims (see `wire::Claim`): a
//! member resumed there closes its older connections here. When the
//! connection here is the newer one, the relay answers with its own
//! claim, so the other instance closes its older one even when the two
//! claims crossed, or one was sent before this instance subscribed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_nats::{Client, Subject, Subscriber};
use futures_util::StreamExt;

use super::follow::Follower;
use super::wire::{Claim, open, open_claim, seal_claim};
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

    /// Closes the members here named as in `claim` that are older than
    /// it (`instance` is this one); returns when the newest member here
    /// of that name joined, when it is newer than the claim.
    fn close_older(&self, claim: &Claim, instance: u64) -> Option<u64>;
}

/// Where the relay answers claims: the bus and the room's subject.
pub(super) struct Answer {
    pub(super) client: Client,
    pub(super) subject: Subject,
}

/// Feeds the lines of other instances into `room` until it is gone.
pub(super) async fn relay(
    mut subscriber: Subscriber,
    room: Weak<impl Inbox>,
    instance: u64,
    stall: Duration,
    answer: Answer,
) {
    while let Some(message) = subscriber.next().await {
        let Some(room) = room.upgrade() else {
            break;
        };
        if let Some(line) = open(&message.payload, instance) {
            room.deliver_remote(&line, stall).await;
        } else if let Some(claim) = open_claim(&message.payload, instance)
            && let Some(joined) = room.close_older(&claim, instance)
        {
            let ours = seal_claim(instance, joined, &claim.name);
            if let Err(err) = answer.client.publish(answer.subject.clone(), ours).await {
                tracing::debug!(error = %err, "chat claim not published");
            }
        }
    }
}
