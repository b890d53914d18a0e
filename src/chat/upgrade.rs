//! The WebSocket handshake of `/chat/{chat_name}`, done here rather than by
//! warp's `ws()` so that each connection's buffers can be sized: an idle
//! member then costs a few KiB instead of tungstenite's default 128 KiB
//! read buffer.
//!
//! [`request`] accepts a request only with the headers of RFC 6455's
//! opening handshake (any other is rejected, so the API after it answers
//! 404); [`Handshake::accept`] builds the 101 and, once hyper has sent it,
//! hands the upgraded socket over. A client that offers the subprotocol
//! `shopd.chat.v1` gets it echoed and the JSON frames (see `protocol`).

use std::future::Future;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use warp::Filter;
use warp::http::{HeaderMap, HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::protocol::SUBPROTOCOL;

/// A chat member's upgraded connection.
pub(crate) type Socket = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Bytes read from the socket at once. Messages larger than this still
/// arrive whole (the buffer grows for them); it is what an idle member
/// holds.
const READ_BUFFER: usize = 4 * 1024;

/// Bytes of frames gathered before they are written to the socket
/// (tungstenite's default: a busy room's bursts go out in few writes). The
/// buffer grows only as lines come, so an idle member holds none of it.
const WRITE_BUFFER: usize = 128 * 1024;

/// A valid opening handshake, not yet answered.
pub(crate) struct Handshake {
    key: HeaderValue,
    on_upgrade: OnUpgrade,
    /// Whether the client offered [`SUBPROTOCOL`].
    pub(crate) json: bool,
    /// The request's query string (empty without one).
    pub(crate) query: String,
}

/// `GET` with `Connection: upgrade`, `Upgrade: websocket`,
/// `Sec-WebSocket-Version: 13` and a `Sec-WebSocket-Key`, on a connection
/// that can be upgraded; anything else is rejected as not found.
pub(crate) fn request()
-> impl Filter<Extract = (Handshake,), Error = warp::Rejection> + Clone + Send + Sync + 'static {
    let query = warp::query::raw().or(warp::any().map(String::new)).unify();
    warp::get()
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<OnUpgrade>())
        .and(query)
        .and_then(
            |headers: HeaderMap, on_upgrade: Option<OnUpgrade>, query: String| async move {
                match (handshake_key(&headers), on_upgrade) {
                    (Some(key), Some(on_upgrade)) => Ok(Handshake {
                        key,
                        on_upgrade,
                        json: offers_json(&headers),
                        query,
                    }),
                    _ => Err(warp::reject::not_found()),
                }
            },
        )
}

/// The `Sec-WebSocket-Key` of a request that asks for a WebSocket.
fn handshake_key(headers: &HeaderMap) -> Option<HeaderValue> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|value| {
                value
                    .split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    let version_13 = headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_some_and(|version| version == "13");
    if has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
        && version_13
    {
        headers.get(header::SEC_WEBSOCKET_KEY).cloned()
    } else {
        None
    }
}

/// Whether `Sec-WebSocket-Protocol` offers [`SUBPROTOCOL`].
fn offers_json(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|offered| offered.trim() == SUBPROTOCOL)
}

/// The socket settings of a chat connection: small buffers, and frames and
/// messages capped at `cap` bytes.
fn config(cap: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Frames are gathered until the buffer passes WRITE_BUFFER, and
        // then written before more are taken: it never holds much more
        // than that and one line (at most `cap` plus a name and a header).
        .max_write_buffer_size(
            WRITE_BUFFER
                .saturating_add(cap.saturating_mul(2))
                .saturating_add(1024),
        )
        .max_message_size(Some(cap))
        .max_frame_size(Some(cap))
}

impl Handshake {
    /// The 101 answer; once hyper has sent it, `serve` gets the socket, on
    /// a task that `spawn` starts (and may track). Should the upgrade fail,
    /// `serve` is dropped without running.
    pub(crate) fn accept<F, U>(
        self,
        cap: usize,
        spawn: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>),
        serve: F,
    ) -> Response
    where
        F: FnOnce(Socket) -> U + Send + 'static,
        U: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        spawn(Box::pin(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let socket = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        Role::Server,
                        Some(config(cap)),
                    )
                    .await;
                    serve(socket).await;
                }
                Err(err) => tracing::debug!(error = %err, "chat upgrade failed"),
            }
        }));
        let accept = derive_accept_key(self.key.as_bytes());
        let mut response = Response::default();
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&accept) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if self.json {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(SUBPROTOCOL),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn a_handshake_needs_every_header_of_rfc_6455() {
        let full = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert!(handshake_key(&headers(&full)).is_some());
        for missing in 0..full.len() {
            let mut some = full.to_vec();
            some.remove(missing);
            assert!(
                handshake_key(&headers(&some)).is_none(),
                "without {:?}",
                full[missing]
            );
        }
        let mut old = full.to_vec();
        old[2] = ("sec-websocket-version", "8");
        assert!(handshake_key(&headers(&old)).is_none());
    }

    #[test]
    fn the_subprotocol_is_found_among_those_offered() {
        assert!(!offers_json(&headers(&[])));
        assert!(offers_json(&headers(&[(
            "sec-websocket-protocol",
            "x, shopd.chat.v1"
        )])));
        assert!(!offers_json(&headers(&[(
            "sec-websocket-protocol",
            "shopd.chat.v2"
        )])));
    }

    #[test]
    fn the_accept_key_is_rfc_6455s_example() {
        assert_eq!(
            derive_accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
