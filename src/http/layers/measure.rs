//! The request metrics (by route label) and the access log (one line per
//! answered request, see [`super::access`]).

use super::access::AccessLog;
use super::{Head, Routed};
use crate::metrics::Telemetry;

/// Records every answered request. Cheap to clone.
#[derive(Clone)]
pub struct Measure {
    telemetry: Telemetry,
    access: AccessLog,
}

impl Measure {
    /// Measures into `telemetry`; starts the access log's writer if the log
    /// filter lets its lines through.
    pub fn new(telemetry: Telemetry) -> Measure {
        Measure {
            telemetry,
            access: AccessLog::start(),
        }
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
        self.access.record(
            &head.method,
            path,
            status.as_u16(),
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
    }
}
