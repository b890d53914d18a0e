//! The SQL of carts: a cart and its lines are read in one statement
//! (lines joined with their items) and priced in Rust; add-to-cart is one
//! upsert, atomic against adds from every instance.
//!
//! Each cart row also keeps its totals, `price` (the price the API
//! returns for it, computed by the same Rust function, so a filter and a
//! read agree to the bit) and `quantity`, written in the transaction of
//! every change that moves them: an add, and an item's price change or
//! deletion (which re-prices every cart holding the item, found through
//! `cart_lines_by_item`). Lists filter on them with indexes.
//!
//! Locks, so that no two writers re-price a cart from different states and
//! none waits on another in a cycle: a write locks the item first (an add
//! shares it, a price change or delete updates it), then the carts, in id
//! order. A re-price reads the lines after it holds the cart, so it sees
//! every change committed before.

use deadpool_postgres::Transaction;
use futures_util::future::try_join;
use tokio_postgres::Row;

use super::errors::Failure;
use super::{PgStore, api_id, kept, sql_count, sql_id};
use crate::domain::{Cart, CartFilter, Id};
use crate::store::{Keyed, LineState, StoreError, StoreResult, priced_cart};

/// Carts priced per statement when the migration fills the totals.
const FILL_BATCH: i64 = 10_000;

/// `GET /cart` with filters: `$1`..`$6` are the lowest and highest price,
/// the lowest and highest quantity, the limit and the offset.
pub const LIST_FILTERED: &str = "SELECT c.id, l.item_id, l.quantity, i.name, i.price, i.deleted
     FROM (SELECT id FROM carts
           WHERE price >= $1 AND price <= $2
             AND quantity >= $3 AND quantity <= $4
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
fn line_of(row: &Row, first: usize) -> Result<Option<LineState>, tokio_postgres::Error> {
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
fn totals(cart: &Cart) -> (i64, f64, i64) {
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
    with_client!(store, |client| {
        let Some(keyed) = keyed else {
            let statement = client
                .prepare_cached("INSERT INTO carts DEFAULT VALUES RETURNING id")
                .await?;
            let row = client.query_one(&statement, &[]).await?;
            return Ok(api_id(row.try_get(0)?));
        };
        let next = client
            .prepare_cached("SELECT nextval(pg_get_serial_sequence('carts', 'id'))")
            .await?;
        let id: i64 = client.query_one(&next, &[]).await?.try_get(0)?;
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

/// [`Store::add_to_cart`](crate::store::Store::add_to_cart): [`add_in`]
/// in a transaction of its own.
pub(super) async fn add(
    store: &PgStore,
    cart: Id,
    item: Id,
    max_lines: usize,
    keyed: Option<&Keyed<Cart>>,
) -> StoreResult<Cart> {
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
        let tx = client.transaction().await?;
        let priced = add_in(&tx, (cart_key, cart), (item_key, item), max_lines).await?;
        if let Some(keyed) = keyed {
            // Last, after the item's and the cart's locks: see `kept`.
            kept::keep(&tx, keyed, &keyed.record(&priced)).await?;
        }
        tx.commit().await?;
        Ok(priced)
    })
}

/// Locks item `$2` (shared: adds of one item do not wait on each other),
/// then cart `$1`: see the lock order above. One statement, evaluated
/// left to right.
const ADD_LOCK: &str = "SELECT (SELECT deleted FROM items WHERE id = $2 FOR SHARE),
        EXISTS (SELECT 1 FROM carts WHERE id = $1 FOR UPDATE)";

/// Adds one of item `$2` to cart `$1` and reads the cart back, in one
/// statement: a new line only while the cart has fewer than `$3` lines,
/// an existing line always, and only for a live item and an existing
/// cart (checked again here: this statement is sent with [`ADD_LOCK`],
/// before its answer is known). Run after [`ADD_LOCK`], so its snapshot
/// sees every change committed before the locks were had, and the count
/// is exact. The cart's lines come back in order, the changed one from
/// the upsert (the rest of the statement sees the rows as they were
/// before it), each with whether it is the one added: none is when
/// nothing was added.
const ADD_AND_READ: &str = "WITH added AS (
        INSERT INTO cart_lines (cart_id, item_id, quantity)
        SELECT $1, $2, 1
        WHERE EXISTS (SELECT 1 FROM items WHERE id = $2 AND NOT deleted)
          AND EXISTS (SELECT 1 FROM carts WHERE id = $1)
          AND ((SELECT COUNT(*) FROM cart_lines WHERE cart_id = $1) < $3
               OR EXISTS (SELECT 1 FROM cart_lines WHERE cart_id = $1 AND item_id = $2))
        ON CONFLICT (cart_id, item_id)
        DO UPDATE SET quantity = cart_lines.quantity + 1
        RETURNING item_id, quantity, position
    ), lines AS (
        SELECT item_id, quantity, position, TRUE AS changed FROM added
        UNION ALL
        SELECT l.item_id, l.quantity, l.position, FALSE FROM cart_lines l
        WHERE l.cart_id = $1 AND NOT EXISTS (SELECT 1 FROM added a WHERE a.item_id = l.item_id)
    )
    SELECT l.changed, l.item_id, l.quantity, i.name, i.price, i.deleted
    FROM lines l JOIN items i ON i.id = l.item_id
    ORDER BY l.position";

/// Stores one cart's totals (the cart is locked by the caller).
const STORE_TOTALS: &str = "UPDATE carts SET price = $2, quantity = $3 WHERE id = $1";

/// Adds one of item `item` to cart `cart` inside `tx`, which the caller
/// commits (and may extend with statements of its own): locks the item
/// and the cart, upserts the line and reads the cart back (these two sent
/// together, in one round trip), then stores the cart's totals. Errors
/// in the contract's order: no cart, no item, item deleted, cart full.
pub(super) async fn add_in(
    tx: &Transaction<'_>,
    (cart_key, cart): (i64, Id),
    (item_key, item): (i64, Id),
    max_lines: usize,
) -> Result<Cart, Failure> {
    let max_lines_sql = i64::try_from(max_lines).unwrap_or(i64::MAX);
    // Prepared first (cached: no round trip after the first use), so the
    // two queries below go out back to back, in this order.
    let lock = tx.prepare_cached(ADD_LOCK).await?;
    let add = tx.prepare_cached(ADD_AND_READ).await?;
    let (row, rows) = try_join(
        tx.query_one(&lock, &[&cart_key, &item_key]),
        tx.query(&add, &[&cart_key, &item_key, &max_lines_sql]),
    )
    .await?;
    let deleted: Option<bool> = row.try_get(0)?;
    let cart_exists: bool = row.try_get(1)?;
    match (cart_exists, deleted) {
        (false, _) => return Err(StoreError::CartNotFound(cart).into()),
        (true, None) => return Err(StoreError::ItemNotFound(item).into()),
        (true, Some(true)) => return Err(StoreError::ItemUnavailable(item).into()),
        (true, Some(false)) => {}
    }
    let mut added = false;
    let mut lines = Vec::with_capacity(rows.len());
    for row in &rows {
        added |= row.try_get::<_, bool>(0)?;
        lines.extend(line_of(row, 1)?);
    }
    if !added {
        // Live item, existing cart, nothing added: the cart is full.
        return Err(StoreError::CartFull {
            cart,
            limit: max_lines,
        }
        .into());
    }
    let priced = priced_cart(cart, lines);
    let (_, price, quantity) = totals(&priced);
    let statement = tx.prepare_cached(STORE_TOTALS).await?;
    tx.execute(&statement, &[&cart_key, &price, &quantity])
        .await?;
    Ok(priced)
}
