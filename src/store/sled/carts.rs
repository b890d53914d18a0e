//! Cart operations on the `carts` tree; adds go through the cart writer
//! (one transaction per batch), and every read prices the cart with its
//! items' current state.

use super::codec::{self, CartRecord};
use super::index::{self, Candidates};
use super::records::KeptFor;
use super::{BIG_CART, SledStore, backend};
use crate::domain::{Cart, CartFilter, Id, PriceRange, Resource};
use crate::store::{
    KeptAnswer, KeptRecord, Keyed, LineState, StoreError, StoreResult, page, priced_cart,
};

impl SledStore {
    /// The cart as `record` holds it, with its items' current state.
    fn cart_view(&self, id: Id, record: &CartRecord) -> StoreResult<Cart> {
        let lines = record
            .lines
            .iter()
            .map(|line| {
                let item = self.read_item(line.item)?;
                Ok(LineState {
                    item: line.item,
                    quantity: line.quantity,
                    name: item.name,
                    price: item.price,
                    deleted: item.deleted,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(priced_cart(id, lines))
    }

    /// [`SledStore::cart_view`], off the async threads for a big cart:
    /// in the bounded pool for a read, on a blocking thread outside the
    /// bound after a write (the add is stored: its answer is not shed).
    async fn priced(&self, id: Id, record: CartRecord, after_write: bool) -> StoreResult<Cart> {
        if record.lines.len() <= BIG_CART {
            return self.cart_view(id, &record);
        }
        if after_write {
            let store = self.clone();
            return tokio::task::spawn_blocking(move || store.cart_view(id, &record))
                .await
                .map_err(backend)?;
        }
        self.off_runtime(move |store| store.cart_view(id, &record))
            .await
    }
}

/// [`Store::create_cart`](crate::store::Store::create_cart).
pub(super) async fn create(store: &SledStore, keyed: Option<&Keyed<Id>>) -> StoreResult<Id> {
    let bytes = codec::encode(&CartRecord::default()).map_err(backend)?;
    let kept = keyed.map(|keyed| {
        // Kept as the id it created, rendered at replay as the route
        // renders it (see `crate::store::idempotency`).
        let (fingerprint, expires) = (keyed.key.fingerprint, keyed.key.expires);
        let kept: KeptFor = Box::new(move |id| {
            KeptRecord {
                fingerprint,
                expires,
                answer: KeptAnswer::CreatedCart(id),
            }
            .encode()
        });
        (keyed.key.key.as_str(), kept)
    });
    store.insert_new(Resource::Cart, bytes, kept).await
}

/// [`Store::cart`](crate::store::Store::cart).
pub(super) async fn get(store: &SledStore, id: Id) -> StoreResult<Cart> {
    store.priced(id, record(store, id)?, false).await
}

/// The record of cart `id`.
fn record(store: &SledStore, id: Id) -> StoreResult<CartRecord> {
    let bytes = store
        .inner
        .records
        .get(Resource::Cart, id)?
        .ok_or(StoreError::CartNotFound(id))?;
    codec::decode(&bytes).map_err(backend)
}

/// [`Store::carts`](crate::store::Store::carts): from the index of cart
/// prices or quantities when that is cheaper (see [`index::budget`]), else
/// by walking the carts in id order until the page is full.
pub(super) fn list(store: &SledStore, filter: CartFilter) -> StoreResult<Vec<Cart>> {
    let price = (filter.price != PriceRange::default()).then_some(filter.price);
    let quantity = (filter.min_quantity.is_some() || filter.max_quantity.is_some()).then(|| {
        (
            filter.min_quantity.unwrap_or(0),
            filter.max_quantity.unwrap_or(u64::MAX),
        )
    });
    if price.is_some() || quantity.is_some() {
        let candidates = {
            let indexes = store.inner.records.indexes();
            let budget = index::budget(filter.page, indexes.cart_count());
            indexes.carts_within(price, quantity, budget)
        };
        if let Candidates::All(mut ids) = candidates {
            ids.sort_unstable();
            // Priced again from the items: the filter decides on that.
            let carts = ids
                .into_iter()
                .map(|id| store.cart_view(id, &record(store, id)?));
            return page(carts, filter.page, |cart| filter.accepts(cart));
        }
    }
    let carts = store.inner.records.iter(Resource::Cart).map(|entry| {
        let (id, value) = entry?;
        let record: CartRecord = codec::decode(&value).map_err(backend)?;
        store.cart_view(id, &record)
    });
    page(carts, filter.page, |cart| filter.accepts(cart))
}

/// [`Store::add_to_cart`](crate::store::Store::add_to_cart).
pub(super) async fn add(
    store: &SledStore,
    cart: Id,
    item: Id,
    max_lines: usize,
    keyed: Option<Keyed<Cart>>,
) -> StoreResult<Cart> {
    // Durable on return: in `sync` mode the cart writer syncs each batch.
    let (record, priced) = store
        .inner
        .cart_writer
        .add(cart, item, max_lines, keyed)
        .await?;
    store.inner.disk.touch();
    if let Some(priced) = priced {
        // Keyed: the answer kept with the key, priced in the transaction.
        return Ok(priced);
    }
    // Priced outside the transaction: the cart as this add left it, with
    // its items' current names and prices.
    store.priced(cart, record, true).await
}
