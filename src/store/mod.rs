//! Storage of items and carts. The HTTP layer talks to the [`Store`] trait
//! only, so another backend can sit beside [`SledStore`] without touching a
//! handler. `sled` is imported in this module's children and nowhere else.

mod cart_writer;
mod codec;
mod durability;
mod ids;
mod sled_store;

use std::future::Future;

pub use durability::Durability;
pub use sled_store::{OpenError, SledStore};

use crate::domain::{Cart, CartFilter, Id, Item, ItemFilter, ItemPatch, NewItem};

/// Why a store operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No item has this id.
    #[error("Item {0} not found")]
    ItemNotFound(Id),
    /// No cart has this id.
    #[error("Cart {0} not found")]
    CartNotFound(Id),
    /// The item was deleted, so it cannot be changed.
    #[error("Item {0} is deleted")]
    ItemDeleted(Id),
    /// The item was deleted, so it cannot be added to a cart.
    #[error("Item {0} is deleted")]
    ItemUnavailable(Id),
    /// The storage itself failed: disk, corruption, a bug.
    #[error("storage failure: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    /// Wraps a storage failure.
    pub fn backend(err: impl std::error::Error + Send + Sync + 'static) -> StoreError {
        StoreError::Backend(Box::new(err))
    }
}

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// Sizes for the metrics: counted as the store changes, cheap to read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Items that are not deleted.
    pub items: u64,
    /// Carts.
    pub carts: u64,
    /// Bytes the store takes on disk.
    pub disk_bytes: u64,
}

/// What the shop needs from storage. Every write is durable (as the
/// configured [`Durability`] promises) before its future resolves.
pub trait Store: Clone + Send + Sync + 'static {
    /// Stores a new item and returns it with its new id.
    fn create_item(&self, item: NewItem) -> impl Future<Output = StoreResult<Item>> + Send;
    /// The item with this id, deleted or not.
    fn item(&self, id: Id) -> impl Future<Output = StoreResult<Item>> + Send;
    /// Items passing the filter, by ascending id.
    fn items(&self, filter: ItemFilter) -> impl Future<Output = StoreResult<Vec<Item>>> + Send;
    /// Replaces name and price of a live item.
    fn replace_item(&self, id: Id, item: NewItem)
    -> impl Future<Output = StoreResult<Item>> + Send;
    /// Changes some fields of a live item.
    fn patch_item(
        &self,
        id: Id,
        patch: ItemPatch,
    ) -> impl Future<Output = StoreResult<Item>> + Send;
    /// Marks an item deleted; deleting it again is not an error.
    fn delete_item(&self, id: Id) -> impl Future<Output = StoreResult<Item>> + Send;
    /// Stores a new, empty cart and returns its id.
    fn create_cart(&self) -> impl Future<Output = StoreResult<Id>> + Send;
    /// The cart with this id, priced from its items' current state.
    fn cart(&self, id: Id) -> impl Future<Output = StoreResult<Cart>> + Send;
    /// Carts passing the filter, by ascending id.
    fn carts(&self, filter: CartFilter) -> impl Future<Output = StoreResult<Vec<Cart>>> + Send;
    /// Adds one of a live item to a cart, atomically, and returns the cart.
    fn add_to_cart(&self, cart: Id, item: Id) -> impl Future<Output = StoreResult<Cart>> + Send;
    /// Current sizes, for the metrics.
    fn stats(&self) -> StoreStats;
    /// Makes every write durable; called once at shutdown.
    fn close(&self) -> impl Future<Output = StoreResult<()>> + Send;
}
