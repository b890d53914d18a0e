//! `GET /chat`: the chat page, a small HTML page with its own stylesheet
//! (`GET /chat.css`) and script (`GET /chat.js`), all compiled into the
//! binary, so the page needs no network beyond shopd itself.
//!
//! The assets sit at the top level, not under `/chat/`, where every name is
//! a room. The page is served with a strict Content-Security-Policy: no
//! inline code, nothing from another origin, WebSockets only to shopd.

use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, StatusCode, header};

use super::Routed;
use super::reply::typed;

/// The page's policy: its own script and stylesheet, WebSockets to its own
/// host (`'self'` covers `ws:`/`wss:` of the same host), nothing else, and
/// no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// One compiled-in file and the route that serves it.
struct Asset {
    /// The route, also the `handler` label of the metrics.
    handler: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const PAGE: Asset = Asset {
    handler: "/chat",
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../chat/page/chat.html"),
};

const STYLE: Asset = Asset {
    handler: "/chat.css",
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("../chat/page/chat.css"),
};

const SCRIPT: Asset = Asset {
    handler: "/chat.js",
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../chat/page/chat.js"),
};

/// `GET /chat` (`?room=NAME` opens that room at once), `GET /chat.css`,
/// `GET /chat.js`.
pub fn routes() -> BoxedFilter<(Routed,)> {
    let page = warp::path!("chat").and(warp::get()).map(|| serve(&PAGE));
    let style = warp::path!("chat.css")
        .and(warp::get())
        .map(|| serve(&STYLE));
    let script = warp::path!("chat.js")
        .and(warp::get())
        .map(|| serve(&SCRIPT));
    page.or(style).unify().or(script).unify().boxed()
}

/// The asset with its content type and the security headers.
fn serve(asset: &Asset) -> Routed {
    let mut response = typed(StatusCode::OK, asset.content_type, asset.body);
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Small files that change with the binary: always revalidate.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Routed {
        handler: asset.handler,
        response,
    }
}

/// The chat page: talk in a room from a browser.
///
/// An HTML page (with `/chat.css` and `/chat.js`, also served by shopd) that
/// joins the room over the WebSocket of `GET /chat/{chat_name}`, shows the
/// room's lines as they arrive, your own as "you", the connection state and
/// what a close code means, and reconnects by itself after a restart (1001)
/// or a lost connection (1006). Without `room` it asks for one.
#[utoipa::path(
    get,
    path = "/chat",
    tag = "chat",
    operation_id = "chat_page",
    params(("room" = Option<String>, Query, description = "The room to open at once", example = "lobby")),
    responses(
        (status = 200, description = "The chat page", body = String, content_type = "text/html"),
    ),
)]
#[allow(dead_code)]
pub(super) fn page() {}
