//! The one place where failures become HTTP statuses, with FastAPI's body
//! shapes: `{"detail": "a sentence"}`, or for 422 a list of issues.

use serde::Serialize;
use utoipa::openapi::response::{Response as ResponseDoc, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoResponses, ToResponse, ToSchema};
use warp::http::StatusCode;
use warp::reply::Response;

use super::reply::json;
use crate::domain::Issue;
use crate::store::StoreError;

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No such resource (or no such route): 404.
    #[error("{0}")]
    NotFound(String),
    /// The resource is in a state that forbids the change: 304, no body.
    #[error("not modified")]
    NotModified,
    /// The request is malformed: 422 with one issue per problem.
    #[error("invalid request")]
    Invalid(Vec<Issue>),
    /// The body is over the configured limit: 413.
    #[error("Request body is larger than the limit of {0} bytes")]
    PayloadTooLarge(u64),
    /// A known route asked with another method: 405.
    #[error("Method Not Allowed")]
    MethodNotAllowed,
    /// The request is not even HTTP we understand (e.g. a bad header): 400.
    #[error("{0}")]
    BadRequest(String),
    /// The admin token is missing or wrong: 401 with `WWW-Authenticate`.
    #[error("Not authenticated")]
    Unauthorized,
    /// The request did not arrive whole within the request timeout: 408.
    #[error("The request did not arrive within {0} seconds")]
    RequestTimeout(u64),
    /// The request target is longer than hyper reads: 414.
    #[error("URI Too Long")]
    UriTooLong,
    /// Too many headers, or too many bytes of them: 431.
    #[error("Request Header Fields Too Large")]
    HeadersTooLarge,
    /// An `If-Match` precondition failed (the item changed): 412.
    #[error("{0}")]
    PreconditionFailed(String),
    /// The change would pass a bound of the resource (a full cart): 409.
    #[error("{0}")]
    Conflict(String),
    /// A request with the same `Idempotency-Key` still runs: 409 with
    /// `Retry-After: 1`.
    #[error("A request with this Idempotency-Key is still being processed; retry shortly")]
    KeyInFlight,
    /// The client is over its request rate: 429 with `Retry-After`, in
    /// whole seconds (at least 1).
    #[error("Too many requests from this client; retry after {0} seconds")]
    TooManyRequests(u64),
    /// The request is understood and refused (a chat upgrade from a page
    /// of an origin not allowed): 403.
    #[error("{0}")]
    Forbidden(String),
    /// A dependency (the database) cannot be reached now: 503. The store
    /// logs the outage once, not once per request.
    #[error("{0}")]
    Unavailable(String),
    /// Too much long work waits already (load shedding): 503 with
    /// `Retry-After` in seconds.
    #[error("{detail}")]
    Busy {
        detail: String,
        retry_after_secs: u64,
    },
    /// Storage failed: 500, logged with its cause.
    #[error("storage failure")]
    Storage(#[source] StoreError),
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::ItemNotFound(_)
            | StoreError::CartNotFound(_)
            | StoreError::ItemUnavailable(_) => ApiError::NotFound(err.to_string()),
            StoreError::ItemDeleted(_) => ApiError::NotModified,
            StoreError::CartFull { .. } => ApiError::Conflict(err.to_string()),
            // The idempotency layer replays the kept answer; if it cannot
            // yet, the client retries.
            StoreError::KeyTaken => ApiError::KeyInFlight,
            StoreError::PreconditionFailed(_) => ApiError::PreconditionFailed(err.to_string()),
            StoreError::Unavailable(_) => {
                ApiError::Unavailable("The store is unavailable; try again shortly".into())
            }
            StoreError::Busy { retry_after_secs } => ApiError::Busy {
                detail: err.to_string(),
                retry_after_secs,
            },
            StoreError::Backend(_) | StoreError::NotEmpty { .. } => ApiError::Storage(err),
        }
    }
}

impl From<Vec<Issue>> for ApiError {
    fn from(issues: Vec<Issue>) -> Self {
        ApiError::Invalid(issues)
    }
}

#[derive(Serialize)]
struct Detail<T> {
    detail: T,
}

/// The body of a 404, 405 or 413 reply, as the API document describes it.
#[derive(ToSchema)]
#[schema(as = HTTPError, example = json!({"detail": "Item 5 not found"}))]
pub struct SentenceBody {
    /// What went wrong, in one sentence.
    pub detail: String,
}

/// The body of a 422 reply, as the API document describes it (FastAPI's name).
#[derive(ToSchema)]
#[schema(as = HTTPValidationError)]
pub struct IssuesBody {
    /// One entry per problem found in the request.
    pub detail: Vec<Issue>,
}

// The replies below are referenced by the handlers' `#[utoipa::path]`
// annotations: each documents a body that `ApiError::into_response` makes.

fn json_response(description: &str, schema: &str, example: serde_json::Value) -> ResponseDoc {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .example(Some(example))
                .build(),
        )
        .build()
}

/// The 422 reply: one entry per problem of the request.
pub struct Invalid;

impl<'r> ToResponse<'r> for Invalid {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({"detail": [{
            "loc": ["query", "limit"],
            "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }]});
        let description = "The request's path, query or body is invalid";
        let response = json_response(description, "HTTPValidationError", example);
        ("ValidationFailed", response.into())
    }
}

/// The 413 reply: the body is over the configured limit.
pub struct TooLarge;

impl<'r> ToResponse<'r> for TooLarge {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({
            "detail": "Request body is larger than the limit of 1048576 bytes",
        });
        let description = "The body is larger than the limit; nothing was stored";
        let response = json_response(description, "HTTPError", example);
        ("PayloadTooLarge", response.into())
    }
}

/// The 401 reply: the admin token is missing or wrong.
pub struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({"detail": "Not authenticated"});
        let description = "The admin token is needed (`Authorization: Bearer TOKEN`) and was missing or wrong; the reply carries `WWW-Authenticate: Bearer`. Item writes need it only when the operator sets `protect_catalogue`.";
        let response = json_response(description, "HTTPError", example);
        ("Unauthorized", response.into())
    }
}

/// The 429 reply: the client is over `rate_limit_per_sec`.
pub struct TooManyRequests;

impl<'r> ToResponse<'r> for TooManyRequests {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({
            "detail": "Too many requests from this client; retry after 1 seconds",
        });
        let description = "The client (its address, see `trusted_proxies`) is over the operator's `rate_limit_per_sec`; `Retry-After` says in how many seconds a request will be served. Nothing was done.";
        let mut response = json_response(description, "HTTPError", example);
        response
            .headers
            .insert("Retry-After".into(), retry_after().into());
        ("TooManyRequests", response.into())
    }
}

/// A JSON `detail` reply with `Retry-After: secs` (a 409, 429 or 503).
fn retry_later(status: StatusCode, detail: String, secs: u64) -> Response {
    let mut response = json(status, &Detail { detail });
    response
        .headers_mut()
        .insert(warp::http::header::RETRY_AFTER, secs.into());
    response
}

/// The `Retry-After` header of a 409, 429 or 503, as documented.
pub(super) fn retry_after() -> utoipa::openapi::Header {
    utoipa::openapi::HeaderBuilder::new()
        .description(Some("Seconds until the client may send again"))
        .schema(Some(utoipa::openapi::schema::Object::with_type(
            utoipa::openapi::schema::Type::Integer,
        )))
        .build()
}

/// The 409 reply of a write whose `Idempotency-Key` still runs.
pub struct IdempotencyInFlight;

impl<'r> ToResponse<'r> for IdempotencyInFlight {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({
            "detail": ApiError::KeyInFlight.to_string(),
        });
        let description = "A request with the same `Idempotency-Key` is still being processed: retry after `Retry-After` seconds; nothing was done";
        let mut response = json_response(description, "HTTPError", example);
        response
            .headers
            .insert("Retry-After".into(), retry_after().into());
        ("IdempotencyInFlight", response.into())
    }
}

/// The 404 reply of the routes of one item: no item has the id. Inlined
/// in each route's responses, as a `(status = 404, ..)` entry would be.
pub struct ItemNotFound;

impl IntoResponses for ItemNotFound {
    fn responses() -> std::collections::BTreeMap<String, RefOr<ResponseDoc>> {
        let example = serde_json::json!({"detail": "Item 5 not found"});
        let response = json_response("No such item", "HTTPError", example);
        [("404".to_owned(), response.into())].into()
    }
}

/// The 412 reply: the `If-Match` sent does not match the item's ETag.
pub struct PreconditionFailed;

impl<'r> ToResponse<'r> for PreconditionFailed {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({
            "detail": "Item 5 has changed since its ETag was read; read it again",
        });
        let description = "`If-Match` lists no current ETag of the item (compared strongly): it changed since it was read; nothing changed";
        let response = json_response(description, "HTTPError", example);
        ("PreconditionFailed", response.into())
    }
}

/// The 405 reply: a known path asked with a method it does not take.
pub struct MethodNotAllowed;

impl<'r> ToResponse<'r> for MethodNotAllowed {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({"detail": "Method Not Allowed"});
        let description = "The path exists but does not take this method";
        let response = json_response(description, "HTTPError", example);
        ("MethodNotAllowed", response.into())
    }
}

impl ApiError {
    /// The status this error answers with.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotModified => StatusCode::NOT_MODIFIED,
            ApiError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::UriTooLong => StatusCode::URI_TOO_LONG,
            ApiError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ApiError::Conflict(_) | ApiError::KeyInFlight => StatusCode::CONFLICT,
            ApiError::PreconditionFailed(_) => StatusCode::PRECONDITION_FAILED,
            ApiError::Unavailable(_) | ApiError::Busy { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::TooManyRequests(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The reply: status and `detail` body.
    pub fn into_response(self) -> Response {
        let status = self.status();
        match self {
            ApiError::NotModified => {
                let mut response = Response::default();
                *response.status_mut() = status;
                response
            }
            ApiError::Invalid(issues) => json(status, &Detail { detail: issues }),
            ApiError::Unauthorized => {
                let mut response = json(
                    status,
                    &Detail {
                        detail: "Not authenticated",
                    },
                );
                response.headers_mut().insert(
                    warp::http::header::WWW_AUTHENTICATE,
                    warp::http::HeaderValue::from_static("Bearer"),
                );
                response
            }
            ApiError::TooManyRequests(secs) => {
                let detail = ApiError::TooManyRequests(secs).to_string();
                retry_later(status, detail, secs)
            }
            ApiError::KeyInFlight => retry_later(status, ApiError::KeyInFlight.to_string(), 1),
            ApiError::Busy {
                detail,
                retry_after_secs,
            } => retry_later(status, detail, retry_after_secs),
            ApiError::Storage(err) => {
                tracing::error!(error = %crate::error_chain(&err), "request failed in storage");
                json(
                    status,
                    &Detail {
                        detail: "Internal Server Error",
                    },
                )
            }
            other => json(
                status,
                &Detail {
                    detail: other.to_string(),
                },
            ),
        }
    }
}

/// An error reply as bytes for a raw socket, for errors answered outside
/// the routes (before routing, or after the connection was taken back).
pub struct ClosingReply {
    /// Its status.
    pub status: StatusCode,
    /// Status line, headers (`connection: close`) and JSON body.
    pub wire: Vec<u8>,
    /// The length of the body alone.
    pub body_len: usize,
}

impl ApiError {
    /// The reply as HTTP/1.1 bytes that end the connection. A sentence
    /// `detail` for every error but 422 (a list) and 304 (no body).
    #[must_use]
    pub fn into_closing_reply(self) -> ClosingReply {
        let status = self.status();
        let body = match &self {
            ApiError::NotModified => Ok(Vec::new()),
            ApiError::Invalid(issues) => serde_json::to_vec(&Detail { detail: issues }),
            other => serde_json::to_vec(&Detail {
                detail: other.to_string(),
            }),
        }
        .unwrap_or_default();
        let mut wire = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default(),
            body.len()
        )
        .into_bytes();
        wire.extend_from_slice(&body);
        ClosingReply {
            status,
            wire,
            body_len: body.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_to_the_contract_statuses() {
        let status = |err| ApiError::from(err).status();
        assert_eq!(status(StoreError::ItemNotFound(1)), StatusCode::NOT_FOUND);
        assert_eq!(
            status(StoreError::ItemUnavailable(1)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(status(StoreError::ItemDeleted(1)), StatusCode::NOT_MODIFIED);
    }
}
