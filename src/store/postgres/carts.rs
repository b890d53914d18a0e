//! The SQL of carts: a cart and its lines are read in one statement
//! (lines joined with their items) and priced in Rust; add-to-cart is one
//! upsert, atomic against adds from every instance.

use tokio_postgres::Row;

use super::errors::Failure;
use super::{PgStore, api_id, sql_count, sql_id};
use crate::domain::{Cart, CartFilter, Id};
use crate::store::{LineState, Pager, StoreError, StoreResult, priced_cart};

/// Carts read per statement when a list filters by price or quantity
/// (computed in Rust, so the filter cannot run in SQL).
const CART_BATCH: i64 = 256;

const CART_SQL: &str = "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted
     FROM carts c
     LEFT JOIN cart_lines l ON l.cart_id = c.id
     LEFT JOIN items i ON i.id = l.item_id
     WHERE c.id = $1
     ORDER BY l.position";

/// Rows of `(cart id, item id?, quantity?, name?, price?, deleted?)`,
/// grouped by cart in row order, as priced carts.
fn carts_of(rows: &[Row]) -> Result<Vec<Cart>, Failure> {
    let mut carts = Vec::new();
    let mut current: Option<(i64, Vec<LineState>)> = None;
    for row in rows {
        let cart: i64 = row.try_get(0)?;
        if current.as_ref().is_none_or(|(id, _)| *id != cart) {
            if let Some((id, lines)) = current.take() {
                carts.push(priced_cart(api_id(id), lines));
            }
            current = Some((cart, Vec::new()));
        }
        if let (Some((_, lines)), Some(line)) = (current.as_mut(), line_of(row, 1)?) {
            lines.push(line);
        }
    }
    if let Some((id, lines)) = current {
        carts.push(priced_cart(api_id(id), lines));
    }
    Ok(carts)
}

/// The line in columns `first..first + 5` of `row`, if the row has one.
fn line_of(row: &Row, first: usize) -> Result<Option<LineState>, Failure> {
    let Some(item) = row.try_get::<_, Option<i64>>(first)? else {
        return Ok(None);
    };
    let quantity: i64 = row.try_get(first + 1)?;
    Ok(Some(LineState {
        item: api_id(item),
        quantity: u64::try_from(quantity).unwrap_or_default(),
        name: row.try_get(first + 2)?,
        price: row.try_get(first + 3)?,
        deleted: row.try_get(first + 4)?,
    }))
}

/// Carts by ascending id from `after` on: at most `count`, with their
/// lines, read in one statement.
async fn batch(store: &PgStore, after: i64, count: i64, skip: i64) -> StoreResult<Vec<Cart>> {
    with_client!(store, |client| {
        let statement = client
            .prepare_cached(
                "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted
                 FROM (SELECT id FROM carts WHERE id > $1 ORDER BY id LIMIT $2 OFFSET $3) c
                 LEFT JOIN cart_lines l ON l.cart_id = c.id
                 LEFT JOIN items i ON i.id = l.item_id
                 ORDER BY c.id, l.position",
            )
            .await?;
        let rows = client.query(&statement, &[&after, &count, &skip]).await?;
        carts_of(&rows)
    })
}

/// [`Store::create_cart`](crate::store::Store::create_cart).
pub(super) async fn create(store: &PgStore) -> StoreResult<Id> {
    with_client!(store, |client| {
        let statement = client
            .prepare_cached("INSERT INTO carts DEFAULT VALUES RETURNING id")
            .await?;
        let row = client.query_one(&statement, &[]).await?;
        Ok(api_id(row.try_get(0)?))
    })
}

/// [`Store::cart`](crate::store::Store::cart).
pub(super) async fn get(store: &PgStore, id: Id) -> StoreResult<Cart> {
    let key = sql_id(id).ok_or(StoreError::CartNotFound(id))?;
    with_client!(store, |client| {
        let statement = client.prepare_cached(CART_SQL).await?;
        let rows = client.query(&statement, &[&key]).await?;
        carts_of(&rows)?
            .pop()
            .ok_or_else(|| StoreError::CartNotFound(id).into())
    })
}

/// [`Store::carts`](crate::store::Store::carts): paged in SQL when only
/// paged, else filtered in Rust batch by batch.
pub(super) async fn list(store: &PgStore, filter: CartFilter) -> StoreResult<Vec<Cart>> {
    let unfiltered = CartFilter {
        page: filter.page,
        ..CartFilter::default()
    } == filter;
    if unfiltered {
        // Paged in SQL: no cart is read that the page does not hold.
        let (offset, limit) = (sql_count(filter.page.offset), sql_count(filter.page.limit));
        return batch(store, 0, limit, offset).await;
    }
    let mut pager = Pager::new(filter.page);
    let mut after = 0;
    while !pager.is_full() {
        let batch = batch(store, after, CART_BATCH, 0).await?;
        let Some(last) = batch.last() else { break };
        after = sql_id(last.id).unwrap_or(i64::MAX);
        for cart in batch.into_iter().filter(|cart| filter.accepts(cart)) {
            pager.offer(cart);
        }
    }
    Ok(pager.into_found())
}

/// [`Store::add_to_cart`](crate::store::Store::add_to_cart).
pub(super) async fn add(
    store: &PgStore,
    cart: Id,
    item: Id,
    max_lines: usize,
) -> StoreResult<Cart> {
    let max_lines = i64::try_from(max_lines).unwrap_or(i64::MAX);
    let cart_key = sql_id(cart).ok_or(StoreError::CartNotFound(cart))?;
    let item_key = sql_id(item);
    with_client!(store, |client| {
        let Some(item_key) = item_key else {
            // No item has this id; the cart's existence is checked first.
            return match client
                .query_opt("SELECT 1 FROM carts WHERE id = $1", &[&cart_key])
                .await?
            {
                Some(_) => Err(StoreError::ItemNotFound(item).into()),
                None => Err(StoreError::CartNotFound(cart).into()),
            };
        };
        // One statement: a new line only while the cart has fewer than
        // `max_lines`; an existing line always. (Concurrent adds of
        // different new items may each see the count below the bound
        // under READ COMMITTED: the cart can pass it by at most the
        // number of such adds running at once.)
        let add = client
            .prepare_cached(
                "INSERT INTO cart_lines (cart_id, item_id, quantity)
                 SELECT c.id, i.id, 1 FROM carts c, items i
                 WHERE c.id = $1 AND i.id = $2 AND NOT i.deleted
                   AND ((SELECT COUNT(*) FROM cart_lines WHERE cart_id = $1) < $3
                        OR EXISTS (SELECT 1 FROM cart_lines
                                   WHERE cart_id = $1 AND item_id = $2))
                 ON CONFLICT (cart_id, item_id)
                 DO UPDATE SET quantity = cart_lines.quantity + 1",
            )
            .await?;
        if client
            .execute(&add, &[&cart_key, &item_key, &max_lines])
            .await?
            == 0
        {
            // Nothing added: say why, in the contract's order.
            let why = client
                .prepare_cached(
                    "SELECT EXISTS (SELECT 1 FROM carts WHERE id = $1),
                            (SELECT deleted FROM items WHERE id = $2)",
                )
                .await?;
            let row = client.query_one(&why, &[&cart_key, &item_key]).await?;
            let cart_exists: bool = row.try_get(0)?;
            let deleted: Option<bool> = row.try_get(1)?;
            return Err(match (cart_exists, deleted) {
                (false, _) => StoreError::CartNotFound(cart),
                (true, None) => StoreError::ItemNotFound(item),
                (true, Some(true)) => StoreError::ItemUnavailable(item),
                // Live item, existing cart, nothing added: the cart is full.
                (true, Some(false)) => StoreError::CartFull {
                    cart,
                    limit: usize::try_from(max_lines).unwrap_or(usize::MAX),
                },
            }
            .into());
        }
        let statement = client.prepare_cached(CART_SQL).await?;
        let rows = client.query(&statement, &[&cart_key]).await?;
        carts_of(&rows)?
            .pop()
            .ok_or_else(|| StoreError::CartNotFound(cart).into())
    })
}
