//! Joining, leaving, shutdown, the room registry and its figures.

use futures_util::SinkExt;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;

use super::*;
use crate::helpers::{detail, spawn_app, spawn_app_with};
use crate::support::eventually;

#[tokio::test]
async fn a_plain_get_on_a_chat_path_is_a_404() {
    let app = spawn_app().await;
    // `/chat` itself is the chat page (see chat_page.rs).
    for path in ["/chat/lobby", "/chat/caf%C3%A9", "/chat/a/b"] {
        assert_eq!(
            detail(app.get(path).await, 404).await,
            "Not Found",
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_member_that_leaves_or_drops_its_connection_does_not_disturb_the_others() {
    let app = spawn_app().await;
    let mut ann = join(app.addr, "departures").await;
    let mut bob = join(app.addr, "departures").await;
    let mut polite = join(app.addr, "departures").await;
    let abrupt = join(app.addr, "departures").await;
    let vanishing = join(app.addr, "departures").await;

    polite.close(None).await.expect("close");
    assert!(matches!(next_frame(&mut polite).await, Message::Close(_)));
    reset(vanishing);
    say(&mut ann, "still here?").await;
    assert_eq!(next_line(&mut bob).await.1, "still here?");
    // Gone without a close frame: a plain FIN.
    drop(abrupt);
    for round in 0..20 {
        say(&mut bob, &format!("yes {round}")).await;
        assert_eq!(next_line(&mut ann).await.1, format!("yes {round}"));
    }
}

#[tokio::test]
async fn shutdown_closes_every_chat_with_1001() {
    let app = spawn_app().await;
    let mut ann = join(app.addr, "one").await;
    let mut bob = join(app.addr, "one").await;
    let mut cid = join(app.addr, "two").await;
    let (_dir, ann_code, bob_code, cid_code) = timeout(GUARD, async {
        tokio::join!(
            app.stop(),
            close_code(&mut ann),
            close_code(&mut bob),
            close_code(&mut cid)
        )
    })
    .await
    .expect("shutdown in time");
    assert_eq!([ann_code, bob_code, cid_code], [1001; 3]);
}

#[tokio::test]
async fn members_are_removed_however_they_leave_and_empty_rooms_are_forgotten() {
    let app =
        spawn_app_with(|settings| settings.chat.queue_len = std::num::NonZero::new(64).unwrap())
            .await;
    let addr = app.addr;
    let mut polite = join(addr, "one").await;
    let mut abrupt = join(addr, "one").await;
    let vanishing = join(addr, "two").await;
    let mut binary = join(addr, "three").await;
    // Members are in before the handshake completes: no waiting here.
    let (rooms, connections, _) = chat_metrics(&app).await;
    assert_eq!((rooms, connections), (3, 4));

    say(&mut polite, "hi").await;
    assert_eq!(next_line(&mut abrupt).await.1, "hi");
    polite.close(None).await.expect("close");
    reset(vanishing);
    binary.send(Message::binary(vec![1u8])).await.expect("send");
    assert_eq!(close_code(&mut binary).await, 1003);
    wait_for_stats(&app, 1, 1).await;
    drop(abrupt);
    let (_, _, messages) = wait_for_stats(&app, 0, 0).await;
    assert_eq!(messages, 1);
}

#[tokio::test]
async fn the_metrics_follow_rooms_connections_and_messages() {
    let app = spawn_app().await;
    let mut ann = join(app.addr, "one").await;
    let bob = join(app.addr, "one").await;
    let cid = join(app.addr, "two").await;
    say(&mut ann, "hi").await;
    say(&mut ann, "there").await;
    let (rooms, connections, _) = chat_metrics(&app).await;
    assert_eq!((rooms, connections), (2, 3));
    // Counted when the server reads them, just after this client sent them.
    eventually("both messages counted", || async {
        chat_metrics(&app).await.2 == 2
    })
    .await;

    ann.close(None).await.expect("close");
    finish_close(&mut ann).await;
    reset(bob);
    drop(cid);
    let (_, _, messages) = wait_for_stats(&app, 0, 0).await;
    assert_eq!(messages, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_members_joining_and_leaving_the_same_rooms_at_once_leave_nothing_behind() {
    let app =
        spawn_app_with(|settings| settings.chat.queue_len = std::num::NonZero::new(64).unwrap())
            .await;
    let addr = app.addr;
    let tasks: Vec<_> = (0..40)
        .map(|task| {
            tokio::spawn(async move {
                for round in 0..10 {
                    let mut client = join(addr, &format!("churn-{}", (task + round) % 4)).await;
                    say(&mut client, "passing through").await;
                    match round % 3 {
                        0 => client.close(None).await.expect("close"),
                        1 => reset(client),
                        _ => drop(client),
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        timeout(GUARD, task).await.expect("in time").expect("churn");
    }
    let (_, _, messages) = wait_for_stats(&app, 0, 0).await;
    assert_eq!(messages, 400);
}
