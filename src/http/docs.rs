//! `GET /docs/`: Swagger UI over `/openapi.json`, from assets built into the
//! binary, so the page works offline.

use std::sync::Arc;

use utoipa_swagger_ui::Config;
use warp::http::{HeaderValue, Uri, header};
use warp::reply::{Reply, Response};

use super::error::ApiError;
use super::router::Call;

/// `GET /docs` (redirected to `/docs/`) and `GET /docs/{file}`.
pub(super) async fn serve<S>(call: Call<S>) -> Result<Response, ApiError> {
    // The page's links are relative: it must be seen under `/docs/`.
    if call.path() == "/docs" {
        return Ok(warp::redirect::temporary(Uri::from_static("/docs/")).into_response());
    }
    // Swagger UI's settings: our document, and no calls to an online validator.
    let config = Arc::new(
        Config::from("/openapi.json")
            .validator_url("none")
            .try_it_out_enabled(true)
            .display_request_duration(true),
    );
    Ok(asset(call.param(0), config))
}

/// A file of Swagger UI (`""` is its `index.html`), or 404.
fn asset(path: &str, config: Arc<Config<'static>>) -> Response {
    let file = match utoipa_swagger_ui::serve(path, config) {
        Ok(Some(file)) => file,
        Ok(None) => return ApiError::NotFound("Not Found".into()).into_response(),
        Err(err) => {
            // Only a broken build could get here (the assets are compiled in).
            tracing::error!(error = %err, path, "cannot serve a Swagger UI file");
            return ApiError::NotFound("Not Found".into()).into_response();
        }
    };
    let mut response = Response::new(file.bytes.into_owned().into());
    if let Ok(content_type) = HeaderValue::from_str(&file.content_type) {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    if file.gzpipped {
        response
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    response
}
