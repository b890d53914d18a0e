//! `Idempotency-Key` on writes: a lost answer is replayed on retry and the
//! change counted once, also with 50 racing copies, after a kill -9 and
//! restart, and across instances on PostgreSQL; another request with the
//! same key is a 422 until the key expires; a refused request keeps
//! nothing.

mod crash;
mod instances;

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::{backend_tests, detail, issues};
use crate::nats::metric;
use crate::support::{TestApp, eventually};

/// A keyed request to `app`, with an optional JSON body.
pub async fn keyed(
    client: &reqwest::Client,
    url: String,
    method: Method,
    key: &str,
    body: Option<&Value>,
) -> reqwest::Response {
    let mut request = client.request(method, url).header("Idempotency-Key", key);
    if let Some(body) = body {
        request = request.json(body);
    }
    request.send().await.expect("request")
}

/// Whether a reply says it was replayed.
pub fn replayed(response: &reqwest::Response) -> bool {
    response
        .headers()
        .get("idempotent-replayed")
        .is_some_and(|value| value == "true")
}

/// The quantity of `item` in cart `cart` (0 when it has no line).
async fn quantity(app: &TestApp, cart: u64, item: u64) -> u64 {
    let cart = app.get_json(&format!("/cart/{cart}")).await;
    cart["items"]
        .as_array()
        .expect("lines")
        .iter()
        .find(|line| line["id"] == item)
        .map_or(0, |line| line["quantity"].as_u64().expect("quantity"))
}

/// A proxy for one connection to `upstream` that forwards one request
/// and, once the answer starts to come back (the write is done), closes
/// the client's connection without passing the answer on.
async fn answer_dropping_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.expect("accept");
        let mut server = TcpStream::connect(upstream).await.expect("connect");
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // The request has no body: it ends with its headers.
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = client.read(&mut buf).await.expect("read request");
            assert!(n > 0, "the client closed before its request was whole");
            request.extend_from_slice(&buf[..n]);
        }
        server.write_all(&request).await.expect("forward");
        let n = server.read(&mut buf).await.expect("read answer");
        assert!(n > 0, "shopd answered nothing");
        // The answer is lost: the client's connection just closes.
        drop(client);
    });
    addr
}

backend_tests! {
    async fn a_retry_after_a_lost_answer_is_replayed_and_the_cart_holds_one_more(backend) {
        let app = backend.spawn().await;
        let item = app.create_item("Tea", 2.5).await["id"].as_u64().unwrap();
        let cart = app.create_cart().await;
        let path = format!("/cart/{cart}/add/{item}");
        let proxy = answer_dropping_proxy(app.addr).await;
        let lost = reqwest::Client::new()
            .post(format!("http://{proxy}{path}"))
            .header("Idempotency-Key", "add-tea-1")
            .send();
        // A liveness bound, not a timing claim.
        let lost = tokio::time::timeout(crate::support::GUARD, lost)
            .await
            .expect("the proxy closes the connection");
        assert!(lost.is_err(), "the first answer must be lost on the way");
        assert_eq!(quantity(&app, cart, item).await, 1, "the first add ran");

        let retry = keyed(&app.client, app.url(&path), Method::POST, "add-tea-1", None).await;
        assert_eq!(retry.status(), 200);
        assert!(replayed(&retry), "the retry is answered from the key");
        let body: Value = retry.json().await.unwrap();
        assert_eq!(body["items"][0]["quantity"], 1);
        assert_eq!(quantity(&app, cart, item).await, 1, "exactly one more");

        // A new key is a new add.
        let next = keyed(&app.client, app.url(&path), Method::POST, "add-tea-2", None).await;
        assert_eq!(next.status(), 200);
        assert!(!replayed(&next));
        assert_eq!(quantity(&app, cart, item).await, 2);
    }

    async fn fifty_racing_requests_with_one_key_change_the_cart_once(backend) {
        let app = backend.spawn().await;
        let item = app.create_item("Tea", 2.5).await["id"].as_u64().unwrap();
        let cart = app.create_cart().await;
        let url = app.url(&format!("/cart/{cart}/add/{item}"));
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let client = app.client.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    let response = keyed(&client, url, Method::POST, "race", None).await;
                    let status = response.status().as_u16();
                    let was_replayed = replayed(&response);
                    if status == 409 {
                        assert!(response.headers().contains_key("retry-after"));
                        assert!(!detail(response, 409).await.is_empty());
                    }
                    (status, was_replayed)
                })
            })
            .collect();
        let mut ran = 0;
        for task in tasks {
            match task.await.unwrap() {
                (200, false) => ran += 1,
                (200, true) | (409, false) => {}
                other => panic!("unexpected answer {other:?}"),
            }
        }
        assert_eq!(ran, 1, "exactly one request ran");
        assert_eq!(quantity(&app, cart, item).await, 1);
        // Once it is done, every retry is a replay.
        let late = keyed(&app.client, url, Method::POST, "race", None).await;
        assert_eq!((late.status().as_u16(), replayed(&late)), (200, true));
    }

    async fn the_same_key_with_another_request_is_a_422_until_it_expires(backend) {
        let app = backend
            .spawn_with(|settings| {
                settings.storage.idempotency_ttl = Duration::from_secs(1);
                settings.storage.stats_refresh = Duration::from_millis(50);
            })
            .await;
        let url = app.url("/item");
        let tea = json!({"name": "Tea", "price": 2.5});
        let first = keyed(&app.client, url.clone(), Method::POST, "k", Some(&tea)).await;
        assert_eq!(first.status(), 201);
        let location = first.headers()["location"].clone();
        let etag = first.headers()["etag"].clone();
        let first: Value = first.json().await.unwrap();

        let again = keyed(&app.client, url.clone(), Method::POST, "k", Some(&tea)).await;
        assert_eq!(again.status(), 201);
        assert!(replayed(&again));
        assert_eq!(again.headers()["location"], location);
        assert_eq!(again.headers()["etag"], etag);
        assert_eq!(again.json::<Value>().await.unwrap(), first);

        let cake = json!({"name": "Cake", "price": 4.0});
        let other = keyed(&app.client, url.clone(), Method::POST, "k", Some(&cake)).await;
        assert_eq!(
            issues(other).await,
            [("header.Idempotency-Key".into(), "idempotency_key_reused".into())]
        );
        let elsewhere = keyed(&app.client, app.url("/cart"), Method::POST, "k", None).await;
        assert_eq!(elsewhere.status(), 422, "keys are global, not per route");

        // After the TTL the key runs again, as a new request.
        let deadline = std::time::Instant::now() + crate::support::GUARD;
        let rerun = loop {
            let response = keyed(&app.client, url.clone(), Method::POST, "k", Some(&cake)).await;
            if response.status() == 201 {
                break response.json::<Value>().await.unwrap();
            }
            // At the moment the key expires, a write refused for it may
            // find it gone when it reads the key back: a 409 asking for a
            // retry.
            assert!(
                [409, 422].contains(&response.status().as_u16()),
                "{}",
                response.status()
            );
            assert!(std::time::Instant::now() < deadline, "the key never expired");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(rerun["name"], "Cake");
        assert_ne!(rerun["id"], first["id"]);
        assert_eq!(app.get_json("/item").await.as_array().unwrap().len(), 2);

        // Expired keys are pruned in the background.
        eventually("the expired key to be pruned", || async {
            metric(&app, "shopd_idempotency_keys").await == Some(0.0)
        })
        .await;
        let replays = metric(&app, "shopd_idempotency_replays_total").await;
        assert_eq!(replays, Some(1.0));
    }

    async fn a_refused_request_keeps_nothing_so_a_corrected_one_runs(backend) {
        let app = backend.spawn().await;
        // 422 for its body: nothing kept, the corrected body runs.
        let url = app.url("/item");
        let bad = json!({"name": "", "price": 1.0});
        let refused = keyed(&app.client, url.clone(), Method::POST, "fix-me", Some(&bad)).await;
        assert_eq!(refused.status(), 422);
        let good = json!({"name": "Tea", "price": 1.0});
        let ran = keyed(&app.client, url.clone(), Method::POST, "fix-me", Some(&good)).await;
        assert_eq!((ran.status().as_u16(), replayed(&ran)), (201, false));
        let item = ran.json::<Value>().await.unwrap()["id"].as_u64().unwrap();

        // 404: nothing kept; the same key then serves an add that exists.
        let cart = app.create_cart().await;
        let missing = app.url(&format!("/cart/{cart}/add/{}", item + 1000));
        for _ in 0..2 {
            let response = keyed(&app.client, missing.clone(), Method::POST, "add", None).await;
            assert_eq!((response.status().as_u16(), replayed(&response)), (404, false));
        }
        let add = app.url(&format!("/cart/{cart}/add/{item}"));
        let ran = keyed(&app.client, add, Method::POST, "add", None).await;
        assert_eq!((ran.status().as_u16(), replayed(&ran)), (200, false));

        // 412: nothing kept either.
        let path = app.url(&format!("/item/{item}"));
        let stale = app
            .client
            .put(path.clone())
            .header("Idempotency-Key", "put")
            .header("If-Match", "\"stale\"")
            .json(&good)
            .send()
            .await
            .unwrap();
        assert_eq!(stale.status(), 412);
        let put = keyed(&app.client, path.clone(), Method::PUT, "put", Some(&good)).await;
        assert_eq!((put.status().as_u16(), replayed(&put)), (200, false));

        // A bad key is refused before anything runs.
        for bad_key in ["", "with space", &"k".repeat(256)] {
            let response = keyed(&app.client, url.clone(), Method::POST, bad_key, Some(&good)).await;
            assert_eq!(
                issues(response).await,
                [("header.Idempotency-Key".into(), "idempotency_key".into())],
                "{bad_key:?}"
            );
        }
        assert_eq!(app.get_json("/item").await.as_array().unwrap().len(), 1);
    }

    async fn a_created_items_replay_is_its_first_answer_byte_for_byte_after_it_changes(backend) {
        let app = backend.spawn().await;
        let url = app.url("/item");
        // A name and a price whose JSON a careless re-rendering would change.
        let tea = json!({"name": "Thé \"vert\" ✓", "price": 0.1});
        let first = keyed(&app.client, url.clone(), Method::POST, "create", Some(&tea)).await;
        assert_eq!(first.status(), 201);
        let headers = |response: &reqwest::Response| {
            ["location", "etag", "content-type"].map(|name| response.headers().get(name).cloned())
        };
        let sent = headers(&first);
        let text = first.text().await.unwrap();
        let item: Value = serde_json::from_str(&text).unwrap();
        let id = item["id"].as_u64().unwrap();
        assert_eq!(sent[0].as_ref().unwrap(), &format!("/item/{id}"));

        // The item changes, then is deleted: the replay is still the first answer.
        let put = app
            .client
            .put(app.url(&format!("/item/{id}")))
            .json(&json!({"name": "Coffee", "price": 3.0}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 200);
        for round in ["after a change", "after a deletion"] {
            let again = keyed(&app.client, url.clone(), Method::POST, "create", Some(&tea)).await;
            assert_eq!(again.status(), 201, "{round}");
            assert!(replayed(&again), "{round}");
            assert_eq!(headers(&again), sent, "{round}");
            assert_eq!(again.text().await.unwrap(), text, "{round}");
            let deleted = app.client.delete(app.url(&format!("/item/{id}"))).send().await.unwrap();
            assert!(deleted.status().is_success(), "{round}");
        }
        let all = app.get_json("/item?show_deleted=true").await;
        assert_eq!(all.as_array().unwrap().len(), 1, "one item created: {all}");
    }

    async fn a_kept_key_answers_before_the_requests_own_422_404_412_and_304(backend) {
        let dense = matches!(backend, crate::support::Backend::Sled);
        let app = backend.spawn().await;
        let tea = json!({"name": "Tea", "price": 2.5});
        let created = keyed(&app.client, app.url("/item"), Method::POST, "create", Some(&tea)).await;
        assert_eq!(created.status(), 201);
        let etag = created.headers()["etag"].clone();
        let id = created.json::<Value>().await.unwrap()["id"].as_u64().unwrap();
        let mismatch = || [("header.Idempotency-Key".to_owned(), "idempotency_key_reused".to_owned())];

        // The same key on a body that fails validation: the key's 422, not
        // the body's.
        let bad = json!({"name": "", "price": -1});
        let refused = keyed(&app.client, app.url("/item"), Method::POST, "create", Some(&bad)).await;
        assert_eq!(issues(refused).await, mismatch());
        // On an item that does not exist: the key's 422, not a 404.
        let missing = app.url(&format!("/item/{}", id + 100));
        let refused = keyed(&app.client, missing, Method::PUT, "create", Some(&tea)).await;
        assert_eq!(issues(refused).await, mismatch());
        // On a cart that does not exist: the same.
        let add = app.url(&format!("/cart/{}/add/{id}", id + 100));
        let refused = keyed(&app.client, add, Method::POST, "create", None).await;
        assert_eq!(issues(refused).await, mismatch());

        // A change kept under a key, then sent again once the item moved
        // on: its replay, not the 412 its stale If-Match would get now.
        let path = app.url(&format!("/item/{id}"));
        let coffee = json!({"name": "Coffee", "price": 3.0});
        let put = |key: &'static str, body: Value| {
            app.client
                .put(path.clone())
                .header("Idempotency-Key", key)
                .header("If-Match", etag.clone())
                .json(&body)
                .send()
        };
        let first = put("put", coffee.clone()).await.unwrap();
        assert_eq!((first.status().as_u16(), replayed(&first)), (200, false));
        let first = first.text().await.unwrap();
        let again = put("put", coffee.clone()).await.unwrap();
        assert_eq!((again.status().as_u16(), replayed(&again)), (200, true));
        assert_eq!(again.text().await.unwrap(), first);
        let stale = put("put-2", coffee.clone()).await.unwrap();
        assert_eq!(stale.status(), 412, "a new key runs, and its If-Match is stale");

        // A change of the deleted item kept its 304; sent again: the 304
        // replayed; with another body: the key's 422, not the 304.
        let deleted = app.client.delete(path.clone()).send().await.unwrap();
        assert_eq!(deleted.status(), 200);
        let gone = keyed(&app.client, path.clone(), Method::PATCH, "gone", Some(&json!({"price": 1.0}))).await;
        assert_eq!((gone.status().as_u16(), replayed(&gone)), (304, false));
        let gone = keyed(&app.client, path.clone(), Method::PATCH, "gone", Some(&json!({"price": 1.0}))).await;
        assert_eq!((gone.status().as_u16(), replayed(&gone)), (304, true));
        let other = keyed(&app.client, path.clone(), Method::PATCH, "gone", Some(&json!({"price": 2.0}))).await;
        assert_eq!(issues(other).await, mismatch());

        // Nothing above changed the store but the one create, the one put
        // and the delete; on the embedded store the replays drew no id.
        for _ in 0..3 {
            let again = keyed(&app.client, app.url("/item"), Method::POST, "create", Some(&tea)).await;
            assert_eq!((again.status().as_u16(), replayed(&again)), (201, true));
        }
        let next = app.create_item("Cake", 4.0).await["id"].as_u64().unwrap();
        if dense {
            assert_eq!(next, id + 1, "ids stay dense on the embedded store");
        }
        let all = app.get_json("/item?show_deleted=true").await;
        assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
        assert_eq!(all[0]["name"], "Coffee");
    }

    async fn every_write_replays_its_answer_and_a_deleted_items_304(backend) {
        let app = backend.spawn().await;
        let tea = json!({"name": "Tea", "price": 2.5});
        let item = app.create_item("Tea", 2.5).await["id"].as_u64().unwrap();
        let path = app.url(&format!("/item/{item}"));
        let writes = [
            (Method::PUT, "put", Some(json!({"name": "Tea", "price": 3.0}))),
            (Method::PATCH, "patch", Some(json!({"price": 3.5}))),
            (Method::DELETE, "delete", None),
            (Method::PUT, "put-deleted", Some(tea.clone())),
            (Method::PATCH, "patch-deleted", Some(json!({"price": 1.0}))),
        ];
        for (method, key, body) in writes {
            let first = keyed(&app.client, path.clone(), method.clone(), key, body.as_ref()).await;
            let status = first.status();
            let etag = first.headers().get("etag").cloned();
            let text = first.text().await.unwrap();
            let again = keyed(&app.client, path.clone(), method.clone(), key, body.as_ref()).await;
            assert_eq!(again.status(), status, "{method} {key}");
            assert!(replayed(&again), "{method} {key}");
            assert_eq!(again.headers().get("etag").cloned(), etag, "{method} {key}");
            assert_eq!(again.text().await.unwrap(), text, "{method} {key}");
        }
        let item = app.get(&format!("/item/{item}")).await;
        assert_eq!(item.status(), 404, "deleted");
        let cart = keyed(&app.client, app.url("/cart"), Method::POST, "cart", None).await;
        assert_eq!(cart.status(), 201);
        let location = cart.headers()["location"].clone();
        let again = keyed(&app.client, app.url("/cart"), Method::POST, "cart", None).await;
        assert_eq!((again.status().as_u16(), replayed(&again)), (201, true));
        assert_eq!(again.headers()["location"], location);
        assert_eq!(app.get_json("/cart").await.as_array().unwrap().len(), 1);
    }
}

#[tokio::test]
async fn the_document_declares_the_key_and_its_answers_on_every_write() {
    let app = crate::helpers::spawn_app().await;
    let document = app.get_json("/openapi.json").await;
    let mut writes = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let parameters = operation["parameters"].as_array();
            let declares_key = parameters.into_iter().flatten().any(|parameter| {
                parameter["name"] == "Idempotency-Key" && parameter["in"] == "header"
            });
            if method == "get" {
                assert!(!declares_key, "GET {path}");
                continue;
            }
            writes += 1;
            assert!(declares_key, "{method} {path}");
            let responses = &operation["responses"];
            assert!(responses.get("409").is_some(), "{method} {path} 409");
            assert!(responses.get("422").is_some(), "{method} {path} 422");
            let success = responses
                .as_object()
                .unwrap()
                .iter()
                .find(|(status, _)| status.starts_with('2'))
                .expect("a success");
            assert!(
                success.1["headers"].get("Idempotent-Replayed").is_some(),
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        writes, 6,
        "POST /item, PUT, PATCH, DELETE /item/{{id}}, POST /cart, add"
    );
}
