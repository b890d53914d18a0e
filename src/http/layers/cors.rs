//! CORS for a storefront on another origin: the origins of
//! `cors_allowed_origins` get `Access-Control-*` headers on every answer
//! and an answer to their preflights; any other origin gets none, so its
//! browser keeps blocking it, as without CORS. With the list empty (the
//! default) nothing here runs.
//!
//! The allowed origin is echoed back, never `*`, and every answer then
//! says `Vary: Origin`, so a cache never hands one origin's answer to
//! another. The methods are the route's (its `Allow`); the request headers
//! are those shopd reads; the exposed ones those it sends for a client to
//! read.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;
use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::reply::Response;

use crate::http::client::{StringOrList, list};

/// Request headers a page may send (besides the CORS-safelisted ones).
const ALLOW_HEADERS: &str = "Content-Type, Authorization, Idempotency-Key, If-Match, If-None-Match";

/// Response headers a page may read (besides the CORS-safelisted ones).
const EXPOSE_HEADERS: &str = "Location, ETag, Idempotent-Replayed, Retry-After";

/// How long a browser may keep a preflight's answer, in seconds.
const MAX_AGE: &str = "600";

/// A list of origins, as `cors_allowed_origins` and
/// `chat_allowed_origins` hold them: exact `scheme://host[:port]` origins,
/// or `*` for any; comma separated (or a TOML array).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "StringOrList")]
pub struct Origins {
    /// `*` was given.
    any: bool,
    /// The exact origins, lower case.
    exact: Vec<String>,
}

impl Origins {
    /// Whether the list is empty (CORS off).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        !self.any && self.exact.is_empty()
    }

    /// Whether the list has `*`.
    #[must_use]
    pub fn has_any(&self) -> bool {
        self.any
    }

    /// Whether `origin` is in the list, `*` included.
    #[must_use]
    pub fn allows(&self, origin: &str) -> bool {
        self.any || self.lists(origin)
    }

    /// Whether `origin` is one of the exact origins (`*` aside).
    #[must_use]
    pub fn lists(&self, origin: &str) -> bool {
        self.exact
            .iter()
            .any(|listed| listed.eq_ignore_ascii_case(origin))
    }
}

impl FromStr for Origins {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut origins = Origins::default();
        for origin in list(text) {
            if origin == "*" {
                origins.any = true;
                continue;
            }
            let Some((scheme, host)) = origin.split_once("://") else {
                return Err(format!(
                    "{origin:?} is not an origin (scheme://host[:port]) or *"
                ));
            };
            let host = host.strip_suffix('/').unwrap_or(host);
            if scheme.is_empty()
                || host.is_empty()
                || host.contains(['/', '?', '#', '*', ' '])
                || HeaderValue::from_str(origin).is_err()
            {
                return Err(format!(
                    "{origin:?} is not an origin (scheme://host[:port], no path) or *"
                ));
            }
            origins
                .exact
                .push(format!("{scheme}://{host}").to_ascii_lowercase());
        }
        Ok(origins)
    }
}

impl TryFrom<StringOrList> for Origins {
    type Error = String;

    fn try_from(value: StringOrList) -> Result<Self, Self::Error> {
        value.joined().parse()
    }
}

impl fmt::Display for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut shown = self.exact.clone();
        if self.any {
            shown.push("*".into());
        }
        f.write_str(&shown.join(","))
    }
}

/// The CORS layer. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Cors {
    origins: Origins,
}

impl Cors {
    /// CORS for `origins` (off when empty).
    #[must_use]
    pub fn new(origins: Origins) -> Cors {
        Cors { origins }
    }

    /// Whether CORS is on.
    #[must_use]
    pub fn is_on(&self) -> bool {
        !self.origins.is_empty()
    }

    /// The request's `Origin`, when it is allowed.
    #[must_use]
    pub fn allowed(&self, headers: &HeaderMap) -> Option<HeaderValue> {
        if !self.is_on() {
            return None;
        }
        let origin = headers.get(header::ORIGIN)?;
        self.origins
            .allows(origin.to_str().ok()?)
            .then(|| origin.clone())
    }

    /// Whether a request is a preflight: `OPTIONS` with an `Origin` and an
    /// `Access-Control-Request-Method`.
    #[must_use]
    pub fn is_preflight(method: &Method, headers: &HeaderMap) -> bool {
        method == Method::OPTIONS
            && headers.contains_key(header::ORIGIN)
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
    }

    /// Adds the CORS headers to `response`, the answer to a request from
    /// the allowed `origin` (if any) on a route taking `methods`.
    pub fn decorate(
        &self,
        response: &mut Response,
        origin: Option<HeaderValue>,
        methods: Option<HeaderValue>,
        preflight: bool,
    ) {
        if !self.is_on() {
            return;
        }
        let headers = response.headers_mut();
        headers.append(header::VARY, HeaderValue::from_static("Origin"));
        let Some(origin) = origin else { return };
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Some(methods) = methods {
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, methods);
        }
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOW_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSE_HEADERS),
        );
        if preflight {
            headers.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(MAX_AGE),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_and_checked() {
        let origins: Origins = "https://Shop.example, http://localhost:3000/"
            .parse()
            .unwrap();
        assert!(origins.allows("https://shop.example"));
        assert!(origins.allows("http://localhost:3000"));
        assert!(!origins.allows("http://shop.example"));
        assert!(!origins.allows("https://shop.example.evil"));
        assert!(!origins.has_any());
        let any: Origins = "*".parse().unwrap();
        assert!(any.allows("https://anyone.example") && !any.lists("https://anyone.example"));
        assert!("shop.example".parse::<Origins>().is_err());
        assert!("https://shop.example/path".parse::<Origins>().is_err());
        assert!("".parse::<Origins>().unwrap().is_empty());
    }
}
