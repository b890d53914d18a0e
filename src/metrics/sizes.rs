//! The request and response size summaries, rendered by hand as the
//! instrumentator renders them: `_sum` and `_count` only, no quantiles.

use std::fmt::Write as _;
use std::sync::PoisonError;
use std::sync::atomic::{AtomicU64, Ordering};

use super::names::{REQUEST_SIZE, RESPONSE_SIZE};
use super::{Sizes, Telemetry};

impl Telemetry {
    /// The size summaries, as the instrumentator renders them: no
    /// quantiles, only `_sum` and `_count`.
    pub(super) fn render_sizes(&self, out: &mut String) {
        let mut sizes = self
            .inner
            .sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        sizes.sort_by_key(|(handler, _)| *handler);
        let families = [
            (
                REQUEST_SIZE,
                "incoming requests",
                (|s: &Sizes| &s.request_bytes) as fn(&Sizes) -> &AtomicU64,
            ),
            (RESPONSE_SIZE, "outgoing responses", |s: &Sizes| {
                &s.response_bytes
            }),
        ];
        for (name, what, bytes) in families {
            let _ = writeln!(
                out,
                "# HELP {name} Content length of {what} by handler. Only value of header is respected. Otherwise 0.\n# TYPE {name} summary"
            );
            for (handler, figures) in &sizes {
                let handler = escape_label(handler);
                let count = figures.requests.load(Ordering::Relaxed);
                let sum = bytes(figures).load(Ordering::Relaxed);
                let _ = writeln!(out, "{name}_count{{handler=\"{handler}\"}} {count}");
                let _ = writeln!(out, "{name}_sum{{handler=\"{handler}\"}} {sum}");
            }
            out.push('\n');
        }
    }
}

/// A label value as the text format wants it.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
