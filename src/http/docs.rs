//! `GET /docs/`: Swagger UI over `/openapi.json`, from assets built into the
//! binary, so the page works offline.

use std::sync::Arc;

use utoipa_swagger_ui::Config;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Uri, header};
use warp::path::{FullPath, Tail};
use warp::reply::{Reply, Response};

use super::Routed;
use super::error::ApiError;

/// `GET /docs` (redirected to `/docs/`) and `GET /docs/{file}`.
pub fn routes() -> BoxedFilter<(Routed,)> {
    // Swagger UI's settings: our document, and no calls to an online validator.
    let config = Arc::new(
        Config::from("/openapi.json")
            .validator_url("none")
            .try_it_out_enabled(true)
            .display_request_duration(true),
    );
    warp::path("docs")
        .and(warp::path::tail())
        .and(warp::path::full())
        .and(warp::get())
        .map(move |tail: Tail, full: FullPath| Routed {
            handler: "/docs",
            // The page's links are relative: it must be seen under `/docs/`.
            response: if full.as_str() == "/docs" {
                warp::redirect::temporary(Uri::from_static("/docs/")).into_response()
            } else {
                asset(tail.as_str(), config.clone())
            },
        })
        .boxed()
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
