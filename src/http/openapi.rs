//! The OpenAPI 3 document of the API, generated from the handlers'
//! `#[utoipa::path]` annotations and the domain types, served at
//! `GET /openapi.json`.

use std::sync::LazyLock;

use utoipa::openapi::response::{Response as ResponseDoc, ResponseBuilder};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoParams, OpenApi, ToResponse};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};

use super::Routed;
use super::error::{IssuesBody, SentenceBody};
use crate::domain::{Cart, CartLine, Issue, Item, ItemPatch, Location, NewItem};

const OVERVIEW: &str = "\
The HTTP API of shopd: items, carts, a chat over WebSocket and Prometheus metrics.

Bodies are JSON whatever the `Content-Type`; unknown fields are rejected.
A request is checked in this order: its shape (422, every problem of path, query
and body at once), then existence (404), then state (304, no body).

Every error but 304 has a JSON body with `detail`, as FastAPI answers:
- 404, 405, 413: a sentence, e.g. `{\"detail\": \"Item 5 not found\"}`. An unknown
  path is 404 `{\"detail\": \"Not Found\"}`; a known path asked with another method
  is 405 `{\"detail\": \"Method Not Allowed\"}`.
- 422: one entry per problem, `{\"detail\": [{\"loc\": [\"query\", \"limit\"],
  \"msg\": \"...\", \"type\": \"greater_than_equal\"}]}`, with `loc` starting with
  `path`, `query` or `body` and `type` pydantic's error type.

A path id that is an integer no resource can have (0, negative, beyond 64 bits)
is a 404. A body larger than the configured limit (default 1 MiB) is a 413 and
nothing is stored.

Requests hyper cannot parse are answered before any route, also with a JSON
`detail`: 400 (malformed request line, header or `Content-Length`), 414 (URI
over 65534 bytes), 431 (more than 100 headers, or too many bytes of them). A
request that does not arrive whole in time gets 408 and its connection closes.";

/// The API document: every route of the shop.
#[derive(OpenApi)]
#[openapi(
    info(title = "shopd", description = OVERVIEW),
    paths(
        super::items::create,
        super::items::list,
        super::items::get,
        super::items::replace,
        super::items::patch,
        super::items::delete,
        super::carts::create,
        super::carts::list,
        super::carts::get,
        super::carts::add,
        chat,
        super::chat_page::page,
        metrics,
        super::health::healthz,
        super::health::ready,
        super::admin::export,
    ),
    modifiers(&AdminToken),
    components(
        schemas(
            Item,
            NewItem,
            ItemPatch,
            Cart,
            CartLine,
            super::carts::NewCart,
            SentenceBody,
            IssuesBody,
            super::health::Healthy,
            Issue,
            Location
        ),
        responses(Invalid, TooLarge, MethodNotAllowed, Unauthorized),
    ),
    tags(
        (name = "items", description = "What the shop sells"),
        (name = "carts", description = "Lines of items with quantities, priced from the items' current state"),
        (name = "chat", description = "Chat rooms over WebSocket"),
        (name = "operations", description = "Metrics for Prometheus, health for load balancers"),
    ),
)]
pub struct ApiDoc;

/// The bounds of this shopd that the document states (its settings).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    /// The `max_list_limit` setting.
    pub max_list_limit: usize,
    /// The `max_name_chars` setting.
    pub max_name_chars: usize,
}

/// The document with this shopd's bounds: the `maximum` of `limit`, the
/// `maxLength` of names, and a closing paragraph on every bound (its value
/// here, its default, its setting). The numbers come from the settings
/// alone, so the document cannot disagree with what is enforced.
fn document_with(bounds: Bounds) -> String {
    let mut document: serde_json::Value =
        serde_json::from_str(document()).expect("the API document is JSON");
    for list in [
        "/paths/~1item/get/parameters",
        "/paths/~1cart/get/parameters",
    ] {
        let parameters = document.pointer_mut(list).and_then(|p| p.as_array_mut());
        for parameter in parameters.into_iter().flatten() {
            if parameter["name"] == "limit" {
                parameter["schema"]["maximum"] = bounds.max_list_limit.into();
            }
        }
    }
    for schema in ["NewItem", "ItemPatch"] {
        let name = format!("/components/schemas/{schema}/properties/name");
        if let Some(name) = document.pointer_mut(&name) {
            name["maxLength"] = bounds.max_name_chars.into();
        }
    }
    let defaults = crate::config::Settings::default();
    let limits = format!(
        "\n\nLimits of this server (settings, each in `config.toml`, `SHOPD_*` and flags):\n\
         - `limit` of a list: at most {} (`max_list_limit`, default {}); more is a 422 \
         `less_than_equal`.\n\
         - item names: at most {} characters (`max_name_chars`, default {}); longer is a 422 \
         `string_too_long`.\n\
         - distinct lines per cart: `max_cart_lines` (default {}); adding another item is \
         a 409.\n\
         - a whole request within `request_timeout_secs` (default {} s) of its first byte, \
         else 408; idle keep-alive connections close after `idle_timeout_secs` (default {} s); \
         a response its client does not read for `write_timeout_secs` (default {} s) is \
         dropped with its connection.",
        bounds.max_list_limit,
        defaults.max_list_limit,
        bounds.max_name_chars,
        defaults.max_name_chars,
        defaults.max_cart_lines,
        defaults.request_timeout_secs,
        defaults.idle_timeout_secs,
        defaults.write_timeout_secs,
    );
    if let Some(serde_json::Value::String(text)) = document.pointer_mut("/info/description") {
        text.push_str(&limits);
    }
    serde_json::to_string_pretty(&document).expect("the API document serializes")
}

/// The document as JSON, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the API document is plain data and always serializes")
});

/// The API document as JSON text.
pub fn document() -> &'static str {
    &DOCUMENT
}

/// `GET /openapi.json`: the API document, with this shopd's bounds.
pub fn route(bounds: Bounds) -> BoxedFilter<(Routed,)> {
    let document = bytes::Bytes::from(document_with(bounds));
    warp::path!("openapi.json")
        .and(warp::get())
        .map(move || Routed {
            handler: "/openapi.json",
            response: super::reply::typed(StatusCode::OK, "application/json", document.clone()),
        })
        .boxed()
}

// The parameter structs below only describe requests: `query.rs` and
// `extract.rs` read them. Integers are `u128` for the document's sake: like
// Python's, ours have no 64-bit bound (`u64` would say `format: int64`).

/// The methods of each route template (`["item", "{id}"]`), from the
/// document, as `Allow` header values.
static METHODS: LazyLock<Vec<(Vec<String>, HeaderValue)>> = LazyLock::new(|| {
    let document: serde_json::Value =
        serde_json::from_str(document()).expect("the API document is JSON");
    // Routes left out of the document: the document itself, the chat page's assets.
    let mut routes: Vec<(Vec<String>, HeaderValue)> = ["openapi.json", "chat.css", "chat.js"]
        .into_iter()
        .map(|path| (vec![path.into()], HeaderValue::from_static("GET")))
        .collect();
    for (template, item) in document["paths"].as_object().into_iter().flatten() {
        let methods: Vec<_> = ["get", "post", "put", "patch", "delete"]
            .into_iter()
            .filter(|method| item.get(method).is_some())
            .map(str::to_ascii_uppercase)
            .collect();
        let segments = template.split('/').skip(1).map(str::to_owned).collect();
        if let Ok(value) = HeaderValue::from_str(&methods.join(", ")) {
            routes.push((segments, value));
        }
    }
    routes
});

/// The methods a path takes, as an `Allow` header value; `None` for an
/// unknown path.
pub fn allowed_methods(path: &str) -> Option<HeaderValue> {
    // Like the routes, take an optional trailing slash.
    let path = path
        .strip_suffix('/')
        .filter(|p| !p.is_empty())
        .unwrap_or(path);
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    if segments.first() == Some(&"docs") {
        return Some(HeaderValue::from_static("GET"));
    }
    let fits = |template: &[String]| {
        template.len() == segments.len()
            && template
                .iter()
                .zip(&segments)
                .all(|(want, got)| want == got || (want.starts_with('{') && !got.is_empty()))
    };
    METHODS
        .iter()
        .find(|(template, _)| fits(template))
        .map(|(_, methods)| methods.clone())
}

/// Gives a 405 reply the `Allow` header RFC 9110 asks for.
pub fn with_allow(path: &str, mut routed: Routed) -> Routed {
    if routed.response.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(methods) = allowed_methods(path)
    {
        routed.response.headers_mut().insert(header::ALLOW, methods);
    }
    routed
}

/// The query of `GET /item`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ItemQuery {
    /// Matching items skipped before the first one returned.
    #[param(minimum = 0, default = 0, nullable = false)]
    offset: Option<u128>,
    /// The most items returned; the maximum is the `max_list_limit` setting.
    #[param(minimum = 1, default = 10, nullable = false)]
    limit: Option<u128>,
    /// Lowest price listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    min_price: Option<f64>,
    /// Highest price listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    max_price: Option<f64>,
    /// Whether deleted items are listed too. Also accepted, in any case:
    /// `1/0`, `yes/no`, `on/off`, `t/f`, `y/n`.
    #[param(default = false, nullable = false)]
    show_deleted: Option<bool>,
}

/// The query of `GET /cart`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CartQuery {
    /// Matching carts skipped before the first one returned.
    #[param(minimum = 0, default = 0, nullable = false)]
    offset: Option<u128>,
    /// The most carts returned; the maximum is the `max_list_limit` setting.
    #[param(minimum = 1, default = 10, nullable = false)]
    limit: Option<u128>,
    /// Lowest cart price listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    min_price: Option<f64>,
    /// Highest cart price listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    max_price: Option<f64>,
    /// Lowest cart quantity (sum of its lines' quantities) listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    min_quantity: Option<u128>,
    /// Highest cart quantity (sum of its lines' quantities) listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    max_quantity: Option<u128>,
}

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

fn json_response(description: &str, schema: &str, example: serde_json::Value) -> ResponseDoc {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name(schema)))
                .example(Some(example))
                .build(),
        )
        .build()
}

/// The 422 reply: one entry per problem of the request.
pub struct Invalid;

impl<'r> ToResponse<'r> for Invalid {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({"detail": [{
            "loc": ["query", "limit"],
            "msg": "Input should be greater than or equal to 1",
            "type": "greater_than_equal",
        }]});
        let description = "The request's path, query or body is invalid";
        let response = json_response(description, "HTTPValidationError", example);
        ("ValidationFailed", response.into())
    }
}

/// The 413 reply: the body is over the configured limit.
pub struct TooLarge;

impl<'r> ToResponse<'r> for TooLarge {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({
            "detail": "Request body is larger than the limit of 1048576 bytes",
        });
        let description = "The body is larger than the limit; nothing was stored";
        let response = json_response(description, "HTTPError", example);
        ("PayloadTooLarge", response.into())
    }
}

/// The 401 reply: the admin token is missing or wrong.
pub struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({"detail": "Not authenticated"});
        let description = "The admin token is needed (`Authorization: Bearer TOKEN`) and was missing or wrong; the reply carries `WWW-Authenticate: Bearer`. Item writes need it only when the operator sets `protect_catalogue`.";
        let response = json_response(description, "HTTPError", example);
        ("Unauthorized", response.into())
    }
}

/// The `admin_token` security scheme: a bearer token set by the operator.
struct AdminToken;

impl utoipa::Modify for AdminToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The token from `--admin-token-file` or `SHOPD_ADMIN_TOKEN`. Needed by `/admin/*`, and by item writes when `protect_catalogue` is on.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The 405 reply: a known path asked with a method it does not take.
pub struct MethodNotAllowed;

impl<'r> ToResponse<'r> for MethodNotAllowed {
    fn response() -> (&'r str, RefOr<ResponseDoc>) {
        let example = serde_json::json!({"detail": "Method Not Allowed"});
        let description = "The path exists but does not take this method";
        let response = json_response(description, "HTTPError", example);
        ("MethodNotAllowed", response.into())
    }
}

/// Joins a chat room over WebSocket.
///
/// Send the usual WebSocket upgrade headers (`Connection: Upgrade`,
/// `Upgrade: websocket`, `Sec-WebSocket-Version: 13`, `Sec-WebSocket-Key`).
/// Everyone connected with the same (percent-decoded) `chat_name` is in one
/// room; rooms are independent.
///
/// - On connect the server gives the connection a random user name, fixed for
///   the connection, e.g. `brave-otter-4821`.
/// - Each text frame a member sends is delivered, as one text frame
///   `{username} :: {message}`, to every *other* member of its room, in the
///   order sent. The sender gets no echo; the server sends nothing else.
/// - A fast sender is slowed down (its frames are read later) while a room
///   mate's bounded queue is full, and beyond its rate (default 100 lines a
///   second, bursts of 200). A member that reads nothing for the stall
///   timeout (default 10 s) while its queue is full is closed with 1008; the
///   others go on.
/// - A text frame over the message limit (default 64 KiB) closes with 1009, a
///   binary frame with 1003; at shutdown chats close with 1001; beyond the
///   chat connection limit (default 10,000) a new connection closes with 1013.
#[utoipa::path(
    get,
    path = "/chat/{chat_name}",
    tag = "chat",
    operation_id = "chat",
    params(("chat_name" = String, Path, description = "The room's name, percent-decoded", example = "lobby")),
    responses(
        (status = 101, description = "Switching Protocols: the connection is now a WebSocket of the room"),
        (status = 404, description = "Not a WebSocket upgrade request", body = SentenceBody,
            example = json!({"detail": "Not Found"})),
    ),
)]
#[allow(dead_code)]
fn chat() {}

/// Prometheus metrics in the text exposition format.
///
/// The names and labels of prometheus-fastapi-instrumentator
/// (`http_requests_total{handler, method, status}`,
/// `http_request_duration_seconds`, ...), labelled by route template, plus
/// `process_*` and shopd's own `shopd_*` metrics.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain",
            example = "# HELP shopd_items Items stored, deleted ones included.\n# TYPE shopd_items gauge\nshopd_items 3\n"),
    ),
)]
#[allow(dead_code)]
fn metrics() {}
