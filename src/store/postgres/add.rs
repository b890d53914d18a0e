//! Add-to-cart in one round trip and one statement: a call of
//! `shopd_add_to_cart` (schema version 6, `schema.rs`), which locks the
//! item and the cart, then adds the line, stores the cart's totals (in
//! its mark: see `carts`) and reads the cart back, in a fresh snapshot
//! that sees every change committed before it held the locks. No
//! explicit transaction: the call is one, so nothing else goes to the
//! server for it (a pipelined `BEGIN`, locks, add and `COMMIT` cost
//! shopd and the server four more messages an add).
//!
//! The function answers whether the item is deleted (`NULL`: no such
//! item) and whether the cart exists on every row, with the cart's lines
//! after the add (one row with no line when it has none), each with
//! whether it is the one added (none is when nothing was). Shopd then
//! reads which case it was.
//!
//! The price stored is computed by PostgreSQL, and is bit for bit the one
//! [`crate::domain::cart_price`] computes from the lines read back (which
//! the reply carries): the same IEEE double operations in the same order.
//! `sum(float8 ORDER BY position)` adds one line after another with
//! `float8pl` (a plain `+`), each line `float8mul` (a plain `*`) of the
//! price and the quantity as a double (rounded to nearest, as Rust's `as`
//! is), deleted items left out as Rust leaves them out. Rust starts from
//! `0.0` and `sum` from the first line: the two differ only in the sign of
//! a zero sum of `-0.0` prices, which the final `0 + sum` settles as Rust
//! does. A sum that overflows is an error in PostgreSQL (Rust goes to
//! infinity and caps it at the largest double): then the add runs again
//! priced in Rust ([`add_priced_in_rust`]), in two round trips, as a keyed
//! add does (its key is stored with the reply).

use deadpool_postgres::ClientWrapper;
use futures_util::future::{try_join, try_join3};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Row, Statement};

use super::carts::{line_of, totals};
use super::errors::Failure;
use super::pipeline::PipelinedTx;
use super::{PgStore, kept, sql_id};
use crate::domain::{Cart, Id};
use crate::store::{Keyed, StoreError, StoreResult, priced_cart};

/// Locks item `$2` (shared: adds of one item do not wait on each other),
/// then cart `$1` (a write locks the item first, then carts: see
/// `carts`). One statement, evaluated left to right. Answers whether the
/// item is deleted (`NULL`: no such item) and whether the cart exists.
const LOCK: &str = "SELECT (SELECT deleted FROM items WHERE id = $2 FOR SHARE),
        EXISTS (SELECT 1 FROM carts WHERE id = $1 FOR UPDATE)";

/// The part of [`ADD_AND_READ`] (and of `shopd_add_to_cart`) that adds one
/// of item `$2` to cart `$1`: a new line only while the cart has fewer
/// than `$3` lines, an existing line always, and only for a live item and
/// an existing cart. It runs after [`LOCK`], so its snapshot sees every
/// change committed before the locks were had, and the count is exact.
/// `lines` is the cart after the add: the changed line from the upsert,
/// the others as they were (the statement's snapshot is from before it).
macro_rules! add_and_lines {
    () => {
        "WITH added AS (
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
            SELECT l.item_id, l.quantity, l.position, TRUE AS changed, i.name, i.price, i.deleted
            FROM added l JOIN items i ON i.id = l.item_id
            UNION ALL
            SELECT l.item_id, l.quantity, l.position, FALSE, i.name, i.price, i.deleted
            FROM cart_lines l JOIN items i ON i.id = l.item_id
            WHERE l.cart_id = $1 AND NOT EXISTS (SELECT 1 FROM added a WHERE a.item_id = l.item_id)
        )"
    };
}

/// Adds one of item `$2` to cart `$1` with at most `$3` lines; see the
/// module's documentation.
const ADD: &str = "SELECT * FROM shopd_add_to_cart($1, $2, $3)";

/// The add of `shopd_add_to_cart` without storing the totals, for an add
/// priced in Rust (after [`LOCK`], in an explicit transaction).
const ADD_AND_READ: &str = concat!(
    add_and_lines!(),
    "
    SELECT changed, item_id, quantity, name, price, deleted FROM lines ORDER BY position"
);

/// Stores one cart's totals in its mark, as `shopd_add_to_cart` does
/// (the cart is locked by the caller).
const STORE_TOTALS: &str = "INSERT INTO cart_dirty (cart_id, price, quantity) VALUES ($1, $2, $3)
     ON CONFLICT (cart_id) DO UPDATE
     SET price = EXCLUDED.price, quantity = EXCLUDED.quantity, marked_at = EXCLUDED.marked_at";

/// Plans the add's statements with lookups by key, never a table's
/// scan. Their plans are cached per connection (prepared statements), and
/// a plan made while `items` held 100 rows scanned all of it, in three
/// places, after `POST /item` had grown it to 45,000 (5 ms an add, against
/// 0.4) until the next `ANALYZE` replaced it: up to a minute of a fortieth
/// of the throughput. Lookups by key are the right plan at any size.
const NO_TABLE_SCANS: &str = "SET LOCAL enable_seqscan = off";

/// An add's keys: the cart's and the item's, SQL and API.
#[derive(Clone, Copy)]
pub(super) struct AddKeys {
    /// The cart's row id and API id.
    pub cart: (i64, Id),
    /// The item's row id and API id.
    pub item: (i64, Id),
    /// Lines a cart may have.
    pub max_lines: usize,
}

/// What the statements of an add answer: the lock's row, then the cart's
/// lines.
pub(super) type AddRows = (Row, Vec<Row>);

/// [`Store::add_to_cart`](crate::store::Store::add_to_cart).
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
        let keys = AddKeys {
            cart: (cart_key, cart),
            item: (item_key, item),
            max_lines,
        };
        if keyed.is_some() {
            // The key is stored with the reply, which needs the cart first.
            return add_priced_in_rust(&PipelinedTx::new(&client), keys, keyed).await;
        }
        let max_lines = i64::try_from(max_lines).unwrap_or(i64::MAX);
        let statement = client.prepare_cached(ADD).await?;
        let rows = match client
            .query(&statement, &[&cart_key, &item_key, &max_lines])
            .await
        {
            Err(err) if err.code() == Some(&SqlState::NUMERIC_VALUE_OUT_OF_RANGE) => {
                // The price overflowed (or a quantity did, which fails again).
                return add_priced_in_rust(&PipelinedTx::new(&client), keys, None).await;
            }
            rows => rows?,
        };
        let first = rows.first().ok_or(StoreError::CartNotFound(cart))?;
        let status = (first.try_get(0)?, first.try_get(1)?);
        added_from(status, &rows, 2, keys)
    })
}

/// The statements of an add priced in Rust, prepared: the locks, then
/// [`ADD_AND_READ`].
pub(super) struct AddStatements {
    lock: Statement,
    add: Statement,
}

impl AddStatements {
    /// Prepares them on `client` (cached: no round trip after the first
    /// use). Before anything is sent in a pipeline: a statement prepared
    /// in the middle of one would wait for its answer, and the queries
    /// after it would go out late, behind the `COMMIT`.
    pub(super) async fn prepare(
        client: &ClientWrapper,
        add: &str,
    ) -> Result<AddStatements, tokio_postgres::Error> {
        Ok(AddStatements {
            lock: client.prepare_cached(LOCK).await?,
            add: client.prepare_cached(add).await?,
        })
    }

    /// Sends the add's queries on `client`, back to back, when first
    /// polled: pass the future to [`PipelinedTx::begin_with`] (with whatever else the transaction
    /// needs), then read its answer with [`added_cart`].
    ///
    /// First, for this transaction, [`NO_TABLE_SCANS`].
    pub(super) async fn send(
        &self,
        client: &ClientWrapper,
        keys: AddKeys,
    ) -> Result<AddRows, tokio_postgres::Error> {
        let max_lines = i64::try_from(keys.max_lines).unwrap_or(i64::MAX);
        let (cart, item) = (keys.cart.0, keys.item.0);
        let ((), lock, lines) = try_join3(
            client.batch_execute(NO_TABLE_SCANS),
            client.query_one(&self.lock, &[&cart, &item]),
            client.query(&self.add, &[&cart, &item, &max_lines]),
        )
        .await?;
        Ok((lock, lines))
    }
}

/// The cart after an add, from what its statements answered; errors in
/// the contract's order: no cart, no item, item deleted, cart full.
pub(super) fn added_cart((lock, rows): &AddRows, keys: AddKeys) -> Result<Cart, Failure> {
    let status = (lock.try_get(0)?, lock.try_get(1)?);
    added_from(status, rows, 0, keys)
}

/// The cart after an add from whether its item is deleted (`None`: no
/// such item) and whether its cart exists, and the rows of its lines
/// from column `first` on: whether the line is the one added, then the
/// line (none on a row without one).
fn added_from(
    (deleted, cart_exists): (Option<bool>, bool),
    rows: &[Row],
    first: usize,
    keys: AddKeys,
) -> Result<Cart, Failure> {
    let ((_, cart), (_, item)) = (keys.cart, keys.item);
    match (cart_exists, deleted) {
        (false, _) => return Err(StoreError::CartNotFound(cart).into()),
        (true, None) => return Err(StoreError::ItemNotFound(item).into()),
        (true, Some(true)) => return Err(StoreError::ItemUnavailable(item).into()),
        (true, Some(false)) => {}
    }
    let mut added = false;
    let mut lines = Vec::with_capacity(rows.len());
    for row in rows {
        added |= row.try_get::<_, bool>(first)?;
        lines.extend(line_of(row, first + 1)?);
    }
    if !added {
        // Live item, existing cart, nothing added: the cart is full.
        return Err(StoreError::CartFull {
            cart,
            limit: keys.max_lines,
        }
        .into());
    }
    Ok(priced_cart(cart, lines))
}

/// The add priced in Rust: for carts whose price PostgreSQL cannot add
/// up (it overflows), and for keyed adds, whose key is stored with the
/// reply. The locks and the add, then the totals as Rust computes them
/// and the `COMMIT` (two round trips); with a key, the totals and the key
/// (last: see `kept`), then the `COMMIT` once the key is known to be
/// stored (three: a taken key rolls the add back).
async fn add_priced_in_rust(
    tx: &PipelinedTx<'_>,
    keys: AddKeys,
    keyed: Option<&Keyed<Cart>>,
) -> Result<Cart, Failure> {
    let client = tx.client();
    let statements = AddStatements::prepare(client, ADD_AND_READ).await?;
    let store_totals = client.prepare_cached(STORE_TOTALS).await?;
    let keep = client.prepare_cached(kept::KEEP).await?;
    let rows = tx.begin_with(statements.send(client, keys)).await?;
    let cart = added_cart(&rows, keys)?;
    let (key, price, quantity) = totals(&cart);
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [&key, &price, &quantity];
    let totals_stored = client.execute(&store_totals, &params);
    let Some(keyed) = keyed else {
        tx.commit_with(totals_stored).await?;
        return Ok(cart);
    };
    let (expires, now) = kept::times(keyed);
    let record = keyed.record(&cart).encode();
    let (_, stored) = try_join(
        totals_stored,
        client.query_opt(&keep, &[&keyed.key.key, &expires, &record, &now]),
    )
    .await?;
    if stored.is_none() {
        return Err(StoreError::KeyTaken.into());
    }
    tx.commit_with(async { Ok(()) }).await?;
    Ok(cart)
}
