//! Health for load balancers and orchestrators: `GET /healthz` (the process
//! serves HTTP), `GET /readyz` (the store answers, so API requests can
//! succeed; the chat bus's state rides along in the body) and
//! `GET /readyz/chat` (chat rooms span instances: the bus, if any, is
//! connected). A bus outage never makes an instance unready for the API:
//! every instance shares the bus, so that would take the whole shop down.

use std::time::Duration;

use serde::Serialize;
use utoipa::ToSchema;
use warp::http::StatusCode;
use warp::reply::Response;

use super::State;
use super::error::{ApiError, SentenceBody};
use super::reply::json;
use super::router::Call;
use crate::store::Store;

/// The longest `/readyz` waits for the store before it answers 503.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// The body of a healthy answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok", "chat_bus": "connected"}))]
pub struct Healthy {
    /// `ok`.
    status: &'static str,
    /// With `--chat-bus`: whether this instance is connected to the bus
    /// now. Absent without a bus. A disconnected bus leaves the API ready:
    /// chat rooms are then local to each instance until it returns.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>, example = "connected")]
    chat_bus: Option<&'static str>,
}

impl Healthy {
    /// `ok`, with the chat bus's state when there is a bus.
    fn now<S>(state: &State<S>) -> Healthy {
        Healthy {
            status: "ok",
            chat_bus: state.rooms.bus().map(|bus| {
                if bus.stats().connected {
                    "connected"
                } else {
                    "disconnected"
                }
            }),
        }
    }
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
pub(super) async fn healthz<S>(_call: Call<S>) -> Result<Response, ApiError> {
    Ok(json(
        StatusCode::OK,
        &Healthy {
            status: "ok",
            chat_bus: None,
        },
    ))
}

/// Whether API requests can succeed now: the store answered a trivial
/// request within 2 seconds.
///
/// For readiness probes and load balancers' health checks: an instance
/// whose database is unreachable answers 503 and should get no traffic
/// until it answers 200 again, which it does by itself once the database is
/// back. From a stop signal on (SIGTERM's drain included) it answers 503
/// while requests are still served. With a chat bus, the body says whether it is `connected`; a bus
/// outage does not make the instance unready (see `GET /readyz/chat`).
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready to serve", body = Healthy),
        (status = 503, description = "A dependency is down, or shopd is stopping; `detail` says which", body = SentenceBody,
            example = json!({"detail": "The store is unavailable: cannot reach the database"})),
    ),
)]
pub(super) async fn ready<S: Store>(call: Call<S>) -> Result<Response, ApiError> {
    let state = call.state();
    stopping(state)?;
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => Ok(json(StatusCode::OK, &Healthy::now(state))),
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

/// Whether chat rooms reach every instance now: there is no chat bus, or
/// it is connected.
///
/// For the health check of a load balancer's chat backend: while the bus
/// is down, rooms are local to each instance, so a balancer that has an
/// instance still connected should send new chats there.
#[utoipa::path(
    get,
    path = "/readyz/chat",
    tag = "operations",
    operation_id = "readyz_chat",
    responses(
        (status = 200, description = "Chat rooms span every instance (or there is one instance)", body = Healthy),
        (status = 503, description = "The chat bus is disconnected; `detail` names it", body = SentenceBody,
            example = json!({"detail": "The chat bus is unavailable: not connected to NATS at nats://127.0.0.1:4222"})),
    ),
)]
pub(super) async fn chat_ready<S>(call: Call<S>) -> Result<Response, ApiError> {
    let state = call.state();
    stopping(state)?;
    match state.rooms.bus() {
        Some(bus) if !bus.stats().connected => Err(ApiError::Unavailable(format!(
            "The chat bus is unavailable: not connected to NATS at {}",
            bus.describe()
        ))),
        _ => Ok(json(StatusCode::OK, &Healthy::now(state))),
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

/// Not ready once a stop began: during the drain requests are still served,
/// but load balancers should send no new ones.
fn stopping<S>(state: &State<S>) -> Result<(), ApiError> {
    if state.draining.is_draining() {
        Err(ApiError::Unavailable(
            "shopd is shutting down; requests are still served until the drain ends".into(),
        ))
    } else {
        Ok(())
    }
}
