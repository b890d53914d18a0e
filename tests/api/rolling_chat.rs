//! A rolling restart under chat: three instances on one PostgreSQL and one
//! NATS with JetStream behind HAProxy from `deploy/haproxy.cfg`, restarted
//! one at a time with SIGTERM while JSON members talk through the balancer.
//! Each member closed by a restart reconnects with its token and last
//! offset; at the end every member has every line once, in order.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::chat::Client;
use crate::chat_resume::client::SUBPROTOCOL;
use crate::deploy::BACKENDS;
use crate::process::{PATIENCE, exit_within, sigterm};
use crate::rolling::{ShopBehindHaproxy, shop_behind_haproxy, start_instance};

const ROOM: &str = "rolling";
/// Members talking through the restarts.
const MEMBERS: usize = 4;
/// Between two lines of one member.
const PACE: Duration = Duration::from_millis(100);
/// A member is done once it heard nothing for this long after the talk.
const QUIET: Duration = Duration::from_secs(2);

/// What one member saw: every offset in the order it came (`line` and
/// `sent` alike), the text of others' lines by offset, and whether each
/// reconnection resumed completely.
#[derive(Debug, Default)]
struct Seen {
    offsets: Vec<u64>,
    texts: BTreeMap<u64, String>,
    resumes: Vec<bool>,
}

/// Connects through `addr` with the subprotocol and reads the welcome;
/// `None` when the balancer or the instance refused (tried again).
async fn try_join(addr: SocketAddr, query: &str) -> Option<(Client, Value)> {
    let mut request = format!("ws://{addr}/chat/{ROOM}{query}")
        .into_client_request()
        .ok()?;
    request.headers_mut().insert(
        "sec-websocket-protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
    let (mut client, _) = timeout(Duration::from_secs(5), connect).await.ok()?.ok()?;
    let frame = timeout(Duration::from_secs(5), client.next())
        .await
        .ok()??
        .ok()?;
    let Message::Text(text) = frame else {
        return None;
    };
    let welcome: Value = serde_json::from_str(&text).ok()?;
    (welcome["type"] == "welcome").then_some((client, welcome))
}

/// Joins (again) through `addr`, trying for a while.
async fn join(addr: SocketAddr, query: &str) -> (Client, Value) {
    for _ in 0..100 {
        if let Some(joined) = try_join(addr, query).await {
            return joined;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("could not join {ROOM} through {addr}");
}

/// One member: talks every `PACE` until `stop`, reads everything, and
/// resumes with its token and last offset whenever its connection closes.
async fn member(
    addr: SocketAddr,
    index: usize,
    talk: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
) -> Seen {
    let (mut client, mut welcome) = join(addr, "").await;
    let mut seen = Seen::default();
    let mut last = welcome["offset"].as_u64().expect("offset");
    let mut said = 0;
    let mut tick = tokio::time::interval(PACE);
    loop {
        let talking = talk.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed);
        let broken = tokio::select! {
            frame = timeout(QUIET, client.next()) => match frame {
                Err(_) if stop.load(Ordering::Relaxed) => return seen,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(&text).expect("JSON");
                    let offset = frame["offset"].as_u64().expect("offset");
                    if frame["type"] == "line" {
                        seen.texts.insert(offset, frame["text"].as_str().unwrap_or_default().to_owned());
                    }
                    seen.offsets.push(offset);
                    last = offset;
                    false
                }
                Ok(Some(Ok(Message::Close(_)) | Err(_)) | None) => true,
                // Quiet while talking, pings and pongs: nothing to do.
                Err(_) | Ok(Some(Ok(_))) => false,
            },
            _ = tick.tick(), if talking => {
                said += 1;
                client.send(Message::text(format!("{index}:{said}"))).await.is_err()
            }
        };
        if broken {
            let query = format!(
                "?resume={}&since={last}&epoch={}",
                welcome["token"].as_str().expect("token"),
                welcome["epoch"].as_str().expect("epoch")
            );
            let name = welcome["name"].clone();
            (client, welcome) = join(addr, &query).await;
            assert_eq!(welcome["name"], name, "the same name after a resume");
            seen.resumes.push(welcome["resumed"] == true);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_rolling_restart_behind_haproxy_resuming_members_miss_no_line_and_see_none_twice() {
    // Bound, not `..`: the bus and the database live to the end.
    let Some(ShopBehindHaproxy {
        mut shop,
        proxy,
        nats: _nats,
        database: _database,
    }) = shop_behind_haproxy("rolling_restart_chat").await
    else {
        return;
    };

    let (talk, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let members: Vec<_> = (0..MEMBERS)
        .map(|index| tokio::spawn(member(proxy.addr(), index, talk.clone(), stop.clone())))
        .collect();
    // Everyone in before the first line, so every member is owed all.
    crate::nats::poll("every member in the room", || async {
        let mut joined = 0.0;
        for instance in &shop.instances {
            let text = reqwest::get(instance.process.url("/metrics")).await.ok();
            let Some(text) = text else { continue };
            let text = text.text().await.unwrap_or_default();
            joined += crate::exposition::Exposition::parse(&text)
                .value("shopd_chat_connections", &[])
                .unwrap_or(0.0);
        }
        joined >= MEMBERS as f64
    })
    .await;
    talk.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(1)).await;

    for (index, instance) in shop.instances.iter_mut().enumerate() {
        let server = format!("shopd{}", index + 1);
        sigterm(&instance.process.child);
        for backend in BACKENDS {
            proxy.wait_for(backend, &server, "DOWN").await;
        }
        let status = exit_within(&mut instance.process.child, PATIENCE).expect("shopd exits");
        assert!(status.success(), "{status}");
        let listen = instance.process.addr.to_string();
        instance.process =
            start_instance(shop.cwd.path(), &instance.data_dir, &listen, &shop.extra);
        for backend in BACKENDS {
            proxy.wait_for(backend, &server, "UP").await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);

    let mut seen = Vec::new();
    for member in members {
        seen.push(member.await.expect("member"));
    }
    let total = seen
        .iter()
        .map(|seen| seen.offsets.len())
        .max()
        .unwrap_or(0) as u64;
    assert!(total > 50, "the members talked: {total} lines");
    let reconnects: usize = seen.iter().map(|seen| seen.resumes.len()).sum();
    assert!(reconnects >= 1, "the restarts closed members");
    for (index, seen) in seen.iter().enumerate() {
        let expected: Vec<u64> = (1..=total).collect();
        assert_eq!(
            seen.offsets, expected,
            "member {index}: every line once, in order"
        );
        assert!(
            seen.resumes.iter().all(|&resumed| resumed),
            "member {index}: {:?}",
            seen.resumes
        );
    }
    // One text per offset, whoever heard it.
    for offset in 1..=total {
        let texts: Vec<&String> = seen
            .iter()
            .filter_map(|seen| seen.texts.get(&offset))
            .collect();
        assert!(
            texts.windows(2).all(|pair| pair[0] == pair[1]),
            "offset {offset}: {texts:?}"
        );
    }
    eprintln!("rolling restart under chat: {total} lines, {reconnects} resumes, all complete");
}
