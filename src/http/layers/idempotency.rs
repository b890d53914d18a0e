//! `Idempotency-Key` on every write: the first request with a key runs
//! and its answer is kept with the key, in the store, in the write's own
//! transaction (see [`crate::store::idempotency`]); a repeat with the same
//! fingerprint gets the kept answer with `Idempotent-Replayed: true` and
//! changes nothing; the same key with another request is a 422; while the
//! first still runs on this instance, a repeat is a 409 with
//! `Retry-After: 1`. A request that fails keeps nothing, so it can be
//! corrected and sent again with the same key.
//!
//! Order of checks, as clients see it: the key itself (422), then in
//! flight here (409), then a kept answer (replay or 422), and only then
//! the request's own 422, 404, 412 and 304. The kept answer is not read
//! first, though: the write runs at once and the store refuses it
//! atomically when a live answer is kept under the key; only then, or
//! when the request failed with a 4xx (which keeps nothing), is the kept
//! answer read, and it wins. So a fresh key costs the write no read.
//! Keys are global to the shop, not per client.
//! Without the header a route runs exactly as it would without this layer.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use sha2::{Digest, Sha256};
use warp::http::{HeaderMap, HeaderName, HeaderValue, Method};
use warp::reply::Response;

use super::super::error::ApiError;
use super::super::reply::sent;
use super::super::router::Call;
use super::super::routes::{Answer, Route};
use crate::domain::{Issue, parse_id, percent_decoded};
use crate::metrics::{IdempotencyOutcome, Telemetry};
use crate::store::{IdempotencyKey, KeptAnswer, KeptRecord, Store, idempotency};

/// The request header.
pub const KEY_HEADER: &str = "idempotency-key";
/// The header of a replayed answer.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// The longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// The keys this instance runs now.
type RunningKeys = Arc<Mutex<HashSet<String>>>;

/// The keys this instance runs now, and how long kept keys hold.
pub struct Idempotency {
    ttl: Duration,
    running: RunningKeys,
    telemetry: Telemetry,
}

/// A key this instance runs; dropping it (when its write is done) frees
/// the key.
struct Running {
    keys: RunningKeys,
    key: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.keys).remove(&self.key);
    }
}

fn lock(keys: &RunningKeys) -> std::sync::MutexGuard<'_, HashSet<String>> {
    keys.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Idempotency {
    /// Keys kept for `ttl`, counted into `telemetry`.
    #[must_use]
    pub fn new(ttl: Duration, telemetry: Telemetry) -> Idempotency {
        Idempotency {
            ttl,
            running: RunningKeys::default(),
            telemetry,
        }
    }

    /// Runs `route`'s handler for `call`, under its `Idempotency-Key` when
    /// it is a write that has one.
    pub async fn run<S: Store>(
        &self,
        route: &Route<S>,
        mut call: Call<S>,
    ) -> Result<Response, ApiError> {
        if !route.is_write() {
            return (route.handler)(call).await;
        }
        let Some(key) = key_of(call.headers())? else {
            return (route.handler)(call).await;
        };
        let body = if route.reads_body {
            call.peek_body(call.state().max_body_bytes).await?
        } else {
            bytes::Bytes::new()
        };
        let fingerprint = fingerprint(
            &route.method,
            route.template,
            [call.param(0), call.param(1)],
            &body,
        );
        let running = self.start(&key)?;
        let store = call.state().store.clone();
        call.key = Some(IdempotencyKey {
            expires: idempotency::now().saturating_add(self.ttl.as_secs()),
            key: key.clone(),
            fingerprint,
        });
        // Run at once, with no look at the key first: the store keeps the
        // key with the change, atomically, and refuses the write when a live
        // answer is kept under the key ([`ApiError::KeyInFlight`]), so a
        // fresh key (nearly every one) costs no read. The write runs to its
        // end, and holds its key until then, even if the client goes away
        // meanwhile (see [`ToTheEnd`]).
        let handler = route.handler;
        let answer = ToTheEnd(Some(Box::pin(async move {
            let answer = handler(call).await;
            drop(running);
            answer
        })))
        .await;
        let err = match answer {
            Ok(response) => return Ok(response),
            Err(err) if !kept_answer_wins(&err) => return Err(err),
            Err(err) => err,
        };
        // The store refused the key, or the request failed with an answer
        // that keeps nothing: a live answer kept under the key comes first
        // (the order of checks: the key, then the request's own).
        match self.replay(&store, &key, &fingerprint).await {
            Ok(Some(answer)) => Ok(answer),
            Err(mismatch @ ApiError::Invalid(_)) => Err(mismatch),
            // Refused for a key that is gone since (expired), or cannot be
            // read now: the client retries.
            Ok(None) | Err(_) if matches!(err, ApiError::KeyInFlight) => Err(self.in_flight()),
            // Nothing kept, or the key cannot be read now: the request's
            // own answer.
            Ok(None) | Err(_) => Err(err),
        }
    }

    /// Marks `key` running here; a 409 when it already is.
    fn start(&self, key: &str) -> Result<Running, ApiError> {
        if lock(&self.running).insert(key.to_owned()) {
            Ok(Running {
                keys: self.running.clone(),
                key: key.to_owned(),
            })
        } else {
            Err(self.in_flight())
        }
    }

    fn in_flight(&self) -> ApiError {
        self.telemetry
            .record_idempotency(IdempotencyOutcome::InFlight);
        ApiError::KeyInFlight
    }

    /// The kept answer to `key` when it holds for this `fingerprint`; a
    /// 422 when it was kept for another request; `None` when no live
    /// answer is kept.
    async fn replay<S: Store>(
        &self,
        store: &S,
        key: &str,
        fingerprint: &[u8; 32],
    ) -> Result<Option<Response>, ApiError> {
        let kept = store.kept(key).await?;
        let Some(KeptRecord {
            fingerprint: kept_for,
            answer,
            ..
        }) = kept.filter(|record| record.live_at(idempotency::now()))
        else {
            return Ok(None);
        };
        if kept_for != *fingerprint {
            self.telemetry
                .record_idempotency(IdempotencyOutcome::Mismatch);
            return Err(ApiError::Invalid(vec![key_issue(
                "idempotency_key_reused",
                "This Idempotency-Key was used with another request (method, path or body); send a new key",
            )]));
        }
        self.telemetry
            .record_idempotency(IdempotencyOutcome::Replay);
        let answer = match answer {
            KeptAnswer::Sent(answer) => answer,
            // Rendered as the route rendered its first answer.
            KeptAnswer::CreatedItem(item) => crate::http::items::created(&item),
            KeptAnswer::CreatedCart(id) => crate::http::carts::created(&id),
        };
        let mut response = sent(answer);
        response.headers_mut().insert(
            HeaderName::from_static(REPLAYED_HEADER),
            HeaderValue::from_static("true"),
        );
        Ok(Some(response))
    }
}

/// A keyed write that runs to its end: dropped before that (its client
/// went away, or its request timed out), it goes on in a task of its own,
/// so its key is released only once the write is done or failed. Not a
/// task from the start: most writes end in the request, and a task per
/// write costs a wake-up of another runtime thread.
struct ToTheEnd(Option<Answer>);

impl Future for ToTheEnd {
    type Output = Result<Response, ApiError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(write) = self.0.as_mut() else {
            return Poll::Ready(Err(ApiError::Storage(crate::store::StoreError::backend(
                std::io::Error::other("a keyed write was polled after its end"),
            ))));
        };
        let answer = std::task::ready!(write.as_mut().poll(cx));
        self.0 = None;
        Poll::Ready(answer)
    }
}

impl Drop for ToTheEnd {
    fn drop(&mut self) {
        if let Some(write) = self.0.take() {
            // Without a runtime (it is shutting down) nothing runs any more.
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(write);
            }
        }
    }
}

/// Whether a keyed request that failed with `err` answers with the answer
/// kept under its key instead, when there is one: when the store refused
/// the key (a 409: a live answer is kept), and when the request failed
/// with an answer that keeps nothing (a 4xx; the 304 of a deleted item is
/// kept, and is no 4xx). A 5xx stays: it says the store failed, and a
/// read of the key would only fail too.
fn kept_answer_wins(err: &ApiError) -> bool {
    // A 304 is not a client error: it is kept.
    err.status().is_client_error()
}

/// A 422 issue on the key header.
fn key_issue(kind: &'static str, msg: &str) -> Issue {
    Issue::new(vec!["header".into(), "Idempotency-Key".into()], kind, msg)
}

/// The request's key: `None` without the header; a 422 when it is sent
/// more than once or is not 1-255 visible ASCII characters.
fn key_of(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let mut values = headers.get_all(KEY_HEADER).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    let bytes = value.as_bytes();
    let visible = bytes.iter().all(|b| (0x21..=0x7e).contains(b));
    if values.next().is_some() || bytes.is_empty() || bytes.len() > MAX_KEY_LEN || !visible {
        return Err(ApiError::Invalid(vec![key_issue(
            "idempotency_key",
            "Idempotency-Key must be sent once, as 1 to 255 visible ASCII characters",
        )]));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}

/// The fingerprint of a request: SHA-256 over its method, route template,
/// path ids (as numbers where they are; else as sent) and the SHA-256 of
/// its body (empty for routes that read none).
fn fingerprint(method: &Method, template: &str, params: [&str; 2], body: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(method.as_str());
    hash.update([0]);
    hash.update(template);
    for param in params {
        hash.update([0]);
        let decoded = percent_decoded(param);
        match parse_id(&decoded, Vec::new()) {
            Ok(Some(id)) => hash.update(id.to_string()),
            _ => hash.update(decoded.as_bytes()),
        }
    }
    hash.update([0]);
    hash.update(Sha256::digest(body));
    hash.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(KEY_HEADER, HeaderValue::from_bytes(value).unwrap());
        }
        headers
    }

    #[test]
    fn a_key_is_one_to_255_visible_ascii_characters_sent_once() {
        assert_eq!(key_of(&headers(&[])).unwrap(), None);
        assert_eq!(
            key_of(&headers(&[b"order-7"])).unwrap(),
            Some("order-7".into())
        );
        let longest = vec![b'k'; MAX_KEY_LEN];
        assert!(key_of(&headers(&[&longest])).unwrap().is_some());
        let too_long = vec![b'k'; MAX_KEY_LEN + 1];
        for bad in [&b""[..], b"with space", b"tab\t", &too_long, "é".as_bytes()] {
            assert!(key_of(&headers(&[bad])).is_err(), "{bad:?}");
        }
        assert!(key_of(&headers(&[b"a", b"a"])).is_err());
    }

    #[tokio::test]
    async fn a_write_dropped_before_its_end_still_runs_to_it() {
        let (go, wait) = tokio::sync::oneshot::channel::<()>();
        let (done, ended) = tokio::sync::oneshot::channel();
        let mut write = ToTheEnd(Some(Box::pin(async move {
            let _ = wait.await;
            let _ = done.send(());
            Ok(Response::default())
        })));
        // Started, then dropped midway (its client went away).
        let waker = futures_util::task::noop_waker();
        let started = Pin::new(&mut write).poll(&mut Context::from_waker(&waker));
        assert!(started.is_pending());
        drop(write);
        go.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), ended)
            .await
            .expect("the write went on after it was dropped")
            .unwrap();
        // One that ends in its request answers there.
        let ended = ToTheEnd(Some(Box::pin(async { Ok(Response::default()) }))).await;
        assert!(ended.is_ok());
    }

    #[test]
    fn the_fingerprint_covers_method_template_ids_and_body() {
        let base = fingerprint(&Method::PUT, "/item/{id}", ["7", ""], b"{}");
        assert_eq!(
            base,
            fingerprint(&Method::PUT, "/item/{id}", ["7", ""], b"{}")
        );
        assert_ne!(
            base,
            fingerprint(&Method::PATCH, "/item/{id}", ["7", ""], b"{}")
        );
        assert_ne!(
            base,
            fingerprint(&Method::PUT, "/item/{id}", ["8", ""], b"{}")
        );
        assert_ne!(
            base,
            fingerprint(&Method::PUT, "/item/{id}", ["7", ""], b"{ }")
        );
    }
}
