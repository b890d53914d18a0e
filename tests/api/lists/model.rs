//! Every filter combination on a small store against a model the test
//! keeps as it drives the API: after adds, price changes and deletions,
//! with prices whose sums depend on the order of addition (0.1 + 0.2,
//! 1e16 + 1) and two whose sums overflow. Both stores.

use std::collections::BTreeMap;

use super::*;

/// What the store should hold, kept by the test as it drives the API.
#[derive(Default)]
pub(super) struct Model {
    /// Item id: (price, deleted).
    pub(super) items: BTreeMap<u64, (f64, bool)>,
    /// Cart id: lines (item, quantity) in first-added order.
    pub(super) carts: BTreeMap<u64, Vec<(u64, u64)>>,
}

impl Model {
    /// The contract's cart price, summed in line order as f64; a sum
    /// beyond the largest finite number is that number.
    pub(super) fn price(&self, cart: u64) -> f64 {
        let mut sum = 0.0;
        for &(item, quantity) in &self.carts[&cart] {
            let (price, deleted) = self.items[&item];
            if !deleted {
                sum += price * quantity as f64;
            }
        }
        sum.min(f64::MAX)
    }

    pub(super) fn quantity(&self, cart: u64) -> u64 {
        self.carts[&cart]
            .iter()
            .map(|&(_, quantity)| quantity)
            .sum()
    }

    pub(super) fn add(&mut self, cart: u64, item: u64) {
        let lines = self.carts.get_mut(&cart).expect("known cart");
        match lines.iter_mut().find(|(id, _)| *id == item) {
            Some((_, quantity)) => *quantity += 1,
            None => lines.push((item, 1)),
        }
    }
}

/// Every cart read alone has the model's price and quantity (compared
/// with `==`), and every filter combination lists what the model says.
pub(super) async fn check(app: &TestApp, model: &Model, stage: &str) {
    for &cart in model.carts.keys() {
        let seen = app.get_json(&format!("/cart/{cart}")).await;
        assert_eq!(
            seen["price"].as_f64(),
            Some(model.price(cart)),
            "{stage}: price of cart {cart}"
        );
    }
    // Bounds: none, every cart's exact price, and values near them.
    let mut prices: Vec<Option<f64>> = vec![None, Some(0.3), Some(1e16)];
    prices.extend(model.carts.keys().map(|&cart| Some(model.price(cart))));
    prices.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    prices.dedup();
    let quantities = [None, Some(0), Some(2), Some(4)];
    for (min, max) in prices
        .iter()
        .flat_map(|a| prices.iter().map(move |b| (*a, *b)))
    {
        for (min_q, max_q) in [
            (None, None),
            (Some(2), None),
            (None, Some(3)),
            (Some(1), Some(4)),
        ] {
            check_carts(app, model, stage, [min, max], [min_q, max_q], (0, 100)).await;
        }
    }
    for min_q in quantities {
        for max_q in quantities {
            for page in [(0, 1), (1, 2), (3, 100)] {
                check_carts(app, model, stage, [Some(0.3), None], [min_q, max_q], page).await;
                check_carts(app, model, stage, [None, None], [min_q, max_q], page).await;
            }
        }
    }
    let mut item_prices: Vec<Option<f64>> = vec![None, Some(0.15), Some(1e16)];
    item_prices.extend(model.items.values().map(|&(price, _)| Some(price)));
    item_prices.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    item_prices.dedup();
    for (min, max) in item_prices
        .iter()
        .flat_map(|a| item_prices.iter().map(move |b| (*a, *b)))
    {
        for show_deleted in [false, true] {
            for (offset, limit) in [(0, 100), (1, 2)] {
                let expected: Vec<u64> = model
                    .items
                    .iter()
                    .filter(|(_, (price, deleted))| {
                        (show_deleted || !deleted)
                            && min.is_none_or(|min| *price >= min)
                            && max.is_none_or(|max| *price <= max)
                    })
                    .map(|(id, _)| *id)
                    .collect();
                let path = format!(
                    "/item?{}",
                    query(&[
                        ("min_price", min.map(|v| v.to_string())),
                        ("max_price", max.map(|v| v.to_string())),
                        ("show_deleted", Some(show_deleted.to_string())),
                        ("offset", Some(offset.to_string())),
                        ("limit", Some(limit.to_string())),
                    ])
                );
                let seen = app.get_json(&path).await;
                assert_eq!(
                    ids_of(&seen),
                    paged(expected, offset, limit),
                    "{stage}: GET {path}"
                );
                for item in seen.as_array().expect("list") {
                    let id = item["id"].as_u64().expect("id");
                    assert_eq!(item["price"].as_f64(), Some(model.items[&id].0));
                }
            }
        }
    }
}

async fn check_carts(
    app: &TestApp,
    model: &Model,
    stage: &str,
    [min, max]: [Option<f64>; 2],
    [min_q, max_q]: [Option<u64>; 2],
    (offset, limit): (usize, usize),
) {
    let expected: Vec<u64> = model
        .carts
        .keys()
        .copied()
        .filter(|&cart| {
            let (price, quantity) = (model.price(cart), model.quantity(cart));
            min.is_none_or(|min| price >= min)
                && max.is_none_or(|max| price <= max)
                && min_q.is_none_or(|min| quantity >= min)
                && max_q.is_none_or(|max| quantity <= max)
        })
        .collect();
    let path = format!(
        "/cart?{}",
        query(&[
            ("min_price", min.map(|v| v.to_string())),
            ("max_price", max.map(|v| v.to_string())),
            ("min_quantity", min_q.map(|v| v.to_string())),
            ("max_quantity", max_q.map(|v| v.to_string())),
            ("offset", Some(offset.to_string())),
            ("limit", Some(limit.to_string())),
        ])
    );
    let seen = app.get_json(&path).await;
    assert_eq!(
        ids_of(&seen),
        paged(expected, offset, limit),
        "{stage}: GET {path}"
    );
    for cart in seen.as_array().expect("list") {
        let id = cart["id"].as_u64().expect("id");
        assert_eq!(
            cart["price"].as_f64(),
            Some(model.price(id)),
            "{stage}: {path}"
        );
    }
}

/// Item prices whose sums depend on the order of addition, and two whose
/// product with 2 overflows.
pub(super) const PRICES: [f64; 9] = [0.1, 0.2, 0.3, 1e16, 1.0, 2.5, 0.0, 1e308, 7.7];

/// Items of [`PRICES`] and eight carts (one left empty) filled by a fixed
/// pseudo-random sequence of adds.
async fn small_store(app: &TestApp, model: &mut Model) {
    for (n, price) in PRICES.into_iter().enumerate() {
        let item = app.create_item(&format!("item {n}"), price).await;
        model
            .items
            .insert(item["id"].as_u64().expect("id"), (price, false));
    }
    for _ in 0..8 {
        model.carts.insert(app.create_cart().await, Vec::new());
    }
    let items: Vec<u64> = model.items.keys().copied().collect();
    let carts: Vec<u64> = model.carts.keys().copied().collect();
    let mut state: u64 = 7;
    for _ in 0..30 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // The last cart stays empty.
        let cart = carts[usize::try_from(state >> 33).unwrap() % (carts.len() - 1)];
        let item = items[usize::try_from(state >> 17).unwrap() % items.len()];
        app.add(cart, item).await;
        model.add(cart, item);
    }
    // Order matters: 1e16 then 1 then 1 sums to 1e16; 1, 1, 1e16 to 1e16 + 2.
    let (big, one) = (items[3], items[4]);
    for item in [big, one, one] {
        app.add(carts[0], item).await;
        model.add(carts[0], item);
    }
    for item in [one, one, big] {
        app.add(carts[1], item).await;
        model.add(carts[1], item);
    }
}

backend_tests! {
    async fn filters_agree_with_a_brute_force_answer(backend) {
        let app = backend.spawn().await;
        let mut model = Model::default();
        small_store(&app, &mut model).await;
        check(&app, &model, "after adds").await;
        let items: Vec<u64> = model.items.keys().copied().collect();

        // Price changes re-price the carts that hold the item.
        for (item, price) in [(items[1], 0.7), (items[4], 0.1), (items[7], 3.0)] {
            let response = app
                .send_json(reqwest::Method::PATCH, &format!("/item/{item}"), &json!({"price": price}))
                .await;
            assert_eq!(response.status(), 200);
            model.items.insert(item, (price, false));
        }
        let response = app
            .send_json(reqwest::Method::PUT, &format!("/item/{}", items[0]), &json!({"name": "x", "price": 0.2}))
            .await;
        assert_eq!(response.status(), 200);
        model.items.insert(items[0], (0.2, false));
        // A name change alone leaves prices as they are.
        let response = app
            .send_json(reqwest::Method::PATCH, &format!("/item/{}", items[2]), &json!({"name": "y"}))
            .await;
        assert_eq!(response.status(), 200);
        check(&app, &model, "after price changes").await;

        // Deletions take the item's lines out of the price, once.
        for item in [items[2], items[3], items[3]] {
            assert_eq!(app.delete(&format!("/item/{item}")).await.status(), 200);
            model.items.get_mut(&item).expect("known").1 = true;
        }
        // More adds after all that.
        let carts: Vec<u64> = model.carts.keys().copied().collect();
        for (cart, item) in [(carts[2], items[8]), (carts[2], items[8]), (carts[3], items[1]), (carts[7], items[5])] {
            app.add(cart, item).await;
            model.add(cart, item);
        }
        check(&app, &model, "after deletions and more adds").await;
    }
}
