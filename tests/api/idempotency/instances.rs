//! Two shopd on one PostgreSQL database: a retry that lands on the other
//! instance is replayed, and the same key sent to both at once runs once;
//! keys kept before schema version 4 still replay after it.

use reqwest::Method;
use serde_json::{Value, json};

use super::{keyed, replayed};
use crate::pg::{fresh_database, schema_versions, two_instances};
use crate::support::TestApp;
use shopd::store::{Kept, KeptAnswer, KeptRecord};

#[tokio::test]
async fn a_retry_on_the_other_instance_is_replayed() {
    let Some((a, b)) = two_instances("a_retry_on_the_other_instance_is_replayed").await else {
        return;
    };
    let tea = json!({"name": "Tea", "price": 2.5});
    let first = keyed(&a.client, a.url("/item"), Method::POST, "k", Some(&tea)).await;
    assert_eq!(first.status(), 201);
    let first: Value = first.json().await.unwrap();
    let retry = keyed(&b.client, b.url("/item"), Method::POST, "k", Some(&tea)).await;
    assert_eq!(retry.status(), 201);
    assert!(
        replayed(&retry),
        "answered from the key the other instance kept"
    );
    assert_eq!(retry.json::<Value>().await.unwrap(), first);
    let other = json!({"name": "Cake", "price": 1.0});
    let reused = keyed(&b.client, b.url("/item"), Method::POST, "k", Some(&other)).await;
    assert_eq!(reused.status(), 422);
    assert_eq!(b.get_json("/item").await.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn one_key_sent_to_both_instances_at_once_runs_once() {
    let Some((a, b)) = two_instances("one_key_sent_to_both_instances_at_once_runs_once").await
    else {
        return;
    };
    const KEYS: usize = 20;
    let tea = json!({"name": "Tea", "price": 2.5});
    for n in 0..KEYS {
        let key = format!("both-{n}");
        let (left, right) = tokio::join!(
            keyed(&a.client, a.url("/item"), Method::POST, &key, Some(&tea)),
            keyed(&b.client, b.url("/item"), Method::POST, &key, Some(&tea)),
        );
        let answers = [
            (left.status().as_u16(), replayed(&left)),
            (right.status().as_u16(), replayed(&right)),
        ];
        let ran = answers.iter().filter(|a| **a == (201, false)).count();
        assert_eq!(ran, 1, "{key}: {answers:?}");
        for answer in answers {
            assert!(
                matches!(answer, (201, _) | (409, false)),
                "{key}: {answers:?}"
            );
        }
    }
    let items = a.get_json(&format!("/item?limit={}", KEYS + 10)).await;
    assert_eq!(items.as_array().unwrap().len(), KEYS, "each key ran once");
}

/// A keyed request's answer: status, `Location`, `ETag`, body.
async fn answer_of(response: reqwest::Response) -> (u16, Option<String>, Option<String>, String) {
    let header = |name| {
        response
            .headers()
            .get(name)
            .map(|value: &reqwest::header::HeaderValue| value.to_str().unwrap().to_owned())
    };
    let (location, etag) = (header("location"), header("etag"));
    (
        response.status().as_u16(),
        location,
        etag,
        response.text().await.unwrap(),
    )
}

/// Leaves the database as a shopd before schema version 4 did: the
/// created item's answer `item` kept as sent (format 1), no `item_id`.
async fn downgrade_to_version_3(
    client: &tokio_postgres::Client,
    item: &(u16, Option<String>, Option<String>, String),
) {
    let row = client
        .query_one(
            "SELECT record, item_id FROM idempotency_keys WHERE key = 'item'",
            &[],
        )
        .await
        .unwrap();
    let (record, id): (Vec<u8>, Option<i64>) = (row.get(0), row.get(1));
    let kept =
        KeptRecord::decode_with_item(&record, id.map(|id| u64::try_from(id).unwrap())).unwrap();
    assert!(
        matches!(kept.answer, KeptAnswer::CreatedItem(_)),
        "{kept:?}"
    );
    let v1 = KeptRecord {
        answer: KeptAnswer::Sent(Kept {
            status: item.0,
            location: item.1.clone(),
            etag: item.2.clone(),
            body: item.3.clone().into_bytes(),
        }),
        ..kept
    };
    client
        .execute(
            "UPDATE idempotency_keys SET record = $1 WHERE key = 'item'",
            &[&v1.encode()],
        )
        .await
        .unwrap();
    client
        .batch_execute(
            "ALTER TABLE idempotency_keys DROP COLUMN item_id;
             DROP TABLE cart_dirty;
             DROP FUNCTION shopd_add_to_cart;
             DELETE FROM shopd_schema WHERE version >= 4;",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn keys_kept_before_schema_version_4_still_replay_after_it() {
    let Some(database) =
        fresh_database("keys_kept_before_schema_version_4_still_replay_after_it").await
    else {
        return;
    };
    let tea = json!({"name": "Tea", "price": 2.5});
    let before = TestApp::builder()
        .shared_postgres(&database.url)
        .spawn()
        .await;
    let item = keyed(
        &before.client,
        before.url("/item"),
        Method::POST,
        "item",
        Some(&tea),
    )
    .await;
    let item = answer_of(item).await;
    let cart = keyed(
        &before.client,
        before.url("/cart"),
        Method::POST,
        "cart",
        None,
    )
    .await;
    let cart = answer_of(cart).await;
    assert_eq!((item.0, cart.0), (201, 201));
    drop(before);

    let client = database.client().await;
    downgrade_to_version_3(&client, &item).await;

    let after = TestApp::builder()
        .shared_postgres(&database.url)
        .spawn()
        .await;
    let versions = schema_versions(&client).await;
    assert_eq!(versions, [1, 2, 3, 4, 5, 6]);
    for (key, url, body, first) in [
        ("item", after.url("/item"), Some(&tea), &item),
        ("cart", after.url("/cart"), None, &cart),
    ] {
        let again = keyed(&after.client, url, Method::POST, key, body).await;
        assert!(replayed(&again), "{key}");
        assert_eq!(&answer_of(again).await, first, "{key}");
    }
    // A new keyed create: a later id (the replays above may have drawn one
    // each: PostgreSQL does not promise dense ids), replayed as answered.
    let cake = json!({"name": "Cake", "price": 4.0});
    let new = keyed(
        &after.client,
        after.url("/item"),
        Method::POST,
        "new",
        Some(&cake),
    )
    .await;
    let new = answer_of(new).await;
    let first_id: Value = serde_json::from_str(&item.3).unwrap();
    let new_id: Value = serde_json::from_str(&new.3).unwrap();
    assert!(new_id["id"].as_u64().unwrap() > first_id["id"].as_u64().unwrap());
    let again = keyed(
        &after.client,
        after.url("/item"),
        Method::POST,
        "new",
        Some(&cake),
    )
    .await;
    assert!(replayed(&again));
    assert_eq!(answer_of(again).await, new);
    assert_eq!(after.get_json("/item").await.as_array().unwrap().len(), 2);
}
