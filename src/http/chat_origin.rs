//! Which pages may open a chat: a WebSocket upgrade to `/chat/{room}`
//! whose `Origin` is neither shopd's own (the same host and port as its
//! `Host`, any scheme, so it holds behind a TLS proxy) nor in
//! `chat_allowed_origins` gets 403 with `detail` before the upgrade.
//! Without that, any site a customer visits could join rooms in their
//! name: browsers send cookies and credentials along with a WebSocket
//! whatever its origin, and no CORS check applies to one. A request
//! without `Origin` (websocat, bots; no browser) is let through.
//!
//! A filter in front of the chat's own route: it answers the refused
//! upgrades and lets every other request fall through to it.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::HeaderMap;
use warp::http::header;
use warp::reply::Response;

use super::ApiError;
use super::layers::Origins;
use crate::metrics::{Rejected, Telemetry};

/// The origins a chat upgrade may come from besides shopd's own.
#[derive(Debug, Clone, Default)]
pub struct ChatOrigins {
    origins: Origins,
    /// `*` counts (it was set for chats themselves, not inherited).
    any: bool,
}

impl ChatOrigins {
    /// `chat_allowed_origins` when set, else the exact origins of
    /// `cors_allowed_origins` (its `*` does not open chats to every site).
    #[must_use]
    pub fn new(chat: Option<Origins>, cors: &Origins) -> ChatOrigins {
        match chat {
            Some(origins) => ChatOrigins {
                any: origins.has_any(),
                origins,
            },
            None => ChatOrigins {
                origins: cors.clone(),
                any: false,
            },
        }
    }

    /// Whether a request with `headers` may open a chat.
    #[must_use]
    pub fn allow(&self, headers: &HeaderMap) -> bool {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return true;
        };
        let Ok(origin) = origin.to_str() else {
            return false;
        };
        if self.any || self.origins.lists(origin) {
            return true;
        }
        let host = headers
            .get(header::HOST)
            .and_then(|host| host.to_str().ok());
        host.is_some_and(|host| same_host(origin, host))
    }
}

/// Whether `origin` (`scheme://host[:port]`) names `host` (`host[:port]`,
/// a `Host` header): same host and port, whatever the scheme; a default
/// port (80, 443) written on one side only still matches.
fn same_host(origin: &str, host: &str) -> bool {
    let Some((_, origin_host)) = origin.split_once("://") else {
        return false;
    };
    let bare = |authority: &str| {
        let authority = authority.to_ascii_lowercase();
        match authority
            .strip_suffix(":80")
            .or(authority.strip_suffix(":443"))
        {
            Some(stripped) => stripped.to_owned(),
            None => authority,
        }
    };
    bare(origin_host) == bare(host)
}

/// Answers a chat upgrade from an origin not allowed with 403; rejects
/// (lets through) every other request.
#[must_use]
pub fn guard(origins: ChatOrigins, telemetry: Telemetry) -> BoxedFilter<(Response,)> {
    warp::path("chat")
        .and(warp::path::param::<String>())
        .and(warp::path::end())
        .and(warp::header::headers_cloned())
        .and_then(move |_room: String, headers: HeaderMap| {
            let refused = headers.contains_key(header::UPGRADE) && !origins.allow(&headers);
            if refused {
                telemetry.record_rejected(Rejected::ChatOrigin);
            }
            async move {
                if refused {
                    Ok(ApiError::Forbidden(
                        "This page's origin may not open a chat (see chat_allowed_origins)".into(),
                    )
                    .into_response())
                } else {
                    Err(warp::reject::not_found())
                }
            }
        })
        .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(header::HOST, host.parse().unwrap());
        if let Some(origin) = origin {
            map.insert(header::ORIGIN, origin.parse().unwrap());
        }
        map
    }

    #[test]
    fn own_listed_and_absent_origins_may_chat_others_not() {
        let cors: Origins = "https://shop.example, *".parse().unwrap();
        let chat = ChatOrigins::new(None, &cors);
        assert!(chat.allow(&headers(None, "api.example")));
        assert!(chat.allow(&headers(Some("https://api.example"), "api.example")));
        assert!(chat.allow(&headers(
            Some("http://API.example:8000"),
            "api.example:8000"
        )));
        assert!(chat.allow(&headers(Some("https://api.example"), "api.example:443")));
        assert!(chat.allow(&headers(Some("https://shop.example"), "api.example")));
        assert!(!chat.allow(&headers(Some("https://evil.example"), "api.example")));
        assert!(!chat.allow(&headers(
            Some("http://api.example:8001"),
            "api.example:8000"
        )));
        let open = ChatOrigins::new(Some("*".parse().unwrap()), &Origins::default());
        assert!(open.allow(&headers(Some("https://evil.example"), "api.example")));
    }
}
