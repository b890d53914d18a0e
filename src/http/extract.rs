//! Reading requests: the size-capped body and path ids.
//! Problems come back as values (not warp rejections), so that the route
//! that matched answers them with the right status and label.

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use utoipa::IntoParams;

use super::error::ApiError;
use crate::domain::{Id, Issue, Resource, parse_id, percent_decoded};

/// The request body, read whatever its Content-Type, at most `limit` bytes.
/// A declared or actual size over the limit is [`ApiError::PayloadTooLarge`].
pub(super) async fn collect<B: Buf>(
    declared: Option<u64>,
    stream: impl Stream<Item = Result<B, warp::Error>>,
    limit: u64,
) -> Result<Bytes, ApiError> {
    if declared.is_some_and(|len| len > limit) {
        return Err(ApiError::PayloadTooLarge(limit));
    }
    let mut stream = std::pin::pin!(stream);
    let mut body = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk
            .map_err(|err| ApiError::BadRequest(format!("Cannot read the request body: {err}")))?;
        if body.len() as u64 + chunk.remaining() as u64 > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        while chunk.has_remaining() {
            let part = chunk.chunk();
            let len = part.len();
            body.extend_from_slice(part);
            chunk.advance(len);
        }
    }
    Ok(body.freeze())
}

/// A path id: 422 when it is not an integer, 404 when no `kind` can have it.
pub fn path_id(text: &str, name: &str, kind: Resource) -> Result<Id, PathIdError> {
    // Decoded without a copy unless it has escapes; the issue's location
    // is built only for an issue.
    let decoded = percent_decoded(text);
    match parse_id(&decoded, Vec::new()) {
        Ok(Some(id)) => Ok(id),
        Ok(None) => Err(PathIdError::Missing(ApiError::NotFound(
            kind.not_found(decoded.trim()),
        ))),
        Err(mut issue) => {
            issue.loc = vec!["path".into(), name.into()];
            Err(PathIdError::Invalid(issue))
        }
    }
}

/// Why a path id names nothing.
#[derive(Debug)]
pub enum PathIdError {
    /// Not an integer: a 422 issue, reported with any others of the request.
    Invalid(Issue),
    /// An integer no resource has: 404 once the request is otherwise valid.
    Missing(ApiError),
}

/// Checks path ids together, so a 422 lists every bad one before any 404.
pub fn path_ids<const N: usize>(
    results: [Result<Id, PathIdError>; N],
) -> Result<[Id; N], ApiError> {
    let (ids, issues) = split(results);
    if issues.is_empty() {
        ids
    } else {
        Err(invalid(issues))
    }
}

/// Checks path ids and a parsed body together: every 422 issue of both
/// first, then a 404 for an id no resource can have.
pub fn with_body<T, const N: usize>(
    ids: [Result<Id, PathIdError>; N],
    body: Result<T, Vec<Issue>>,
) -> Result<([Id; N], T), ApiError> {
    let (ids, mut issues) = split(ids);
    match body {
        Ok(value) if issues.is_empty() => Ok((ids?, value)),
        Ok(_) => Err(invalid(issues)),
        Err(body_issues) => {
            issues.extend(body_issues);
            Err(invalid(issues))
        }
    }
}

/// The ids (or the first 404 among them), and the 422 issues of the others.
fn split<const N: usize>(
    results: [Result<Id, PathIdError>; N],
) -> (Result<[Id; N], ApiError>, Vec<Issue>) {
    let mut missing = None;
    let mut issues = Vec::new();
    let mut ids = [0; N];
    for (slot, result) in ids.iter_mut().zip(results) {
        match result {
            Ok(id) => *slot = id,
            Err(PathIdError::Invalid(issue)) => issues.push(issue),
            Err(PathIdError::Missing(err)) => {
                missing.get_or_insert(err);
            }
        }
    }
    (missing.map_or(Ok(ids), Err), issues)
}

/// The 422 of `issues`, path problems first, as FastAPI lists them.
fn invalid(mut issues: Vec<Issue>) -> ApiError {
    issues.sort_by_key(|issue| !matches!(issue.loc.first(), Some(l) if *l == "path".into()));
    ApiError::Invalid(issues)
}

// The path structs below only describe requests to the API document; the
// functions above read the ids. Integers are `u128` for the document's sake:
// like Python's, ours have no 64-bit bound (`u64` would say `format: int64`).

/// The path of an item route.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct ItemId {
    /// The item's id. Not an integer: 422; an integer no item can have: 404.
    #[param(minimum = 1, example = 1)]
    id: u128,
}

/// The path of a cart route.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct CartId {
    /// The cart's id. Not an integer: 422; an integer no cart can have: 404.
    #[param(minimum = 1, example = 1)]
    id: u128,
}

/// The path of `POST /cart/{cart_id}/add/{item_id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
pub struct AddIds {
    /// The cart's id.
    #[param(minimum = 1, example = 1)]
    cart_id: u128,
    /// The item's id.
    #[param(minimum = 1, example = 1)]
    item_id: u128,
}
