//! The HTTP API: routes per resource, the one error mapping, request
//! extraction, and the outer layer that labels, measures and logs every
//! request by its route template.

mod access;
pub mod admin;
mod allow;
mod carts;
mod chat_page;
mod direct;
mod docs;
pub mod error;
mod extract;
mod health;
mod items;
mod metrics;
mod openapi;
mod query;
pub(crate) mod reply;
pub mod server;
mod watch;

use std::convert::Infallible;
use std::time::Instant;

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::Method;
use warp::reply::Response;

pub use direct::Direct;
pub use error::ApiError;

use crate::chat::Rooms;
use crate::metrics::Telemetry;
use crate::shutdown::Draining;
use crate::store::{StatsCache, Store};

/// A response with the template of the route that produced it
/// (`/item/{id}`), or `none` when no route matched.
pub struct Routed {
    /// The route template, the `handler` label of the metrics.
    pub handler: &'static str,
    /// The reply.
    pub response: Response,
}

/// What handlers share: the store and the request limits.
#[derive(Clone)]
pub struct State<S> {
    /// Items and carts.
    pub store: S,
    /// Largest request body accepted.
    pub max_body_bytes: u64,
    /// Largest `limit` of a list.
    pub max_list_limit: usize,
    /// Longest item name, in characters.
    pub max_name_chars: usize,
    /// Most distinct lines in one cart.
    pub max_cart_lines: usize,
    /// Metrics, for `/metrics`.
    pub telemetry: Telemetry,
    /// The store's sizes as last refreshed, for `/metrics`.
    pub stats: StatsCache,
    /// The admin token and what it guards.
    pub access: admin::Access,
    /// Chat rooms, for their figures in `/metrics`.
    pub rooms: Rooms,
    /// Set once a stop began: `/readyz` answers 503 while requests are
    /// still served.
    pub draining: Draining,
}

/// Gives each request a clone of the state.
fn with_state<T: Clone + Send>(
    state: T,
) -> impl Filter<Extract = (T,), Error = Infallible> + Clone {
    warp::any().map(move || state.clone())
}

/// Turns a handler's result into a labelled reply.
fn answer(handler: &'static str) -> impl Fn(Result<Response, ApiError>) -> Routed + Clone {
    move |result| Routed {
        handler,
        response: result.unwrap_or_else(ApiError::into_response),
    }
}

/// The whole HTTP API (chat excluded), measured and logged: the hot reads
/// as a [`Direct`] router, everything else as warp filters.
pub struct Api {
    /// Every route, the direct ones included.
    pub routes: BoxedFilter<(Response,)>,
    /// The routes answered without the filter chain.
    pub direct: Direct,
}

/// The whole HTTP API (chat excluded), measured and logged.
pub fn api<S: Store>(state: State<S>) -> Api {
    let document = openapi::Document::new(openapi::Bounds {
        max_list_limit: state.max_list_limit,
        max_name_chars: state.max_name_chars,
    });
    let measure = Measure {
        telemetry: state.telemetry.clone(),
        access: access::AccessLog::start(),
        allow: document.allow(),
    };
    let direct = Direct::new(state.clone(), measure.clone());
    let routes = items::routes(state.clone())
        .or(carts::routes(state.clone()))
        .unify()
        .or(health::routes(state.clone()))
        .unify()
        .or(admin::routes(state.clone()))
        .unify()
        .or(metrics::route(state))
        .unify()
        .or(document.route())
        .unify()
        .or(docs::routes())
        .unify()
        .or(chat_page::routes())
        .unify()
        .recover(|rejection| async move { Ok::<_, Infallible>(unmatched(&rejection)) })
        .unify();
    let routes = warp::any()
        .map(Instant::now)
        .and(warp::method())
        .and(warp::path::full())
        .and(
            warp::header::optional::<u64>("content-length")
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(routes)
        .map(
            move |start: Instant,
                  method: Method,
                  path: warp::path::FullPath,
                  request_bytes: Option<u64>,
                  routed: Routed| {
                measure.finish(start, &method, path.as_str(), request_bytes, routed)
            },
        )
        .boxed();
    Api { routes, direct }
}

/// What every answered request goes through last: the `Allow` of a 405,
/// the request metrics and the access log.
#[derive(Clone)]
struct Measure {
    telemetry: Telemetry,
    access: access::AccessLog,
    allow: allow::Allow,
}

impl Measure {
    /// Completes `routed`, the answer to a request that started at `start`,
    /// and records it.
    fn finish(
        &self,
        start: Instant,
        method: &Method,
        path: &str,
        request_bytes: Option<u64>,
        routed: Routed,
    ) -> Response {
        // A 405 names the methods its path takes (RFC 9110).
        let routed = self.allow.apply(path, routed);
        let elapsed = start.elapsed();
        let status = routed.response.status();
        let response_bytes = http_body::Body::size_hint(routed.response.body())
            .exact()
            .unwrap_or(0);
        self.telemetry.record_request(
            routed.handler,
            method,
            status,
            elapsed,
            request_bytes.unwrap_or(0),
            response_bytes,
        );
        self.access.record(
            method,
            path,
            status.as_u16(),
            u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX),
        );
        routed.response
    }
}

/// Answers a request no route took: 404, or 405 for a known path, labelled `none`.
fn unmatched(rejection: &warp::Rejection) -> Routed {
    let error = if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::MethodNotAllowed
    } else if rejection.is_not_found() {
        ApiError::NotFound("Not Found".into())
    } else {
        ApiError::BadRequest("Bad Request".into())
    };
    Routed {
        handler: "none",
        response: error.into_response(),
    }
}
