//! The background fold of carts' marks (see `carts`): every instance
//! moves the totals of marked carts onto their rows, a batch at a time,
//! so that lists find them in the totals' indexes again and the marks a
//! list reads stay few.
//!
//! Only marks left alone for [`QUIET`]: a cart being filled takes its
//! adds as HOT updates of its mark, and its row (whose update writes an
//! entry in each of the carts' indexes) is written once when the adds
//! pause, not every fold (which would delete marks that the next add
//! writes again, and write each busy cart's row and index entries ten
//! times a second). A cart added to without pause keeps its mark: lists
//! read it like any other.
//!
//! A fold takes the marks, then their carts, each with `SKIP LOCKED`: it
//! never waits, so instances fold side by side, and an add in flight (it
//! holds its cart, then its mark) is left for the next fold. Holding both,
//! it moves the totals in a second statement, whose snapshot sees every
//! add committed to those carts, and deletes the marks; lists see the
//! mark or the row's new totals, never neither.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_postgres::error::SqlState;
use tokio_util::sync::CancellationToken;

use super::errors::Failure;

/// How often an instance folds when the last fold left no more marks.
pub const EVERY: Duration = Duration::from_millis(250);

/// How long a mark is left alone before it is folded: the time since
/// the cart's last add.
pub const QUIET: Duration = Duration::from_secs(1);

/// Carts folded per transaction: one statement's worth of row updates,
/// short enough that the locks it holds delay no add for long.
const BATCH: i64 = 500;

/// Locks up to `$1` marks untouched for `$2` seconds ([`QUIET`]), and
/// then their carts, skipping any held by others; answers the carts
/// locked.
const LOCK: &str = "WITH marks AS (
         SELECT cart_id FROM cart_dirty WHERE marked_at < now() - $2::FLOAT8 * INTERVAL '1 second'
         ORDER BY cart_id LIMIT $1 FOR UPDATE SKIP LOCKED
     )
     SELECT id FROM carts WHERE id IN (SELECT cart_id FROM marks)
     ORDER BY id FOR UPDATE SKIP LOCKED";

/// Moves the marks of carts `$1` (locked, with their marks) onto the
/// carts' rows and deletes them.
const FOLD: &str = "WITH folded AS (
         DELETE FROM cart_dirty WHERE cart_id = ANY($1) RETURNING cart_id, price, quantity
     )
     UPDATE carts c SET price = f.price, quantity = f.quantity
     FROM folded f WHERE c.id = f.cart_id";

/// One fold of at most [`BATCH`] carts; returns how many it folded.
/// It gives up at once on a table another session holds (a `LOCK
/// TABLE`, a schema change): it must not keep one of the pool's
/// connections waiting, which requests need.
pub(super) async fn fold_once(pool: &Pool) -> Result<usize, Failure> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL lock_timeout = 100").await?;
    let lock = tx.prepare_cached(LOCK).await?;
    let ids = tx
        .query(&lock, &[&BATCH, &QUIET.as_secs_f64()])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<Vec<i64>, _>>()?;
    if ids.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let fold = tx.prepare_cached(FOLD).await?;
    tx.execute(&fold, &[&ids]).await?;
    tx.commit().await?;
    Ok(ids.len())
}

/// Folds until `stop` is cancelled or the pool is closed: at once again
/// while a fold finds a full batch, otherwise every [`EVERY`]. A failure
/// is logged once until a fold succeeds again (an outage is reported by
/// the requests too), then retried at the same pace.
pub(super) async fn run(pool: Pool, stop: CancellationToken) {
    let mut failing = false;
    while !pool.is_closed() {
        let pause = match fold_once(&pool).await {
            Ok(folded) => {
                if failing {
                    tracing::info!("folding carts' totals onto their rows again");
                    failing = false;
                }
                if folded == usize::try_from(BATCH).unwrap_or_default() {
                    // More may wait: let requests have the database first.
                    Duration::from_millis(1)
                } else {
                    EVERY
                }
            }
            Err(Failure::Db(err)) if err.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => EVERY,
            Err(failure) => {
                if !failing && !pool.is_closed() {
                    let err = failure.into_store_error();
                    tracing::warn!(error = %crate::error_chain(&err), "folding carts' totals onto their rows failed");
                }
                failing = true;
                EVERY
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}
