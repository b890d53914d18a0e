//! Prometheus metrics under prometheus-fastapi-instrumentator's names and
//! labels, rendered by shopd's own `GET /metrics` route.
//!
//! Each server owns its recorder (no process-global state), so several
//! servers in one process, as in the tests, keep separate counts.

use std::sync::Arc;
use std::time::Duration;

use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, StatusCode, header};
use warp::reply::Response;

use crate::http::{Routed, State};
use crate::store::Store;

const METADATA: Metadata<'static> = Metadata::new("shopd", Level::INFO, Some("shopd::metrics"));

/// Buckets of `http_request_duration_seconds`, as the instrumentator has them.
const DURATION_BUCKETS: &[f64] = &[0.1, 0.5, 1.0];
/// Buckets of `http_request_duration_highr_seconds`.
const HIGHR_BUCKETS: &[f64] = &[
    0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0,
    7.5, 10.0, 30.0, 60.0,
];

/// The metrics of one server; a cheap handle.
#[derive(Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    highr: Histogram,
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// A fresh recorder with the instrumentator's buckets.
    pub fn new() -> Telemetry {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                DURATION_BUCKETS,
            )
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("http_request_duration_highr_seconds".into()),
                    HIGHR_BUCKETS,
                )
            })
            .expect("bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        let highr = recorder.register_histogram(
            &Key::from_name("http_request_duration_highr_seconds"),
            &METADATA,
        );
        Telemetry {
            inner: Arc::new(Inner {
                recorder,
                handle,
                highr,
            }),
        }
    }

    fn counter(&self, name: &'static str, labels: Vec<Label>) -> Counter {
        self.inner
            .recorder
            .register_counter(&Key::from_parts(name, labels), &METADATA)
    }

    fn histogram(&self, name: &'static str, labels: Vec<Label>) -> Histogram {
        self.inner
            .recorder
            .register_histogram(&Key::from_parts(name, labels), &METADATA)
    }

    /// Records one answered HTTP request.
    pub fn record_request(
        &self,
        handler: &'static str,
        method: &Method,
        status: StatusCode,
        elapsed: Duration,
        request_bytes: u64,
        response_bytes: u64,
    ) {
        let method = method_label(method);
        let seconds = elapsed.as_secs_f64();
        self.counter(
            "http_requests_total",
            vec![
                Label::from_static_parts("handler", handler),
                Label::from_static_parts("method", method),
                Label::from_static_parts("status", status_class(status)),
            ],
        )
        .increment(1);
        self.histogram(
            "http_request_duration_seconds",
            vec![
                Label::from_static_parts("handler", handler),
                Label::from_static_parts("method", method),
            ],
        )
        .record(seconds);
        self.inner.highr.record(seconds);
        self.histogram(
            "http_request_size_bytes",
            vec![Label::from_static_parts("handler", handler)],
        )
        .record(request_bytes as f64);
        self.histogram(
            "http_response_size_bytes",
            vec![Label::from_static_parts("handler", handler)],
        )
        .record(response_bytes as f64);
    }

    /// Folds recorded samples into their buckets; run every few seconds.
    pub fn run_upkeep(&self) {
        self.inner.handle.run_upkeep();
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        self.inner.handle.render()
    }
}

/// The method label; unusual methods share one value, so clients cannot
/// grow the label set.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

/// `GET /metrics`: the Prometheus text exposition.
pub fn route<S: Store>(state: State<S>) -> BoxedFilter<(Routed,)> {
    warp::path!("metrics")
        .and(warp::get())
        .map(move || {
            let mut response = Response::new(state.telemetry.render().into());
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            Routed {
                handler: "/metrics",
                response,
            }
        })
        .boxed()
}
