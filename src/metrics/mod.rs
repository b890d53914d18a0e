//! Prometheus metrics under prometheus-fastapi-instrumentator's names and
//! labels, rendered by shopd's own `GET /metrics` route.
//!
//! Each server owns its recorder (no process-global state), so several
//! servers in one process, as in the tests, keep separate counts.
//!
//! Counters, gauges and the latency histograms live in a
//! `metrics-exporter-prometheus` recorder. Two kinds of figures are written
//! by hand after its output, because the recorder cannot express them:
//! the request and response sizes, which the instrumentator exposes as
//! summaries with only `_sum` and `_count`, and the `process_*` metrics,
//! whose CPU counter is fractional (a recorder counter holds whole numbers).
//!
//! `record_request` runs for every request, so it touches no registry: the
//! handles of each (route, method, status class) are registered once and
//! kept in a fixed, lock-free table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, KeyName, Label, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use warp::http::{Method, StatusCode};

use crate::chat::{ChatStats, DROP_REASONS, JournalOp};

use crate::store::StoreStats;

mod process;

mod labels;
mod names;
mod sizes;

mod backup;
pub use backup::BackupMetrics;

use labels::{CLASSES, METHODS, class_index, method_index};
use names::{
    CHAT_BUS_CONNECTED, CHAT_BUS_SLOW, CHAT_DROPPED, CHAT_JETSTREAM_ERRORS, CHAT_RESUMES, COUNTERS,
    DURATION, DURATION_BUCKETS, GAUGES, HIGHR, HIGHR_BUCKETS, HISTOGRAMS, IDEMPOTENCY_CONFLICTS,
    IDEMPOTENCY_KEYS, IDEMPOTENCY_REPLAYS, METADATA, REJECTED, REQUESTS, STORAGE_AVAILABLE,
    STORE_UP,
};

/// What the idempotency layer did with a keyed write, besides running it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdempotencyOutcome {
    /// The kept answer was replayed.
    Replay,
    /// 409: the same key still runs.
    InFlight,
    /// 422: the key was kept for another request.
    Mismatch,
}

/// Why a per-client limit refused a client: the `reason` labels of
/// `shopd_rejected_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejected {
    /// A connection past `max_connections_per_client`, closed at once.
    Connections,
    /// A request past the client's rate: 429.
    Rate,
    /// A chat upgrade from an origin not allowed: 403.
    ChatOrigin,
}

impl Rejected {
    /// Every reason, in label order.
    pub const ALL: [Rejected; 3] = [Rejected::Connections, Rejected::Rate, Rejected::ChatOrigin];

    /// Its `reason` label.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Rejected::Connections => "connections",
            Rejected::Rate => "rate",
            Rejected::ChatOrigin => "chat_origin",
        }
    }
}

/// Slots of the per-label-set handle table: far more than the label sets
/// that exist (about ten routes, eight method values, five classes), so
/// probes stay short.
const SLOTS: usize = 1024;

/// The metrics of one server; a cheap handle.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    highr: Histogram,
    routes: Box<[OnceLock<RouteHandles>]>,
    /// Size figures per route template, in first-seen order.
    sizes: Mutex<Vec<(&'static str, Arc<Sizes>)>>,
    shop: ShopHandles,
}

/// What one request updates, registered once per label set.
struct RouteHandles {
    handler: &'static str,
    method: u8,
    class: u8,
    requests: Counter,
    duration: Histogram,
    sizes: Arc<Sizes>,
}

/// The two summaries of one route: sums of request and response bytes
/// over a shared count.
#[derive(Default)]
struct Sizes {
    requests: AtomicU64,
    request_bytes: AtomicU64,
    response_bytes: AtomicU64,
}

/// shopd's own figures, set from the store and the rooms at each scrape.
struct ShopHandles {
    chat_connections: Gauge,
    chat_rooms: Gauge,
    chat_messages: Counter,
    /// `shopd_chat_dropped_total`, one per reason of [`DROP_REASONS`].
    chat_dropped: Vec<Counter>,
    /// Registered at the first scrape that has a bus, so shopd without a
    /// bus shows neither.
    chat_bus: OnceLock<(Gauge, Counter)>,
    /// `shopd_chat_jetstream_errors_total{op}`, one per [`JournalOp::ALL`];
    /// registered at the first scrape whose bus keeps the history.
    chat_jetstream: OnceLock<Vec<Counter>>,
    /// `shopd_rejected_total`, one per reason of [`Rejected::ALL`].
    rejected: Vec<Counter>,
    /// `shopd_chat_history_{rooms,lines,bytes}`.
    chat_history: [Gauge; 3],
    /// `shopd_chat_resumes_total{result="complete"|"incomplete"}`.
    chat_resumes: [Counter; 2],
    items: Gauge,
    carts: Gauge,
    /// `shopd_idempotency_keys`.
    idempotency_keys: Gauge,
    /// `shopd_idempotency_replays_total`, then
    /// `shopd_idempotency_conflicts_total{reason="in_flight"|"mismatch"}`.
    idempotency: [Counter; 3],
    storage_bytes: Gauge,
    store_up: Gauge,
    /// Registered at the first scrape that knows it (the embedded store).
    storage_available: OnceLock<Gauge>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// A fresh recorder with the instrumentator's buckets and HELP lines.
    #[must_use]
    pub fn new() -> Telemetry {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(DURATION.into()), DURATION_BUCKETS)
            .and_then(|b| b.set_buckets_for_metric(Matcher::Full(HIGHR.into()), HIGHR_BUCKETS))
            .expect("bucket lists are not empty")
            .build_recorder();
        let help = |text: &'static str| SharedString::const_str(text);
        for &(name, text) in COUNTERS {
            recorder.describe_counter(KeyName::from_const_str(name), None, help(text));
        }
        for &(name, text) in HISTOGRAMS {
            recorder.describe_histogram(KeyName::from_const_str(name), None, help(text));
        }
        for &(name, text) in GAUGES {
            recorder.describe_gauge(KeyName::from_const_str(name), None, help(text));
        }
        let gauge =
            |name: &'static str| recorder.register_gauge(&Key::from_static_name(name), &METADATA);
        let shop = ShopHandles {
            chat_connections: gauge("shopd_chat_connections"),
            chat_rooms: gauge("shopd_chat_rooms"),
            chat_messages: recorder.register_counter(
                &Key::from_static_name("shopd_chat_messages_total"),
                &METADATA,
            ),
            chat_dropped: DROP_REASONS
                .iter()
                .map(|&reason| {
                    let key = Key::from_parts(CHAT_DROPPED, vec![Label::new("reason", reason)]);
                    recorder.register_counter(&key, &METADATA)
                })
                .collect(),
            chat_bus: OnceLock::new(),
            chat_jetstream: OnceLock::new(),
            rejected: Rejected::ALL
                .iter()
                .map(|reason| {
                    let key = Key::from_parts(REJECTED, vec![Label::new("reason", reason.label())]);
                    recorder.register_counter(&key, &METADATA)
                })
                .collect(),
            chat_history: [
                gauge("shopd_chat_history_rooms"),
                gauge("shopd_chat_history_lines"),
                gauge("shopd_chat_history_bytes"),
            ],
            chat_resumes: ["complete", "incomplete"].map(|result| {
                let key = Key::from_parts(CHAT_RESUMES, vec![Label::new("result", result)]);
                recorder.register_counter(&key, &METADATA)
            }),
            items: gauge("shopd_items"),
            carts: gauge("shopd_carts"),
            idempotency_keys: gauge(IDEMPOTENCY_KEYS),
            idempotency: [
                Key::from_static_name(IDEMPOTENCY_REPLAYS),
                Key::from_parts(
                    IDEMPOTENCY_CONFLICTS,
                    vec![Label::new("reason", "in_flight")],
                ),
                Key::from_parts(
                    IDEMPOTENCY_CONFLICTS,
                    vec![Label::new("reason", "mismatch")],
                ),
            ]
            .map(|key| recorder.register_counter(&key, &METADATA)),
            storage_bytes: gauge("shopd_storage_bytes"),
            store_up: gauge(STORE_UP),
            storage_available: OnceLock::new(),
        };
        let highr = recorder.register_histogram(&Key::from_static_name(HIGHR), &METADATA);
        Telemetry {
            inner: Arc::new(Inner {
                handle: recorder.handle(),
                recorder,
                highr,
                routes: (0..SLOTS).map(|_| OnceLock::new()).collect(),
                sizes: Mutex::new(Vec::new()),
                shop,
            }),
        }
    }

    /// Counts one refusal by a per-client limit.
    pub fn record_rejected(&self, reason: Rejected) {
        if let Some(counter) = self.inner.shop.rejected.get(reason as usize) {
            counter.increment(1);
        }
    }

    /// Counts what the idempotency layer did with a keyed write.
    pub fn record_idempotency(&self, outcome: IdempotencyOutcome) {
        let index = match outcome {
            IdempotencyOutcome::Replay => 0,
            IdempotencyOutcome::InFlight => 1,
            IdempotencyOutcome::Mismatch => 2,
        };
        self.inner.shop.idempotency[index].increment(1);
    }

    /// Records one answered HTTP request under its route template.
    pub fn record_request(
        &self,
        handler: &'static str,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let seconds = elapsed.as_secs_f64();
        self.with_route(
            handler,
            method_index(method),
            class_index(status),
            |route| {
                route.requests.increment(1);
                route.duration.record(seconds);
                let sizes = &route.sizes;
                sizes.requests.fetch_add(1, Ordering::Relaxed);
                sizes
                    .request_bytes
                    .fetch_add(request_bytes, Ordering::Relaxed);
                sizes
                    .response_bytes
                    .fetch_add(response_bytes, Ordering::Relaxed);
            },
        );
        self.inner.highr.record(seconds);
    }

    /// Runs `f` on the handles of a label set, registering them on first use.
    ///
    /// Open addressing over `OnceLock` slots: a hit costs one hash and an
    /// atomic load; a slot, once taken, never changes. Handlers are
    /// compared by address: the same template at two addresses merely
    /// takes two slots over the same registered series.
    fn with_route(
        &self,
        handler: &'static str,
        method: u8,
        class: u8,
        f: impl FnOnce(&RouteHandles),
    ) {
        let key = (handler.as_ptr() as u64)
            ^ ((handler.len() as u64) << 40)
            ^ (u64::from(method) << 56)
            ^ (u64::from(class) << 60);
        let start = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize;
        for probe in 0..SLOTS {
            let slot = &self.inner.routes[(start + probe) % SLOTS];
            let route = slot.get_or_init(|| self.register(handler, method, class));
            if std::ptr::eq(route.handler, handler)
                && route.method == method
                && route.class == class
            {
                return f(route);
            }
        }
        // Unreachable with the bounded label set; stay correct regardless.
        f(&self.register(handler, method, class));
    }

    fn register(&self, handler: &'static str, method: u8, class: u8) -> RouteHandles {
        let handler_label = Label::from_static_parts("handler", handler);
        let method_label = Label::from_static_parts("method", METHODS[usize::from(method)]);
        let requests = Key::from_parts(
            REQUESTS,
            vec![
                handler_label.clone(),
                method_label.clone(),
                Label::from_static_parts("status", CLASSES[usize::from(class)]),
            ],
        );
        let duration = Key::from_parts(DURATION, vec![handler_label, method_label]);
        let mut sizes = self
            .inner
            .sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let sizes = match sizes.iter().find(|(name, _)| *name == handler) {
            Some((_, found)) => found.clone(),
            None => {
                let fresh = Arc::new(Sizes::default());
                sizes.push((handler, fresh.clone()));
                fresh
            }
        };
        RouteHandles {
            handler,
            method,
            class,
            requests: self.inner.recorder.register_counter(&requests, &METADATA),
            duration: self.inner.recorder.register_histogram(&duration, &METADATA),
            sizes,
        }
    }

    /// Folds recorded samples into their buckets; run every few seconds.
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// The text exposition, with shopd's figures as of now.
    #[must_use]
    pub fn render(&self, store: StoreStats, store_up: bool, chat: ChatStats) -> String {
        let shop = &self.inner.shop;
        shop.chat_connections.set(chat.connections as f64);
        shop.chat_rooms.set(chat.rooms as f64);
        shop.chat_messages.absolute(chat.messages);
        for (counter, &count) in shop.chat_dropped.iter().zip(&chat.dropped) {
            counter.absolute(count);
        }
        let history = chat.history;
        for (gauge, value) in
            shop.chat_history
                .iter()
                .zip([history.rooms, history.lines, history.bytes])
        {
            gauge.set(value as f64);
        }
        shop.chat_resumes[0].absolute(history.resumes_complete);
        shop.chat_resumes[1].absolute(history.resumes_incomplete);
        if let Some(bus) = chat.bus {
            let (connected, slow) = shop.chat_bus.get_or_init(|| {
                let recorder = &self.inner.recorder;
                (
                    recorder.register_gauge(&Key::from_static_name(CHAT_BUS_CONNECTED), &METADATA),
                    recorder.register_counter(&Key::from_static_name(CHAT_BUS_SLOW), &METADATA),
                )
            });
            connected.set(if bus.connected { 1.0 } else { 0.0 });
            slow.absolute(bus.slow_consumers);
            if let Some(errors) = bus.history_errors {
                let counters = shop.chat_jetstream.get_or_init(|| {
                    JournalOp::ALL
                        .iter()
                        .map(|op| {
                            let key = Key::from_parts(
                                CHAT_JETSTREAM_ERRORS,
                                vec![Label::new("op", op.label())],
                            );
                            self.inner.recorder.register_counter(&key, &METADATA)
                        })
                        .collect()
                });
                for (counter, &count) in counters.iter().zip(&errors) {
                    counter.absolute(count);
                }
            }
        }
        shop.items.set(store.items as f64);
        shop.carts.set(store.carts as f64);
        shop.idempotency_keys.set(store.idempotency_keys as f64);
        if let Some(bytes) = store.storage_bytes {
            shop.storage_bytes.set(bytes as f64);
        }
        shop.store_up.set(if store_up { 1.0 } else { 0.0 });
        if let Some(bytes) = store.available_bytes {
            shop.storage_available
                .get_or_init(|| {
                    self.inner
                        .recorder
                        .register_gauge(&Key::from_static_name(STORAGE_AVAILABLE), &METADATA)
                })
                .set(bytes as f64);
        }
        let mut out = self.inner.handle.render();
        self.render_sizes(&mut out);
        if let Some(sample) = process::sample() {
            process::render(&mut out, &sample);
        }
        out
    }
}

#[cfg(test)]
mod tests;
