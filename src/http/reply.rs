//! Building replies: JSON bodies with their status and headers.

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// A reply with the given status, body and content type.
pub fn typed(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<warp::hyper::body::Bytes>,
) -> Response {
    let mut response = Response::new(body.into().into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON reply with the given status.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    // Our values (numbers, strings, lists) always serialize.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    typed(status, "application/json", body)
}

/// A 201 JSON reply pointing at the new resource.
pub fn created<T: Serialize + ?Sized>(location: String, value: &T) -> Response {
    let mut response = json(StatusCode::CREATED, value);
    if let Ok(location) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// An empty 204 reply (a preflight's answer).
pub fn no_content() -> Response {
    let mut response = Response::new(warp::hyper::body::Bytes::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}
