//! The request metrics (by route label) and the access log: one tracing
//! event per answered request, under the target `shopd::access` at INFO
//! (`log_level = "info,shopd::access=warn"` silences it), written by the
//! same non-blocking writer as every other log line:
//!
//! ```text
//! 2026-11-28T02:24:12.123456Z  INFO shopd::access: method=GET path="/item/1" status=200 micros=12
//! ```

use super::{Head, Routed};
use crate::metrics::Telemetry;

/// Records every answered request. Cheap to clone.
#[derive(Clone)]
pub struct Measure {
    telemetry: Telemetry,
}

impl Measure {
    pub fn new(telemetry: Telemetry) -> Measure {
        Measure { telemetry }
    }

    /// Counts and times `routed`, the answer to `head` for `path`, and logs it.
    pub fn record(&self, head: &Head, path: &str, routed: &Routed) {
        let elapsed = head.started.elapsed();
        let status = routed.response.status();
        let response_bytes = http_body::Body::size_hint(routed.response.body())
            .exact()
            .unwrap_or(0);
        self.telemetry.record_request(
            routed.handler,
            &head.method,
            status,
            elapsed,
            head.request_bytes.unwrap_or(0),
            response_bytes,
        );
        tracing::info!(
            target: "shopd::access",
            method = %head.method,
            path,
            status = status.as_u16(),
            micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
    }
}
