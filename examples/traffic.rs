//! Sends a mix of shop traffic to one shopd so its dashboards have
//! something to show: mostly successful item and cart calls, with some
//! 3xx and 4xx answers, scrapes of `/metrics` and a few chatters.
//!
//! ```sh
//! cargo run --example traffic -- --url http://127.0.0.1:8000 --seconds 60
//! ```
//!
//! It talks only to `--url`, stops after `--seconds` or `--max-requests`,
//! whichever comes first, and prints what it got per status class.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use rand::RngExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// Mixed shop traffic for one shopd.
#[derive(Parser, Debug)]
struct Args {
    /// Base URL of the shopd to exercise (http only).
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    url: String,
    /// Stop after this many seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// HTTP requests per second.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// Stop after this many HTTP requests.
    #[arg(long, default_value_t = 100_000)]
    max_requests: u64,
    /// Chat connections to keep open in two rooms (0: no chat).
    #[arg(long, default_value_t = 3)]
    chatters: u32,
}

/// One kind of request, with its weight in the mix.
#[derive(Clone, Copy, Debug)]
enum Action {
    GetItem,
    ListItems,
    CreateItem,
    CreateInvalidItem,
    GetMissingItem,
    PatchItem,
    ReplaceDeletedItem,
    DeleteItem,
    CreateCart,
    GetCart,
    AddToCart,
    ListCarts,
    GetCartBadId,
    UnknownPath,
    Metrics,
}

const MIX: &[(Action, u32)] = &[
    (Action::GetItem, 25),
    (Action::ListItems, 8),
    (Action::CreateItem, 10),
    (Action::CreateInvalidItem, 4),
    (Action::GetMissingItem, 6),
    (Action::PatchItem, 5),
    (Action::ReplaceDeletedItem, 2),
    (Action::DeleteItem, 2),
    (Action::CreateCart, 6),
    (Action::GetCart, 8),
    (Action::AddToCart, 10),
    (Action::ListCarts, 4),
    (Action::GetCartBadId, 2),
    (Action::UnknownPath, 3),
    (Action::Metrics, 3),
];

/// Ids this run created, most recent last, bounded.
#[derive(Default)]
struct Known {
    items: Vec<u64>,
    deleted: Vec<u64>,
    carts: Vec<u64>,
}

const KEEP: usize = 500;

fn remember(list: &mut Vec<u64>, id: u64) {
    if list.len() == KEEP {
        list.remove(0);
    }
    list.push(id);
}

/// A planned request: method, path, optional JSON body.
struct Plan {
    method: reqwest::Method,
    path: String,
    body: Option<Value>,
    action: Action,
}

fn plan(known: &Known) -> Plan {
    let mut rng = rand::rng();
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut pick = rng.random_range(0..total);
    let action = MIX
        .iter()
        .find(|(_, weight)| {
            let hit = pick < *weight;
            pick = pick.saturating_sub(*weight);
            hit
        })
        .map_or(Action::GetItem, |(a, _)| *a);
    let any = |list: &[u64], rng: &mut rand::rngs::ThreadRng| {
        list.get(rng.random_range(0..list.len().max(1))).copied()
    };
    let item = any(&known.items, &mut rng);
    let cart = any(&known.carts, &mut rng);
    let deleted = any(&known.deleted, &mut rng);
    let price = f64::from(rng.random_range(50..5000)) / 100.0;
    let new_item = json!({"name": format!("item {}", rng.random_range(1..10_000)), "price": price});
    use reqwest::Method as M;
    let (method, path, body) = match (action, item, cart) {
        (Action::GetItem, Some(i), _) => (M::GET, format!("/item/{i}"), None),
        (Action::ListItems, ..) => (M::GET, "/item?offset=0&limit=20&min_price=1".into(), None),
        (Action::CreateInvalidItem, ..) => (M::POST, "/item".into(), Some(json!({"name": ""}))),
        (Action::GetMissingItem, ..) => (M::GET, "/item/999999999".into(), None),
        (Action::PatchItem, Some(i), _) => (
            M::PATCH,
            format!("/item/{i}"),
            Some(json!({ "price": price })),
        ),
        (Action::ReplaceDeletedItem, ..) if deleted.is_some() => (
            M::PUT,
            format!("/item/{}", deleted.unwrap_or_default()),
            Some(new_item),
        ),
        (Action::DeleteItem, Some(i), _) if known.items.len() > 20 => {
            (M::DELETE, format!("/item/{i}"), None)
        }
        (Action::CreateCart, ..) => (M::POST, "/cart".into(), None),
        (Action::GetCart, _, Some(c)) => (M::GET, format!("/cart/{c}"), None),
        (Action::AddToCart, Some(i), Some(c)) => (M::POST, format!("/cart/{c}/add/{i}"), None),
        (Action::ListCarts, ..) => (M::GET, "/cart?min_quantity=1&limit=20".into(), None),
        (Action::GetCartBadId, ..) => (M::GET, "/cart/not-a-number".into(), None),
        (Action::UnknownPath, ..) => (M::GET, "/no-such-page".into(), None),
        (Action::Metrics, ..) => (M::GET, "/metrics".into(), None),
        // Nothing to act on yet: make something first.
        _ if known.items.is_empty() || rng.random_range(0..2) == 0 => {
            (M::POST, "/item".into(), Some(new_item))
        }
        _ => (M::POST, "/cart".into(), None),
    };
    Plan {
        method,
        path,
        body,
        action,
    }
}

/// Sends one planned request; returns its status (None when it failed).
async fn send(client: &reqwest::Client, base: &str, known: &mut Known, plan: Plan) -> Option<u16> {
    let mut request = client.request(plan.method.clone(), format!("{base}{}", plan.path));
    if let Some(body) = &plan.body {
        request = request
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let response = request.send().await.ok()?;
    let status = response.status().as_u16();
    let created = plan.method == reqwest::Method::POST && status == 201;
    let deleted = matches!(plan.action, Action::DeleteItem) && status == 200;
    if created || deleted {
        let id = response
            .json::<Value>()
            .await
            .ok()
            .and_then(|v| v["id"].as_u64());
        match (id, plan.path.as_str()) {
            (Some(id), "/item") => remember(&mut known.items, id),
            (Some(id), "/cart") => remember(&mut known.carts, id),
            (Some(id), _) => {
                known.items.retain(|i| *i != id);
                remember(&mut known.deleted, id);
            }
            (None, _) => {}
        }
    }
    Some(status)
}

/// One chat member: sends a line every second or so until `until`.
async fn chatter(ws_base: String, room: &'static str, who: u32, until: Instant) {
    let url = format!("{ws_base}/chat/{room}");
    let Ok((socket, _)) = tokio_tungstenite::connect_async_with_config(&url, None, true).await
    else {
        eprintln!("chatter {who}: cannot open {url}; chat traffic skipped");
        return;
    };
    let (mut sink, mut stream) = socket.split();
    // Read and drop what the others say, so our queue never fills.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        if sink
            .send(Message::text(format!("hello #{n} from {who}")))
            .await
            .is_err()
        {
            break;
        }
        let pause = rand::rng().random_range(500..2000);
        tokio::time::sleep(Duration::from_millis(pause)).await;
    }
    let _ = sink.close().await;
    reader.abort();
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let base = args.url.trim_end_matches('/').to_owned();
    let Some(rest) = base.strip_prefix("http://") else {
        return Err(format!("--url must start with http:// (got {base})").into());
    };
    let ws_base = format!("ws://{rest}");
    let until = Instant::now() + Duration::from_secs(args.seconds);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    println!(
        "sending about {} requests/s to {base} for {} s (at most {} requests)",
        args.rate, args.seconds, args.max_requests
    );

    let chatters: Vec<_> = (0..args.chatters)
        .map(|who| {
            let room = if who % 2 == 0 { "lobby" } else { "support" };
            tokio::spawn(chatter(ws_base.clone(), room, who, until))
        })
        .collect();

    let mut known = Known::default();
    let mut classes: BTreeMap<String, u64> = BTreeMap::new();
    let mut tick =
        tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(args.rate.max(1))));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = 0u64;
    let mut report = Instant::now();
    while Instant::now() < until && sent < args.max_requests {
        tick.tick().await;
        let next = plan(&known);
        let class = match send(&client, &base, &mut known, next).await {
            Some(status) => format!("{}xx", status / 100),
            None => "failed".into(),
        };
        *classes.entry(class).or_default() += 1;
        sent += 1;
        if report.elapsed() >= Duration::from_secs(10) {
            report = Instant::now();
            println!("{sent} requests so far: {classes:?}");
        }
    }
    for chatter in chatters {
        let _ = chatter.await;
    }
    println!("done: {sent} requests: {classes:?}");
    if classes.get("failed") == Some(&sent) {
        return Err(format!("no request reached {base}: is shopd running there?").into());
    }
    Ok(())
}
