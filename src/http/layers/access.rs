//! The access log: one line per answered request, under the target
//! `shopd::access` at level INFO (so `log_level = "info,shopd::access=warn"`
//! silences it), in the same layout as shopd's other log lines:
//!
//! ```text
//! 2026-11-28T02:24:12.123456Z  INFO shopd::access: method=GET path="/item/1" status=200 micros=12 client=192.0.2.7
//! ```
//!
//! `client` is the request's client address (see [`crate::http::client`]),
//! absent when the connection loop did not say.
//!
//! A request only hands its figures to a queue; a writer thread formats
//! them and writes them in batches, so the request path neither formats nor
//! waits for stderr. When the writer falls behind by a whole queue, lines
//! are dropped rather than slowing requests down, and their count is
//! logged once the queue has room again.
//!
//! Why not a `tracing` event through the log's own writer, like every other
//! line: measured interleaved (`bench/run.sh interleaved`, server CPU per
//! `GET /item/{id}`, median of 7 rounds), that event cost 1.55 µs of a
//! 12.55 µs request (12.4% of throughput; tracing's formatter, its
//! timestamp and the writer's channel), against 0.40 µs of 10.38 µs (3.9%)
//! for this queue, which formats on its own thread with the date of the
//! current second kept. Past the 5% a log line may cost, the cheaper form
//! stays.

use std::io::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError, channel, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use warp::http::Method;

/// Lines that may wait for the writer: about a second at 100k requests/s.
const QUEUE: usize = 128 * 1024;

/// How long the writer gathers lines before writing them, once one came.
const BATCH_WAIT: Duration = Duration::from_millis(10);

/// Longest the last handle's drop waits for the writer to write what is
/// queued (stderr may be a pipe nobody reads).
const FINAL_WAIT: Duration = Duration::from_secs(1);

/// One answered request, as the request path hands it over.
struct Entry {
    at: SystemTime,
    method: Method,
    path: Box<str>,
    status: u16,
    micros: u64,
    client: Option<IpAddr>,
}

/// Where requests leave their access-log entries; a cheap handle. Off when
/// `shopd::access` is not enabled at INFO when it is made.
#[derive(Clone)]
pub struct AccessLog {
    queue: Option<Arc<Queue>>,
}

struct Queue {
    /// Taken by the drop, which closes the queue.
    sender: Option<SyncSender<Entry>>,
    /// Lines dropped on a full queue since the writer last said so.
    dropped: Arc<AtomicU64>,
    /// Says when the writer has written everything and ended.
    done: Mutex<Receiver<()>>,
}

impl Drop for Queue {
    /// Closes the queue and gives the writer a moment to write the rest.
    fn drop(&mut self) {
        drop(self.sender.take());
        if let Ok(done) = self.done.get_mut() {
            let _ = done.recv_timeout(FINAL_WAIT);
        }
    }
}

impl AccessLog {
    /// Starts the writer thread if the log filter lets `shopd::access`
    /// lines through (it is checked once, here); otherwise a log that
    /// records nothing.
    pub fn start() -> AccessLog {
        if !tracing::enabled!(target: "shopd::access", tracing::Level::INFO) {
            return AccessLog { queue: None };
        }
        let (sender, receiver) = sync_channel(QUEUE);
        let (finished, done) = channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&dropped);
        let started = std::thread::Builder::new()
            .name("shopd-access-log".into())
            .spawn(move || write_lines(&receiver, &counter, &finished));
        match started {
            Ok(_) => AccessLog {
                queue: Some(Arc::new(Queue {
                    sender: Some(sender),
                    dropped,
                    done: Mutex::new(done),
                })),
            },
            Err(err) => {
                tracing::warn!(error = %err, "no access log: its writer thread did not start");
                AccessLog { queue: None }
            }
        }
    }

    /// Records an answered request. Copies the path; formats nothing.
    pub fn record(
        &self,
        method: &Method,
        path: &str,
        status: u16,
        micros: u64,
        client: Option<IpAddr>,
    ) {
        let Some((queue, sender)) = self
            .queue
            .as_ref()
            .and_then(|queue| Some((queue, queue.sender.as_ref()?)))
        else {
            return;
        };
        let entry = Entry {
            at: SystemTime::now(),
            method: method.clone(),
            path: path.into(),
            status,
            micros,
            client,
        };
        if let Err(TrySendError::Full(_)) = sender.try_send(entry) {
            queue.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The writer thread: waits for a line, gathers what comes in the next
/// few milliseconds, writes it all at once; ends when the queue closes.
fn write_lines(receiver: &Receiver<Entry>, dropped: &AtomicU64, finished: &Sender<()>) {
    let mut out = Vec::with_capacity(64 * 1024);
    let mut clock = Clock::default();
    while let Ok(first) = receiver.recv() {
        clock.format(&mut out, &first);
        std::thread::sleep(BATCH_WAIT);
        while let Ok(entry) = receiver.try_recv() {
            clock.format(&mut out, &entry);
            if out.len() >= 60 * 1024 {
                let _ = std::io::stderr().write_all(&out);
                out.clear();
            }
        }
        let _ = std::io::stderr().write_all(&out);
        out.clear();
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            tracing::warn!(lost, "access log lines dropped: stderr was too slow");
        }
    }
    let _ = finished.send(());
}

/// Formats lines, remembering the date and time of the last second seen.
#[derive(Default)]
struct Clock {
    second: u64,
    prefix: String,
}

impl Clock {
    /// Appends the access-log line of `entry` to `out`.
    fn format(&mut self, out: &mut Vec<u8>, entry: &Entry) {
        let since = entry.at.duration_since(UNIX_EPOCH).unwrap_or_default();
        if self.second != since.as_secs() || self.prefix.is_empty() {
            self.second = since.as_secs();
            self.prefix = date_time(self.second);
        }
        out.extend_from_slice(self.prefix.as_bytes());
        out.push(b'.');
        push_padded(out, since.subsec_micros().into(), 6);
        out.extend_from_slice(b"Z  INFO shopd::access: method=");
        out.extend_from_slice(entry.method.as_str().as_bytes());
        out.extend_from_slice(b" path=");
        push_quoted(out, &entry.path);
        out.extend_from_slice(b" status=");
        push_padded(out, entry.status.into(), 1);
        out.extend_from_slice(b" micros=");
        push_padded(out, entry.micros, 1);
        if let Some(client) = entry.client {
            // An address's Display, written straight into the buffer.
            let _ = write!(out, " client={client}");
        }
        out.push(b'\n');
    }
}

/// Appends `value` in decimal, with leading zeros up to `width` digits.
fn push_padded(out: &mut Vec<u8>, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while value > 0 || digits.len() - start < width {
        start -= 1;
        digits[start] = b'0' + u8::try_from(value % 10).unwrap_or(0);
        value /= 10;
    }
    out.extend_from_slice(&digits[start..]);
}

/// Appends `path` quoted as Rust's `{:?}` quotes it, as the other log
/// lines do; a path of plain printable ASCII (nearly all) is copied as is.
fn push_quoted(out: &mut Vec<u8>, path: &str) {
    if path
        .bytes()
        .all(|byte| byte == b' ' || (byte.is_ascii_graphic() && byte != b'"' && byte != b'\\'))
    {
        out.push(b'"');
        out.extend_from_slice(path.as_bytes());
        out.push(b'"');
    } else {
        let _ = write!(out, "{path:?}");
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix time in seconds.
fn date_time(unix: u64) -> String {
    let secs = unix % 86_400;
    let (year, month, day) = crate::ops::files::civil_from_days((unix / 86_400) as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_utc_civil_dates() {
        assert_eq!(date_time(0), "1970-01-01T00:00:00");
        assert_eq!(date_time(951_782_400), "2000-02-29T00:00:00");
        assert_eq!(date_time(1_795_833_852), "2026-11-28T02:44:12");
    }

    #[test]
    fn paths_are_quoted_as_debug_quotes_them() {
        for path in [
            "/item/1",
            "/item?limit=10&offset=0",
            "/a b",
            "/\"q\"",
            "/back\\slash",
            "/tab\there",
            "/new\nline",
            "/caf\u{e9}",
            "/\u{7f}",
            "",
        ] {
            let mut line = Vec::new();
            push_quoted(&mut line, path);
            assert_eq!(String::from_utf8(line).unwrap(), format!("{path:?}"));
        }
    }

    #[test]
    fn numbers_are_padded_to_their_width() {
        for (value, width, text) in [
            (0, 1, "0"),
            (0, 6, "000000"),
            (42, 6, "000042"),
            (999_999, 6, "999999"),
            (200, 1, "200"),
            (u64::MAX, 1, "18446744073709551615"),
        ] {
            let mut line = Vec::new();
            push_padded(&mut line, value, width);
            assert_eq!(String::from_utf8(line).unwrap(), text);
        }
    }

    #[test]
    fn a_line_reads_like_the_other_log_lines() {
        let mut clock = Clock::default();
        let mut line = Vec::new();
        let entry = Entry {
            at: UNIX_EPOCH + Duration::from_micros(1_795_833_852_000_042),
            method: Method::GET,
            path: "/item/\"1\"".into(),
            status: 200,
            micros: 12,
            client: Some("192.0.2.7".parse().unwrap()),
        };
        clock.format(&mut line, &entry);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "2026-11-28T02:44:12.000042Z  INFO shopd::access: method=GET path=\"/item/\\\"1\\\"\" status=200 micros=12 client=192.0.2.7\n"
        );
    }
}
