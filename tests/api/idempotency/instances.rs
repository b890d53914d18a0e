//! Two shopd on one PostgreSQL database: a retry that lands on the other
//! instance is replayed, and the same key sent to both at once runs once.

use reqwest::Method;
use serde_json::{Value, json};

use super::{keyed, replayed};
use crate::pg::fresh_database;
use crate::support::TestApp;

/// Two instances on one fresh database, or `None` to skip.
async fn two_instances(test: &str) -> Option<(TestApp, TestApp)> {
    let database = fresh_database(test).await?;
    let url = database.url.clone();
    let a = TestApp::builder().postgres(database).spawn().await;
    let b = TestApp::builder().shared_postgres(&url).spawn().await;
    Some((a, b))
}

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
