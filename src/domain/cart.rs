//! Carts: lines of items with quantities, priced from the items' current state.

use serde::Serialize;
use utoipa::ToSchema;

use super::{Id, Page, PriceRange};

/// One line of a cart as clients see it: the item's current name and state.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct CartLine {
    /// The item's id.
    #[schema(value_type = u64, minimum = 1)]
    pub id: Id,
    /// The item's current name.
    #[schema(min_length = 1)]
    pub name: String,
    /// How many of the item the cart holds.
    #[schema(minimum = 1)]
    pub quantity: u64,
    /// Whether the item is still on sale (not deleted).
    pub available: bool,
}

/// A cart as clients see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[schema(example = json!({"id": 1, "items": [{"id": 1, "name": "Tea", "quantity": 2, "available": true}], "price": 5.0}))]
pub struct Cart {
    /// The cart's id.
    #[schema(value_type = u64, minimum = 1)]
    pub id: Id,
    /// Its lines, in the order their items were first added.
    pub items: Vec<CartLine>,
    /// Sum of current price x quantity over the available lines.
    #[schema(minimum = 0)]
    pub price: f64,
}

impl Cart {
    /// Builds a cart from its lines, each with its item's current price.
    /// A sum beyond the largest finite number stays at that number: JSON
    /// has no infinity.
    pub fn priced(id: Id, lines: impl IntoIterator<Item = (CartLine, f64)>) -> Cart {
        let (items, prices): (Vec<CartLine>, Vec<f64>) = lines.into_iter().unzip();
        let price = cart_price(
            items
                .iter()
                .zip(prices)
                .map(|(line, price)| (price, line.quantity, line.available)),
        );
        Cart { id, items, price }
    }

    /// The cart's quantity: the sum of all its lines' quantities.
    #[must_use]
    pub fn quantity(&self) -> u64 {
        self.items.iter().map(|line| line.quantity).sum()
    }
}

/// The price of a cart's lines, each `(item price, quantity, available)`:
/// price x quantity summed over the available lines in line order (the
/// order matters to the last bit). A sum beyond the largest finite number
/// stays at that number: JSON has no infinity. Every place that prices a
/// cart (a read, the embedded store's index) calls this.
pub fn cart_price(lines: impl IntoIterator<Item = (f64, u64, bool)>) -> f64 {
    let mut price = 0.0;
    for (item_price, quantity, available) in lines {
        if available {
            price += item_price * quantity as f64;
        }
    }
    price.min(f64::MAX)
}

/// The filters of `GET /cart`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CartFilter {
    /// Which part of the matching carts to return.
    pub page: Page,
    /// The cart prices accepted.
    pub price: PriceRange,
    /// Lowest cart quantity accepted.
    pub min_quantity: Option<u64>,
    /// Highest cart quantity accepted.
    pub max_quantity: Option<u64>,
}

impl CartFilter {
    /// Whether a cart passes the filter.
    #[must_use]
    pub fn accepts(&self, cart: &Cart) -> bool {
        let quantity = cart.quantity();
        self.price.contains(cart.price)
            && self.min_quantity.is_none_or(|min| quantity >= min)
            && self.max_quantity.is_none_or(|max| quantity <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: Id, quantity: u64, available: bool) -> CartLine {
        CartLine {
            id,
            name: format!("item {id}"),
            quantity,
            available,
        }
    }

    #[test]
    fn price_leaves_out_unavailable_lines() {
        let cart = Cart::priced(1, [(line(1, 2, true), 1.5), (line(2, 3, false), 100.0)]);
        assert_eq!(cart.price, 3.0);
        assert_eq!(cart.quantity(), 5);
    }

    #[test]
    fn price_stays_finite() {
        let cart = Cart::priced(1, [(line(1, 2, true), f64::MAX), (line(2, 1, true), 1.0)]);
        assert_eq!(cart.price, f64::MAX);
    }

    #[test]
    fn quantity_filter_is_inclusive() {
        let cart = Cart::priced(1, [(line(1, 2, true), 1.0)]);
        let filter = CartFilter {
            min_quantity: Some(2),
            max_quantity: Some(2),
            ..CartFilter::default()
        };
        assert!(filter.accepts(&cart));
        let filter = CartFilter {
            min_quantity: Some(3),
            ..CartFilter::default()
        };
        assert!(!filter.accepts(&cart));
    }
}
