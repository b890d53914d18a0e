//! Storage of items and carts. The HTTP layer talks to the [`Store`] trait
//! only; two backends implement it:
//!
//! - [`SledStore`] (`sled/`): the embedded default, a data directory owned
//!   by one process;
//! - [`PgStore`] (`postgres/`): PostgreSQL (and the engines that speak its
//!   protocol), shared by any number of shopd instances.
//!
//! What both must agree on lives here: the errors and when each method
//! returns which, how a cart is priced ([`priced_cart`]) and how a list is
//! paged ([`page`]), so a client sees the same prices, to the last bit, on
//! either backend. `sled` and `tokio_postgres` are imported in their own
//! module and nowhere else.

pub mod export;
pub mod idempotency;
mod postgres;
mod scan;
mod sled;
mod stats;
pub mod stream;

use std::future::Future;

pub use export::{ExportCounts, Snapshot};
pub use idempotency::{IdempotencyKey, Kept, KeptAnswer, KeptRecord, Keyed, Pruned};
pub use postgres::{
    BACKUP_LOCK, DatabaseUrl, PgOpenError, PgOptions, PgStore, SchemaError, list_statements,
};
pub use scan::Scans;
pub use sled::{
    CheckReport, Durability, ManifestState, OnDamage, OpenError, Scan, SledStore, Tally, check,
};
pub use stats::{StatsCache, StoreStats};
pub use stream::{Chunks, ExportMode};

use crate::domain::etag::Condition;
use crate::domain::{
    Cart, CartFilter, CartLine, Id, Item, ItemFilter, ItemPatch, NewItem, Page, Resource,
};

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No item has this id.
    #[error("{}", Resource::Item.not_found(.0))]
    ItemNotFound(Id),
    /// No cart has this id.
    #[error("{}", Resource::Cart.not_found(.0))]
    CartNotFound(Id),
    /// The item's current ETag does not match the `If-Match` sent.
    #[error("Item {0} has changed since its ETag was read; read it again")]
    PreconditionFailed(Id),
    /// The item was deleted, so it cannot be changed.
    #[error("Item {0} is deleted")]
    ItemDeleted(Id),
    /// The item was deleted, so it cannot be added to a cart.
    #[error("Item {0} is deleted")]
    ItemUnavailable(Id),
    /// An import found the store holding data.
    #[error(
        "the store is not empty: it holds {items} items and {carts} carts; import only into an empty store"
    )]
    NotEmpty {
        /// Items found.
        items: u64,
        /// Carts found.
        carts: u64,
    },
    /// The cart already has the most distinct lines allowed, and the item
    /// is not one of them.
    #[error("Cart {cart} has the most lines allowed ({limit})")]
    CartFull { cart: Id, limit: usize },
    /// A live answer is kept under the write's idempotency key (kept
    /// before, or meanwhile on another instance): nothing was done;
    /// answer with the kept record.
    #[error("the idempotency key was used meanwhile")]
    KeyTaken,
    /// Too much long work (scans, exports) runs and waits already: shed,
    /// not queued (see [`Scans`]); the same request may succeed later.
    #[error("shopd is busy with other lists and exports; try again in {retry_after_secs} s")]
    Busy {
        /// Seconds after which a retry may succeed.
        retry_after_secs: u64,
    },
    /// The storage cannot be reached now (database down, timed out, pool
    /// exhausted); the same request may succeed later.
    #[error("storage unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The storage itself failed: disk, corruption, a bug.
    #[error("storage failure")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a storage failure.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Box::new(err))
    }

    /// Wraps a failure to reach the storage.
    pub fn unavailable(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Unavailable(Box::new(err))
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// What the shop needs from storage. Every write is durable (as the
/// backend promises) before its future resolves.
///
/// Errors: besides those named per method, every method may fail with
/// [`StoreError::Unavailable`] (the storage cannot be reached now; the HTTP
/// layer answers 503) or [`StoreError::Backend`] (it failed; 500, logged).
pub trait Store: Clone + Send + Sync + 'static {
    /// Stores a new item and returns it with its new id, which is higher
    /// than every id handed out before.
    ///
    /// With `keyed`, the answer it renders is kept under its key in the
    /// same transaction (so for every write below; a failed write keeps
    /// nothing, except the 304 of a deleted item, which is an answer).
    /// Errors: with `keyed`, [`StoreError::KeyTaken`] when a live answer
    /// is kept under the key (kept before, or first by another instance),
    /// checked atomically with the write, which then changes nothing (for
    /// every write below too); an expired one is taken over.
    fn create_item(
        &self,
        item: NewItem,
        keyed: Option<Keyed<Item>>,
    ) -> impl Future<Output = StoreResult<Item>> + Send;
    /// The item with this id, deleted or not.
    /// Errors: [`StoreError::ItemNotFound`] when no item has this id.
    fn item(&self, id: Id) -> impl Future<Output = StoreResult<Item>> + Send;
    /// Items passing the filter, by ascending id.
    fn items(&self, filter: ItemFilter) -> impl Future<Output = StoreResult<Vec<Item>>> + Send;
    /// Replaces name and price of a live item. With `precondition` (an
    /// `If-Match`), the item's current ETag must match it, checked
    /// atomically with the write.
    /// Errors, in this order: [`StoreError::ItemNotFound`] when no item has
    /// this id, [`StoreError::PreconditionFailed`] (412) when the
    /// precondition fails, [`StoreError::ItemDeleted`] (304) when it is
    /// deleted.
    fn replace_item(
        &self,
        id: Id,
        item: NewItem,
        precondition: Option<Condition>,
        keyed: Option<Keyed<Item>>,
    ) -> impl Future<Output = StoreResult<Item>> + Send;
    /// Changes some fields of a live item.
    /// Errors: as [`Store::replace_item`].
    fn patch_item(
        &self,
        id: Id,
        patch: ItemPatch,
        precondition: Option<Condition>,
        keyed: Option<Keyed<Item>>,
    ) -> impl Future<Output = StoreResult<Item>> + Send;
    /// Marks an item deleted and returns it; deleting it again is not an
    /// error. Errors: [`StoreError::ItemNotFound`],
    /// [`StoreError::PreconditionFailed`] (as [`Store::replace_item`]).
    fn delete_item(
        &self,
        id: Id,
        precondition: Option<Condition>,
        keyed: Option<Keyed<Item>>,
    ) -> impl Future<Output = StoreResult<Item>> + Send;
    /// Stores a new, empty cart and returns its id, higher than every cart
    /// id handed out before.
    fn create_cart(&self, keyed: Option<Keyed<Id>>)
    -> impl Future<Output = StoreResult<Id>> + Send;
    /// The cart with this id, priced from its items' current state.
    /// Errors: [`StoreError::CartNotFound`].
    fn cart(&self, id: Id) -> impl Future<Output = StoreResult<Cart>> + Send;
    /// Carts passing the filter, by ascending id.
    fn carts(&self, filter: CartFilter) -> impl Future<Output = StoreResult<Vec<Cart>>> + Send;
    /// Adds one of a live item to a cart, atomically (also against adds
    /// from other processes sharing the storage), and returns the cart. A
    /// cart holds at most `max_lines` distinct items (the `max_cart_lines`
    /// setting, passed by the caller so every backend enforces the same
    /// one); an item already in it can always be added again.
    /// Errors, checked in this order: [`StoreError::CartNotFound`],
    /// [`StoreError::ItemNotFound`], [`StoreError::ItemUnavailable`] (404:
    /// the item is deleted), [`StoreError::CartFull`] (409).
    fn add_to_cart(
        &self,
        cart: Id,
        item: Id,
        max_lines: usize,
        keyed: Option<Keyed<Cart>>,
    ) -> impl Future<Output = StoreResult<Cart>> + Send;
    /// The record kept under idempotency key `key`, expired or not.
    fn kept(&self, key: &str) -> impl Future<Output = StoreResult<Option<KeptRecord>>> + Send;
    /// Removes at most `batch` records that expired by `now` (unix
    /// seconds), a bounded step: each call goes on where the last one
    /// stopped; says how many went and whether more may be waiting.
    fn prune_kept(
        &self,
        now: u64,
        batch: usize,
    ) -> impl Future<Output = StoreResult<Pruned>> + Send;
    /// Current sizes, read from the storage (it may take a round trip; the
    /// metrics read them from a [`StatsCache`] refreshed in the background).
    fn stats(&self) -> impl Future<Output = StoreResult<StoreStats>> + Send;
    /// Writes everything the store holds as of one moment, in the export
    /// format, to `out` in chunks (see [`Chunks`]): no half-applied
    /// add-to-cart, no cart line whose item is missing, and id counters
    /// above every id handed out by then. Writes go on meanwhile; memory
    /// does not grow with the store. Returns the counts written, or `None`
    /// when `mode` is [`ExportMode::Scheduled`] and another instance
    /// sharing the store is taking one (nothing was written then). Errors
    /// after the first chunk leave the output without its trailer, so a
    /// truncated export is never taken for a whole one.
    fn export(
        &self,
        out: Chunks,
        mode: ExportMode,
    ) -> impl Future<Output = StoreResult<Option<ExportCounts>>> + Send;
    /// Loads a checked snapshot (see [`Snapshot::read`]) with its ids, and
    /// moves the id counters up to the snapshot's, so no id in it is ever
    /// handed out again. Errors: [`StoreError::NotEmpty`] when the store
    /// holds any item or cart; nothing is written then.
    fn import(&self, snapshot: Snapshot) -> impl Future<Output = StoreResult<()>> + Send;
    /// Answers when the storage answers a trivial request; for `/readyz`.
    fn ping(&self) -> impl Future<Output = StoreResult<()>> + Send;
    /// Makes every write durable; called once at shutdown.
    fn close(&self) -> impl Future<Output = StoreResult<()>> + Send;
}

/// A cart line with its item's current state, as read from either backend.
#[derive(Debug, Clone, PartialEq)]
pub struct LineState {
    /// The item's id.
    pub item: Id,
    /// How many of it the cart holds.
    pub quantity: u64,
    /// The item's current name.
    pub name: String,
    /// The item's current price.
    pub price: f64,
    /// Whether the item is deleted.
    pub deleted: bool,
}

/// The cart `id` with `lines` (in the order their items were first added),
/// priced in Rust: the same additions in the same order on every backend,
/// so prices agree to the last bit (a SQL `SUM` would add in its own order).
pub fn priced_cart(id: Id, lines: impl IntoIterator<Item = LineState>) -> Cart {
    Cart::priced(
        id,
        lines.into_iter().map(|line| {
            (
                CartLine {
                    id: line.item,
                    name: line.name,
                    quantity: line.quantity,
                    available: !line.deleted,
                },
                line.price,
            )
        }),
    )
}

/// The part of `entries` (in id order) that a list returns: the accepted
/// ones, less the first `page.offset`, at most `page.limit`. Reads no
/// further than it needs.
pub fn page<T>(
    entries: impl IntoIterator<Item = StoreResult<T>>,
    page: Page,
    accepts: impl Fn(&T) -> bool,
) -> StoreResult<Vec<T>> {
    let mut pager = Pager::new(page);
    for entry in entries {
        if pager.is_full() {
            break;
        }
        // A storage error fails the list, also inside the skipped part.
        let entry = entry?;
        if accepts(&entry) {
            pager.offer(entry);
        }
    }
    Ok(pager.into_found())
}

/// [`page`] for entries that arrive in batches (e.g. one query per batch):
/// offer accepted entries in order until [`Pager::is_full`].
#[derive(Debug)]
pub struct Pager<T> {
    skip: usize,
    limit: usize,
    found: Vec<T>,
}

impl<T> Pager<T> {
    /// An empty page.
    #[must_use]
    pub fn new(page: Page) -> Self {
        Pager {
            skip: page.offset,
            limit: page.limit,
            found: Vec::new(),
        }
    }

    /// Takes an accepted entry: skipped while the offset lasts, then kept.
    pub fn offer(&mut self, entry: T) {
        if self.skip > 0 {
            self.skip -= 1;
        } else if !self.is_full() {
            self.found.push(entry);
        }
    }

    /// Whether the page holds `limit` entries.
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.found.len() >= self.limit
    }

    /// The entries kept.
    #[must_use]
    pub fn into_found(self) -> Vec<T> {
        self.found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_skips_only_accepted_entries() {
        let entries = (1..=10).map(Ok::<u32, StoreError>);
        let found = page(
            entries,
            Page {
                offset: 2,
                limit: 3,
            },
            |n| n % 2 == 0,
        )
        .unwrap();
        assert_eq!(found, vec![6, 8, 10]);
    }

    #[test]
    fn a_page_stops_reading_once_full() {
        let entries = (1..=3).map(|n| {
            if n == 3 {
                Err(StoreError::CartNotFound(3))
            } else {
                Ok(n)
            }
        });
        let found = page(
            entries,
            Page {
                offset: 0,
                limit: 2,
            },
            |_| true,
        )
        .unwrap();
        assert_eq!(found, vec![1, 2]);
    }

    #[test]
    fn a_cart_is_priced_over_available_lines_in_line_order() {
        let line = |item, price, deleted| LineState {
            item,
            quantity: 1,
            name: format!("{item}"),
            price,
            deleted,
        };
        let cart = priced_cart(
            7,
            [
                line(1, 0.1, false),
                line(2, 99.0, true),
                line(3, 0.2, false),
            ],
        );
        assert_eq!(cart.price, 0.1 + 0.2);
        assert_eq!(cart.items.len(), 3);
        assert!(!cart.items[1].available);
    }
}
