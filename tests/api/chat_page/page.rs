//! The chat page as the browser tests drive it: opening a room, saying a
//! line, waiting for states and lines, reading the log; and a terminal
//! member beside the page.

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::json;

use crate::browser::{ENTER, Session};
use crate::helpers::TestApp;

/// A line of the page's log: its kind (`line`, `line mine` or `note`), who
/// said it (`you` for one's own), and its text.
pub type Entry = (String, Option<String>, String);

/// Opens the page on room `room` and waits until it is connected.
pub async fn open_room(page: &Session, app: &TestApp, room: &str) {
    let room = utf8_percent_encode(room, NON_ALPHANUMERIC);
    page.goto(&app.url(&format!("/chat?room={room}"))).await;
    wait_for_state(page, "open", "Connected").await;
}

/// Waits until the connection state is `kind` and its words contain `words`.
pub async fn wait_for_state(page: &Session, kind: &str, words: &str) {
    page.wait_until(
        &format!("the state {kind:?} saying {words:?}"),
        "const [kind, words] = arguments;
         const state = document.getElementById('state');
         return state.dataset.state === kind && state.textContent.includes(words);",
        json!([kind, words]),
    )
    .await;
}

/// Waits until the page's log has a note starting with `words`. Unlike
/// the state, which moves on by itself (a "Reconnecting in 1 s" lasts
/// about a second), a note stays.
pub async fn wait_for_note(page: &Session, words: &str) {
    page.wait_until(
        &format!("a note saying {words:?}"),
        "const [words] = arguments;
         return [...document.querySelectorAll('#log li.note .text')]
             .some((note) => note.textContent.startsWith(words));",
        json!([words]),
    )
    .await;
}

/// Types `text` into the message field and presses Enter.
pub async fn say(page: &Session, text: &str) {
    let field = page.find("#say-input").await;
    page.type_into(&field, &format!("{text}{ENTER}")).await;
}

/// Waits until a line from someone else with exactly `text` is shown.
pub async fn wait_for_line(page: &Session, text: &str) {
    page.wait_until(
        &format!("the line {text:?}"),
        "const [text] = arguments;
         return [...document.querySelectorAll('#log li.line:not(.mine) .text')]
             .some((shown) => shown.textContent === text);",
        json!([text]),
    )
    .await;
}

/// Every entry of the page's log, oldest first.
pub async fn entries(page: &Session) -> Vec<Entry> {
    let found = page
        .run(
            "return [...document.querySelectorAll('#log li')].map((li) => [
                 li.className,
                 li.querySelector('.who') ? li.querySelector('.who').textContent : null,
                 li.querySelector('.text').textContent,
             ]);",
            json!([]),
        )
        .await;
    serde_json::from_value(found).expect("entries")
}

/// The chat lines of the log, notes left out.
pub async fn lines(page: &Session) -> Vec<Entry> {
    let mut found = entries(page).await;
    found.retain(|(kind, _, _)| kind != "note");
    found
}

/// An expected entry: a line of `kind` from `who` saying `text`.
pub fn line(kind: &str, who: &str, text: &str) -> Entry {
    (kind.to_owned(), Some(who.to_owned()), text.to_owned())
}

/// Whether `name` has the shape of a name shopd made up (`word-word-1234`).
pub fn is_generated_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('-').collect();
    parts.len() == 3 && parts[2].len() == 4 && parts[2].bytes().all(|b| b.is_ascii_digit())
}

/// A WebSocket member of `room`, as a terminal client would be.
pub async fn join(app: &TestApp, room: &str) -> crate::support::WsClient {
    crate::support::join(app.addr, room).await
}
