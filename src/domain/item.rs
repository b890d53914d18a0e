//! Items: what the shop sells.

use serde::Serialize;
use utoipa::ToSchema;

use super::{Id, Page, PriceRange};

/// An item as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "name": "Tea", "price": 2.5, "deleted": false}))]
pub struct Item {
    /// The item's id.
    #[schema(value_type = u64, minimum = 1)]
    pub id: Id,
    /// Its name: a non-empty string.
    #[schema(min_length = 1)]
    pub name: String,
    /// Its price: finite and not negative.
    #[schema(minimum = 0)]
    pub price: f64,
    /// Whether it was deleted (deleted items stay, for the carts that hold them).
    pub deleted: bool,
}

/// A validated body of `POST /item` or `PUT /item/{id}`.
// `deny_unknown_fields` only shapes the schema: bodies are parsed by `validate`.
#[derive(Debug, Clone, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Tea", "price": 2.5}))]
pub struct NewItem {
    /// The name, non-empty.
    #[schema(min_length = 1)]
    pub name: String,
    /// The price, finite and not negative.
    #[schema(minimum = 0)]
    pub price: f64,
}

/// A validated body of `PATCH /item/{id}`: the fields to change.
#[derive(Debug, Clone, Default, PartialEq, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"price": 3.5}))]
pub struct ItemPatch {
    /// A new name, when given.
    #[schema(nullable = false, min_length = 1)]
    pub name: Option<String>,
    /// A new price, when given.
    #[schema(nullable = false, minimum = 0)]
    pub price: Option<f64>,
}

impl ItemPatch {
    /// Applies the patch to a name and price.
    pub fn apply(self, name: &mut String, price: &mut f64) {
        if let Some(new) = self.name {
            *name = new;
        }
        if let Some(new) = self.price {
            *price = new;
        }
    }
}

/// The filters of `GET /item`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ItemFilter {
    /// Which part of the matching items to return.
    pub page: Page,
    /// The prices accepted.
    pub price: PriceRange,
    /// Whether deleted items are listed too.
    pub show_deleted: bool,
}

impl ItemFilter {
    /// Whether an item with this price and state passes the filter.
    #[must_use]
    pub fn accepts(&self, price: f64, deleted: bool) -> bool {
        (self.show_deleted || !deleted) && self.price.contains(price)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_hides_deleted_items_unless_asked() {
        let filter = ItemFilter::default();
        assert!(filter.accepts(1.0, false));
        assert!(!filter.accepts(1.0, true));
        let all = ItemFilter {
            show_deleted: true,
            ..filter
        };
        assert!(all.accepts(1.0, true));
    }

    #[test]
    fn price_bounds_are_inclusive() {
        let filter = ItemFilter {
            price: PriceRange {
                min: Some(1.0),
                max: Some(2.0),
            },
            ..ItemFilter::default()
        };
        assert!(filter.accepts(1.0, false));
        assert!(filter.accepts(2.0, false));
        assert!(!filter.accepts(0.99, false));
        assert!(!filter.accepts(2.01, false));
    }
}
