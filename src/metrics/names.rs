//! The metric families: their names, HELP texts and buckets, as
//! prometheus-fastapi-instrumentator and shopd's own figures have them.

use metrics::{Level, Metadata};

pub(super) const METADATA: Metadata<'static> =
    Metadata::new("shopd", Level::INFO, Some("shopd::metrics"));

/// Buckets of `http_request_duration_seconds`, as the instrumentator has them.
pub(super) const DURATION_BUCKETS: &[f64] = &[0.1, 0.5, 1.0];
/// Buckets of `http_request_duration_highr_seconds`.
pub(super) const HIGHR_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    7.5, 10.0, 30.0, 60.0,
];

pub(super) const REQUESTS: &str = "http_requests_total";
pub(super) const DURATION: &str = "http_request_duration_seconds";
pub(super) const HIGHR: &str = "http_request_duration_highr_seconds";
pub(super) const REQUEST_SIZE: &str = "http_request_size_bytes";
pub(super) const RESPONSE_SIZE: &str = "http_response_size_bytes";
pub(super) const CHAT_BUS_CONNECTED: &str = "shopd_chat_bus_connected";
pub(super) const CHAT_BUS_SLOW: &str = "shopd_chat_bus_slow_consumers_total";
pub(super) const CHAT_DROPPED: &str = "shopd_chat_dropped_total";
pub(super) const STORE_UP: &str = "shopd_store_up";
pub(super) const STORAGE_AVAILABLE: &str = "shopd_storage_available_bytes";
pub(super) const CHAT_RESUMES: &str = "shopd_chat_resumes_total";
pub(super) const REJECTED: &str = "shopd_rejected_total";
pub(super) const IDEMPOTENCY_REPLAYS: &str = "shopd_idempotency_replays_total";
pub(super) const IDEMPOTENCY_CONFLICTS: &str = "shopd_idempotency_conflicts_total";
pub(super) const IDEMPOTENCY_KEYS: &str = "shopd_idempotency_keys";
pub(super) const CHAT_JETSTREAM_ERRORS: &str = "shopd_chat_jetstream_errors_total";

/// Names and HELP texts of the recorder's metrics; the HTTP ones are the
/// instrumentator's own words.
pub(super) const COUNTERS: &[(&str, &str)] = &[
    (
        REQUESTS,
        "Total number of requests by method, status and handler.",
    ),
    (
        "shopd_chat_messages_total",
        "Chat messages received from members since start.",
    ),
    (
        CHAT_DROPPED,
        "Chat members closed by shopd since start, by reason: stalled (1008, its queue full and nothing read), too_large (1009), binary (1003), bad_utf8 (1007), protocol_error (1002), too_many_connections (1013), replaced (1008, a newer connection resumed with its token), bad_resume (1008, a resume token not of that room), expired_token (1008). Members that leave, and closes at shutdown, are not counted.",
    ),
    (
        CHAT_RESUMES,
        "Chat members that resumed with a token, by result: complete (every missed line given) or incomplete (offset too old or epoch changed).",
    ),
    (
        REJECTED,
        "Requests and connections refused by the per-client limits since start, by reason: connections (a new connection past max_connections_per_client, closed at once), rate (429 past rate_limit_per_sec), chat_origin (403 to a chat upgrade from an origin not allowed).",
    ),
    (
        IDEMPOTENCY_REPLAYS,
        "Writes answered with the answer kept for their Idempotency-Key (Idempotent-Replayed: true) since start.",
    ),
    (
        IDEMPOTENCY_CONFLICTS,
        "Writes refused over their Idempotency-Key since start, by reason: in_flight (409, the same key still running), mismatch (422, the key was used with another request).",
    ),
    (
        CHAT_JETSTREAM_ERRORS,
        "Failed requests to NATS JetStream, where the chat history is kept with a chat bus, by operation: stream (finding or making the stream), read (a room's kept lines), publish (storing a line; it then went out live only), follow (a room's new lines; followed again after a pause).",
    ),
    (
        CHAT_BUS_SLOW,
        "Chat lines from other instances dropped because this instance took them too slowly from the chat bus (NATS slow-consumer events).",
    ),
];
pub(super) const HISTOGRAMS: &[(&str, &str)] = &[
    (
        DURATION,
        "Latency with only few buckets by handler. Made to be only used if aggregation by handler is important.",
    ),
    (
        HIGHR,
        "Latency with many buckets but no API specific labels. Made for more accurate percentile calculations.",
    ),
];
pub(super) const GAUGES: &[(&str, &str)] = &[
    ("shopd_chat_connections", "Open chat connections."),
    ("shopd_chat_rooms", "Chat rooms with at least one member."),
    (
        "shopd_chat_history_rooms",
        "Chat rooms whose history is kept.",
    ),
    (
        "shopd_chat_history_lines",
        "Chat lines kept in the rooms' histories.",
    ),
    (
        "shopd_chat_history_bytes",
        "Bytes of the chat lines kept in the rooms' histories (name, separator and text).",
    ),
    (
        CHAT_BUS_CONNECTED,
        "1 while the chat bus (NATS) is connected, 0 while it is not; absent without a bus.",
    ),
    ("shopd_items", "Items that are not deleted."),
    (
        IDEMPOTENCY_KEYS,
        "Idempotency keys kept with their answers (expired ones not yet pruned included).",
    ),
    ("shopd_carts", "Carts."),
    ("shopd_storage_bytes", "Bytes the store takes on disk."),
    (
        STORE_UP,
        "1 while the store answered its last periodic check (the one /readyz makes, every stats_refresh_ms), 0 while it fails.",
    ),
    (
        STORAGE_AVAILABLE,
        "Bytes still free for shopd on the disk under the data directory; absent on PostgreSQL.",
    ),
];
