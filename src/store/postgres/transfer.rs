//! Export and import for PostgreSQL: an export read in one REPEATABLE READ
//! transaction (one moment of the database, while writes go on) in
//! batches, and an
//! import in one transaction that also moves the identity sequences past
//! the imported ids. An import also computes each cart's totals, on the
//! carts' rows (see `carts`); an export leaves them out, as they follow
//! from the rest.

use std::collections::HashMap;

use deadpool_postgres::Client;
use tokio_postgres::IsolationLevel;

use super::errors::Failure;
use super::{api_id, sql_id};
use crate::store::export::{
    ExportCart, ExportCounts, ExportItem, ExportLine, ExportWriter, Snapshot,
};
use crate::store::stream::{CHUNK_BYTES, Chunks, ExportMode};
use crate::store::{LineState, StoreError, priced_cart};

/// Rows fetched from the database at a time by an export.
const BATCH: i32 = 1000;

/// The advisory lock a scheduled backup holds for its transaction, so one
/// instance of the shop at a time takes one ("shopd" and "bk" in ASCII).
/// Holding it elsewhere (`SELECT pg_advisory_lock(...)`) pauses every
/// instance's scheduled backups: they skip their ticks.
pub const BACKUP_LOCK: i64 = 0x7368_6f70_6462_6b00;

/// Writes every item and cart as of one moment (one REPEATABLE READ
/// transaction) to `out`, [`BATCH`] rows at a time through portals, so
/// neither side holds the whole store. `None` when `mode` is scheduled and
/// another instance holds the backup lock.
pub(super) async fn export(
    client: &mut Client,
    out: &Chunks,
    mode: ExportMode,
) -> Result<Option<ExportCounts>, Failure> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?;
    if mode == ExportMode::Scheduled {
        // Released with the transaction, however it ends.
        let taken: bool = tx
            .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&BACKUP_LOCK])
            .await?
            .try_get(0)?;
        if !taken {
            return Ok(None);
        }
    }
    // Sequences are not transactional: read after the snapshot began, they
    // are above every id it holds.
    let counters = tx
        .query_one(
            "SELECT COALESCE(pg_sequence_last_value(pg_get_serial_sequence('items', 'id')), 0) + 1,
                    COALESCE(pg_sequence_last_value(pg_get_serial_sequence('carts', 'id')), 0) + 1,
                    (SELECT COALESCE(MAX(id), 0) + 1 FROM items),
                    (SELECT COALESCE(MAX(id), 0) + 1 FROM carts)",
            &[],
        )
        .await?;
    let next = |sequence: usize, table: usize| -> Result<u64, Failure> {
        let (a, b): (i64, i64) = (counters.try_get(sequence)?, counters.try_get(table)?);
        Ok(api_id(a.max(b)))
    };
    let buffer = Vec::with_capacity(CHUNK_BYTES + CHUNK_BYTES / 8);
    let mut writer = ExportWriter::start(buffer, next(0, 2)?, next(1, 3)?).map_err(io)?;
    let items = tx
        .prepare("SELECT id, name, price, deleted FROM items ORDER BY id")
        .await?;
    let portal = tx.bind(&items, &[]).await?;
    loop {
        let rows = tx.query_portal(&portal, BATCH).await?;
        for row in &rows {
            writer
                .item(&ExportItem {
                    id: api_id(row.try_get(0)?),
                    name: row.try_get(1)?,
                    price: row.try_get(2)?,
                    deleted: row.try_get(3)?,
                })
                .map_err(io)?;
        }
        if Chunks::is_due(writer.out_mut()) {
            out.send(writer.out_mut()).await?;
        }
        if rows.len() < BATCH as usize {
            break;
        }
    }
    let carts = tx
        .prepare(
            "SELECT c.id, l.item_id, l.quantity FROM carts c
             LEFT JOIN cart_lines l ON l.cart_id = c.id
             ORDER BY c.id, l.position",
        )
        .await?;
    let portal = tx.bind(&carts, &[]).await?;
    // A cart's lines may span two batches: it is written once the next
    // cart (or the end) shows it complete.
    let mut cart: Option<ExportCart> = None;
    loop {
        let rows = tx.query_portal(&portal, BATCH).await?;
        for row in &rows {
            let id = api_id(row.try_get(0)?);
            if cart.as_ref().is_none_or(|cart| cart.id != id)
                && let Some(done) = cart.replace(ExportCart {
                    id,
                    lines: Vec::new(),
                })
            {
                writer.cart(&done).map_err(io)?;
            }
            let item: Option<i64> = row.try_get(1)?;
            if let (Some(item), Some(cart)) = (item, cart.as_mut()) {
                let quantity: i64 = row.try_get(2)?;
                cart.lines.push(ExportLine {
                    item: api_id(item),
                    quantity: u64::try_from(quantity).unwrap_or_default(),
                });
            }
        }
        if Chunks::is_due(writer.out_mut()) {
            out.send(writer.out_mut()).await?;
        }
        if rows.len() < BATCH as usize {
            break;
        }
    }
    if let Some(done) = cart {
        writer.cart(&done).map_err(io)?;
    }
    let (mut rest, counts) = writer.finish().map_err(io)?;
    out.send(&mut rest).await?;
    tx.commit().await?;
    Ok(Some(counts))
}

fn io(err: std::io::Error) -> Failure {
    Failure::Store(StoreError::backend(err))
}

/// Each cart's totals (price and quantity, as `carts` keeps them), priced
/// as the API prices it; `None` when a quantity is beyond `BIGINT`.
fn cart_totals(snapshot: &Snapshot) -> Option<(Vec<f64>, Vec<i64>)> {
    let items: HashMap<u64, (f64, bool)> = snapshot
        .items
        .iter()
        .map(|item| (item.id, (item.price, item.deleted)))
        .collect();
    let (mut prices, mut quantities) = (Vec::new(), Vec::new());
    for cart in &snapshot.carts {
        let priced = priced_cart(
            cart.id,
            cart.lines.iter().map(|line| {
                // A line of an unknown item fails the insert of lines.
                let (price, deleted) = items.get(&line.item).copied().unwrap_or((0.0, true));
                LineState {
                    item: line.item,
                    quantity: line.quantity,
                    name: String::new(),
                    price,
                    deleted,
                }
            }),
        );
        prices.push(priced.price);
        quantities.push(i64::try_from(priced.quantity()).ok()?);
    }
    Some((prices, quantities))
}

/// Loads `snapshot` into an empty database, all or nothing.
pub(super) async fn import(client: &mut Client, snapshot: &Snapshot) -> Result<(), Failure> {
    let too_big = || {
        Failure::Store(StoreError::backend(std::io::Error::other(
            "an id in the export is above what PostgreSQL's BIGINT holds",
        )))
    };
    let id = |id: u64| sql_id(id).ok_or_else(too_big);
    let tx = client.transaction().await?;
    let found = tx
        .query_one(
            "SELECT (SELECT COUNT(*) FROM items), (SELECT COUNT(*) FROM carts)",
            &[],
        )
        .await?;
    let (items, carts): (i64, i64) = (found.try_get(0)?, found.try_get(1)?);
    if items > 0 || carts > 0 {
        return Err(StoreError::NotEmpty {
            items: u64::try_from(items).unwrap_or_default(),
            carts: u64::try_from(carts).unwrap_or_default(),
        }
        .into());
    }
    let item_ids = snapshot
        .items
        .iter()
        .map(|item| id(item.id))
        .collect::<Result<Vec<_>, _>>()?;
    let names: Vec<&str> = snapshot.items.iter().map(|i| i.name.as_str()).collect();
    let prices: Vec<f64> = snapshot.items.iter().map(|i| i.price).collect();
    let deleted: Vec<bool> = snapshot.items.iter().map(|i| i.deleted).collect();
    tx.execute(
        "INSERT INTO items (id, name, price, deleted)
         SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::FLOAT8[], $4::BOOLEAN[])",
        &[&item_ids, &names, &prices, &deleted],
    )
    .await?;
    let cart_ids = snapshot
        .carts
        .iter()
        .map(|cart| id(cart.id))
        .collect::<Result<Vec<_>, _>>()?;
    let (cart_prices, cart_quantities) = cart_totals(snapshot).ok_or_else(too_big)?;
    // The totals go on the rows; a mark left by carts deleted behind
    // shopd's back would hide them (see `carts`).
    tx.execute("DELETE FROM cart_dirty", &[]).await?;
    tx.execute(
        "INSERT INTO carts (id, price, quantity)
         SELECT * FROM UNNEST($1::BIGINT[], $2::FLOAT8[], $3::BIGINT[])",
        &[&cart_ids, &cart_prices, &cart_quantities],
    )
    .await?;
    let (mut line_carts, mut line_items, mut quantities) = (Vec::new(), Vec::new(), Vec::new());
    for cart in &snapshot.carts {
        for line in &cart.lines {
            line_carts.push(id(cart.id)?);
            line_items.push(id(line.item)?);
            quantities.push(i64::try_from(line.quantity).map_err(|_| too_big())?);
        }
    }
    // Positions in file order keep each cart's lines in order.
    let positions: Vec<i64> = (1..).take(line_carts.len()).collect();
    tx.execute(
        "INSERT INTO cart_lines (cart_id, item_id, quantity, position)
         SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::BIGINT[], $4::BIGINT[])",
        &[&line_carts, &line_items, &quantities, &positions],
    )
    .await?;
    // Move every identity past what was imported, so no id is reused.
    let advance = |table: &str, column: &str, next: i64| {
        format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), GREATEST({next} - 1, 1), {next} > 1)"
        )
    };
    let next_item = id(snapshot.next_item_id)?;
    let next_cart = id(snapshot.next_cart_id)?;
    let next_position = i64::try_from(positions.len()).unwrap_or(i64::MAX) + 1;
    tx.batch_execute(&format!(
        "{}; {}; {}",
        advance("items", "id", next_item),
        advance("carts", "id", next_cart),
        advance("cart_lines", "position", next_position)
    ))
    .await?;
    tx.commit().await?;
    // Statistics for the planner, which picks the indexes by them.
    client
        .batch_execute("ANALYZE items; ANALYZE carts; ANALYZE cart_lines")
        .await?;
    Ok(())
}
