//! The HTTP API: the route table, handlers per resource, the one error
//! mapping, request extraction, and the layers that label, measure and log
//! every request by its route template.

pub mod admin;
mod carts;
pub mod chat_origin;
mod chat_page;
pub mod client;
mod docs;
pub mod error;
mod etag;
mod extract;
mod health;
mod items;
pub mod layers;
mod metrics;
mod openapi;
mod query;
pub(crate) mod reply;
pub mod router;
pub mod routes;
pub mod server;
mod watch;

use warp::filters::BoxedFilter;
use warp::reply::Response;

pub use error::ApiError;

use crate::chat::Rooms;
use crate::metrics::Telemetry;
use crate::shutdown::Draining;
use crate::store::{StatsCache, Store};

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
    /// What the layers around every route were set to do.
    pub layers: layers::Options,
}

/// The whole HTTP API (chat's WebSocket upgrade excluded), routed by the
/// table of [`routes`], measured and logged.
pub fn api<S: Store>(state: State<S>) -> BoxedFilter<(Response,)> {
    let table = router::Table::new(routes::table(&state.access));
    let document = openapi::document(
        &table,
        &state.access,
        openapi::Bounds {
            max_list_limit: state.max_list_limit,
            max_name_chars: state.max_name_chars,
        },
    );
    let layers = layers::Layers::new(state.telemetry.clone(), state.layers.clone());
    router::filter(table, state, document, layers)
}
