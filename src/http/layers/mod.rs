//! What wraps every route, in one place: the router hands each answered
//! request to [`Layers::finish`], whichever route took it (or none did).
//! A cross-cutting concern (CORS headers, per-client limits, idempotency
//! keys, preconditions) is added here once, as a field of [`Layers`] and a
//! step in `finish` (or, for what must run before the handler, in
//! `super::router::Router::call`), and so applies to every spelling of every
//! path alike.

mod access;
mod measure;

use std::time::Instant;

use warp::http::Method;
use warp::reply::Response;

use crate::metrics::Telemetry;

/// A response with the label of the route that produced it (its template,
/// such as `/item/{id}`), or `none` when no route matched.
pub struct Routed {
    /// The route's label, the `handler` label of the metrics.
    pub handler: &'static str,
    /// The reply.
    pub response: Response,
}

/// What the layers need to know of a request besides its path.
pub struct Head {
    /// When the router first saw it.
    pub started: Instant,
    /// Its method.
    pub method: Method,
    /// Its declared `Content-Length`, if any.
    pub request_bytes: Option<u64>,
}

/// The layers every request goes through, in order. Cheap to clone.
#[derive(Clone)]
pub struct Layers {
    measure: measure::Measure,
}

impl Layers {
    /// The layers of an API measured into `telemetry`.
    #[must_use]
    pub fn new(telemetry: Telemetry) -> Layers {
        Layers {
            measure: measure::Measure::new(telemetry),
        }
    }

    /// Completes `routed`, the answer to the request `head` for `path`:
    /// measures it and logs it.
    #[must_use]
    pub fn finish(&self, head: &Head, path: &str, routed: Routed) -> Response {
        self.measure.record(head, path, &routed);
        routed.response
    }
}
