//! What a handler gets: the shared state, the path's parameters, the
//! query, the headers and the body, read from the request once.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use futures_util::{Stream, StreamExt};
use warp::http::{HeaderMap, header};
use warp::path::FullPath;

use super::super::error::ApiError;
use super::super::{State, extract};
use crate::store::{IdempotencyKey, Kept, Keyed};

/// A request body, as handlers read it (through [`Call::body`]).
pub(super) type BodyStream =
    std::pin::Pin<Box<dyn Stream<Item = Result<Bytes, warp::Error>> + Send>>;

/// What a handler gets: the shared state, the path's parameters, the
/// query, the headers and the body.
pub struct Call<S> {
    pub(super) shared: Arc<Shared<S>>,
    pub(super) path: FullPath,
    pub(super) params: [Range<usize>; 2],
    pub(super) query: Option<String>,
    pub(super) headers: HeaderMap,
    pub(super) body: Option<BodyStream>,
    /// The request's idempotency key, once the idempotency layer took it.
    pub(in super::super) key: Option<IdempotencyKey>,
}

impl<S> Call<S> {
    /// The handlers' shared state.
    pub fn state(&self) -> &State<S> {
        &self.shared.state
    }

    /// The `n`th parameter of the path (`{id}`, `{*file}`), raw; empty if
    /// the template has fewer.
    pub fn param(&self, n: usize) -> &str {
        self.params
            .get(n)
            .and_then(|range| self.path.as_str().get(range.clone()))
            .unwrap_or("")
    }

    /// The path as the client sent it.
    pub fn path(&self) -> &str {
        self.path.as_str()
    }

    /// The raw query string, empty when there is none.
    pub fn query(&self) -> &str {
        self.query.as_deref().unwrap_or("")
    }

    /// The request's headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The API document, as served at `/openapi.json`.
    pub fn document(&self) -> Bytes {
        self.shared.document.clone()
    }

    /// The body, whatever its Content-Type, at most `limit` bytes: a
    /// declared or actual size over it is a 413. Read once.
    pub async fn body(&mut self, limit: u64) -> Result<Bytes, ApiError> {
        let declared = content_length(&self.headers);
        match self.body.take() {
            Some(stream) => extract::collect(declared, stream, limit).await,
            None => Ok(Bytes::new()),
        }
    }

    /// Reads the body (as [`Call::body`]) and keeps it for the handler's
    /// own read: for a layer that needs it first.
    pub(in super::super) async fn peek_body(&mut self, limit: u64) -> Result<Bytes, ApiError> {
        let body = self.body(limit).await?;
        let again = body.clone();
        self.body = Some(Box::pin(futures_util::stream::once(
            async move { Ok(again) },
        )));
        Ok(body)
    }

    /// The request's idempotency key with `answer`, which renders what a
    /// write's result answers: the store keeps that answer with the key,
    /// in the write's transaction. `None` without a key.
    pub fn keyed<T>(&self, answer: fn(&T) -> Kept) -> Option<Keyed<T>> {
        self.key.clone().map(|key| Keyed { key, answer })
    }
}

/// What every request shares: the state and the document.
pub(super) struct Shared<S> {
    pub(super) state: State<S>,
    pub(super) document: Bytes,
}

/// The body as handlers read it.
pub(super) fn boxed(
    body: impl Stream<Item = Result<impl Buf, warp::Error>> + Send + 'static,
) -> BodyStream {
    Box::pin(body.map(|chunk| chunk.map(|mut buf| buf.copy_to_bytes(buf.remaining()))))
}

/// The `Content-Length` of a request, if it has a valid one.
pub(super) fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}
