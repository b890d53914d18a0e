//! Building replies: JSON bodies with their status and headers.

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

/// A JSON reply with the given status.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    // Our values (numbers, strings, lists) always serialize.
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec());
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 201 JSON reply pointing at the new resource.
pub fn created<T: Serialize + ?Sized>(location: String, value: &T) -> Response {
    let mut response = json(StatusCode::CREATED, value);
    if let Ok(location) = HeaderValue::try_from(location) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}
