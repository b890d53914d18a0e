//! Long lists share a bound (`scan_workers` running, `scan_queue_len`
//! waiting); what comes beyond it is shed with 503 and `Retry-After`.

use super::*;

#[tokio::test]
async fn scans_beyond_the_workers_and_the_queue_get_503_with_retry_after() {
    let dir = seeded_dir(items(3000), Vec::new()).await;
    let app = spawn_app_in(dir, |s| {
        s.storage.scan_workers = std::num::NonZero::new(1).unwrap();
        s.storage.scan_queue_len = 0;
    })
    .await;
    // Matches every item but skips past them all: a full scan each time.
    let path = "/item?offset=100000&limit=1&max_price=1e12";
    let mut shed = 0;
    for _round in 0..20 {
        let answers = futures_util::future::join_all((0..32).map(|_| app.get(path))).await;
        for response in answers {
            match response.status().as_u16() {
                200 => assert_eq!(
                    response.json::<Value>().await.unwrap(),
                    Value::Array(vec![])
                ),
                503 => {
                    let retry = response.headers().get("retry-after").cloned();
                    assert_eq!(retry.as_ref().map(|v| v.to_str().unwrap()), Some("1"));
                    let body: Value = response.json().await.unwrap();
                    let detail = body["detail"].as_str().unwrap_or_default();
                    assert!(detail.contains("busy"), "detail: {body}");
                    shed += 1;
                }
                other => panic!("GET {path} answered {other}"),
            }
        }
        if shed > 0 {
            break;
        }
    }
    assert!(
        shed > 0,
        "32 scans at once, 1 worker and no queue: none was shed"
    );
    // Once they are done, a scan is served again.
    assert_eq!(app.get_json(path).await, Value::Array(vec![]));
    assert_eq!(app.get_json("/item/3000").await["price"], 3000.0);
}

/// Polls `what` until it holds (at most about 30 s).
async fn eventually<F: std::future::Future<Output = bool>>(what: impl Fn() -> F) {
    for _ in 0..3000 {
        if what().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the condition never held");
}

#[tokio::test]
async fn postgres_lists_take_turns_so_point_reads_always_find_a_connection() {
    let Some(database) =
        fresh_database("postgres_lists_take_turns_so_point_reads_always_find_a_connection").await
    else {
        return;
    };
    let client = database.client().await;
    // Three connections: were lists not bounded, the lists below (and
    // the store's sizes read for the metrics, which wait on the same
    // lock) would hold them all, and a point read would find none.
    let app = std::sync::Arc::new(
        spawn_pg_app(database, |s| {
            s.storage.database_pool_size = std::num::NonZero::new(3).unwrap();
            s.storage.scan_workers = std::num::NonZero::new(1).unwrap();
            s.storage.scan_queue_len = 0;
            s.storage.stats_refresh = std::time::Duration::from_secs(3600);
            // The held list must outlast a slow, busy test machine.
            s.storage.database_timeout = std::time::Duration::from_secs(60);
        })
        .await,
    );
    let item = app.create_item("point", 1.5).await["id"].as_u64().unwrap();
    app.create_cart().await;
    // Behind shopd's back, carts cannot be read until this transaction ends.
    client
        .batch_execute("BEGIN; LOCK TABLE carts IN ACCESS EXCLUSIVE MODE")
        .await
        .unwrap();
    let held = tokio::spawn({
        let app = app.clone();
        async move { app.get("/cart?min_price=1").await.status().as_u16() }
    });
    eventually(|| async {
        let row = client
            .query_one(
                "SELECT COUNT(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'shopd'
                   AND wait_event_type = 'Lock'
                   AND query LIKE '%(SELECT id FROM carts%'",
                &[],
            )
            .await
            .unwrap();
        row.get::<_, i64>(0) == 1
    })
    .await;
    // The list waits in the database with the only turn: others are shed.
    let others = [
        "/item?min_price=1",
        "/cart?min_quantity=1",
        "/item?offset=2000",
        "/cart?offset=999&limit=2",
    ];
    let shed = futures_util::future::join_all(others.iter().map(|path| app.get(path))).await;
    for (path, response) in others.iter().zip(shed) {
        assert_eq!(response.status(), 503, "GET {path}");
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap()),
            Some("1")
        );
    }
    // The first pages of an unfiltered list read a page's worth of rows
    // by id: they need no turn.
    let first = app.get_json("/item?offset=10&limit=100").await;
    assert_eq!(first, serde_json::Value::Array(vec![]));
    // Point reads and writes still find a connection.
    assert_eq!(app.get_json(&format!("/item/{item}")).await["price"], 1.5);
    let created = app.create_item("beside", 2.0).await;
    assert_eq!(created["price"], 2.0);
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(held.await.unwrap(), 200);
    assert_eq!(app.get("/item?min_price=1").await.status(), 200);
}
