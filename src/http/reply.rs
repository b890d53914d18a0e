//! Building replies: JSON bodies with their status and headers.

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use crate::domain::etag;
use crate::store::Kept;

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

/// An empty 204 reply (a preflight's answer).
pub fn no_content() -> Response {
    let mut response = Response::new(warp::hyper::body::Bytes::new().into());
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// A write's answer as data (so it can be kept for replays of its
/// `Idempotency-Key`): `value` as JSON with `status`.
pub fn answer<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Kept {
    Kept {
        status: status.as_u16(),
        location: None,
        etag: None,
        body: serde_json::to_vec(value).unwrap_or_else(|_| b"null".to_vec()),
    }
}

/// [`answer`] with the ETag of its body.
pub fn tagged_answer<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Kept {
    let mut kept = answer(status, value);
    kept.etag = Some(etag::of_body(&kept.body));
    kept
}

/// The reply of a write's answer: a JSON body (none for a 304) and its
/// `Location` and `ETag`.
pub fn sent(kept: Kept) -> Response {
    let status = StatusCode::from_u16(kept.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = if kept.body.is_empty() && status == StatusCode::NOT_MODIFIED {
        let mut response = Response::default();
        *response.status_mut() = status;
        response
    } else {
        typed(status, "application/json", kept.body)
    };
    let headers = response.headers_mut();
    for (name, value) in [
        (header::LOCATION, &kept.location),
        (header::ETAG, &kept.etag),
    ] {
        if let Some(value) = value.as_deref().and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(name, value);
        }
    }
    response
}
