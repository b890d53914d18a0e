//! The shop's values and rules: items, carts, list filters and the validation
//! of what clients send. Pure code: no HTTP, no storage.

mod cart;
pub mod etag;
mod item;
mod validate;

pub use cart::{Cart, CartFilter, CartLine, cart_price};
pub use item::{Item, ItemFilter, ItemPatch, NewItem};
pub use validate::{Issue, Location, parse_id, parse_integer, parse_item_body, parse_item_patch};

/// Identifier of an item or a cart: a positive integer, never reused.
pub type Id = u64;

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    /// An item.
    Item,
    /// A cart.
    Cart,
}

impl Resource {
    /// The one sentence for an id (or id-like text) that names no such
    /// resource: `Item 5 not found`.
    pub fn not_found(self, id: impl std::fmt::Display) -> String {
        format!("{self:?} {id} not found")
    }
}

/// The text of a URL path segment, percent-decoded once, with invalid
/// UTF-8 replaced as Starlette's `unquote` does: every spelling of a name
/// or an id reads the same.
#[must_use]
pub fn percent_decoded(segment: &str) -> std::borrow::Cow<'_, str> {
    percent_encoding::percent_decode_str(segment).decode_utf8_lossy()
}

/// The page of a list: how many matching entries to skip, then how many to return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// Matching entries skipped before the first one returned.
    pub offset: usize,
    /// The most entries returned.
    pub limit: usize,
}

impl Page {
    /// The smallest `limit` a list takes.
    pub const MIN_LIMIT: usize = 1;
    /// The `limit` of a list that names none.
    pub const DEFAULT_LIMIT: usize = 10;
}

impl Default for Page {
    fn default() -> Self {
        Page {
            offset: 0,
            limit: Page::DEFAULT_LIMIT,
        }
    }
}

/// An inclusive range of prices; `None` leaves that side open.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PriceRange {
    /// Lowest price accepted.
    pub min: Option<f64>,
    /// Highest price accepted.
    pub max: Option<f64>,
}

impl PriceRange {
    /// Whether `price` lies inside the range.
    #[must_use]
    pub fn contains(&self, price: f64) -> bool {
        self.min.is_none_or(|min| price >= min) && self.max.is_none_or(|max| price <= max)
    }
}
