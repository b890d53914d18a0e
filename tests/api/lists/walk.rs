//! The embedded store: every filter combination against a walk over the
//! unfiltered lists and point reads, on an imported store, through
//! changes and a restart; the indexes after `kill -9`.

use super::*;

/// 200 items (prices with repeats, some deleted) and 70 carts of 0 to 4
/// lines, some holding deleted items.
fn mixed_store() -> (Vec<ExportItem>, Vec<ExportCart>) {
    let mut dice = Dice(21);
    let items: Vec<ExportItem> = (1..=200)
        .map(|id| ExportItem {
            id,
            name: format!("item {id}"),
            price: [0.0, 0.1, 0.2, 5.0, 10.5, 20.0, 50.0, 99.5][dice.roll(8) as usize]
                + dice.roll(3) as f64,
            deleted: dice.roll(10) == 0,
        })
        .collect();
    let carts = (1..=70)
        .map(|id| {
            let count = dice.roll(5);
            let mut lines: Vec<(u64, u64)> = Vec::new();
            for _ in 0..count {
                let item = 1 + dice.roll(200);
                if lines.iter().all(|(held, _)| *held != item) {
                    lines.push((item, 1 + dice.roll(4)));
                }
            }
            cart(id, &lines)
        })
        .collect();
    (items, carts)
}

/// Every item (deleted ones too) and every cart, by ascending id, as the
/// unfiltered lists (a walk in id order, no index) show them; checked
/// against point reads.
async fn everything(app: &TestApp, items: u64, carts: u64) -> (Vec<Value>, Vec<Value>) {
    let all_items = app.get_json("/item?show_deleted=true&limit=1000").await;
    let all_items = all_items.as_array().unwrap().clone();
    assert_eq!(all_items.len() as u64, items);
    let all_carts = app.get_json("/cart?limit=1000").await;
    let all_carts = all_carts.as_array().unwrap().clone();
    assert_eq!(all_carts.len() as u64, carts);
    for cart in all_carts.iter().step_by(7) {
        let id = cart["id"].as_u64().unwrap();
        assert_eq!(&app.get_json(&format!("/cart/{id}")).await, cart);
    }
    (all_items, all_carts)
}

/// Asserts that `path` answers the page `(offset, limit)` of `matching`.
async fn answers(app: &TestApp, path: &str, matching: Vec<Value>, (offset, limit): (usize, usize)) {
    let page: Vec<Value> = matching.into_iter().skip(offset).take(limit).collect();
    assert_eq!(app.get_json(path).await, Value::Array(page), "GET {path}");
}

const PRICES: [Option<f64>; 5] = [None, Some(0.0), Some(10.5), Some(50.0), Some(1e12)];
const PAGES: [(usize, usize); 3] = [(0, 10), (3, 5), (0, 1000)];

/// Every filter combination of `GET /item` and `GET /cart` answers what a
/// walk over the point reads says it should.
async fn lists_match_brute_force(app: &TestApp, items: u64, carts: u64) {
    let (all_items, all_carts) = everything(app, items, carts).await;
    let f = |price: Option<f64>| price.map(|p| p.to_string());
    for min in PRICES {
        for max in PRICES {
            let within =
                |price: f64| min.is_none_or(|m| price >= m) && max.is_none_or(|m| price <= m);
            for show_deleted in [false, true] {
                for (offset, limit) in PAGES {
                    let path = format!(
                        "/item?{}",
                        query(&[
                            ("min_price", f(min)),
                            ("max_price", f(max)),
                            ("show_deleted", Some(show_deleted.to_string())),
                            ("offset", Some(offset.to_string())),
                            ("limit", Some(limit.to_string())),
                        ])
                    );
                    let expected: Vec<Value> = all_items
                        .iter()
                        .filter(|item| {
                            within(item["price"].as_f64().unwrap())
                                && (show_deleted || !item["deleted"].as_bool().unwrap())
                        })
                        .cloned()
                        .collect();
                    answers(app, &path, expected, (offset, limit)).await;
                }
            }
            for min_q in [None, Some(1), Some(4)] {
                for max_q in [None, Some(0), Some(5)] {
                    for (offset, limit) in [PAGES[0], PAGES[2]] {
                        let path = format!(
                            "/cart?{}",
                            query(&[
                                ("min_price", f(min)),
                                ("max_price", f(max)),
                                ("min_quantity", min_q.map(|q: u64| q.to_string())),
                                ("max_quantity", max_q.map(|q: u64| q.to_string())),
                                ("offset", Some(offset.to_string())),
                                ("limit", Some(limit.to_string())),
                            ])
                        );
                        let expected: Vec<Value> = all_carts
                            .iter()
                            .filter(|cart| {
                                let quantity: u64 = cart["items"]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .map(|line| line["quantity"].as_u64().unwrap())
                                    .sum();
                                within(cart["price"].as_f64().unwrap())
                                    && min_q.is_none_or(|q| quantity >= q)
                                    && max_q.is_none_or(|q| quantity <= q)
                            })
                            .cloned()
                            .collect();
                        answers(app, &path, expected, (offset, limit)).await;
                    }
                }
            }
        }
    }
}

#[tokio::test]
async fn every_filter_answers_as_a_full_walk_would_through_changes_and_restarts() {
    let (items, carts) = mixed_store();
    let dir = seeded_dir(items, carts).await;
    let app = spawn_app_in(dir, |_| {}).await;
    lists_match_brute_force(&app, 200, 70).await;

    // Changes the indexes must follow: prices of held items, deletions,
    // adds, new items and carts.
    let mut dice = Dice(7);
    for _ in 0..40 {
        let id = 1 + dice.roll(200);
        let price = [0.0, 10.5, 50.0, 77.0][dice.roll(4) as usize];
        let response = app
            .send_json(
                reqwest::Method::PATCH,
                &format!("/item/{id}"),
                &json!({"price": price}),
            )
            .await;
        assert!([200, 304].contains(&response.status().as_u16()));
    }
    for _ in 0..10 {
        let id = 1 + dice.roll(200);
        assert_eq!(app.delete(&format!("/item/{id}")).await.status(), 200);
    }
    app.create_item("new", 10.5).await;
    let new_cart = app.create_cart().await;
    for _ in 0..60 {
        let cart = 1 + dice.roll(new_cart);
        let item = 1 + dice.roll(201);
        let status = app.post(&format!("/cart/{cart}/add/{item}")).await.status();
        assert!([200, 404].contains(&status.as_u16()), "{status}");
    }
    lists_match_brute_force(&app, 201, new_cart).await;

    // The indexes come back with the store.
    let dir = app.stop().await;
    let app = spawn_app_in(dir, |_| {}).await;
    lists_match_brute_force(&app, 201, new_cart).await;
}

#[test]
fn the_indexes_come_back_after_kill_9() {
    let (_cwd_dir, cwd) = scratch();
    let (_data, data_dir) = scratch();
    let mut server = spawn_process(&cwd, &data_dir, &[]);
    let client = reqwest::blocking::Client::new();
    let send = |request: reqwest::blocking::RequestBuilder| {
        let response = request.send().unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json::<Value>().unwrap()
    };
    for price in [1.0, 2.0, 3.0, 4.0] {
        send(
            client
                .post(server.url("/item"))
                .json(&json!({"name": "x", "price": price})),
        );
    }
    send(client.post(server.url("/cart")));
    send(client.post(server.url("/cart")));
    send(client.post(server.url("/cart/1/add/1")));
    send(client.post(server.url("/cart/1/add/2")));
    send(client.post(server.url("/cart/2/add/3")));
    send(client.post(server.url("/cart/2/add/3")));
    // The price change reprices cart 1 (1 + 2 -> 9 + 2), the deletion cart 2.
    send(
        client
            .patch(server.url("/item/1"))
            .json(&json!({"price": 9.0})),
    );
    send(client.delete(server.url("/item/3")));
    let queries = [
        "/item?min_price=2&max_price=4",
        "/item?min_price=2&show_deleted=true",
        "/item?max_price=1.5",
        "/cart?min_price=11&max_price=11",
        "/cart?max_price=0",
        "/cart?min_quantity=2&max_quantity=2",
    ];
    let before: Vec<Value> = queries
        .iter()
        .map(|query| send(client.get(server.url(query))))
        .collect();
    assert_eq!(before[0].as_array().unwrap().len(), 2, "{}", before[0]);
    assert_eq!(before[2].as_array().unwrap().len(), 0);
    assert_eq!(before[3][0]["id"], 1);
    assert_eq!(before[4][0]["id"], 2);
    assert_eq!(before[5].as_array().unwrap().len(), 2);
    // No chance to flush or to write anything at exit.
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let server = spawn_process(&cwd, &data_dir, &[]);
    let after: Vec<Value> = queries
        .iter()
        .map(|query| send(client.get(server.url(query))))
        .collect();
    assert_eq!(after, before);
}
