//! Idempotency keys in table `idempotency_keys` (schema version 3): the
//! key, when it expires (unix seconds) and its encoded
//! [`KeptRecord`](crate::store::KeptRecord).
//!
//! A keyed write first claims its key in its own transaction: an insert
//! that, on a live row, inserts nothing ([`StoreError::KeyTaken`]: the
//! caller replays the row); on an expired one, takes it over. A second
//! instance claiming the same key meanwhile waits on the unique index
//! until the first commits (then finds the key taken and replays) or
//! rolls back (then runs). The write then stores the answer on the
//! claimed row before it commits, so the change and the key commit
//! together or not at all. No advisory locks: the engines without them
//! work the same.

use deadpool_postgres::Transaction;

use super::PgStore;
use super::errors::Failure;
use crate::store::{KeptRecord, Keyed, StoreError, StoreResult, idempotency};

/// Claims `keyed`'s key in `tx` (see the module doc); errors with
/// [`StoreError::KeyTaken`] when a live record holds it.
pub(super) async fn claim<T>(tx: &Transaction<'_>, keyed: &Keyed<T>) -> Result<(), Failure> {
    let statement = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys (key, expires_at, record) VALUES ($1, $2, '')
             ON CONFLICT (key) DO UPDATE SET expires_at = EXCLUDED.expires_at, record = ''
                 WHERE idempotency_keys.expires_at <= $3
             RETURNING key",
        )
        .await?;
    let expires = sql_secs(keyed.key.expires);
    let now = sql_secs(idempotency::now());
    let claimed = tx
        .query_opt(&statement, &[&keyed.key.key, &expires, &now])
        .await?;
    match claimed {
        Some(_) => Ok(()),
        None => Err(StoreError::KeyTaken.into()),
    }
}

/// Stores `record` on the key `claim` took in `tx`.
pub(super) async fn keep<T>(
    tx: &Transaction<'_>,
    keyed: &Keyed<T>,
    record: &KeptRecord,
) -> Result<(), Failure> {
    let statement = tx
        .prepare_cached("UPDATE idempotency_keys SET record = $2 WHERE key = $1")
        .await?;
    tx.execute(&statement, &[&keyed.key.key, &record.encode()])
        .await?;
    Ok(())
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
pub(super) async fn prune(store: &PgStore, now: u64, batch: usize) -> StoreResult<usize> {
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
        Ok(usize::try_from(removed).unwrap_or(usize::MAX))
    })
}

/// Unix seconds as a `BIGINT`.
fn sql_secs(secs: u64) -> i64 {
    i64::try_from(secs).unwrap_or(i64::MAX)
}
