//! The query parameters of the list routes, checked like FastAPI does:
//! unknown parameters are ignored, the last of repeated ones wins, and every
//! bad value is one 422 issue.

use utoipa::IntoParams;

use crate::domain::{CartFilter, Issue, ItemFilter, Location, Page, PriceRange, parse_integer};

struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: &str) -> Params {
        Params(serde_urlencoded::from_str(raw).unwrap_or_default())
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

fn loc(name: &str) -> Vec<Location> {
    vec!["query".into(), name.into()]
}

/// An integer at least `min` (and at most `max`, when given); values past
/// 64 bits saturate.
fn integer(
    params: &Params,
    name: &str,
    (min, max): (u64, Option<u64>),
    issues: &mut Vec<Issue>,
) -> Option<u64> {
    let text = params.get(name)?;
    let Some(value) = parse_integer(text) else {
        issues.push(Issue::not_an_integer(loc(name)));
        return None;
    };
    if value < i128::from(min) {
        issues.push(Issue::below(loc(name), min));
        return None;
    }
    if let Some(max) = max
        && value > i128::from(max)
    {
        issues.push(Issue::above(loc(name), max));
        return None;
    }
    Some(u64::try_from(value).unwrap_or(u64::MAX))
}

fn price(params: &Params, name: &str, issues: &mut Vec<Issue>) -> Option<f64> {
    let text = params.get(name)?;
    match text.trim().parse::<f64>() {
        Err(_) => {
            issues.push(Issue::new(
                loc(name),
                "float_parsing",
                "Input should be a valid number, unable to parse string as a number",
            ));
            None
        }
        // NaN fails `>= 0` as it does in Python.
        Ok(value) if value.is_nan() || value < 0.0 => {
            issues.push(Issue::below(loc(name), 0));
            None
        }
        Ok(value) => Some(value),
    }
}

fn boolean(params: &Params, name: &str, issues: &mut Vec<Issue>) -> Option<bool> {
    let text = params.get(name)?;
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "f" | "n" => Some(false),
        _ => {
            issues.push(Issue::new(
                loc(name),
                "bool_parsing",
                "Input should be a valid boolean, unable to interpret input",
            ));
            None
        }
    }
}

fn page_and_price(
    params: &Params,
    max_limit: usize,
    issues: &mut Vec<Issue>,
) -> (Page, PriceRange) {
    let defaults = Page::default();
    let to_usize = |value: u64| usize::try_from(value).unwrap_or(usize::MAX);
    let to_u64 = |value: usize| u64::try_from(value).unwrap_or(u64::MAX);
    let limits = (to_u64(Page::MIN_LIMIT), Some(to_u64(max_limit)));
    let page = Page {
        offset: integer(params, "offset", (0, None), issues).map_or(defaults.offset, to_usize),
        limit: integer(params, "limit", limits, issues).map_or(defaults.limit, to_usize),
    };
    let range = PriceRange {
        min: price(params, "min_price", issues),
        max: price(params, "max_price", issues),
    };
    (page, range)
}

/// The filters of `GET /item`; `limit` at most `max_limit`.
pub fn item_filter(raw: &str, max_limit: usize) -> Result<ItemFilter, Vec<Issue>> {
    let params = Params::parse(raw);
    let mut issues = Vec::new();
    let (page, price) = page_and_price(&params, max_limit, &mut issues);
    let show_deleted = boolean(&params, "show_deleted", &mut issues).unwrap_or(false);
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(ItemFilter {
        page,
        price,
        show_deleted,
    })
}

/// The filters of `GET /cart`; `limit` at most `max_limit`.
pub fn cart_filter(raw: &str, max_limit: usize) -> Result<CartFilter, Vec<Issue>> {
    let params = Params::parse(raw);
    let mut issues = Vec::new();
    let (page, price) = page_and_price(&params, max_limit, &mut issues);
    let min_quantity = integer(&params, "min_quantity", (0, None), &mut issues);
    let max_quantity = integer(&params, "max_quantity", (0, None), &mut issues);
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(CartFilter {
        page,
        price,
        min_quantity,
        max_quantity,
    })
}

// The query structs below only describe requests to the API document; the
// functions above read them. `limit`'s minimum, default and maximum are left
// out here: `openapi.rs` states them from [`Page`] and the settings, the
// values the parser enforces. Integers are `u128` for the document's sake
// (ours have no 64-bit bound).
// The two structs repeat their paging and price fields on purpose: each
// field's description names its resource ("items", "carts", "cart price"),
// which one shared, flattened struct could not.

/// The query of `GET /item`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ItemQuery {
    /// Matching items skipped before the first one returned.
    #[param(minimum = 0, default = 0, nullable = false)]
    offset: Option<u128>,
    /// The most items returned; the maximum is the `max_list_limit` setting.
    #[param(nullable = false)]
    limit: Option<u128>,
    /// Lowest price listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    min_price: Option<f64>,
    /// Highest price listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    max_price: Option<f64>,
    /// Whether deleted items are listed too. Also accepted, in any case:
    /// `1/0`, `yes/no`, `on/off`, `t/f`, `y/n`.
    #[param(default = false, nullable = false)]
    show_deleted: Option<bool>,
}

/// The query of `GET /cart`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct CartQuery {
    /// Matching carts skipped before the first one returned.
    #[param(minimum = 0, default = 0, nullable = false)]
    offset: Option<u128>,
    /// The most carts returned; the maximum is the `max_list_limit` setting.
    #[param(nullable = false)]
    limit: Option<u128>,
    /// Lowest cart price listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    min_price: Option<f64>,
    /// Highest cart price listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    max_price: Option<f64>,
    /// Lowest cart quantity (sum of its lines' quantities) listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    min_quantity: Option<u128>,
    /// Highest cart quantity (sum of its lines' quantities) listed, inclusive.
    #[param(minimum = 0, nullable = false)]
    max_quantity: Option<u128>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(raw: &str) -> Vec<&'static str> {
        item_filter(raw, 1000)
            .unwrap_err()
            .iter()
            .map(|i| i.kind)
            .collect()
    }

    #[test]
    fn defaults_apply_when_absent() {
        let filter = item_filter("", 1000).unwrap();
        assert_eq!(filter.page, Page::default());
        assert!(!filter.show_deleted);
    }

    #[test]
    fn bounds_and_types_are_checked() {
        assert_eq!(kinds("offset=-1"), ["greater_than_equal"]);
        assert_eq!(kinds("limit=0"), ["greater_than_equal"]);
        assert_eq!(
            kinds("limit=x&min_price=-1"),
            ["int_parsing", "greater_than_equal"]
        );
        assert_eq!(kinds("max_price=abc"), ["float_parsing"]);
        assert_eq!(kinds("show_deleted=maybe"), ["bool_parsing"]);
        assert_eq!(kinds("limit="), ["int_parsing"]);
        assert_eq!(kinds("limit=1001"), ["less_than_equal"]);
        assert_eq!(kinds("limit=99999999999999999999999"), ["less_than_equal"]);
    }

    #[test]
    fn python_style_booleans_and_huge_numbers_are_accepted() {
        assert!(item_filter("show_deleted=True", 1000).unwrap().show_deleted);
        assert!(!item_filter("show_deleted=OFF", 1000).unwrap().show_deleted);
        let filter = item_filter("offset=99999999999999999999999&limit=5", 1000).unwrap();
        assert_eq!(filter.page.offset, usize::MAX);
        assert_eq!(filter.page.limit, 5);
        let filter = cart_filter("min_quantity=0&max_quantity=3&limit=1", 1000).unwrap();
        assert_eq!(
            (filter.min_quantity, filter.max_quantity),
            (Some(0), Some(3))
        );
    }
}
