//! "The newest connection wins" across instances on one chat bus: a
//! member that resumes through another instance closes its older
//! connection there, with the same close code and reason as on one
//! instance; claims that cross are ranked alike everywhere; plain members
//! never see a claim.

use bytes::{BufMut, BytesMut};
use futures_util::StreamExt;
use tokio::time::timeout;

use crate::chat::{GUARD, join, next_line};
use crate::chat_resume::client::{
    Welcome, close_frame, join_json, next_chat_line, resume_query, say_json,
};
use crate::nats::{Nats, nats_server, spawn_on_bus, subject};

/// What a replaced connection is told.
const REPLACED: &str = "replaced by a newer connection with the same resume token";

/// A claim as another instance sends it: version 3, instance, join time
/// (ns since the Unix epoch), name.
fn claim(instance: u64, joined: u64, name: &str) -> bytes::Bytes {
    let mut out = BytesMut::new();
    out.put_u8(3);
    out.put_u64(instance);
    out.put_u64(joined);
    out.put_slice(name.as_bytes());
    out.freeze()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_resumed_through_another_instance_closes_its_older_connection_there() {
    let Some(binary) = nats_server("the newest connection wins across instances") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let a = spawn_on_bus(&nats.url()).await;
    let b = spawn_on_bus(&nats.url()).await;
    let room = "takeover";

    let (mut ann_a, welcome): (_, Welcome) = join_json(a.addr, room, "").await;
    let (mut carl, _) = join_json(a.addr, room, "").await;
    let mut plain = join(b.addr, room).await;
    let first = say_json(&mut ann_a, "before").await;
    assert_eq!(next_chat_line(&mut carl).await.2, "before");
    assert_eq!(
        next_line(&mut plain).await,
        (welcome.name.clone(), "before".into())
    );

    let (mut ann_b, again) = join_json(b.addr, room, &resume_query(&welcome, first)).await;
    assert_eq!(again.name, welcome.name, "the same name");
    assert!(again.resumed);
    assert_eq!(
        close_frame(&mut ann_a).await,
        (1008, REPLACED.to_owned()),
        "the older connection, on the other instance, is closed as on one instance"
    );

    // Lines flow to the newer connection, each once.
    let mut offsets = Vec::new();
    for n in 0..5 {
        offsets.push(say_json(&mut carl, &format!("after {n}")).await);
    }
    for (n, offset) in offsets.iter().enumerate() {
        let (got, _, text) = next_chat_line(&mut ann_b).await;
        assert_eq!((got, text), (*offset, format!("after {n}")));
    }
    let own = say_json(&mut ann_b, "still me").await;
    assert_eq!(own, offsets[4] + 1, "nothing between: no line came twice");
    assert_eq!(next_chat_line(&mut carl).await.2, "still me");

    // The plain member saw every line and nothing of the claim.
    for n in 0..5 {
        assert_eq!(next_line(&mut plain).await.1, format!("after {n}"));
    }
    assert_eq!(
        next_line(&mut plain).await,
        (welcome.name.clone(), "still me".into())
    );

    // Back on A with the newest token: the connection on B loses now.
    let (mut ann_a2, third) = join_json(a.addr, room, &resume_query(&again, own)).await;
    assert_eq!(third.name, welcome.name);
    assert_eq!(close_frame(&mut ann_b).await, (1008, REPLACED.to_owned()));
    let last = say_json(&mut carl, "to a").await;
    assert_eq!(next_chat_line(&mut ann_a2).await.0, last);
    assert_eq!(next_line(&mut plain).await.1, "to a");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_two_claims_that_cross_the_older_connection_loses_and_other_frames_are_ignored() {
    let Some(binary) = nats_server("the newest connection wins across instances") else {
        return;
    };
    let nats = Nats::start(&binary).await;
    let a = spawn_on_bus(&nats.url()).await;
    let room = "crossing";
    let (mut ann, welcome) = join_json(a.addr, room, "").await;
    let (mut carl, carl_welcome) = join_json(a.addr, room, "").await;
    let mut plain = join(a.addr, room).await;

    let bus = async_nats::connect(nats.url()).await.expect("connect");
    let mut heard = bus.subscribe(subject(room)).await.expect("subscribe");
    bus.flush().await.expect("flush");
    // A claim from an instance whose connection joined before Ann's: it
    // loses; A answers with its own claim, so that instance closes it.
    bus.publish(subject(room), claim(1, 1, &welcome.name))
        .await
        .expect("publish");
    // Frames a future version might send, and a claim for another name.
    bus.publish(subject(room), bytes::Bytes::from_static(b"\x09future"))
        .await
        .expect("publish");
    bus.publish(subject(room), claim(1, u64::MAX, "someone-else"))
        .await
        .expect("publish");
    bus.flush().await.expect("flush");
    let answer = timeout(GUARD, async {
        loop {
            let message = heard.next().await.expect("subscribed");
            // Our own claims come back too: the answer is A's.
            let from = message
                .payload
                .get(1..9)
                .map(|id| id != 1_u64.to_be_bytes());
            if message.payload.first() == Some(&3)
                && from == Some(true)
                && message.payload.ends_with(welcome.name.as_bytes())
            {
                break message.payload;
            }
        }
    })
    .await
    .expect("A answers a claim older than its connection");
    let joined = u64::from_be_bytes(answer[9..17].try_into().expect("8 bytes"));
    assert!(joined > 1, "the answer carries the newer connection's time");

    // Ann is still connected: lines reach her, once.
    let offset = say_json(&mut carl, "still there").await;
    assert_eq!(
        next_chat_line(&mut ann).await,
        (offset, carl_welcome.name.clone(), "still there".into())
    );
    assert_eq!(next_line(&mut plain).await.1, "still there");

    // A newer claim closes her, as a resume on one instance does.
    bus.publish(subject(room), claim(1, u64::MAX, &welcome.name))
        .await
        .expect("publish");
    bus.flush().await.expect("flush");
    assert_eq!(close_frame(&mut ann).await, (1008, REPLACED.to_owned()));

    // Nobody saw a claim or the unknown frame as a line.
    let next = say_json(&mut carl, "after").await;
    assert_eq!(next, offset + 1);
    assert_eq!(next_line(&mut plain).await.1, "after");
}
