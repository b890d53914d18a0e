//! Add-to-cart in batches. sled 0.34 runs one transaction at a time behind
//! a process-wide lock, and each one costs far more than its few reads and
//! writes. So one writer thread takes every add waiting at that moment and
//! applies them all in a single transaction over `items` and `carts`; each
//! add still reads its item and updates its cart atomically, and each gets
//! its own answer (an unknown cart fails that add, not the batch). In
//! `sync` mode the same thread then makes the batch durable before it
//! answers, so an add needs no second hand-off to the flusher; while it
//! syncs, the next batch gathers.
//!
//! Keyed changes of items (an `Idempotency-Key` kept with the change) go
//! through the same thread for the same reason: each needs a transaction
//! over the items and the keys, and one transaction per batch costs a
//! fraction of one per write. (A keyed create needs none: see
//! `Records::insert_new_keyed`.) The transaction refuses a write whose
//! key holds a live answer ([`StoreError::KeyTaken`]).

use std::collections::HashMap;
use std::sync::{Arc, mpsc};

use sled::transaction::{ConflictableTransactionError, TransactionError};
use tokio::sync::oneshot;

use super::codec::{self, CartRecord, ItemRecord, LineRecord};
use super::durability::DiskSync;
use super::kept_entry;
use super::records::{Keep, KeptEntry, Records, WriteTx};
use crate::domain::{Cart, Id, Resource};
use crate::store::{Keyed, LineState, StoreError, StoreResult, idempotency, priced_cart};

/// The most adds applied in one transaction.
const MAX_BATCH: usize = 256;

struct Add {
    cart: Id,
    item: Id,
    /// The most distinct lines the cart may hold.
    max_lines: usize,
    /// The idempotency key to keep with the add, if any.
    keyed: Option<Keyed<Cart>>,
    reply: oneshot::Sender<StoreResult<Added>>,
}

/// A record written with the idempotency key that answers it, if it
/// still holds `old` (`None`: a new record).
struct Put {
    resource: Resource,
    id: Id,
    old: Option<sled::IVec>,
    new: Vec<u8>,
    kept: KeptEntry,
    reply: oneshot::Sender<StoreResult<bool>>,
}

/// What the writer thread applies.
enum Job {
    Add(Add),
    Put(Put),
}

/// A job's outcome.
enum Done {
    Add(StoreResult<Added>),
    Put(StoreResult<bool>),
}

/// The cart as an add left it, and, for a keyed add, the cart priced in
/// its transaction (the answer kept with the key).
pub(super) type Added = (CartRecord, Option<Cart>);

/// Queues adds for the writer thread; cheap to clone.
#[derive(Clone)]
pub(super) struct CartWriter {
    queue: Option<mpsc::Sender<Job>>,
}

impl CartWriter {
    /// Starts the writer thread over the records; its handle comes back
    /// so the store can wait for it to end.
    /// With `disk`, every batch is synced before its adds are answered.
    pub(super) fn start(
        records: Arc<Records>,
        disk: Option<Arc<DiskSync>>,
    ) -> std::io::Result<(CartWriter, std::thread::JoinHandle<()>)> {
        let (queue, rx) = mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("shopd-carts".into())
            .spawn(move || writer(&rx, &records, disk.as_deref()))?;
        Ok((CartWriter { queue: Some(queue) }, thread))
    }

    /// A writer that takes no more adds; dropping the last real one in
    /// favour of this ends the writer thread.
    pub(super) fn stopped() -> CartWriter {
        CartWriter { queue: None }
    }

    /// Adds one of `item` to `cart`; resolves once the transaction that
    /// holds it has committed (and, in `sync` mode, is durable), with the
    /// cart as that add left it. A new line is refused with
    /// [`StoreError::CartFull`] when the cart has `max_lines` already.
    /// With `keyed`, the cart is priced in the transaction and its answer
    /// kept there under the key; [`StoreError::KeyTaken`] (and no add)
    /// when a live answer is kept under it already.
    pub(super) async fn add(
        &self,
        cart: Id,
        item: Id,
        max_lines: usize,
        keyed: Option<Keyed<Cart>>,
    ) -> StoreResult<Added> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::backend(std::io::Error::other("the cart writer stopped"));
        let queue = self.queue.as_ref().ok_or_else(gone)?;
        queue
            .send(Job::Add(Add {
                cart,
                item,
                max_lines,
                keyed,
                reply,
            }))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// Writes `new` as record `id` of `resource` if it still holds `old`
    /// (`None`: the record is new), with the idempotency key `kept`, in
    /// one transaction; `false` when another writer changed the record
    /// first, [`StoreError::KeyTaken`] when a live answer is kept under
    /// the key (nothing is written then). Resolves as [`CartWriter::add`].
    pub(super) async fn put(
        &self,
        (resource, id): (Resource, Id),
        old: Option<sled::IVec>,
        new: Vec<u8>,
        kept: KeptEntry,
    ) -> StoreResult<bool> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::backend(std::io::Error::other("the writer stopped"));
        let queue = self.queue.as_ref().ok_or_else(gone)?;
        queue
            .send(Job::Put(Put {
                resource,
                id,
                old,
                new,
                kept,
                reply,
            }))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

fn writer(rx: &mpsc::Receiver<Job>, records: &Records, disk: Option<&DiskSync>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter().take(MAX_BATCH - 1));
        let now = idempotency::now();
        // Through the gate for the transaction only, not for the sync.
        let applied = apply(records, &batch, now)
            .map(|(outcomes, fresh)| {
                records.note_kept(fresh);
                outcomes
            })
            .map_err(|err| crate::error_chain(&err));
        let synced = applied.and_then(|outcomes| match disk {
            Some(disk) => disk
                .sync()
                .map(|()| outcomes)
                .map_err(|err| crate::error_chain(&err)),
            None => Ok(outcomes),
        });
        match synced {
            Ok(outcomes) => {
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    match (job, outcome) {
                        (Job::Add(add), Done::Add(outcome)) => {
                            let _ = add.reply.send(outcome);
                        }
                        (Job::Put(put), Done::Put(outcome)) => {
                            let _ = put.reply.send(outcome);
                        }
                        (job, _) => fail(job, "a job got another job's outcome"),
                    }
                }
            }
            Err(message) => {
                tracing::error!(error = %message, "write transaction failed");
                for job in batch {
                    fail(job, &message);
                }
            }
        }
    }
}

/// Answers `job` with a storage failure.
fn fail(job: Job, message: &str) {
    let err = || StoreError::backend(std::io::Error::other(message.to_owned()));
    match job {
        Job::Add(add) => {
            let _ = add.reply.send(Err(err()));
        }
        Job::Put(put) => {
            let _ = put.reply.send(Err(err()));
        }
    }
}

/// Outcomes of a batch, and how many idempotency keys it newly kept.
type Applied = (Vec<Done>, u64);

type TxError = ConflictableTransactionError<StoreError>;

fn corrupt(err: codec::CodecError) -> TxError {
    TxError::Abort(StoreError::backend(err))
}

/// Cart `id` as `record` holds it, priced from the items the transaction
/// reads.
fn priced_in(tx: &WriteTx<'_>, id: Id, record: &CartRecord) -> Result<Cart, TxError> {
    let mut lines = Vec::with_capacity(record.lines.len());
    for line in &record.lines {
        let bytes = tx
            .get(Resource::Item, line.item)?
            .ok_or_else(|| TxError::Abort(StoreError::ItemNotFound(line.item)))?;
        let item: ItemRecord = codec::decode(&bytes).map_err(corrupt)?;
        lines.push(LineState {
            item: line.item,
            quantity: line.quantity,
            name: item.name,
            price: item.price,
            deleted: item.deleted,
        });
    }
    Ok(priced_cart(id, lines))
}

/// Writes `put` if its record still holds what it read and its key is
/// free; its outcome and how many keys it newly kept.
fn write_put(tx: &WriteTx<'_>, put: &Put, now: u64) -> Result<(Done, u64), TxError> {
    let current = tx.get(put.resource, put.id)?;
    if current.as_deref() != put.old.as_deref() {
        return Ok((Done::Put(Ok(false)), 0));
    }
    Ok(match tx.keep(&put.kept, now)? {
        kept @ (Keep::Fresh | Keep::Expired) => {
            tx.put(put.resource, put.id, &put.new)?;
            (Done::Put(Ok(true)), kept.counted())
        }
        Keep::Taken => (Done::Put(Err(StoreError::KeyTaken)), 0),
    })
}

/// Applies the jobs in order in one transaction; each gets its outcome.
fn apply(
    records: &Records,
    jobs: &[Job],
    now: u64,
) -> Result<Applied, TransactionError<StoreError>> {
    let mut touched: Vec<(Resource, Id)> = jobs
        .iter()
        .map(|job| match job {
            Job::Add(add) => (Resource::Cart, add.cart),
            Job::Put(put) => (put.resource, put.id),
        })
        .collect();
    touched.sort_unstable();
    touched.dedup();
    records.transact(&touched, |tx: &WriteTx<'_>| {
        // Carts read by this batch, and whether it changed them; each
        // changed cart is written once, at the end.
        let mut changed: HashMap<Id, (CartRecord, bool)> = HashMap::new();
        let mut outcomes = Vec::with_capacity(jobs.len());
        let mut fresh = 0;
        for job in jobs {
            let add = match job {
                Job::Add(add) => add,
                // Carts this batch changed are written at its end: a put is
                // of an item.
                Job::Put(put) => {
                    let (done, kept) = write_put(tx, put, now)?;
                    outcomes.push(done);
                    fresh += kept;
                    continue;
                }
            };
            let (cart, item, max_lines) = (add.cart, add.item, add.max_lines);
            if let Some(keyed) = &add.keyed
                && tx.key_taken(keyed.key.key.as_bytes(), now)?
            {
                outcomes.push(Done::Add(Err(StoreError::KeyTaken)));
                continue;
            }
            let (mut record, dirty) = match changed.remove(&cart) {
                Some(entry) => entry,
                None => match tx.get(Resource::Cart, cart)? {
                    Some(bytes) => (codec::decode(&bytes).map_err(corrupt)?, false),
                    None => {
                        outcomes.push(Done::Add(Err(StoreError::CartNotFound(cart))));
                        continue;
                    }
                },
            };
            let live = match tx.get(Resource::Item, item)? {
                Some(bytes) => {
                    let item_record: ItemRecord = codec::decode(&bytes).map_err(corrupt)?;
                    if item_record.deleted {
                        Err(StoreError::ItemUnavailable(item))
                    } else {
                        Ok(())
                    }
                }
                None => Err(StoreError::ItemNotFound(item)),
            };
            let line = record.lines.iter().position(|line| line.item == item);
            let full = line.is_none() && record.lines.len() >= max_lines;
            let refused = live.err().or(full.then_some(StoreError::CartFull {
                cart,
                limit: max_lines,
            }));
            if let Some(err) = refused {
                outcomes.push(Done::Add(Err(err)));
                changed.insert(cart, (record, dirty));
                continue;
            }
            match line {
                Some(at) => {
                    let line = &mut record.lines[at];
                    line.quantity = line.quantity.saturating_add(1);
                }
                None => record.lines.push(LineRecord { item, quantity: 1 }),
            }
            let priced = match &add.keyed {
                Some(keyed) => {
                    let priced = priced_in(tx, cart, &record)?;
                    // Not taken (looked at above): kept.
                    fresh += tx.keep(&kept_entry(keyed, &priced), now)?.counted();
                    Some(priced)
                }
                None => None,
            };
            outcomes.push(Done::Add(Ok((record.clone(), priced))));
            changed.insert(cart, (record, true));
        }
        for (cart, (record, _)) in changed.iter().filter(|(_, (_, dirty))| *dirty) {
            tx.put(
                Resource::Cart,
                *cart,
                &codec::encode(record).map_err(corrupt)?,
            )?;
        }
        Ok((outcomes, fresh))
    })
}
