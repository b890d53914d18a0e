//! The SQL of carts: a cart and its lines are read in one statement
//! (lines joined with their items) and priced in Rust; add-to-cart is in
//! `add`.
//!
//! Each cart has totals, `price` (the price the API returns for it,
//! computed by the same Rust function or by the same operations in SQL,
//! so a filter and a read agree to the bit) and `quantity`, written in the
//! transaction of every change that moves them. They live in one of two
//! places:
//!
//! - on the cart's row, indexed (`carts_by_price`, `carts_by_quantity`);
//! - in the cart's mark, a row of `cart_dirty` (unindexed), when an add
//!   changed the cart since its row's totals were last written. An add
//!   only upserts the mark (see `add`): updating the row's indexed totals
//!   on every add cost half of the adds' throughput in index upkeep and
//!   dead row versions.
//!
//! `fold` moves marks' totals onto their rows in the background, a batch
//! of carts at a time, on every instance. An item's price change or
//! deletion re-prices every cart holding the item (found through
//! `cart_lines_by_item`) onto its row and removes its mark. A filtered
//! list reads, in one statement and so one snapshot, the rows' totals
//! from their indexes for carts without a mark and the marks' totals for
//! the others: the same answers as totals written on the rows at once.
//! The marks a list reads are those of the carts added to in the last
//! [`super::fold::QUIET`] and a fold's interval ([`super::fold::EVERY`]),
//! plus any backlog of folds (a fold takes a batch of marks and goes again
//! at once while it finds full batches).
//!
//! Locks, so that no two writers re-price a cart from different states and
//! none waits on another in a cycle: a write locks the item first (an add
//! shares it, a price change or delete updates it), then the carts, in id
//! order. A re-price reads the lines after it holds the cart, so it sees
//! every change committed before.

use deadpool_postgres::Transaction;
use tokio_postgres::Row;

use super::{PgStore, api_id, kept, sql_count, sql_id};
use crate::domain::{Cart, CartFilter, Id};
use crate::store::{Keyed, LineState, StoreError, StoreResult, priced_cart};

/// Carts priced per statement when the migration fills the totals.
const FILL_BATCH: i64 = 10_000;

/// `GET /cart` with filters: `$1`..`$6` are the lowest and highest price,
/// the lowest and highest quantity, the limit and the offset. Carts with
/// a mark are filtered on the mark's totals, the others on their row's.
/// Each side ordered by id on its own, so that the planner can merge them
/// and stop after the page when many match (without it, it reads and
/// sorts every match).
pub const LIST_FILTERED: &str = "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted
     FROM (SELECT id FROM (
               (SELECT id FROM carts
                WHERE price >= $1 AND price <= $2
                  AND quantity >= $3 AND quantity <= $4
                  AND NOT EXISTS (SELECT 1 FROM cart_dirty d WHERE d.cart_id = carts.id)
                ORDER BY id)
               UNION ALL
               (SELECT cart_id FROM cart_dirty
                WHERE price >= $1 AND price <= $2
                  AND quantity >= $3 AND quantity <= $4
                ORDER BY cart_id)
           ) matched
           ORDER BY id LIMIT $5 OFFSET $6) c
     LEFT JOIN cart_lines l ON l.cart_id = c.id
     LEFT JOIN items i ON i.id = l.item_id
     ORDER BY c.id, l.position";

const CART_SQL: &str = "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted
     FROM carts c
     LEFT JOIN cart_lines l ON l.cart_id = c.id
     LEFT JOIN items i ON i.id = l.item_id
     WHERE c.id = $1
     ORDER BY l.position";

/// Rows of `(cart id, item id?, quantity?, name?, price?, deleted?)`,
/// grouped by cart in row order, as priced carts.
fn carts_of(rows: &[Row]) -> Result<Vec<Cart>, tokio_postgres::Error> {
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
pub(super) fn line_of(row: &Row, first: usize) -> Result<Option<LineState>, tokio_postgres::Error> {
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

/// Carts' totals as stored: the API's price and the quantity (clamped to
/// what `BIGINT` holds).
pub(super) fn totals(cart: &Cart) -> (i64, f64, i64) {
    (
        sql_id(cart.id).unwrap_or(i64::MAX),
        cart.price,
        i64::try_from(cart.quantity()).unwrap_or(i64::MAX),
    )
}

/// Stores the totals of `carts` (locked by the caller, or new).
async fn store_totals(tx: &Transaction<'_>, carts: &[Cart]) -> Result<(), tokio_postgres::Error> {
    let (mut ids, mut prices, mut quantities) = (Vec::new(), Vec::new(), Vec::new());
    for cart in carts {
        let (id, price, quantity) = totals(cart);
        ids.push(id);
        prices.push(price);
        quantities.push(quantity);
    }
    let statement = tx
        .prepare_cached(
            "UPDATE carts c SET price = t.price, quantity = t.quantity
             FROM UNNEST($1::BIGINT[], $2::FLOAT8[], $3::BIGINT[]) AS t (id, price, quantity)
             WHERE c.id = t.id",
        )
        .await?;
    tx.execute(&statement, &[&ids, &prices, &quantities])
        .await?;
    Ok(())
}

/// The lines of carts `ids`, priced (names left out: only totals are
/// needed).
async fn priced(tx: &Transaction<'_>, ids: &[i64]) -> Result<Vec<Cart>, tokio_postgres::Error> {
    let statement = tx
        .prepare_cached(
            "SELECT l.cart_id, l.item_id, l.quantity, '', i.price, i.deleted
             FROM cart_lines l JOIN items i ON i.id = l.item_id
             WHERE l.cart_id = ANY($1)
             ORDER BY l.cart_id, l.position",
        )
        .await?;
    carts_of(&tx.query(&statement, &[&ids]).await?)
}

/// Re-prices every cart holding item `item`, whose price or state this
/// transaction just changed (so it holds the item's lock): locks the
/// carts in id order, then reads their lines. Returns how many carts.
pub(super) async fn reprice_holders(
    tx: &Transaction<'_>,
    item: i64,
) -> Result<usize, tokio_postgres::Error> {
    let statement = tx
        .prepare_cached(
            "SELECT id FROM carts
             WHERE id IN (SELECT cart_id FROM cart_lines WHERE item_id = $1)
             ORDER BY id FOR UPDATE",
        )
        .await?;
    let ids = tx
        .query(&statement, &[&item])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<Vec<i64>, _>>()?;
    if ids.is_empty() {
        return Ok(0);
    }
    let carts = priced(tx, &ids).await?;
    store_totals(tx, &carts).await?;
    // Their rows' totals are current now; a mark would hide them.
    let statement = tx
        .prepare_cached("DELETE FROM cart_dirty WHERE cart_id = ANY($1)")
        .await?;
    tx.execute(&statement, &[&ids]).await?;
    Ok(ids.len())
}

/// Fills the totals of every cart, batch by batch in id order (the
/// migration that adds them; its transaction holds the table).
pub(super) async fn fill_totals(tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
    let total: i64 = tx
        .query_one("SELECT COUNT(*) FROM carts", &[])
        .await?
        .try_get(0)?;
    tracing::info!(carts = total, "computing every cart's price and quantity");
    let (mut after, mut done) = (0_i64, 0_i64);
    loop {
        let ids = tx
            .query(
                "SELECT id FROM carts WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &FILL_BATCH],
            )
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<Vec<i64>, _>>()?;
        let Some(&last) = ids.last() else { break };
        let carts = priced(tx, &ids).await?;
        // Carts without lines keep their totals of 0.
        store_totals(tx, &carts).await?;
        after = last;
        done += sql_count(ids.len());
        tracing::info!(done, of = total, "cart totals computed");
    }
    Ok(())
}

/// Carts by ascending id: the page `offset`/`count` of those `filter`
/// accepts, with their lines, read in one statement (one moment).
async fn page(store: &PgStore, filter: &CartFilter) -> StoreResult<Vec<Cart>> {
    let (offset, limit) = (sql_count(filter.page.offset), sql_count(filter.page.limit));
    let min_price = filter.price.min.unwrap_or(f64::NEG_INFINITY);
    let max_price = filter.price.max.unwrap_or(f64::INFINITY);
    let Ok(min_quantity) = i64::try_from(filter.min_quantity.unwrap_or(0)) else {
        // Above what any cart can hold.
        return Ok(Vec::new());
    };
    let max_quantity = filter
        .max_quantity
        .map_or(i64::MAX, |max| i64::try_from(max).unwrap_or(i64::MAX));
    with_client!(store, |client| {
        // Prepared afresh, not cached: planned for these bounds (an index
        // on the totals when they are selective, ids in order when not),
        // never a generic plan made for other bounds.
        let rows = client
            .query(
                LIST_FILTERED,
                &[
                    &min_price,
                    &max_price,
                    &min_quantity,
                    &max_quantity,
                    &limit,
                    &offset,
                ],
            )
            .await?;
        Ok(carts_of(&rows)?)
    })
}

/// [`Store::create_cart`](crate::store::Store::create_cart).
/// With `keyed`, as a keyed item create: the id drawn first, then the
/// key and (only if it was stored) the cart in one statement.
pub(super) async fn create(store: &PgStore, keyed: Option<&Keyed<Id>>) -> StoreResult<Id> {
    let sequence = store.sequences.carts;
    with_client!(store, |client| {
        let Some(keyed) = keyed else {
            let statement = client
                .prepare_cached("INSERT INTO carts DEFAULT VALUES RETURNING id")
                .await?;
            let row = client.query_one(&statement, &[]).await?;
            return Ok(api_id(row.try_get(0)?));
        };
        let next = client
            .prepare_cached("SELECT nextval($1::oid::regclass)")
            .await?;
        let id: i64 = client.query_one(&next, &[&sequence]).await?.try_get(0)?;
        let statement = client.prepare_cached(&CREATE_KEYED).await?;
        let (expires, now) = kept::times(keyed);
        let record = keyed.record(&api_id(id)).encode();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
            [&keyed.key.key, &expires, &record, &now, &id];
        match client.query_opt(&statement, &params).await? {
            Some(_) => Ok(api_id(id)),
            None => Err(StoreError::KeyTaken.into()),
        }
    })
}

/// A keyed create: the key (`$1`..`$4`, see [`kept::KEEP`]), then cart
/// `$5` only if the key was stored.
static CREATE_KEYED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH kept AS ({})
         INSERT INTO carts (id) SELECT $5 FROM kept
         RETURNING id",
        kept::KEEP
    )
});

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

/// [`Store::carts`](crate::store::Store::carts): filtered and paged in
/// SQL, on the totals each cart row keeps.
pub(super) async fn list(store: &PgStore, filter: CartFilter) -> StoreResult<Vec<Cart>> {
    let unfiltered = CartFilter {
        page: filter.page,
        ..CartFilter::default()
    } == filter;
    if !unfiltered {
        return page(store, &filter).await;
    }
    // Ids in order whatever the page: prepared once.
    let (offset, limit) = (sql_count(filter.page.offset), sql_count(filter.page.limit));
    with_client!(store, |client| {
        let statement = client
            .prepare_cached(
                "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted
                 FROM (SELECT id FROM carts ORDER BY id LIMIT $1 OFFSET $2) c
                 LEFT JOIN cart_lines l ON l.cart_id = c.id
                 LEFT JOIN items i ON i.id = l.item_id
                 ORDER BY c.id, l.position",
            )
            .await?;
        let rows = client.query(&statement, &[&limit, &offset]).await?;
        Ok(carts_of(&rows)?)
    })
}
