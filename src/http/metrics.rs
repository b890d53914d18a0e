//! `GET /metrics`: the Prometheus text exposition of [`crate::metrics`],
//! with the store's sizes as last refreshed and the chat's as of now.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;

use super::{Routed, State};
use crate::store::Store;

/// `GET /metrics`. This request itself is counted after it rendered, as the
/// instrumentator does.
pub fn route<S: Store>(state: State<S>) -> BoxedFilter<(Routed,)> {
    warp::path!("metrics")
        .and(warp::get())
        .map(move || {
            let text = state
                .telemetry
                .render(state.stats.get(), state.rooms.stats());
            Routed {
                handler: "/metrics",
                response: super::reply::typed(
                    StatusCode::OK,
                    "text/plain; version=0.0.4; charset=utf-8",
                    text,
                ),
            }
        })
        .boxed()
}
