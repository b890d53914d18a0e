//! What wraps every route, in one place: the router hands each answered
//! request to [`Layers::finish`], whichever route took it (or none did).
//! A cross-cutting concern (CORS headers, per-client limits, idempotency
//! keys, preconditions) is added here once, as a field of [`Layers`] and a
//! step in `finish` (or, for what must run before the handler, in
//! `super::router::Router::call`), and so applies to every spelling of every
//! path alike.

mod access;
mod cors;
pub mod idempotency;
mod measure;
pub mod rate;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use warp::http::{HeaderMap, HeaderValue, Method};
use warp::reply::Response;

pub use self::cors::{Cors, Origins};
pub use self::idempotency::Idempotency;
use self::rate::RateLimit;
use super::ApiError;
use super::client::TrustedProxies;
use crate::metrics::{Rejected, Telemetry};

/// A response with the label of the route that produced it (its template,
/// such as `/item/{id}`), or `none` when no route matched.
pub struct Routed {
    /// The route's label, the `handler` label of the metrics.
    pub handler: &'static str,
    /// The reply.
    pub response: Response,
    /// The methods its path takes (its `Allow`), when known and needed.
    pub allow: Option<HeaderValue>,
}

/// What the layers need to know of a request besides its path.
pub struct Head {
    /// When the router first saw it.
    pub started: Instant,
    /// Its method.
    pub method: Method,
    /// Its declared `Content-Length`, if any.
    pub request_bytes: Option<u64>,
    /// Its client's address (see [`super::client`]), when the connection
    /// loop gave the socket peer.
    pub client: Option<IpAddr>,
    /// Its `Origin`, when CORS allows it.
    pub origin: Option<HeaderValue>,
    /// Whether it is a CORS preflight.
    pub preflight: bool,
}

/// What the operator set for the layers.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the client.
    pub trusted_proxies: TrustedProxies,
    /// Origins whose pages may call the API (empty: no CORS).
    pub cors_allowed_origins: Origins,
    /// Requests a second per client on average, and at once; `None`: no
    /// rate limit.
    pub rate_limit: Option<(u32, u32)>,
    /// How long an idempotency key and its answer are kept.
    pub idempotency_ttl: Duration,
}

/// Routes never rate limited: probes and scrapes must see a busy shopd.
pub const UNLIMITED: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The layers every request goes through, in order. Cheap to clone.
#[derive(Clone)]
pub struct Layers {
    measure: measure::Measure,
    trusted_proxies: Arc<TrustedProxies>,
    cors: Arc<Cors>,
    rate: Option<Arc<RateLimit>>,
    idempotency: Arc<Idempotency>,
    telemetry: Telemetry,
}

impl Layers {
    /// The layers of an API measured into `telemetry`, as `options` say.
    #[must_use]
    pub fn new(telemetry: Telemetry, options: Options) -> Layers {
        Layers {
            measure: measure::Measure::new(telemetry.clone()),
            rate: options
                .rate_limit
                .map(|(per_sec, burst)| Arc::new(RateLimit::new(per_sec, burst))),
            idempotency: Arc::new(Idempotency::new(options.idempotency_ttl, telemetry.clone())),
            telemetry,
            trusted_proxies: Arc::new(options.trusted_proxies),
            cors: Arc::new(Cors::new(options.cors_allowed_origins)),
        }
    }

    /// Takes a request of `client` to the route labelled `handler` out of
    /// its rate: a 429 when it is over it (counted, not logged).
    pub fn admit(&self, handler: &str, client: Option<IpAddr>) -> Result<(), ApiError> {
        let (Some(rate), Some(client)) = (&self.rate, client) else {
            return Ok(());
        };
        if UNLIMITED.contains(&handler) {
            return Ok(());
        }
        rate.take(client).map_err(|wait| {
            self.telemetry.record_rejected(Rejected::Rate);
            // Whole seconds, rounded up: a client that waits that long is served.
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            ApiError::TooManyRequests(secs.max(1))
        })
    }

    /// The idempotency layer, which runs around write handlers.
    #[must_use]
    pub fn idempotency(&self) -> &Idempotency {
        &self.idempotency
    }

    /// The CORS layer.
    #[must_use]
    pub fn cors(&self) -> &Cors {
        &self.cors
    }

    /// The client of a request from `peer` with `headers`.
    #[must_use]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.trusted_proxies.client(peer, headers)
    }

    /// Completes `routed`, the answer to the request `head` for `path`:
    /// adds its CORS headers, measures it and logs it.
    #[must_use]
    pub fn finish(&self, head: &Head, path: &str, mut routed: Routed) -> Response {
        self.cors.decorate(
            &mut routed.response,
            head.origin.clone(),
            routed.allow.take(),
            head.preflight,
        );
        self.measure.record(head, path, &routed);
        routed.response
    }
}
