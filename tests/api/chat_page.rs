//! The chat page (`GET /chat`) in a real headless Chromium: two people
//! talking, hostile text shown as text, close codes in words, reconnecting
//! after a restart, nothing loaded from elsewhere; and its HTTP headers,
//! labels and 404s without a browser.

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::browser::{Driver, ENTER};
use crate::exposition::scrape;
use crate::helpers::{detail, spawn_app, spawn_app_with};

pub mod page;

use page::{
    entries, is_generated_name, join, line, lines, open_room, say, wait_for_line, wait_for_note,
    wait_for_state,
};

#[tokio::test]
async fn two_browsers_in_one_room_see_each_others_lines_by_name_and_their_own_as_you() {
    let test = "two_browsers_in_one_room_see_each_others_lines_by_name_and_their_own_as_you";
    let Some(mut driver) = Driver::start(test).await else {
        return;
    };
    let app = spawn_app().await;
    let ann = driver.session(720, 560).await;
    let bob = driver.session(720, 560).await;
    open_room(&ann, &app, "tea room").await;
    open_room(&bob, &app, "tea room").await;
    assert_eq!(ann.text(&ann.find("#room-title").await).await, "tea room");

    let talk = [
        (&ann, &bob, "hello, anyone here?"),
        (&bob, &ann, "hi! is the sencha back :: in stock?"),
        (&ann, &bob, "yes, since this morning: 2.50 a bag"),
        (
            &bob,
            &ann,
            "great, two bags for me then. Merci, café crème later?",
        ),
    ];
    for (from, to, text) in talk {
        say(from, text).await;
        wait_for_line(to, text).await;
    }

    let seen_by_bob = lines(&bob).await;
    let ann_name = seen_by_bob[0].1.clone().expect("a name");
    let seen_by_ann = lines(&ann).await;
    let bob_name = seen_by_ann[1].1.clone().expect("a name");
    assert!(is_generated_name(&ann_name), "{ann_name}");
    assert!(is_generated_name(&bob_name), "{bob_name}");
    assert_ne!(ann_name, bob_name);
    let [first, second, third, fourth] = talk.map(|(_, _, text)| text);
    assert_eq!(
        seen_by_ann,
        [
            line("line mine", "you", first),
            line("line", &bob_name, second),
            line("line mine", "you", third),
            line("line", &bob_name, fourth),
        ]
    );
    assert_eq!(
        seen_by_bob,
        [
            line("line", &ann_name, first),
            line("line mine", "you", second),
            line("line", &ann_name, third),
            line("line mine", "you", fourth),
        ]
    );

    let png = ann.screenshot().await;
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG screenshot");
    // `SHOPD_CHAT_PAGE_SCREENSHOT=$PWD/docs/chat-page.png` refreshes the
    // picture in docs/chat.md.
    if let Some(path) = std::env::var_os("SHOPD_CHAT_PAGE_SCREENSHOT") {
        std::fs::write(path, &png).expect("write the screenshot");
    }
    ann.quit().await;
    bob.quit().await;
}

#[tokio::test]
async fn markup_from_another_member_is_shown_as_text_and_never_becomes_an_element() {
    let test = "markup_from_another_member_is_shown_as_text_and_never_becomes_an_element";
    let Some(mut driver) = Driver::start(test).await else {
        return;
    };
    let app = spawn_app().await;
    let page = driver.session(720, 460).await;
    open_room(&page, &app, "xss").await;
    let mut terminal = join(&app, "xss").await;
    let payload = "<img src=x onerror=alert(1)>";
    terminal.send(Message::text(payload)).await.expect("send");

    wait_for_line(&page, payload).await;
    let images = page
        .run(
            "return document.querySelectorAll('#log img').length + document.images.length;",
            json!([]),
        )
        .await;
    assert_eq!(images, 0, "no <img> was created");
    // WebDriver's text is what is rendered and visible.
    let shown = page.find("#log li.line .text").await;
    assert_eq!(page.text(&shown).await, payload);
    // An open alert would fail every further command with "unexpected alert open".
    assert_eq!(page.run("return 1 + 1;", json!([])).await, 2);
    page.quit().await;
}

#[tokio::test]
async fn a_message_over_the_limit_shows_the_1009_close_in_words() {
    let test = "a_message_over_the_limit_shows_the_1009_close_in_words";
    let Some(mut driver) = Driver::start(test).await else {
        return;
    };
    let app = spawn_app_with(|settings| {
        settings.chat.max_message_bytes = std::num::NonZero::new(16).unwrap();
    })
    .await;
    let page = driver.session(720, 460).await;
    open_room(&page, &app, "limits").await;
    say(&page, &"a".repeat(40)).await;

    wait_for_state(&page, "closed", "message too long").await;
    let state = page.text(&page.find("#state").await).await;
    assert_eq!(state, "Disconnected (1009): message too long.");
    let offered = page
        .run(
            "return !document.getElementById('reconnect').hidden;",
            json!([]),
        )
        .await;
    assert_eq!(
        offered, true,
        "a Reconnect button instead of retrying by itself"
    );
    page.quit().await;
}

#[tokio::test]
async fn the_page_asks_for_a_room_and_loads_nothing_from_outside_shopd() {
    let test = "the_page_asks_for_a_room_and_loads_nothing_from_outside_shopd";
    let Some(mut driver) = Driver::start(test).await else {
        return;
    };
    let app = spawn_app().await;
    let page = driver.session(720, 460).await;
    page.goto(&app.url("/chat")).await;
    let field = page.find("#room-input").await;
    page.type_into(&field, &format!("offline check{ENTER}"))
        .await;
    // The WebSocket connected: the policy's `connect-src 'self'` let it through.
    wait_for_state(&page, "open", "Connected").await;
    let search = page.run("return location.search;", json!([])).await;
    assert_eq!(search, "?room=offline%20check");

    let origin = page.run("return location.origin;", json!([])).await;
    let origin = origin.as_str().expect("origin");
    let loaded = page
        .run(
            "return performance.getEntriesByType('resource').map((entry) => entry.name);",
            json!([]),
        )
        .await;
    let loaded: Vec<String> = serde_json::from_value(loaded).expect("resource names");
    assert!(!loaded.is_empty());
    for url in &loaded {
        assert!(
            url.starts_with(&format!("{origin}/")),
            "{url} is not shopd's"
        );
    }
    for asset in ["/chat.css", "/chat.js"] {
        assert!(
            loaded.contains(&format!("{origin}{asset}")),
            "{asset} in {loaded:?}"
        );
    }
    // The stylesheet applied under the policy.
    let font = page
        .run(
            "return getComputedStyle(document.body).fontFamily;",
            json!([]),
        )
        .await;
    assert!(
        font.as_str().is_some_and(|f| f.contains("system-ui")),
        "{font}"
    );
    page.quit().await;
}

#[tokio::test]
async fn after_a_server_restart_the_page_says_so_and_reconnects_by_itself() {
    let test = "after_a_server_restart_the_page_says_so_and_reconnects_by_itself";
    let Some(mut driver) = Driver::start(test).await else {
        return;
    };
    let app = spawn_app().await;
    let addr = app.addr;
    let page = driver.session(720, 460).await;
    open_room(&page, &app, "lobby").await;

    app.stop().await;
    // The note, not the state: the state says so only until the first
    // reconnect attempt, about a second later, and stopping may take
    // longer than that on a busy machine.
    wait_for_note(&page, "Disconnected (1001): server restarting.").await;
    let app = spawn_app_with(|settings| settings.server.listen = addr).await;
    wait_for_state(&page, "open", "Connected").await;
    let notes: Vec<String> = entries(&page)
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "note")
        .map(|(_, _, text)| text)
        .collect();
    assert!(
        notes.iter().any(|note| note.starts_with("Reconnected.")),
        "{notes:?}"
    );

    let mut terminal = join(&app, "lobby").await;
    terminal
        .send(Message::text("welcome back"))
        .await
        .expect("send");
    wait_for_line(&page, "welcome back").await;
    page.quit().await;
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn the_page_and_its_assets_carry_their_types_the_policy_and_nosniff() {
    let app = spawn_app().await;
    let page = app.get("/chat?room=lobby").await;
    assert_eq!(page.status(), 200);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "x-content-type-options"), "nosniff");
    let policy = header(&page, "content-security-policy");
    for directive in [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(directive), "{directive} in {policy}");
    }
    let html = page.text().await.expect("body");
    assert!(html.contains(r#"<script src="/chat.js" defer></script>"#));
    assert!(!html.contains("<style"), "no inline style");
    assert!(!html.contains(" style="), "no inline style attribute");
    assert_eq!(html.matches("<script").count(), 1, "no inline script");

    for (path, content_type) in [
        ("/chat.css", "text/css; charset=utf-8"),
        ("/chat.js", "text/javascript; charset=utf-8"),
    ] {
        let asset = app.get(path).await;
        assert_eq!(asset.status(), 200, "{path}");
        assert_eq!(header(&asset, "content-type"), content_type, "{path}");
        assert_eq!(
            header(&asset, "x-content-type-options"),
            "nosniff",
            "{path}"
        );
    }
    let script = app.get("/chat.js").await.text().await.expect("script");
    assert!(!script.contains("innerHTML"), "lines go in as text only");
}

#[tokio::test]
async fn chat_paths_keep_their_websocket_behaviour_beside_the_page() {
    let app = spawn_app().await;
    assert_eq!(detail(app.get("/chat/lobby").await, 404).await, "Not Found");
    for page in ["/chat", "/chat/"] {
        let response = app.get(page).await;
        assert_eq!(response.status(), 200, "{page} is the page");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
    }
    assert_eq!(
        detail(app.get("/chat/chat.js").await, 404).await,
        "Not Found"
    );
    let wrong = app.post("/chat").await;
    assert_eq!(header(&wrong, "allow"), "GET");
    assert_eq!(detail(wrong, 405).await, "Method Not Allowed");
    // A room may be called `chat.js`: the asset lives outside `/chat/`.
    let mut member = join(&app, "chat.js").await;
    member
        .send(Message::text("still a room"))
        .await
        .expect("send");
}

#[tokio::test]
async fn the_page_and_each_asset_are_counted_under_their_own_handler_labels() {
    let app = spawn_app().await;
    for path in [
        "/chat",
        "/chat?room=a",
        "/chat?room=b",
        "/chat.css",
        "/chat.js",
    ] {
        assert_eq!(app.get(path).await.status(), 200, "{path}");
    }
    let metrics = scrape(&app).await;
    let count = |handler: &str| {
        metrics.value(
            "http_requests_total",
            &[("handler", handler), ("method", "GET"), ("status", "2xx")],
        )
    };
    assert_eq!(count("/chat"), Some(3.0));
    assert_eq!(count("/chat.css"), Some(1.0));
    assert_eq!(count("/chat.js"), Some(1.0));
    assert_eq!(count("none"), None, "nothing fell through to `none`");
}
