//! Who may do what: the admin token, `/admin/*` routes (an online export),
//! and, when the operator turns it on, the token for item writes.

use warp::http::{HeaderMap, HeaderValue, header};
use warp::reply::Response;

use super::error::{ApiError, SentenceBody};
use futures_util::StreamExt;
use warp::Reply;

use super::router::Call;
use crate::config::Secret;
use crate::ops::ExportStream;
use crate::store::Store;

/// The admin token and what it guards.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// `/admin/*` answers 404 without one.
    pub token: Option<Secret>,
    /// Whether item writes need the token too.
    pub protect_catalogue: bool,
}

impl Access {
    /// Whether the request's `Authorization` header carries the token:
    /// 401 if not (the token is compared in constant time).
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(token) = &self.token else {
            return Err(ApiError::Unauthorized);
        };
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.as_bytes().strip_prefix(b"Bearer "))
            .unwrap_or_default();
        if constant_time_eq(given, token.expose().as_bytes()) {
            Ok(())
        } else {
            Err(ApiError::Unauthorized)
        }
    }

    /// For `POST/PUT/PATCH/DELETE /item`: the token when the catalogue is
    /// protected, nothing otherwise.
    pub fn item_write(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.protect_catalogue {
            self.check(headers)
        } else {
            Ok(())
        }
    }
}

/// Equal contents, in a time that depends on the lengths only.
fn constant_time_eq(given: &[u8], expected: &[u8]) -> bool {
    let mut difference = u8::from(given.len() != expected.len());
    for (i, byte) in expected.iter().enumerate() {
        difference |= byte ^ given.get(i).copied().unwrap_or(!byte);
    }
    difference == 0
}

/// Every item and cart, consistent at one moment, in the export format.
///
/// The same NDJSON as `shopd export` writes (a header line, one line per
/// item and per cart, a trailer with the counts); `shopd import` reads it.
/// Writes go on while it is taken. It is streamed as the store writes it,
/// so memory does not grow with the store; a failure midway cuts the body
/// short, without its trailer line. 503 with `Retry-After` when the scans
/// and exports running and waiting fill their bound. Needs the admin
/// token; without one configured the route does not exist (404).
#[utoipa::path(
    get,
    path = "/admin/export",
    tag = "operations",
    operation_id = "export",
    responses(
        (status = 200, description = "The export", content_type = "application/x-ndjson", body = String,
            example = "{\"format\":\"shopd-export\",\"version\":1,\"shopd\":\"0.1.0\",\"next_item_id\":2,\"next_cart_id\":1}\n{\"item\":{\"id\":1,\"name\":\"Tea\",\"price\":2.5,\"deleted\":false}}\n{\"end\":{\"items\":1,\"carts\":0}}\n"),
        (status = 401, description = "Missing or wrong `Authorization: Bearer` token", body = SentenceBody,
            example = json!({"detail": "Not authenticated"})),
    ),
)]
pub(super) async fn export<S: Store>(call: Call<S>) -> Result<Response, ApiError> {
    // Streamed as the store writes it: memory holds a few chunks, however
    // large the store. A failure before the first chunk (busy, database
    // down) is still a status; one after it cuts the body short, and the
    // missing trailer line tells the reader.
    let mut export = ExportStream::start(&call.state().store);
    let first = export.first().await?;
    let chunks = futures_util::stream::iter(first.map(Ok)).chain(export);
    let mut response = warp::reply::stream(chunks).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"shopd-export.ndjson\""),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_bytes_are_equal() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdeF", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcde", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdef0", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"", b"0123456789abcdef"));
    }
}
