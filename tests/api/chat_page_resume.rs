//! The chat page resumes: shopd restarts (same data directory, same
//! address) while another member goes on talking; the page shows every
//! line once, in order, and the others see it under the same name.

use futures_util::SinkExt;
use tokio_tungstenite::tungstenite::Message;

use crate::browser::Driver;
use crate::chat::next_line;
use crate::chat_page::page::{entries, join, line, lines, open_room, say, wait_for_line};
use crate::support::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_between_lines_the_page_shows_every_line_once_in_order_under_the_same_you()
{
    let test =
        "after_a_restart_between_lines_the_page_shows_every_line_once_in_order_under_the_same_you";
    let Some(mut driver) = Driver::start(test).await else {
        return;
    };
    let app = TestApp::builder().spawn().await;
    let addr = app.addr;
    let page = driver.session(720, 560).await;
    open_room(&page, &app, "lobby").await;
    let mut terminal = join(&app, "lobby").await;
    terminal.send(Message::text("before")).await.expect("send");
    wait_for_line(&page, "before").await;
    say(&page, "me before").await;
    let (page_name, _) = next_line(&mut terminal).await;

    // Stopped: the page waits a second or more before reconnecting; the
    // room goes on without it meanwhile.
    let dir = app.stop().await;
    let app = TestApp::builder()
        .in_dir(dir)
        .configure(|settings| settings.server.listen = addr)
        .spawn()
        .await;
    let mut terminal = join(&app, "lobby").await;
    for text in ["while away 1", "while away 2"] {
        terminal.send(Message::text(text)).await.expect("send");
    }
    wait_for_line(&page, "while away 2").await;
    terminal.send(Message::text("after")).await.expect("send");
    wait_for_line(&page, "after").await;
    say(&page, "me after").await;
    assert_eq!(
        next_line(&mut terminal).await,
        (page_name, "me after".to_owned()),
        "the others see the page under the same name"
    );

    // The terminal is a plain client: a new name on each connection.
    let shown = lines(&page).await;
    let first = shown[0].1.clone().expect("a name");
    let second = shown[2].1.clone().expect("a name");
    assert_eq!(
        shown,
        [
            line("line", &first, "before"),
            line("line mine", "you", "me before"),
            line("line", &second, "while away 1"),
            line("line", &second, "while away 2"),
            line("line", &second, "after"),
            line("line mine", "you", "me after"),
        ],
        "every line once, in order"
    );
    let notes: Vec<String> = entries(&page)
        .await
        .into_iter()
        .filter(|(kind, _, _)| kind == "note")
        .map(|(_, _, text)| text)
        .collect();
    assert!(
        notes
            .iter()
            .any(|note| note.starts_with("Reconnected. Nothing was missed")),
        "{notes:?}"
    );
    page.quit().await;
}
