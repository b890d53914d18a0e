//! Idempotency keys in table `idempotency_keys` (schema version 3): the
//! key, when it expires (unix seconds) and its encoded
//! [`KeptRecord`](crate::store::KeptRecord).
//!
//! A keyed write stores its key last in its own transaction: an insert
//! that, on a live row of the key, inserts nothing
//! ([`StoreError::KeyTaken`]: the write rolls back and the caller replays
//! the row), and on an expired one takes it over. Another instance
//! writing with the same key meanwhile waits on the key's unique index
//! until the first commits (then finds the key taken, rolls back and
//! replays) or rolls back (then commits its own). So the change and the
//! key commit together or not at all, and one key runs once across
//! instances. The key goes last, after every row lock of the write, so
//! waiting on it never closes a cycle. No advisory locks: the engines
//! without them work the same.

use deadpool_postgres::Transaction;

use super::PgStore;
use super::errors::Failure;
use crate::store::{KeptRecord, Keyed, Pruned, StoreError, StoreResult, idempotency};

/// The insert of a key (`$1` key, `$2` expiry, `$3` record, `$4` now):
/// a row back when it was stored, none when a live record holds the key.
pub(super) const KEEP: &str = "INSERT INTO idempotency_keys (key, expires_at, record)
     VALUES ($1, $2, $3)
     ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, record = EXCLUDED.record
         WHERE idempotency_keys.expires_at <= $4
     RETURNING key";

/// Stores `record` under `keyed`'s key in `tx` (see the module doc);
/// [`StoreError::KeyTaken`] when a live record holds the key.
pub(super) async fn keep<T>(
    tx: &Transaction<'_>,
    keyed: &Keyed<T>,
    record: &KeptRecord,
) -> Result<(), Failure> {
    let statement = tx.prepare_cached(KEEP).await?;
    let (expires, now) = times(keyed);
    let stored = tx
        .query_opt(
            &statement,
            &[&keyed.key.key, &expires, &record.encode(), &now],
        )
        .await?;
    match stored {
        Some(_) => Ok(()),
        None => Err(StoreError::KeyTaken.into()),
    }
}

/// `keyed`'s expiry and the time now, as `BIGINT` unix seconds.
pub(super) fn times<T>(keyed: &Keyed<T>) -> (i64, i64) {
    (sql_secs(keyed.key.expires), sql_secs(idempotency::now()))
}

/// [`Store::kept`](crate::store::Store::kept).
pub(super) async fn get(store: &PgStore, key: &str) -> StoreResult<Option<KeptRecord>> {
    with_client!(store, |client| {
        let statement = client
            .prepare_cached("SELECT record FROM idempotency_keys WHERE key = $1")
            .await?;
        let Some(row) = client.query_opt(&statement, &[&key]).await? else {
            return Ok(None);
        };
        let bytes: Vec<u8> = row.try_get(0)?;
        KeptRecord::decode(&bytes)
            .map(Some)
            .map_err(|err| StoreError::backend(err).into())
    })
}

/// [`Store::prune_kept`](crate::store::Store::prune_kept): one small
/// statement per batch, by the expiry index.
pub(super) async fn prune(store: &PgStore, now: u64, batch: usize) -> StoreResult<Pruned> {
    let now = sql_secs(now);
    let limit = super::sql_count(batch);
    with_client!(store, |client| {
        let statement = client
            .prepare_cached(
                "DELETE FROM idempotency_keys WHERE key IN (
                     SELECT key FROM idempotency_keys WHERE expires_at <= $1 LIMIT $2)",
            )
            .await?;
        let removed = client.execute(&statement, &[&now, &limit]).await?;
        let removed = usize::try_from(removed).unwrap_or(usize::MAX);
        Ok(Pruned {
            removed,
            more: removed >= batch,
        })
    })
}

/// Unix seconds as a `BIGINT`.
fn sql_secs(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}
