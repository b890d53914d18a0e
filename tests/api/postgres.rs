//! What only the PostgreSQL store does: several instances on one database,
//! schema migration, outages. The API suites run on it too (see
//! `backend_tests!`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::helpers::{TestApp, detail, scratch, shopd_command, spawn_pg_app};
use crate::pg::{fresh_database, schema_versions, two_instances};

#[tokio::test]
async fn what_one_instance_writes_the_other_reads_at_once() {
    let Some((a, b)) = two_instances("what_one_instance_writes_the_other_reads_at_once").await
    else {
        return;
    };
    let item = a.create_item("Tea", 2.5).await;
    let path = format!("/item/{}", item["id"]);
    assert_eq!(b.get_json(&path).await, item);
    let cart = b.create_cart().await;
    a.add(cart, item["id"].as_u64().unwrap()).await;
    assert_eq!(b.delete(&path).await.status(), 200);
    let seen = a.get_json(&format!("/cart/{cart}")).await;
    assert_eq!(seen["items"][0]["available"], false);
    assert_eq!(seen["price"].as_f64(), Some(0.0));
    assert_eq!(a.get(&path).await.status(), 404);
}

#[tokio::test]
async fn a_filter_on_one_instance_sees_an_add_on_the_other_at_once() {
    let test = "a_filter_on_one_instance_sees_an_add_on_the_other_at_once";
    let Some(database) = fresh_database(test).await else {
        return;
    };
    let client = database.client().await;
    let url = database.url.clone();
    let a = TestApp::builder().postgres(database).spawn().await;
    let b = TestApp::builder().shared_postgres(&url).spawn().await;
    let items = [
        a.create_item("Tea", 0.1).await["id"].as_u64().unwrap(),
        a.create_item("Cake", 2.5).await["id"].as_u64().unwrap(),
    ];
    let carts = [a.create_cart().await, a.create_cart().await];
    // Each add is filtered for at once, on the instance that did not
    // make it, by its exact quantity and by its exact price: a list
    // reading only what the background fold has written finds nothing.
    for n in 0..60_usize {
        let (writer, reader) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        let cart = carts[n % 3 % 2];
        let added = writer.add(cart, items[n % 5 % 2]).await;
        let quantity: u64 = added["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["quantity"].as_u64().unwrap())
            .sum();
        let price = added["price"].as_f64().unwrap();
        let by_quantity = reader
            .get_json(&format!(
                "/cart?min_quantity={quantity}&max_quantity={quantity}"
            ))
            .await;
        assert!(
            by_quantity.as_array().unwrap().contains(&added),
            "add {n}: {by_quantity} lacks {added}"
        );
        let by_price = reader
            .get_json(&format!("/cart?min_price={price}&max_price={price}"))
            .await;
        assert!(
            by_price.as_array().unwrap().contains(&added),
            "add {n}: {by_price} lacks {added}"
        );
        // Nor is a cart found at totals it no longer has.
        let before = quantity - 1;
        let stale = reader
            .get_json(&format!(
                "/cart?min_quantity={before}&max_quantity={before}"
            ))
            .await;
        assert!(
            stale
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c["id"] != added["id"]),
            "add {n}: {stale} holds cart {cart} at its old quantity"
        );
    }
    // The fold moves the totals onto the carts' rows, and no mark stays.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let marks: i64 = client
            .query_one("SELECT COUNT(*) FROM cart_dirty", &[])
            .await
            .unwrap()
            .get(0);
        if marks == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{marks} marks never folded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for cart in carts {
        let seen = a.get_json(&format!("/cart/{cart}")).await;
        let row = client
            .query_one(
                "SELECT price, quantity FROM carts WHERE id = $1",
                &[&i64::try_from(cart).unwrap()],
            )
            .await
            .unwrap();
        let (price, quantity): (f64, i64) = (row.get(0), row.get(1));
        assert_eq!(
            Some(price.to_bits()),
            seen["price"].as_f64().map(f64::to_bits)
        );
        let lines: i64 = seen["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|line| line["quantity"].as_i64().unwrap())
            .sum();
        assert_eq!(quantity, lines, "cart {cart}");
    }
}

#[tokio::test]
async fn concurrent_adds_spread_over_two_instances_all_count() {
    let Some((a, b)) = two_instances("concurrent_adds_spread_over_two_instances_all_count").await
    else {
        return;
    };
    let item = a.create_item("Tea", 0.1).await["id"].as_u64().unwrap();
    let cart = a.create_cart().await;
    let (a, b) = (Arc::new(a), Arc::new(b));
    let adds: Vec<_> = (0..400)
        .map(|n| {
            let app = if n % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                app.add(cart, item).await;
            })
        })
        .collect();
    for add in adds {
        add.await.expect("add task");
    }
    let seen = b.get_json(&format!("/cart/{cart}")).await;
    assert_eq!(seen["items"][0]["quantity"], 400);
    assert_eq!(seen["price"].as_f64(), Some(0.1 * 400.0));
}

#[tokio::test]
async fn instances_starting_at_once_migrate_an_empty_database_once() {
    let Some(database) =
        fresh_database("instances_starting_at_once_migrate_an_empty_database_once").await
    else {
        return;
    };
    let starts = (0..4).map(|_| TestApp::builder().shared_postgres(&database.url).start());
    for started in futures_util::future::join_all(starts).await {
        assert!(started.is_ok(), "every instance starts");
    }
    let client = database.client().await;
    let versions = schema_versions(&client).await;
    assert_eq!(
        versions,
        [1, 2, 3, 4, 5, 6],
        "each migration applied exactly once"
    );
}

#[tokio::test]
async fn a_database_migrated_by_a_newer_shopd_is_refused() {
    let Some(database) = fresh_database("a_database_migrated_by_a_newer_shopd_is_refused").await
    else {
        return;
    };
    let first = TestApp::builder().shared_postgres(&database.url).start();
    assert!(first.await.is_ok(), "first start");
    let client = database.client().await;
    client
        .execute("INSERT INTO shopd_schema (version) VALUES (99)", &[])
        .await
        .unwrap();
    let again = TestApp::builder().shared_postgres(&database.url).start();
    let err = match again.await {
        Ok(_) => panic!("a newer schema must be refused"),
        Err(err) => shopd::error_chain(&err),
    };
    assert!(err.contains("version 99") && err.contains("newer"), "{err}");
}

#[tokio::test]
async fn ids_no_row_can_have_are_404_not_500() {
    let Some(database) = fresh_database("ids_no_row_can_have_are_404_not_500").await else {
        return;
    };
    let app = spawn_pg_app(database, |_| {}).await;
    let huge = u64::MAX;
    assert_eq!(
        detail(app.get(&format!("/item/{huge}")).await, 404).await,
        format!("Item {huge} not found")
    );
    assert_eq!(app.get(&format!("/cart/{huge}")).await.status(), 404);
    let cart = app.create_cart().await;
    assert_eq!(
        detail(app.post(&format!("/cart/{cart}/add/{huge}")).await, 404).await,
        format!("Item {huge} not found")
    );
    assert_eq!(
        app.get(&format!("/item?offset={huge}&limit=10"))
            .await
            .status(),
        200
    );
}

/// A TCP proxy that can cut every connection through it, and refuse new
/// ones, until it is mended: a database outage without touching the
/// database.
struct Cable {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
    severed: std::sync::Mutex<CancellationToken>,
}

impl Cable {
    async fn to(upstream: std::net::SocketAddr) -> Arc<Cable> {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let cable = Arc::new(Cable {
            addr: listener.local_addr().unwrap(),
            cut: Arc::default(),
            severed: std::sync::Mutex::new(CancellationToken::new()),
        });
        let this = cable.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if this.cut.load(Ordering::SeqCst) {
                    continue; // dropped: refused
                }
                let severed = this.severed.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        () = severed.cancelled() => {}
                    }
                });
            }
        });
        cable
    }

    fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        let mut severed = self.severed.lock().unwrap();
        severed.cancel();
        *severed = CancellationToken::new();
    }

    fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

/// Polls `path` until it answers `status`, for at most `within`.
async fn wait_for_status(app: &TestApp, path: &str, status: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let response = app.get(path).await;
        if response.status() == status {
            return response.json().await.unwrap_or(Value::Null);
        }
        assert!(
            Instant::now() < deadline,
            "{path} did not answer {status} in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_database_outage_is_503_and_service_comes_back_by_itself() {
    let Some(database) =
        fresh_database("a_database_outage_is_503_and_service_comes_back_by_itself").await
    else {
        return;
    };
    let url: tokio_postgres::Config = database.url.parse().unwrap();
    let host = match url.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = url.get_ports().first().copied().unwrap_or(5432);
    let upstream = tokio::net::lookup_host((host.as_str(), port))
        .await
        .unwrap()
        .next()
        .unwrap();
    let cable = Cable::to(upstream).await;
    let through_cable = database
        .url
        .replace(&format!("{host}:{port}"), &cable.addr.to_string());
    let app = spawn_pg_app(database, |s| {
        s.storage.database_url = Some(through_cable.parse().expect("URL"));
        s.storage.database_timeout = std::time::Duration::from_millis(500);
    })
    .await;
    let item = app.create_item("Tea", 1.0).await;
    assert_eq!(
        wait_for_status(&app, "/readyz", 200, Duration::ZERO).await["status"],
        "ok"
    );

    cable.cut();
    let started = Instant::now();
    let response = app.get(&format!("/item/{}", item["id"])).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fails within the timeout, not hanging"
    );
    let down = wait_for_status(&app, "/readyz", 503, Duration::from_secs(10)).await;
    assert!(down["detail"].as_str().unwrap().contains("store"), "{down}");
    assert_eq!(app.get("/healthz").await.status(), 200);

    cable.mend();
    wait_for_status(&app, "/readyz", 200, Duration::from_secs(20)).await;
    assert_eq!(app.get_json(&format!("/item/{}", item["id"])).await, item);
    app.create_item("Cake", 2.0).await;
}

#[test]
fn an_unreachable_database_stops_start_up_naming_it_without_the_password() {
    let (_cwd, cwd) = scratch();
    // Port 1 on loopback: nothing listens there.
    let output = shopd_command(&cwd)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--database-url",
            "postgres://shop:hunter2@127.0.0.1:1/shop",
            "--database-timeout-ms",
            "2000",
        ])
        .output()
        .expect("run shopd");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
