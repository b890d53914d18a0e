//! `GET /chat`: the chat page, a small HTML page with its own stylesheet
//! (`GET /chat.css`) and script (`GET /chat.js`), all compiled into the
//! binary, so the page needs no network beyond shopd itself.
//!
//! The assets sit at the top level, not under `/chat/`, where every name is
//! a room. The page is served with a strict Content-Security-Policy: no
//! inline code, nothing from another origin, WebSockets only to shopd.

use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::error::{ApiError, SentenceBody};
use super::reply::typed;
use super::router::Call;

/// The page's policy: its own script and stylesheet, WebSockets to its own
/// host (`'self'` covers `ws:`/`wss:` of the same host), nothing else, and
/// no framing.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
frame-ancestors 'none'";

/// One compiled-in file.
struct Asset {
    content_type: &'static str,
    body: &'static [u8],
}

const PAGE: Asset = Asset {
    content_type: "text/html; charset=utf-8",
    body: include_bytes!("../chat/page/chat.html"),
};

const STYLE: Asset = Asset {
    content_type: "text/css; charset=utf-8",
    body: include_bytes!("../chat/page/chat.css"),
};

const SCRIPT: Asset = Asset {
    content_type: "text/javascript; charset=utf-8",
    body: include_bytes!("../chat/page/chat.js"),
};

/// `GET /chat.css`.
pub(super) async fn style<S>(_call: Call<S>) -> Result<Response, ApiError> {
    Ok(serve(&STYLE))
}

/// `GET /chat.js`.
pub(super) async fn script<S>(_call: Call<S>) -> Result<Response, ApiError> {
    Ok(serve(&SCRIPT))
}

/// The asset with its content type and the security headers.
fn serve(asset: &Asset) -> Response {
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
    response
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
pub(super) async fn page<S>(_call: Call<S>) -> Result<Response, ApiError> {
    Ok(serve(&PAGE))
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
pub(super) async fn chat<S>(_call: Call<S>) -> Result<Response, ApiError> {
    // The upgrade itself is taken before the routes (`crate::chat::route`):
    // a request that gets here is a plain one, which FastAPI answers 404.
    Err(ApiError::NotFound("Not Found".into()))
}
