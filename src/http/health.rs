//! Health for load balancers and orchestrators: `GET /healthz` (the process
//! serves HTTP) and `GET /readyz` (the store answers and the chat bus, if
//! any, is connected, so requests can succeed).

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;

use super::error::{ApiError, SentenceBody};
use super::reply::json;
use super::{Routed, State, with_state};
use crate::store::Store;

/// The longest `/readyz` waits for the store before it answers 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The body of a healthy answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Healthy {
    /// `ok`.
    status: &'static str,
}

/// `GET /healthz` and `GET /readyz`.
pub fn routes<S: Store>(state: State<S>) -> BoxedFilter<(Routed,)> {
    let healthz = warp::path!("healthz").and(warp::get()).map(|| Routed {
        handler: "/healthz",
        response: json(StatusCode::OK, &Healthy { status: "ok" }),
    });
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_state(state))
        .then(ready)
        .map(|result: Result<(), ApiError>| Routed {
            handler: "/readyz",
            response: match result {
                Ok(()) => json(StatusCode::OK, &Healthy { status: "ok" }),
                Err(err) => err.into_response(),
            },
        });
    healthz.or(readyz).unify().boxed()
}

/// Whether the process is alive and serving HTTP.
///
/// Always 200 while shopd runs: for liveness probes.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses((status = 200, description = "shopd is serving", body = Healthy)),
)]
#[allow(dead_code)]
pub(super) fn healthz() {}

/// Whether requests can succeed now: the store answered a trivial request
/// within 2 seconds and, with a chat bus, the bus is connected.
///
/// For readiness probes and load balancers' health checks: an instance
/// whose database is unreachable answers 503 and should get no traffic
/// until it answers 200 again, which it does by itself once the database is
/// back.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready to serve", body = Healthy),
        (status = 503, description = "A dependency is down; `detail` names it", body = SentenceBody,
            example = json!({"detail": "The store is unavailable: cannot reach the database"})),
    ),
)]
async fn ready<S: Store>(state: State<S>) -> Result<(), ApiError> {
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => chat_bus_ready(&state),
        Ok(Err(err)) => Err(ApiError::Unavailable(format!(
            "The store is unavailable: {}",
            describe(&err)
        ))),
        Err(_) => Err(ApiError::Unavailable(format!(
            "The store is unavailable: no answer within {} s",
            READY_TIMEOUT.as_secs()
        ))),
    }
}

/// Ready unless there is a chat bus and it is disconnected.
fn chat_bus_ready<S: Store>(state: &State<S>) -> Result<(), ApiError> {
    match state.rooms.bus() {
        Some(bus) if !bus.stats().connected => Err(ApiError::Unavailable(format!(
            "The chat bus is unavailable: not connected to NATS at {}",
            bus.describe()
        ))),
        _ => Ok(()),
    }
}

/// The innermost cause of `err`, which names what is down without
/// internals such as SQL.
fn describe(err: &(dyn std::error::Error + 'static)) -> String {
    let mut last = err;
    while let Some(next) = last.source() {
        last = next;
    }
    last.to_string()
}
