//! Validation of what clients send, with FastAPI's (pydantic's) error entries:
//! every problem becomes one [`Issue`] with a location, a message and a type.

use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{Id, ItemPatch, NewItem};

/// One step of an issue's location: a field name or a position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Location {
    /// A named part: `body`, `query`, `path` or a field name.
    Name(String),
    /// A byte offset in a malformed JSON body.
    Index(usize),
}

impl From<&str> for Location {
    fn from(name: &str) -> Self {
        Location::Name(name.to_owned())
    }
}

/// One problem with a request, as an entry of a 422 `detail` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = ValidationError)]
#[schema(example = json!({"loc": ["query", "limit"], "msg": "Input should be greater than or equal to 1", "type": "greater_than_equal"}))]
pub struct Issue {
    /// Where the problem is: `["body", "price"]`, `["query", "limit"]`, ...
    pub loc: Vec<Location>,
    /// A sentence for people.
    pub msg: String,
    /// A stable name for programs (pydantic's error type).
    #[serde(rename = "type")]
    #[schema(value_type = String)]
    pub kind: &'static str,
}

impl Issue {
    /// An issue at `loc` of the given pydantic type and message.
    pub fn new(loc: Vec<Location>, kind: &'static str, msg: impl Into<String>) -> Issue {
        Issue {
            loc,
            msg: msg.into(),
            kind,
        }
    }

    /// A value that should be an integer and is not.
    #[must_use]
    pub fn not_an_integer(loc: Vec<Location>) -> Issue {
        Issue::new(
            loc,
            "int_parsing",
            "Input should be a valid integer, unable to parse string as an integer",
        )
    }

    /// A number above its upper bound.
    #[must_use]
    pub fn above(loc: Vec<Location>, bound: u64) -> Issue {
        Issue::new(
            loc,
            "less_than_equal",
            format!("Input should be less than or equal to {bound}"),
        )
    }

    /// A number below its lower bound.
    #[must_use]
    pub fn below(loc: Vec<Location>, bound: u64) -> Issue {
        Issue::new(
            loc,
            "greater_than_equal",
            format!("Input should be greater than or equal to {bound}"),
        )
    }
}

fn body_loc(field: &str) -> Vec<Location> {
    vec!["body".into(), field.into()]
}

/// Parses an integer the way FastAPI reads one from a path or query: white
/// space around, an optional sign, ASCII digits. Values beyond `i128`
/// saturate, which keeps every comparison with our bounds right.
#[must_use]
pub fn parse_integer(text: &str) -> Option<i128> {
    let trimmed = text.trim();
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.parse::<i128>().unwrap_or(i128::MAX);
    Some(if negative { -magnitude } else { magnitude })
}

/// Parses a path id. `Ok(None)` is a valid integer that no resource can
/// have (zero, negative or beyond 64 bits): a 404, not a 422.
pub fn parse_id(text: &str, loc: Vec<Location>) -> Result<Option<Id>, Issue> {
    let value = parse_integer(text).ok_or_else(|| Issue::not_an_integer(loc))?;
    Ok(Id::try_from(value).ok().filter(|id| *id > 0))
}

/// Reads a JSON body as an object, or says why it is not one.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, Vec<Issue>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(vec![Issue::new(
            vec!["body".into()],
            "missing",
            "Field required",
        )]);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(vec![Issue::new(
            vec!["body".into()],
            "model_attributes_type",
            "Input should be a valid dictionary or object to extract fields from",
        )]),
        Err(err) => Err(vec![Issue::new(
            vec!["body".into(), Location::Index(error_offset(body, &err))],
            "json_invalid",
            "JSON decode error",
        )]),
    }
}

/// The byte offset of a JSON error, from serde_json's line and column.
fn error_offset(body: &[u8], err: &serde_json::Error) -> usize {
    let line_start: usize = body
        .split(|b| *b == b'\n')
        .take(err.line().saturating_sub(1))
        .map(|line| line.len() + 1)
        .sum();
    (line_start + err.column().saturating_sub(1)).min(body.len())
}

/// A name: a non-empty string of at most `max_chars` characters (Unicode
/// code points, as pydantic's `max_length` and JSON Schema's `maxLength`
/// count them).
fn name_field(value: &Value, max_chars: usize, issues: &mut Vec<Issue>) -> Option<String> {
    match value {
        // A string of at most `max_chars` bytes is short enough; only a
        // longer one needs counting.
        Value::String(name) if name.len() > max_chars && name.chars().count() > max_chars => {
            issues.push(Issue::new(
                body_loc("name"),
                "string_too_long",
                format!("String should have at most {max_chars} characters"),
            ));
            None
        }
        Value::String(name) if !name.is_empty() => Some(name.clone()),
        Value::String(_) => {
            issues.push(Issue::new(
                body_loc("name"),
                "string_too_short",
                "String should have at least 1 character",
            ));
            None
        }
        _ => {
            issues.push(Issue::new(
                body_loc("name"),
                "string_type",
                "Input should be a valid string",
            ));
            None
        }
    }
}

fn price_field(value: &Value, issues: &mut Vec<Issue>) -> Option<f64> {
    let Some(price) = value.as_f64() else {
        issues.push(Issue::new(
            body_loc("price"),
            "float_type",
            "Input should be a valid number",
        ));
        return None;
    };
    if !price.is_finite() {
        issues.push(Issue::new(
            body_loc("price"),
            "finite_number",
            "Input should be a finite number",
        ));
        return None;
    }
    if price < 0.0 {
        issues.push(Issue::below(body_loc("price"), 0));
        return None;
    }
    // -0.0 is a valid price of zero; store it as 0.0 so it prints as `0.0`.
    Some(price + 0.0)
}

fn reject_unknown(map: &Map<String, Value>, issues: &mut Vec<Issue>) {
    for key in map.keys() {
        if key != "name" && key != "price" {
            issues.push(Issue::new(
                body_loc(key),
                "extra_forbidden",
                "Extra inputs are not permitted",
            ));
        }
    }
}

/// Validates the body of `POST /item` and `PUT /item/{id}`: exactly `name`
/// (at most `max_name_chars` characters) and `price`.
pub fn parse_item_body(body: &[u8], max_name_chars: usize) -> Result<NewItem, Vec<Issue>> {
    let map = json_object(body)?;
    let mut issues = Vec::new();
    let name = match map.get("name") {
        Some(value) => name_field(value, max_name_chars, &mut issues),
        None => {
            issues.push(Issue::new(body_loc("name"), "missing", "Field required"));
            None
        }
    };
    let price = match map.get("price") {
        Some(value) => price_field(value, &mut issues),
        None => {
            issues.push(Issue::new(body_loc("price"), "missing", "Field required"));
            None
        }
    };
    reject_unknown(&map, &mut issues);
    match (name, price) {
        (Some(name), Some(price)) if issues.is_empty() => Ok(NewItem { name, price }),
        _ => Err(issues),
    }
}

/// Validates the body of `PATCH /item/{id}`: any of `name` (at most
/// `max_name_chars` characters) and `price`, nothing else.
pub fn parse_item_patch(body: &[u8], max_name_chars: usize) -> Result<ItemPatch, Vec<Issue>> {
    let map = json_object(body)?;
    let mut issues = Vec::new();
    let patch = ItemPatch {
        name: map
            .get("name")
            .and_then(|v| name_field(v, max_name_chars, &mut issues)),
        price: map.get("price").and_then(|v| price_field(v, &mut issues)),
    };
    reject_unknown(&map, &mut issues);
    if issues.is_empty() {
        Ok(patch)
    } else {
        Err(issues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 1024;

    fn kinds(result: Result<NewItem, Vec<Issue>>) -> Vec<&'static str> {
        result.unwrap_err().into_iter().map(|i| i.kind).collect()
    }

    #[test]
    fn accepts_a_valid_item() {
        let item = parse_item_body(br#"{"name": "tea", "price": 2}"#, MAX).unwrap();
        assert_eq!(item.name, "tea");
        assert_eq!(item.price, 2.0);
    }

    #[test]
    fn reports_every_problem_once() {
        let issues = kinds(parse_item_body(
            br#"{"name": "", "price": -1, "x": 1}"#,
            MAX,
        ));
        assert_eq!(
            issues,
            ["string_too_short", "greater_than_equal", "extra_forbidden"]
        );
        assert_eq!(kinds(parse_item_body(b"{}", MAX)), ["missing", "missing"]);
        assert_eq!(kinds(parse_item_body(b"", MAX)), ["missing"]);
        assert_eq!(
            kinds(parse_item_body(b"[1]", MAX)),
            ["model_attributes_type"]
        );
        assert_eq!(kinds(parse_item_body(b"{\"name\":", MAX)), ["json_invalid"]);
        assert_eq!(
            kinds(parse_item_body(br#"{"name": 1, "price": "1"}"#, MAX)),
            ["string_type", "float_type"]
        );
        assert_eq!(
            kinds(parse_item_body(br#"{"name": "a", "price": 1e999}"#, MAX)),
            ["json_invalid"]
        );
    }

    #[test]
    fn names_are_bounded_in_characters_not_bytes() {
        let fits = format!(r#"{{"name": "{}", "price": 1}}"#, "é".repeat(4));
        assert!(parse_item_body(fits.as_bytes(), 4).is_ok());
        let long = format!(r#"{{"name": "{}", "price": 1}}"#, "é".repeat(5));
        assert_eq!(
            kinds(parse_item_body(long.as_bytes(), 4)),
            ["string_too_long"]
        );
        let patch = parse_item_patch(br#"{"name": "abcde"}"#, 4).unwrap_err();
        assert_eq!(patch[0].msg, "String should have at most 4 characters");
    }

    #[test]
    fn patch_rejects_deleted_and_null() {
        assert_eq!(parse_item_patch(b"{}", MAX).unwrap(), ItemPatch::default());
        let issues = parse_item_patch(br#"{"deleted": true, "name": null}"#, MAX).unwrap_err();
        let kinds: Vec<_> = issues.iter().map(|i| i.kind).collect();
        assert_eq!(kinds, ["string_type", "extra_forbidden"]);
    }

    #[test]
    fn ids_parse_like_fastapi() {
        let loc = || vec![Location::from("path"), "id".into()];
        assert_eq!(parse_id("42", loc()), Ok(Some(42)));
        assert_eq!(parse_id(" +7 ", loc()), Ok(Some(7)));
        assert_eq!(parse_id("0", loc()), Ok(None));
        assert_eq!(parse_id("-3", loc()), Ok(None));
        assert_eq!(parse_id("99999999999999999999999", loc()), Ok(None));
        assert!(parse_id("abc", loc()).is_err());
        assert!(parse_id("1.5", loc()).is_err());
        assert!(parse_id("", loc()).is_err());
    }
}
