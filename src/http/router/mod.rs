//! Routing by the table of [`super::routes`]: one warp filter that reads
//! the request once, finds its route by path template and method, answers a
//! known path asked with another method with 405 and its `Allow`, an
//! unknown one with 404, and runs every answer through [`super::layers`].

mod call;
mod template;

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderMap, HeaderValue, Method, header};
use warp::path::FullPath;
use warp::reply::Response;

pub use call::Call;
use call::{BodyStream, Shared, boxed, content_length};
use template::{Part, fit, parts};

use super::State;
use super::client::Peer;
use super::error::ApiError;
use super::layers::{Cors, Head, Layers, Routed};
use super::reply::no_content;
use super::routes::{Guard, Route};
use crate::store::Store;

/// How a request's method and path stand against the table.
enum Found<'a, S> {
    /// A route takes it, with its parameters.
    Route(&'a Route<S>, [Range<usize>; 2]),
    /// The path is a route's, the method is not: its label and `Allow`.
    OtherMethod(&'static str, &'a HeaderValue),
    /// No route has this path.
    Nothing,
}

/// The table, ready to route: each route with its parsed template, and
/// each template's `Allow` value.
pub struct Table<S> {
    routes: Vec<(Route<S>, Vec<Part>, usize)>,
    allows: Vec<HeaderValue>,
}

impl<S> Table<S> {
    /// Prepares `routes` for routing.
    #[must_use]
    pub fn new(routes: Vec<Route<S>>) -> Table<S> {
        let mut templates: Vec<&'static str> = Vec::new();
        for route in &routes {
            if !templates.contains(&route.template) {
                templates.push(route.template);
            }
        }
        let allows = templates
            .iter()
            .map(|template| {
                let methods = allow_order()
                    .filter(|method| {
                        routes
                            .iter()
                            .any(|r| r.template == *template && r.method == *method)
                    })
                    .map(|method| method.as_str().to_owned())
                    .collect::<Vec<_>>()
                    .join(", ");
                HeaderValue::from_str(&methods).unwrap_or(HeaderValue::from_static("GET"))
            })
            .collect();
        let routes = routes
            .into_iter()
            .map(|route| {
                let parts = parts(route.template);
                let index = templates
                    .iter()
                    .position(|t| *t == route.template)
                    .unwrap_or(0);
                (route, parts, index)
            })
            .collect();
        Table { routes, allows }
    }

    /// The routes, in table order.
    pub fn routes(&self) -> impl Iterator<Item = &Route<S>> {
        self.routes.iter().map(|(route, _, _)| route)
    }

    fn find(&self, method: &Method, path: &str) -> Found<'_, S> {
        let mut other = None;
        for (route, parts, template) in &self.routes {
            if let Some(params) = fit(parts, path) {
                if route.method == *method {
                    return Found::Route(route, params);
                }
                other.get_or_insert((route.label, *template));
            }
        }
        match other {
            Some((label, template)) => match self.allows.get(template) {
                Some(allow) => Found::OtherMethod(label, allow),
                None => Found::Nothing,
            },
            None => Found::Nothing,
        }
    }

    /// The route that takes `method` on `path`, if any.
    #[must_use]
    pub fn route(&self, method: &Method, path: &str) -> Option<&Route<S>> {
        match self.find(method, path) {
            Found::Route(route, _) => Some(route),
            _ => None,
        }
    }

    /// The `Allow` value of `path`; `None` for a path no route has.
    #[must_use]
    pub fn allow(&self, path: &str) -> Option<&HeaderValue> {
        let (_, _, template) = self
            .routes
            .iter()
            .find(|(_, parts, _)| fit(parts, path).is_some())?;
        self.allows.get(*template)
    }
}

/// The order methods are listed in an `Allow`, as in the API document.
fn allow_order() -> impl Iterator<Item = Method> {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ]
    .into_iter()
}

/// The router: the table, what handlers share and the layers around them.
struct Router<S> {
    table: Table<S>,
    shared: Arc<Shared<S>>,
    layers: Layers,
}

/// The whole API (the chat's WebSocket upgrade aside) as one warp filter.
pub fn filter<S: Store>(
    table: Table<S>,
    state: State<S>,
    document: Bytes,
    layers: Layers,
) -> BoxedFilter<(Response,)> {
    let router = Arc::new(Router {
        table,
        shared: Arc::new(Shared { state, document }),
        layers,
    });
    // The path twice: one for the handler, one for the log (a cheap
    // clone of the request's own bytes).
    warp::method()
        .and(warp::path::full())
        .and(warp::path::full())
        .and(
            warp::query::raw()
                .map(Some)
                .or(warp::any().map(|| None))
                .unify(),
        )
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and(warp::body::stream().map(boxed))
        .then(
            move |method: Method,
                  path: FullPath,
                  logged: FullPath,
                  query: Option<String>,
                  headers: HeaderMap,
                  peer: Option<Peer>,
                  body: BodyStream| {
                let started = Instant::now();
                router.clone().answer(Request {
                    started,
                    method,
                    path,
                    logged,
                    query,
                    headers,
                    peer,
                    body,
                })
            },
        )
        .boxed()
}

/// A request as the filter read it.
struct Request {
    started: Instant,
    method: Method,
    path: FullPath,
    logged: FullPath,
    query: Option<String>,
    headers: HeaderMap,
    peer: Option<Peer>,
    body: BodyStream,
}

impl<S: Store> Router<S> {
    async fn answer(self: Arc<Self>, request: Request) -> Response {
        let head = Head {
            started: request.started,
            client: request
                .peer
                .map(|Peer(peer)| self.layers.client(peer.ip(), &request.headers)),
            origin: self.layers.cors().allowed(&request.headers),
            preflight: Cors::is_preflight(&request.method, &request.headers),
            method: request.method,
            request_bytes: content_length(&request.headers),
        };
        let path = request.path.as_str();
        let found = self.table.find(&head.method, path);
        let label = match &found {
            Found::Route(route, _) => route.label,
            Found::OtherMethod(label, _) => label,
            Found::Nothing => "none",
        };
        if let Err(refused) = self.layers.admit(label, head.client) {
            let allow = head
                .origin
                .as_ref()
                .and_then(|_| self.table.allow(path).cloned());
            let routed = Routed {
                handler: label,
                response: refused.into_response(),
                allow,
            };
            return self.layers.finish(&head, request.logged.as_str(), routed);
        }
        let routed = match found {
            Found::OtherMethod(label, allow) if head.preflight && head.origin.is_some() => {
                // A listed origin's preflight: counted under its route.
                Routed {
                    handler: label,
                    response: no_content(),
                    allow: Some(allow.clone()),
                }
            }
            Found::Route(route, params) => {
                let allow = head
                    .origin
                    .as_ref()
                    .and_then(|_| self.table.allow(path).cloned());
                let call = Call {
                    shared: self.shared.clone(),
                    path: request.path,
                    params,
                    query: request.query,
                    headers: request.headers,
                    body: Some(request.body),
                    key: None,
                };
                let response = self
                    .call(route, call)
                    .await
                    .unwrap_or_else(ApiError::into_response);
                Routed {
                    handler: route.label,
                    response,
                    allow,
                }
            }
            Found::OtherMethod(label, allow) => {
                // A 405 names the methods its path takes (RFC 9110).
                let mut response = ApiError::MethodNotAllowed.into_response();
                response.headers_mut().insert(header::ALLOW, allow.clone());
                Routed {
                    handler: label,
                    response,
                    allow: Some(allow.clone()),
                }
            }
            Found::Nothing => Routed {
                handler: "none",
                response: ApiError::NotFound("Not Found".into()).into_response(),
                allow: None,
            },
        };
        self.layers.finish(&head, request.logged.as_str(), routed)
    }

    /// Runs `route`'s guard, then its handler (a write's through the
    /// idempotency layer).
    async fn call(&self, route: &Route<S>, call: Call<S>) -> Result<Response, ApiError> {
        let access = &self.shared.state.access;
        match route.guard {
            Guard::Open => {}
            Guard::Catalogue => access.item_write(call.headers())?,
            Guard::Admin => access.check(call.headers())?,
        }
        self.layers.idempotency().run(route, call).await
    }
}
