//! The route table: every route of the API, declared once, with its
//! method, path template, handler, OpenAPI operation, metrics label and who
//! may call it. The router ([`super::router`]), the `Allow` of a 405, the
//! `handler` label of the metrics and the API document
//! ([`super::openapi`]) are all read from this table; nothing else knows a
//! path.
//!
//! To add a route: write its handler (`async fn(Call<S>) -> Result<Response,
//! ApiError>`, with a `#[utoipa::path]` whose path and method are the
//! row's), then add one row below. Tests check that every row is routed,
//! labelled, listed in `Allow` and in the document.

use std::future::Future;
use std::pin::Pin;

use utoipa::openapi::path::{HttpMethod, Operation};
use warp::http::Method;
use warp::reply::Response;

use super::admin::Access;
use super::error::ApiError;
use super::router::Call;
use super::{admin, carts, chat_page, docs, health, items, metrics, openapi};
use crate::store::Store;

/// What a handler returns: its reply, or the error that becomes one.
pub type Answer = Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send>>;

/// A route's handler.
pub type Handler<S> = fn(Call<S>) -> Answer;

/// Who may call a route; checked before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Anyone.
    Open,
    /// Anyone, unless the catalogue is protected: then the admin token.
    Catalogue,
    /// Only with the admin token; the route exists only when a token is
    /// configured.
    Admin,
}

/// A route's entry in the API document: the operation `#[utoipa::path]`
/// describes, with the path and methods it was written for.
pub struct Documented {
    /// The path template the annotation names.
    pub path: String,
    /// The methods the annotation names.
    pub methods: Vec<HttpMethod>,
    /// The operation.
    pub operation: Operation,
}

/// The document entry of the handler whose `#[utoipa::path]` generated `P`.
fn doc<P: utoipa::Path + for<'t> utoipa::__dev::Tags<'t>>() -> Documented {
    let mut operation = P::operation();
    // The annotation's `tag`, which utoipa keeps apart from the operation
    // (its own `OpenApi` derive and utoipa-axum's `routes!` read it so).
    let tags = operation.tags.get_or_insert_with(Vec::new);
    tags.extend(P::tags().into_iter().map(str::to_owned));
    Documented {
        path: P::path(),
        methods: P::methods(),
        operation,
    }
}

/// One route.
pub struct Route<S> {
    /// The method it answers.
    pub method: Method,
    /// Its path: literal segments, `{name}` for one segment, and a final
    /// `{*name}` for whatever follows (possibly nothing).
    pub template: &'static str,
    /// The `handler` label of the metrics: the template, unless said.
    pub label: &'static str,
    /// Who may call it.
    pub guard: Guard,
    /// What answers it.
    pub handler: Handler<S>,
    /// Whether its handler reads the request body (so the body is part of
    /// an idempotency key's fingerprint).
    pub reads_body: bool,
    /// Its operation in the API document; `None` for the few routes the
    /// document leaves out on purpose (itself, Swagger UI, the chat page's
    /// assets).
    pub doc: Option<fn() -> Documented>,
}

impl<S> Route<S> {
    fn new(method: Method, template: &'static str, handler: Handler<S>) -> Route<S> {
        Route {
            method,
            template,
            label: template,
            guard: Guard::Open,
            handler,
            reads_body: false,
            doc: None,
        }
    }

    /// Notes that the handler reads the body.
    fn body(mut self) -> Route<S> {
        self.reads_body = true;
        self
    }

    /// Whether the route writes: it takes an `Idempotency-Key`.
    #[must_use]
    pub fn is_write(&self) -> bool {
        ![Method::GET, Method::HEAD, Method::OPTIONS].contains(&self.method)
    }

    fn doc(mut self, doc: fn() -> Documented) -> Route<S> {
        self.doc = Some(doc);
        self
    }

    fn guard(mut self, guard: Guard) -> Route<S> {
        self.guard = guard;
        self
    }

    fn label(mut self, label: &'static str) -> Route<S> {
        self.label = label;
        self
    }
}

/// `handler` as a table entry: its future, boxed.
macro_rules! to {
    ($handler:path) => {
        |call| Box::pin($handler(call)) as Answer
    };
}

/// Every route of this shopd: the admin routes only when `access` has a
/// token. Order matters only between rows that share a path and method
/// (none do).
#[must_use]
pub fn table<S: Store>(access: &Access) -> Vec<Route<S>> {
    use Method as M;
    let routes = vec![
        // POST /item {"name", "price"} -> 201 item
        Route::new(M::POST, "/item", to!(items::create))
            .guard(Guard::Catalogue)
            .body()
            .doc(doc::<items::__path_create>),
        // GET /item?offset=..&limit=..&min_price=..&max_price=..&show_deleted=..
        Route::new(M::GET, "/item", to!(items::list)).doc(doc::<items::__path_list>),
        Route::new(M::GET, "/item/{id}", to!(items::get)).doc(doc::<items::__path_get>),
        // PUT /item/{id} {"name", "price"}
        Route::new(M::PUT, "/item/{id}", to!(items::replace))
            .guard(Guard::Catalogue)
            .body()
            .doc(doc::<items::__path_replace>),
        // PATCH /item/{id} {"name"?, "price"?}
        Route::new(M::PATCH, "/item/{id}", to!(items::patch))
            .guard(Guard::Catalogue)
            .body()
            .doc(doc::<items::__path_patch>),
        Route::new(M::DELETE, "/item/{id}", to!(items::delete))
            .guard(Guard::Catalogue)
            .doc(doc::<items::__path_delete>),
        // POST /cart -> 201 {"id"}; a body, if any, is not read
        Route::new(M::POST, "/cart", to!(carts::create)).doc(doc::<carts::__path_create>),
        // GET /cart?offset=..&limit=..&min_price=..&max_price=..&min_quantity=..&max_quantity=..
        Route::new(M::GET, "/cart", to!(carts::list)).doc(doc::<carts::__path_list>),
        Route::new(M::GET, "/cart/{id}", to!(carts::get)).doc(doc::<carts::__path_get>),
        Route::new(M::POST, "/cart/{cart_id}/add/{item_id}", to!(carts::add))
            .doc(doc::<carts::__path_add>),
        // The WebSocket upgrade is taken before the table (crate::chat::route);
        // a plain request on the path gets the handler's 404.
        Route::new(M::GET, "/chat/{chat_name}", to!(chat_page::chat))
            .doc(doc::<chat_page::__path_chat>),
        Route::new(M::GET, "/chat", to!(chat_page::page)).doc(doc::<chat_page::__path_page>),
        Route::new(M::GET, "/chat.css", to!(chat_page::style)),
        Route::new(M::GET, "/chat.js", to!(chat_page::script)),
        Route::new(M::GET, "/metrics", to!(metrics::metrics)).doc(doc::<metrics::__path_metrics>),
        Route::new(M::GET, "/healthz", to!(health::healthz)).doc(doc::<health::__path_healthz>),
        Route::new(M::GET, "/readyz", to!(health::ready)).doc(doc::<health::__path_ready>),
        Route::new(M::GET, "/readyz/chat", to!(health::chat_ready))
            .doc(doc::<health::__path_chat_ready>),
        Route::new(M::GET, "/admin/export", to!(admin::export))
            .guard(Guard::Admin)
            .doc(doc::<admin::__path_export>),
        Route::new(M::GET, "/openapi.json", to!(openapi::serve)),
        // /docs redirects to /docs/, the Swagger UI page; its files below.
        Route::new(M::GET, "/docs/{*file}", to!(docs::serve)).label("/docs"),
    ];
    routes
        .into_iter()
        .filter(|route| route.guard != Guard::Admin || access.token.is_some())
        .collect()
}

/// `method` as the API document spells it.
#[must_use]
pub fn http_method(method: &Method) -> Option<HttpMethod> {
    Some(match *method {
        Method::GET => HttpMethod::Get,
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::PATCH => HttpMethod::Patch,
        Method::DELETE => HttpMethod::Delete,
        Method::HEAD => HttpMethod::Head,
        Method::OPTIONS => HttpMethod::Options,
        Method::TRACE => HttpMethod::Trace,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::http::router::Table;
    use crate::store::SledStore;

    /// The routes the API document leaves out on purpose.
    const UNDOCUMENTED: &[&str] = &["/chat.css", "/chat.js", "/openapi.json", "/docs/{*file}"];

    /// Every route, the admin ones included.
    fn every_route() -> (Access, Table<SledStore>) {
        let access = Access {
            token: Some(Secret::new("a-token-of-sufficient-length")),
            protect_catalogue: true,
        };
        let table = Table::new(table(&access));
        (access, table)
    }

    /// A path that fits `template`: `1` for each parameter.
    fn example(template: &str) -> String {
        template
            .split('/')
            .map(|segment| match segment {
                s if s.starts_with("{*") => "index.html",
                s if s.starts_with('{') => "1",
                s => s,
            })
            .collect::<Vec<_>>()
            .join("/")
    }

    #[test]
    fn each_documented_handler_is_annotated_with_its_rows_path_and_method() {
        let (_, table) = every_route();
        for route in table.routes() {
            let Some(doc) = route.doc else { continue };
            let doc = doc();
            assert_eq!(
                doc.path, route.template,
                "{} {}",
                route.method, route.template
            );
            let spelled = |methods: &[HttpMethod]| serde_json::to_string(methods).unwrap();
            assert_eq!(
                spelled(&doc.methods),
                spelled(&[http_method(&route.method).unwrap()]),
                "{} {}",
                route.method,
                route.template
            );
        }
    }

    #[test]
    fn every_route_is_routed_labelled_allowed_and_documented() {
        let (access, table) = every_route();
        let document = crate::http::openapi::typed(&table, &access);
        for route in table.routes() {
            let path = example(route.template);
            let name = format!("{} {}", route.method, route.template);
            let found = table.route(&route.method, &path).expect(&name);
            assert!(
                found.template == route.template && found.method == route.method,
                "{name} is routed to {} {}",
                found.method,
                found.template
            );
            let label_is_template = route.label == route.template;
            assert!(
                label_is_template || route.template == "/docs/{*file}",
                "{name}"
            );
            let allow = table.allow(&path).expect(&name).to_str().unwrap();
            assert!(
                allow.split(", ").any(|m| m == route.method),
                "{name}: {allow}"
            );
            let documented = document.paths.paths.get(route.template).and_then(|item| {
                let operations = [
                    (Method::GET, &item.get),
                    (Method::POST, &item.post),
                    (Method::PUT, &item.put),
                    (Method::PATCH, &item.patch),
                    (Method::DELETE, &item.delete),
                ];
                operations
                    .into_iter()
                    .find(|(method, _)| *method == route.method)
                    .and_then(|(_, operation)| operation.as_ref())
            });
            assert_eq!(
                documented.is_some(),
                !UNDOCUMENTED.contains(&route.template),
                "{name} in the document"
            );
        }
    }

    #[test]
    fn the_admin_routes_exist_only_with_a_token() {
        let with = table::<SledStore>(&every_route().0);
        let without = table::<SledStore>(&Access::default());
        assert!(with.iter().any(|route| route.template == "/admin/export"));
        assert!(without.iter().all(|route| route.guard != Guard::Admin));
        assert!(without.len() < with.len());
    }
}
