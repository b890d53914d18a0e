//! shopd's portable export format: versioned, line-oriented JSON (NDJSON),
//! the same from every backend and into every backend.
//!
//! ```text
//! {"format":"shopd-export","version":1,"shopd":"0.1.0","next_item_id":4,"next_cart_id":2}
//! {"item":{"id":1,"name":"Tea","price":2.5,"deleted":false}}
//! {"cart":{"id":1,"lines":[{"item":1,"quantity":2}]}}
//! {"end":{"items":1,"carts":1}}
//! ```
//!
//! The header comes first; then every item by ascending id, then every cart
//! by ascending id with its lines in cart order; then a trailer with the
//! counts, so a truncated file is told from a complete one. Prices are JSON
//! numbers printed in their shortest exact form, so they round-trip bit for
//! bit. `next_item_id`/`next_cart_id` are above every id ever handed out, so
//! a store imported from the file never reuses one.

use std::collections::HashSet;
use std::io::{BufRead, Write};

use serde::{Deserialize, Serialize};

use crate::domain::Id;

/// The format's name in the header.
pub const FORMAT: &str = "shopd-export";
/// The newest format version this shopd reads and the one it writes.
pub const VERSION: u32 = 1;

/// Everything a store holds, as of one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Above every item id ever handed out.
    pub next_item_id: Id,
    /// Above every cart id ever handed out.
    pub next_cart_id: Id,
    /// Every item, deleted ones too, by ascending id.
    pub items: Vec<ExportItem>,
    /// Every cart by ascending id.
    pub carts: Vec<ExportCart>,
}

/// An item as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportItem {
    /// Its id.
    pub id: Id,
    /// Its name.
    pub name: String,
    /// Its exact price.
    pub price: f64,
    /// Whether it is deleted.
    pub deleted: bool,
}

/// A cart as exported.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportCart {
    /// Its id.
    pub id: Id,
    /// Its lines, in the order their items were first added.
    pub lines: Vec<ExportLine>,
}

/// One cart line as exported.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExportLine {
    /// The item's id.
    pub item: Id,
    /// How many of it.
    pub quantity: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Header {
    format: String,
    version: u32,
    shopd: String,
    next_item_id: Id,
    next_cart_id: Id,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Counts {
    items: u64,
    carts: u64,
}

/// One line after the header.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
enum Line {
    Item(ExportItem),
    Cart(ExportCart),
    End(Counts),
}

/// One line after the header, borrowed, to write: serialized exactly as
/// [`Line`].
#[derive(Serialize)]
#[serde(rename_all = "lowercase")]
enum LineRef<'a> {
    Item(&'a ExportItem),
    Cart(&'a ExportCart),
    End(&'a Counts),
}

/// What an export held: the counts its trailer gives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExportCounts {
    /// Items, deleted ones included.
    pub items: u64,
    /// Carts.
    pub carts: u64,
}

/// Writes the export format one record at a time, so an export never
/// holds more than the record at hand: [`ExportWriter::start`] writes the
/// header, then every item by ascending id, then every cart, then
/// [`ExportWriter::finish`] writes the trailer with the counts. The caller
/// keeps the order (ids ascending, items before carts).
pub struct ExportWriter<W> {
    out: W,
    counts: Counts,
}

impl<W: Write> ExportWriter<W> {
    /// Writes the header with the next-id counters.
    pub fn start(mut out: W, next_item_id: Id, next_cart_id: Id) -> std::io::Result<Self> {
        write_line(
            &mut out,
            &Header {
                format: FORMAT.into(),
                version: VERSION,
                shopd: env!("CARGO_PKG_VERSION").into(),
                next_item_id,
                next_cart_id,
            },
        )?;
        Ok(ExportWriter {
            out,
            counts: Counts { items: 0, carts: 0 },
        })
    }

    /// Writes one item.
    pub fn item(&mut self, item: &ExportItem) -> std::io::Result<()> {
        write_line(&mut self.out, &LineRef::Item(item))?;
        self.counts.items += 1;
        Ok(())
    }

    /// Writes one cart.
    pub fn cart(&mut self, cart: &ExportCart) -> std::io::Result<()> {
        write_line(&mut self.out, &LineRef::Cart(cart))?;
        self.counts.carts += 1;
        Ok(())
    }

    /// What is written so far and not yet taken (to hand on in chunks).
    pub fn out_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Writes the trailer; returns the output and the counts.
    pub fn finish(mut self) -> std::io::Result<(W, ExportCounts)> {
        write_line(&mut self.out, &LineRef::End(&self.counts))?;
        let counts = ExportCounts {
            items: self.counts.items,
            carts: self.counts.carts,
        };
        Ok((self.out, counts))
    }
}

/// Why a file is not a valid export; `line` is 1-based.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A line is wrong; nothing was imported.
    #[error("line {line}: {message}")]
    Line {
        /// The line's number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The input could not be read.
    #[error("cannot read the export")]
    Read(#[from] std::io::Error),
}

fn at(line: usize, message: impl Into<String>) -> ImportError {
    ImportError::Line {
        line,
        message: message.into(),
    }
}

impl Snapshot {
    /// Writes the snapshot in the export format.
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut writer = ExportWriter::start(out, self.next_item_id, self.next_cart_id)?;
        for item in &self.items {
            writer.item(item)?;
        }
        for cart in &self.carts {
            writer.cart(cart)?;
        }
        writer.finish().map(|_| ())
    }

    /// The snapshot as export text.
    #[must_use]
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write(&mut out);
        out
    }

    /// Reads and checks a whole export: every line parses, ids are
    /// positive, unique, ascending and below the next-id counters, every
    /// cart line names an item of the file with a quantity of at least 1,
    /// no item appears twice in a cart, and the trailer's counts match.
    pub fn read(input: impl BufRead) -> Result<Snapshot, ImportError> {
        let mut lines = input.lines().enumerate().map(|(n, line)| (n + 1, line));
        let (number, header) = lines
            .next()
            .ok_or_else(|| at(1, "empty input: no header"))?;
        let header: Header = serde_json::from_str(&header?)
            .map_err(|err| at(number, format!("not a shopd export header: {err}")))?;
        if header.format != FORMAT {
            return Err(at(
                number,
                format!("format {:?} is not {FORMAT:?}", header.format),
            ));
        }
        if header.version > VERSION {
            return Err(at(
                number,
                format!(
                    "format version {} is newer than this shopd reads ({VERSION}); use a shopd at least as new as {}",
                    header.version, header.shopd
                ),
            ));
        }
        let mut snapshot = Snapshot {
            next_item_id: header.next_item_id,
            next_cart_id: header.next_cart_id,
            ..Snapshot::default()
        };
        let mut item_ids = HashSet::new();
        let mut ended = None;
        for (number, text) in lines {
            let text = text?;
            if ended.is_some() {
                return Err(at(number, "text after the trailer"));
            }
            let line: Line = serde_json::from_str(&text)
                .map_err(|err| at(number, format!("not an export line: {err}")))?;
            match line {
                Line::Item(item) => {
                    check_item(&item, &snapshot, &item_ids).map_err(|m| at(number, m))?;
                    item_ids.insert(item.id);
                    snapshot.items.push(item);
                }
                Line::Cart(cart) => {
                    check_cart(&cart, &snapshot, &item_ids).map_err(|m| at(number, m))?;
                    snapshot.carts.push(cart);
                }
                Line::End(counts) => {
                    if counts.items != snapshot.items.len() as u64
                        || counts.carts != snapshot.carts.len() as u64
                    {
                        return Err(at(
                            number,
                            format!(
                                "the trailer counts {} items and {} carts, the file holds {} and {}",
                                counts.items,
                                counts.carts,
                                snapshot.items.len(),
                                snapshot.carts.len()
                            ),
                        ));
                    }
                    ended = Some(number);
                }
            }
        }
        if ended.is_none() {
            let last = 1 + snapshot.items.len() + snapshot.carts.len();
            return Err(at(
                last + 1,
                "the file ends without its trailer line: it is truncated",
            ));
        }
        Ok(snapshot)
    }
}

fn check_item(item: &ExportItem, so_far: &Snapshot, ids: &HashSet<Id>) -> Result<(), String> {
    if !so_far.carts.is_empty() {
        return Err("an item after the carts".into());
    }
    if item.id == 0 || item.id >= so_far.next_item_id {
        return Err(format!(
            "item id {} is not in 1..{} (the header's next_item_id)",
            item.id, so_far.next_item_id
        ));
    }
    if ids.contains(&item.id) {
        return Err(format!("item {} appears twice", item.id));
    }
    if so_far.items.last().is_some_and(|last| last.id > item.id) {
        return Err(format!("item {} is out of id order", item.id));
    }
    if item.name.is_empty() {
        return Err(format!("item {} has an empty name", item.id));
    }
    if !item.price.is_finite() || item.price < 0.0 {
        return Err(format!("item {} has an invalid price", item.id));
    }
    Ok(())
}

fn check_cart(cart: &ExportCart, so_far: &Snapshot, items: &HashSet<Id>) -> Result<(), String> {
    if cart.id == 0 || cart.id >= so_far.next_cart_id {
        return Err(format!(
            "cart id {} is not in 1..{} (the header's next_cart_id)",
            cart.id, so_far.next_cart_id
        ));
    }
    if so_far.carts.last().is_some_and(|last| last.id >= cart.id) {
        return Err(format!("cart {} appears twice or out of id order", cart.id));
    }
    let mut seen = HashSet::new();
    for line in &cart.lines {
        if !items.contains(&line.item) {
            return Err(format!(
                "cart {} holds item {}, which the file does not have",
                cart.id, line.item
            ));
        }
        if line.quantity == 0 {
            return Err(format!(
                "cart {} holds item {} zero times",
                cart.id, line.item
            ));
        }
        if !seen.insert(line.item) {
            return Err(format!(
                "cart {} holds item {} on two lines",
                cart.id, line.item
            ));
        }
    }
    Ok(())
}

fn write_line(out: &mut impl Write, value: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, value).map_err(std::io::Error::other)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            next_item_id: 4,
            next_cart_id: 2,
            items: vec![
                ExportItem {
                    id: 1,
                    name: "Tea \"x\" ☕".into(),
                    price: 0.1 + 0.2,
                    deleted: false,
                },
                ExportItem {
                    id: 3,
                    name: "Cake".into(),
                    price: f64::MAX,
                    deleted: true,
                },
            ],
            carts: vec![ExportCart {
                id: 1,
                lines: vec![
                    ExportLine {
                        item: 3,
                        quantity: 2,
                    },
                    ExportLine {
                        item: 1,
                        quantity: 1,
                    },
                ],
            }],
        }
    }

    #[test]
    fn a_snapshot_round_trips_exactly() {
        let text = sample().to_bytes();
        let back = Snapshot::read(&text[..]).unwrap();
        assert_eq!(back, sample());
        assert_eq!(back.items[0].price.to_bits(), (0.1f64 + 0.2).to_bits());
    }

    fn error_line(text: &str) -> usize {
        match Snapshot::read(text.as_bytes()) {
            Err(ImportError::Line { line, .. }) => line,
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn bad_exports_are_refused_with_their_line_number() {
        let good = String::from_utf8(sample().to_bytes()).unwrap();
        let lines: Vec<&str> = good.lines().collect();
        // Truncated: no trailer.
        assert_eq!(error_line(&lines[..4].join("\n")), 5);
        // Garbage.
        let garbage = [lines[0], lines[1], "{oops", lines[3], lines[4]].join("\n");
        assert_eq!(error_line(&garbage), 3);
        // A duplicate id.
        let twice = [lines[0], lines[1], lines[1], lines[3], lines[4]].join("\n");
        assert_eq!(error_line(&twice), 3);
        // A cart line naming an unknown item.
        let unknown = [lines[0], lines[2], lines[3], lines[4]].join("\n");
        assert_eq!(error_line(&unknown), 3);
        // A newer format.
        let newer = good.replacen("\"version\":1", "\"version\":2", 1);
        assert_eq!(error_line(&newer), 1);
    }
}
