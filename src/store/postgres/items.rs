//! The SQL of items: one statement per operation, each row read back as
//! an [`Item`]. An update that changes no row asks once more why
//! (missing, or deleted). A price change or a deletion also re-prices, in
//! its transaction, the carts that hold the item (see `carts`).

use tokio_postgres::Row;

use super::errors::Failure;
use super::{PgStore, api_id, carts, kept, sql_count, sql_id};
use crate::domain::etag::{self, Condition};
use crate::domain::{Id, Item, ItemFilter, ItemPatch, NewItem};
use crate::store::{Kept, Keyed, StoreError, StoreResult};

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
/// A keyed create: the key (`$1`..`$4`, see [`kept::KEEP`]), then item
/// `$5` (`$6` name, `$7` price) only if the key was stored.
static CREATE_KEYED: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!(
        "WITH kept AS ({})
         INSERT INTO items (id, name, price) SELECT $5, $6, $7 FROM kept
         RETURNING id",
        kept::KEEP
    )
});

/// With `keyed`: the id is drawn first, so the answer can be rendered,
/// then one statement stores the key (see `kept`) and, only if it did,
/// the item: atomic without an explicit transaction.
pub(super) async fn create(
    store: &PgStore,
    item: NewItem,
    keyed: Option<&Keyed<Item>>,
) -> StoreResult<Item> {
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
        let next = client
            .prepare_cached("SELECT nextval(pg_get_serial_sequence('items', 'id'))")
            .await?;
        let id: i64 = client.query_one(&next, &[]).await?.try_get(0)?;
        let created = Item {
            id: api_id(id),
            name: item.name.clone(),
            price: item.price,
            deleted: false,
        };
        let statement = client.prepare_cached(&CREATE_KEYED).await?;
        let (expires, now) = kept::times(keyed);
        let record = keyed.record(&created).encode();
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
            &keyed.key.key,
            &expires,
            &record,
            &now,
            &id,
            &item.name,
            &item.price,
        ];
        match client.query_opt(&statement, &params).await? {
            Some(_) => Ok(created),
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
