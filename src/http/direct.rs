//! The hot reads, routed without warp's filter chain: `GET /item`,
//! `GET /item/{id}`, `GET /cart` and `GET /cart/{id}`.
//!
//! Every request first passes through the filter chain's `or` branches,
//! each a large future moved and boxed on the way: for a read that is more
//! work than the read itself. These four routes are matched here on the
//! method and the path alone and handed to the same handlers, labelled,
//! measured and logged the same way ([`super::Measure`]). Only the plain
//! spelling of each path is taken (no trailing slash, no empty segment);
//! anything else goes to the filter chain, which answers it as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Incoming;
use warp::http::{HeaderMap, Method, Request, Uri, header};
use warp::reply::Response;

use super::{Measure, State, answer, carts, items};
use crate::store::Store;

/// A request's answer, labelled, measured and logged.
pub type Answer = Pin<Box<dyn Future<Output = Response> + Send>>;

type Router = dyn Fn(&Request<Incoming>) -> Option<Answer> + Send + Sync;

/// The direct routes of one API. Cheap to clone.
#[derive(Clone)]
pub struct Direct {
    router: Arc<Router>,
}

impl Direct {
    /// Routes over `state`, finishing each answer with `measure`.
    pub(super) fn new<S: Store>(state: State<S>, measure: Measure) -> Direct {
        Direct {
            router: Arc::new(move |request: &Request<Incoming>| route(&state, &measure, request)),
        }
    }

    /// The answer to `request` if a direct route takes it; `None` sends it
    /// to the filter chain.
    #[must_use]
    pub fn route(&self, request: &Request<Incoming>) -> Option<Answer> {
        (self.router)(request)
    }
}

/// The four routes, by path shape.
#[derive(Clone, Copy)]
enum Read {
    Items,
    Item,
    Carts,
    Cart,
}

impl Read {
    /// The route `path` names, and its id segment; `None` for any other
    /// path or spelling.
    fn of(path: &str) -> Option<(Read, &str)> {
        let (resource, id) = match path.strip_prefix('/')?.split_once('/') {
            Some((resource, id)) if !id.is_empty() && !id.contains('/') => (resource, Some(id)),
            Some(_) => return None,
            None => (&path[1..], None),
        };
        let read = match (resource, id) {
            ("item", None) => Read::Items,
            ("item", Some(_)) => Read::Item,
            ("cart", None) => Read::Carts,
            ("cart", Some(_)) => Read::Cart,
            _ => return None,
        };
        Some((read, id.unwrap_or("")))
    }
}

fn route<S: Store>(
    state: &State<S>,
    measure: &Measure,
    request: &Request<Incoming>,
) -> Option<Answer> {
    if request.method() != Method::GET {
        return None;
    }
    let (read, id) = Read::of(request.uri().path())?;
    let start = Instant::now();
    let id = id.to_owned();
    let uri: Uri = request.uri().clone();
    let request_bytes = content_length(request.headers());
    let (state, measure) = (state.clone(), measure.clone());
    Some(Box::pin(async move {
        let query = || uri.query().unwrap_or("").to_owned();
        let routed = match read {
            Read::Items => answer("/item")(items::list(query(), state).await),
            Read::Item => answer("/item/{id}")(items::get(id, state).await),
            Read::Carts => answer("/cart")(carts::list(query(), state).await),
            Read::Cart => answer("/cart/{id}")(carts::get(id, state).await),
        };
        measure.finish(start, &Method::GET, uri.path(), request_bytes, routed)
    }))
}

/// The `Content-Length` of a request, as the filter chain reads it.
fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(path: &str) -> Option<(&'static str, &str)> {
        Read::of(path).map(|(read, id)| {
            let name = match read {
                Read::Items => "items",
                Read::Item => "item",
                Read::Carts => "carts",
                Read::Cart => "cart",
            };
            (name, id)
        })
    }

    #[test]
    fn the_plain_spellings_are_taken() {
        assert_eq!(shape("/item"), Some(("items", "")));
        assert_eq!(shape("/item/12"), Some(("item", "12")));
        assert_eq!(shape("/item/%31"), Some(("item", "%31")));
        assert_eq!(shape("/cart"), Some(("carts", "")));
        assert_eq!(shape("/cart/x"), Some(("cart", "x")));
    }

    #[test]
    fn every_other_spelling_goes_to_the_filter_chain() {
        for path in [
            "/",
            "",
            "/item/",
            "/item//",
            "/item/1/",
            "/item/1/2",
            "//item",
            "/items",
            "/cart/",
            "/cart/1/add/2",
            "/Item/1",
            "/metrics",
            "/chat/x",
        ] {
            assert_eq!(shape(path), None, "{path}");
        }
    }
}
