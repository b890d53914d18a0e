//! `GET /metrics`: the Prometheus text exposition of [`crate::metrics`],
//! with the store's sizes as last refreshed and the chat's as of now.

use warp::http::StatusCode;
use warp::reply::Response;

use super::error::ApiError;
use super::router::Call;

/// Prometheus metrics in the text exposition format.
///
/// The names and labels of prometheus-fastapi-instrumentator
/// (`http_requests_total{handler, method, status}`,
/// `http_request_duration_seconds`, ...), labelled by route template, plus
/// `process_*` and shopd's own `shopd_*` metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain",
            example = "# HELP shopd_items Items that are not deleted.\n# TYPE shopd_items gauge\nshopd_items 3\n"),
    ),
)]
pub(super) async fn metrics<S>(call: Call<S>) -> Result<Response, ApiError> {
    // This request itself is counted after it rendered, as the
    // instrumentator does.
    let state = call.state();
    let text = state.telemetry.render(
        state.stats.get(),
        state.stats.store_up(),
        state.rooms.stats(),
    );
    Ok(super::reply::typed(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    ))
}
