//! The SQL of items: one statement per operation, each row read back as
//! an [`Item`]. An update that changes no row asks once more why
//! (missing, or deleted). A price change or a deletion also re-prices, in
//! its transaction, the carts that hold the item (see `carts`).

use tokio_postgres::Row;
use tokio_postgres::error::SqlState;

use super::errors::Failure;
use super::{PgStore, api_id, carts, kept, sql_count, sql_id};
use crate::domain::etag::{self, Condition};
use crate::domain::{Id, Item, ItemFilter, ItemPatch, NewItem};
use crate::store::{Kept, KeptAnswer, KeptRecord, Keyed, StoreError, StoreResult};

/// The item in columns `id, name, price, deleted` of `row`.
fn item_of(row: &Row) -> Result<Item, Failure> {
    Ok(Item {
        id: api_id(row.try_get(0)?),
        name: row.try_get(1)?,
        price: row.try_get(2)?,
        deleted: row.try_get(3)?,
    })
}

/// Finds why an update of item `id` changed no row.
async fn item_state(client: &deadpool_postgres::Client, id: i64) -> Result<Option<bool>, Failure> {
    let statement = client
        .prepare_cached("SELECT deleted FROM items WHERE id = $1")
        .await?;
    let row = client.query_opt(&statement, &[&id]).await?;
    Ok(match row {
        Some(row) => Some(row.try_get(0)?),
        None => None,
    })
}

/// [`Store::create_item`](crate::store::Store::create_item).
/// A keyed create of a key not kept yet (nearly every one) in one
/// statement: the id drawn from the items sequence (`$6`, its OID), then
/// the key (`$1` key, `$2` expiry, `$3` record) with that id beside its
/// record, then the item (`$4` name, `$5` price). A plain insert of the
/// key: a key kept already (live or expired) fails the statement on the
/// key's unique index, and nothing is stored; then [`CREATE_KEYED`]. (An
/// insert that may take a row over, `ON CONFLICT ... DO UPDATE`, costs
/// every insert a speculative insertion and its confirmation: about 5% of
/// a keyed create's rate at the database alone.)
pub const CREATE_FRESH_KEYED: &str = "WITH drawn AS (SELECT nextval($6::oid::regclass) AS id),
     kept AS (
         INSERT INTO idempotency_keys (key, expires_at, record, item_id)
         SELECT $1, $2, $3, drawn.id FROM drawn
         RETURNING item_id)
     INSERT INTO items (id, name, price) SELECT item_id, $4, $5 FROM kept
     RETURNING id, name, price, deleted";

/// A keyed create whose key is kept already: as [`CREATE_FRESH_KEYED`],
/// but the key (`$1` key, `$2` expiry, `$3` record, `$4` now, as
/// [`kept::KEEP`]) takes over an expired record; the item (`$5` name,
/// `$6` price, `$7` the sequence) is stored only if the key was. A live
/// key held by another request stores nothing (the id drawn is skipped,
/// as by a failed plain insert).
pub const CREATE_KEYED: &str = "WITH drawn AS (SELECT nextval($7::oid::regclass) AS id),
     kept AS (
         INSERT INTO idempotency_keys (key, expires_at, record, item_id)
         SELECT $1, $2, $3, drawn.id FROM drawn
         ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at,
             record = EXCLUDED.record, item_id = EXCLUDED.item_id
             WHERE idempotency_keys.expires_at <= $4
         RETURNING item_id)
     INSERT INTO items (id, name, price) SELECT item_id, $5, $6 FROM kept
     RETURNING id, name, price, deleted";

/// With `keyed`: one statement stores the key and, only if it did, the
/// item (atomic without an explicit transaction, one round trip; two when
/// the key was kept already). The key keeps the item it created, not its
/// rendered answer (which holds the id, drawn in the statement): a replay
/// renders it as the route does.
pub(super) async fn create(
    store: &PgStore,
    item: NewItem,
    keyed: Option<&Keyed<Item>>,
) -> StoreResult<Item> {
    let sequence = store.sequences.items;
    with_client!(store, |client| {
        let Some(keyed) = keyed else {
            let statement = client
                .prepare_cached(
                    "INSERT INTO items (name, price) VALUES ($1, $2)
                     RETURNING id, name, price, deleted",
                )
                .await?;
            let row = client
                .query_one(&statement, &[&item.name, &item.price])
                .await?;
            return item_of(&row);
        };
        let (expires, now) = kept::times(keyed);
        let record = KeptRecord {
            fingerprint: keyed.key.fingerprint,
            expires: keyed.key.expires,
            answer: KeptAnswer::CreatedItem(Item {
                id: 0,
                name: item.name.clone(),
                price: item.price,
                deleted: false,
            }),
        }
        .encode();
        let fresh = client.prepare_cached(CREATE_FRESH_KEYED).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 6] = [
            &keyed.key.key,
            &expires,
            &record,
            &item.name,
            &item.price,
            &sequence,
        ];
        match client.query_one(&fresh, &params).await {
            Err(err) if err.code() == Some(&SqlState::UNIQUE_VIOLATION) => {}
            row => return item_of(&row?),
        }
        let statement = client.prepare_cached(CREATE_KEYED).await?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &keyed.key.key,
            &expires,
            &record,
            &now,
            &item.name,
            &item.price,
            &sequence,
        ];
        match client.query_opt(&statement, &params).await? {
            Some(row) => item_of(&row),
            None => Err(StoreError::KeyTaken.into()),
        }
    })
}

/// [`Store::item`](crate::store::Store::item).
pub(super) async fn get(store: &PgStore, id: Id) -> StoreResult<Item> {
    let key = sql_id(id).ok_or(StoreError::ItemNotFound(id))?;
    with_client!(store, |client| {
        let statement = client
            .prepare_cached("SELECT id, name, price, deleted FROM items WHERE id = $1")
            .await?;
        match client.query_opt(&statement, &[&key]).await? {
            Some(row) => item_of(&row),
            None => Err(StoreError::ItemNotFound(id).into()),
        }
    })
}

/// [`Store::items`](crate::store::Store::items): filtered and paged in SQL.
/// `GET /item` with price bounds and `show_deleted`: `$1`..`$4` are the
/// lowest and highest price, the limit and the offset.
pub const LIST_ALL: &str = "SELECT id, name, price, deleted FROM items
     WHERE price >= $1 AND price <= $2
     ORDER BY id LIMIT $3 OFFSET $4";
/// `GET /item` with price bounds, live items only; parameters as [`LIST_ALL`].
pub const LIST_LIVE: &str = "SELECT id, name, price, deleted FROM items
     WHERE NOT deleted AND price >= $1 AND price <= $2
     ORDER BY id LIMIT $3 OFFSET $4";

/// From `items_by_price` when the price bounds are selective, else by ids
/// in order (stopping after the page).
pub(super) async fn list(store: &PgStore, filter: ItemFilter) -> StoreResult<Vec<Item>> {
    let min = filter.price.min.unwrap_or(f64::NEG_INFINITY);
    let max = filter.price.max.unwrap_or(f64::INFINITY);
    let (offset, limit) = (sql_count(filter.page.offset), sql_count(filter.page.limit));
    // Two statements: each planned without a flag that hides its shape.
    let sql = if filter.show_deleted {
        LIST_ALL
    } else {
        LIST_LIVE
    };
    let unbounded = filter.price.min.is_none() && filter.price.max.is_none();
    with_client!(store, |client| {
        let rows = if unbounded {
            // Ids in order whatever the parameters: prepared once.
            let statement = client
                .prepare_cached(
                    "SELECT id, name, price, deleted FROM items
                     WHERE ($1 OR NOT deleted)
                     ORDER BY id LIMIT $2 OFFSET $3",
                )
                .await?;
            client
                .query(&statement, &[&filter.show_deleted, &limit, &offset])
                .await?
        } else {
            // Prepared afresh, not cached: planned for these bounds, never
            // a generic plan made for other ones.
            client.query(sql, &[&min, &max, &limit, &offset]).await?
        };
        rows.iter().map(item_of).collect()
    })
}

/// `SELECT ... FOR UPDATE` of the row an `If-Match` is checked against:
/// the lock holds until the transaction ends, so the check and the write
/// are one step (two writers holding the same ETag cannot both win).
pub const LOCK_ITEM: &str = "SELECT id, name, price, deleted FROM items WHERE id = $1 FOR UPDATE";

/// Checks `precondition` (when sent) against item `id`'s current row,
/// locking it for the rest of `tx`. Errors: not found, then 412.
async fn check_precondition(
    tx: &deadpool_postgres::Transaction<'_>,
    key: i64,
    id: Id,
    precondition: Option<&Condition>,
) -> Result<(), Failure> {
    let Some(condition) = precondition else {
        return Ok(());
    };
    let statement = tx.prepare_cached(LOCK_ITEM).await?;
    let Some(row) = tx.query_opt(&statement, &[&key]).await? else {
        return Err(StoreError::ItemNotFound(id).into());
    };
    if condition.matches_strongly(&etag::of(&item_of(&row)?)) {
        Ok(())
    } else {
        Err(StoreError::PreconditionFailed(id).into())
    }
}

/// What a keyed write keeps when its UPDATE touched no row of an item
/// that exists (it is deleted).
#[derive(Clone, Copy)]
enum Unchanged {
    /// A change of a deleted item: its 304.
    NotModified,
    /// A delete of a deleted item: its 200 with the item as it is.
    Current,
}

/// One item write in one transaction: checks `precondition` against the
/// item (locking it), runs `update` (an UPDATE of the item `RETURNING`
/// it), re-prices the carts holding it when `reprice`, with `keyed` keeps
/// the key's answer (last: see `kept`), and commits. `None`, rolled back,
/// when `update` touched no row, unless keyed: then the item's state is
/// read in the transaction, and for a deleted item the answer `unchanged`
/// says is kept and committed.
async fn update_in_tx(
    client: &mut deadpool_postgres::Client,
    (key, id): (i64, Id),
    precondition: Option<&Condition>,
    (update, params): (&str, &[&(dyn tokio_postgres::types::ToSql + Sync)]),
    reprice: bool,
    keyed: Option<(&Keyed<Item>, Unchanged)>,
) -> Result<Option<Item>, Failure> {
    let tx = client.transaction().await?;
    check_precondition(&tx, key, id, precondition).await?;
    let statement = tx.prepare_cached(update).await?;
    let Some(row) = tx.query_opt(&statement, params).await? else {
        let Some((keyed, unchanged)) = keyed else {
            tx.rollback().await?;
            return Ok(None);
        };
        let statement = tx
            .prepare_cached("SELECT id, name, price, deleted FROM items WHERE id = $1")
            .await?;
        let Some(row) = tx.query_opt(&statement, &[&key]).await? else {
            return Err(StoreError::ItemNotFound(id).into());
        };
        let item = item_of(&row)?;
        let outcome = match unchanged {
            Unchanged::NotModified => {
                kept::keep(&tx, keyed, &keyed.record_of(Kept::not_modified())).await?;
                Err(StoreError::ItemDeleted(id).into())
            }
            Unchanged::Current => {
                kept::keep(&tx, keyed, &keyed.record(&item)).await?;
                Ok(Some(item))
            }
        };
        tx.commit().await?;
        return outcome;
    };
    let item = item_of(&row)?;
    if reprice {
        carts::reprice_holders(&tx, key).await?;
    }
    if let Some((keyed, _)) = keyed {
        kept::keep(&tx, keyed, &keyed.record(&item)).await?;
    }
    tx.commit().await?;
    Ok(Some(item))
}

/// [`Store::patch_item`](crate::store::Store::patch_item) (a replace is
/// a patch of both fields). A new price re-prices the carts holding the
/// item, in the same transaction.
pub(super) async fn patch(
    store: &PgStore,
    id: Id,
    patch: ItemPatch,
    precondition: Option<&Condition>,
    keyed: Option<&Keyed<Item>>,
) -> StoreResult<Item> {
    let key = sql_id(id).ok_or(StoreError::ItemNotFound(id))?;
    with_client!(store, |client| {
        let updated = update_in_tx(
            &mut client,
            (key, id),
            precondition,
            (
                "UPDATE items SET name = COALESCE($2, name), price = COALESCE($3, price)
                 WHERE id = $1 AND NOT deleted
                 RETURNING id, name, price, deleted",
                &[&key, &patch.name, &patch.price],
            ),
            patch.price.is_some(),
            keyed.map(|keyed| (keyed, Unchanged::NotModified)),
        )
        .await?;
        match updated {
            Some(item) => Ok(item),
            None => match item_state(&client, key).await? {
                None => Err(StoreError::ItemNotFound(id).into()),
                // Deleted, also when a delete won the race with us.
                Some(_) => Err(StoreError::ItemDeleted(id).into()),
            },
        }
    })
}

/// [`Store::delete_item`](crate::store::Store::delete_item). The first
/// delete re-prices the carts holding the item, in its transaction; a
/// delete of a deleted item changes nothing.
pub(super) async fn delete(
    store: &PgStore,
    id: Id,
    precondition: Option<&Condition>,
    keyed: Option<&Keyed<Item>>,
) -> StoreResult<Item> {
    let key = sql_id(id).ok_or(StoreError::ItemNotFound(id))?;
    with_client!(store, |client| {
        let updated = update_in_tx(
            &mut client,
            (key, id),
            precondition,
            (
                "UPDATE items SET deleted = TRUE WHERE id = $1 AND NOT deleted
                 RETURNING id, name, price, deleted",
                &[&key],
            ),
            true,
            keyed.map(|keyed| (keyed, Unchanged::Current)),
        )
        .await?;
        if let Some(item) = updated {
            return Ok(item);
        }
        // Already deleted (also by a delete that won the race), or missing.
        let statement = client
            .prepare_cached("SELECT id, name, price, deleted FROM items WHERE id = $1")
            .await?;
        match client.query_opt(&statement, &[&key]).await? {
            Some(row) => item_of(&row),
            None => Err(StoreError::ItemNotFound(id).into()),
        }
    })
}
