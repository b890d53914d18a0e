//! The OpenAPI 3 document of the API, served at `GET /openapi.json`: the
//! routes of the table (each with its handler's `#[utoipa::path]`
//! operation), the domain types, and only what this server runs (the
//! `/admin/*` routes with an admin token, the token on item writes with
//! catalogue protection).

use bytes::Bytes;
use utoipa::openapi::security::SecurityRequirement;
use utoipa::{Modify, OpenApi};
use warp::http::StatusCode;
use warp::reply::Response;

use super::admin::Access;
use super::error::{
    ApiError, IdempotencyInFlight, Invalid, IssuesBody, MethodNotAllowed, PreconditionFailed,
    SentenceBody, TooLarge, TooManyRequests, Unauthorized,
};
use super::router::{Call, Table};
use super::routes::{Guard, http_method};
use crate::domain::{Cart, CartLine, Issue, Item, ItemPatch, Location, NewItem, Page};

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
request that does not arrive whole in time gets 408 and its connection closes.

Per client (its address; behind a proxy named in `trusted_proxies`, the
address the proxy forwards): with `rate_limit_per_sec` set, a client over its
rate gets 429 with `Retry-After` (seconds) and a `detail`, on every route but
`/healthz`, `/readyz` and `/metrics`; past `max_connections_per_client` open
connections from one address, a new one is closed at once. With
`cors_allowed_origins` set, pages of those origins may call the API from a
browser (CORS); a chat upgrade from a page of an origin not allowed gets 403.

Every write (`POST`, `PUT`, `PATCH`, `DELETE`) takes an `Idempotency-Key`: a
retry with the same key and request gets the first answer again with
`Idempotent-Replayed: true` and changes nothing. The key is checked first (a
bad or reused key is a 422 at `[\"header\", \"Idempotency-Key\"]`, a key still
running a 409), then the request's own 422, 404, 412 and 304. Only committed
answers are kept (2xx, and the 304 of a deleted item).";

/// The parts of the API document that are not routes: the overview, the
/// shared schemas and replies, the tags. The routes come from the table.
#[derive(OpenApi)]
#[openapi(
    info(title = "shopd", description = OVERVIEW),
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
        responses(Invalid, TooLarge, MethodNotAllowed, Unauthorized, TooManyRequests, PreconditionFailed, IdempotencyInFlight),
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

/// The API document of this shopd as JSON, built once at start-up: every
/// documented route of `table`, with the admin token's requirement where
/// `access` makes one, and this shopd's bounds.
pub fn document<S>(table: &Table<S>, access: &Access, bounds: Bounds) -> Bytes {
    Bytes::from(with_bounds(&typed(table, access), bounds))
}

/// The typed document of `table` as `access` configures it.
pub fn typed<S>(table: &Table<S>, access: &Access) -> utoipa::openapi::OpenApi {
    let mut document = ApiDoc::openapi();
    let bearer = SecurityRequirement::new("admin_token", Vec::<String>::new());
    let mut guarded = false;
    for route in table.routes() {
        let (Some(doc), Some(method)) = (route.doc, http_method(&route.method)) else {
            continue;
        };
        let mut operation = doc().operation;
        let security = match route.guard {
            // Item writes need the token only with protection on.
            Guard::Open => None,
            Guard::Catalogue if !access.protect_catalogue => None,
            Guard::Catalogue | Guard::Admin => Some(vec![bearer.clone()]),
        };
        if let Some(security) = security {
            guarded = true;
            operation.security = Some(security);
        }
        if route.is_write() {
            idempotent(&mut operation);
        }
        if !super::layers::UNLIMITED.contains(&route.template) {
            // With `rate_limit_per_sec` set, any of these may be a 429.
            operation.responses.responses.insert(
                "429".into(),
                utoipa::openapi::Ref::from_response_name("TooManyRequests").into(),
            );
        }
        document
            .paths
            .add_path_operation(route.template, vec![method], operation);
    }
    if guarded {
        AdminToken.modify(&mut document);
    }
    document
}

/// What `Idempotency-Key` adds to a write's operation: the header, the
/// `Idempotent-Replayed` header on the answers a replay repeats, the 409
/// while the same key runs and the 422 of a bad or reused key.
fn idempotent(operation: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::path::{ParameterBuilder, ParameterIn};
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    use utoipa::openapi::{HeaderBuilder, Ref, RefOr, Required};
    let key = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(super::layers::idempotency::MAX_KEY_LEN))
        .pattern(Some("^[!-~]+$"))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .push(
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes the write safe to retry (1-255 visible ASCII characters, global to the \
                     shop, kept `idempotency_ttl_secs`, default 24 h). The first request with a key \
                     runs and its answer (status, body, `Location`, `ETag`) is kept with it, in the \
                     same transaction as the change; a repeat of the same request (method, path, \
                     body) gets that answer again with `Idempotent-Replayed: true` and changes \
                     nothing; the same key with another request is a 422; while the first still \
                     runs, a 409. A request that fails keeps nothing: correct it and send it again \
                     with the same key.",
                ))
                .schema(Some(key))
                .build()
                .into(),
        );
    let replayed = HeaderBuilder::new()
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(["true"])),
        ))
        .description(Some(
            "`true` when this is the answer kept for the request's `Idempotency-Key`",
        ))
        .build();
    let in_flight = "A request with the same `Idempotency-Key` is still being processed: \
        retry after `Retry-After` seconds; nothing was done";
    let responses = &mut operation.responses.responses;
    for (status, response) in responses.iter_mut() {
        if let RefOr::T(response) = response {
            if status.starts_with('2') || status == "304" {
                response
                    .headers
                    .insert("Idempotent-Replayed".into(), replayed.clone().into());
            } else if status == "409" {
                // The write's own 409 (a full cart) shares the status.
                response.description = format!("{}. Or: {in_flight}", response.description);
                response
                    .headers
                    .insert("Retry-After".into(), super::error::retry_after().into());
            }
        }
    }
    responses
        .entry("409".into())
        .or_insert_with(|| Ref::from_response_name("IdempotencyInFlight").into());
    responses
        .entry("422".into())
        .or_insert_with(|| Ref::from_response_name("ValidationFailed").into());
}

/// `GET /openapi.json`: the document.
pub(super) async fn serve<S>(call: Call<S>) -> Result<Response, ApiError> {
    Ok(super::reply::typed(
        StatusCode::OK,
        "application/json",
        call.document(),
    ))
}

/// `typed` with this shopd's bounds: the `minimum`, `default` and
/// `maximum` of `limit`, the `maxLength` of names, and a closing paragraph
/// on every bound (its value here, its default, its setting). The numbers
/// come from [`Page`] and the settings alone, the values the parsers
/// enforce, so the document cannot disagree with them.
fn with_bounds(typed: &utoipa::openapi::OpenApi, bounds: Bounds) -> String {
    let mut document =
        serde_json::to_value(typed).expect("the API document is plain data and always serializes");
    for list in [
        "/paths/~1item/get/parameters",
        "/paths/~1cart/get/parameters",
    ] {
        let parameters = document.pointer_mut(list).and_then(|p| p.as_array_mut());
        for parameter in parameters.into_iter().flatten() {
            if parameter["name"] == "limit" {
                let schema = &mut parameter["schema"];
                schema["minimum"] = Page::MIN_LIMIT.into();
                schema["default"] = Page::DEFAULT_LIMIT.into();
                schema["maximum"] = bounds.max_list_limit.into();
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
        defaults.limits.max_list_limit,
        bounds.max_name_chars,
        defaults.limits.max_name_chars,
        defaults.limits.max_cart_lines,
        defaults.server.request_timeout.as_secs(),
        defaults.server.idle_timeout.as_secs(),
        defaults.server.write_timeout.as_secs(),
    );
    if let Some(serde_json::Value::String(text)) = document.pointer_mut("/info/description") {
        text.push_str(&limits);
    }
    serde_json::to_string_pretty(&document).expect("the API document serializes")
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
