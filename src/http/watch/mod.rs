//! One connection, watched: what it is doing as far as its deadlines care
//! ([`Progress`]), and the socket wrapper that records read and write
//! progress ([`Watched`]).
//!
//! Here: the deadlines and the watchdog; `socket`: the wrapper, which
//! also gives hyper's own error replies a JSON body.

mod peers;
mod socket;

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use warp::http::Method;

pub use self::peers::{PeerSlot, Peers};
pub use self::socket::Watched;

/// The deadlines of a connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// From a request's first byte to its complete headers.
    pub header_read: Duration,
    /// From a request's first byte to its answer (headers, body, handler).
    pub request: Duration,
    /// Between the end of a response and the next request's first byte.
    pub idle: Duration,
    /// Without any write progress while a response is waiting to go out.
    pub write: Duration,
}

/// Why the watchdog gave up on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// A request's headers did not arrive in time: 408 if it can be sent.
    RequestTimedOut,
    /// Nothing was asked for too long: closed without a word.
    Idle,
    /// The client stopped reading a response: closed.
    WriteStalled,
}

/// What one connection is doing, shared by its socket wrapper, its
/// service wrapper and its watchdog. Times are milliseconds since the
/// connection was accepted; a stored 0 means "not now", so set times are
/// stored plus one.
pub struct Progress {
    epoch: Instant,
    /// The first byte of the request being received arrived at (plus one).
    request_started: AtomicU64,
    /// Requests handed to the routes whose response is not yet all sent.
    in_flight: AtomicU32,
    /// The last read or write progress, or the end of a response.
    last_activity: AtomicU64,
    /// Writes find the socket full, with no progress since (plus one).
    write_blocked: AtomicU64,
    /// A response was sent: waiting now counts as idle, not header time.
    answered: AtomicBool,
    /// The connection became a WebSocket: its bytes are no longer HTTP.
    upgraded: AtomicBool,
    /// Set before the watchdog drops the connection: the socket is handed
    /// back through `returned`, so a last reply can be written on it.
    reclaim: AtomicBool,
    returned: Mutex<Option<TcpStream>>,
    /// The method of the request being received, for the metrics.
    method: Mutex<Method>,
}

impl Progress {
    /// A connection accepted now.
    pub fn new() -> Arc<Progress> {
        Arc::new(Progress {
            epoch: Instant::now(),
            request_started: AtomicU64::new(0),
            in_flight: AtomicU32::new(0),
            last_activity: AtomicU64::new(0),
            write_blocked: AtomicU64::new(0),
            answered: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            reclaim: AtomicBool::new(false),
            returned: Mutex::new(None),
            method: Mutex::new(Method::GET),
        })
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn on_read(&self, bytes: &[u8]) {
        let now = self.now();
        self.last_activity.store(now, Relaxed);
        if self.in_flight.load(Relaxed) == 0 && self.request_started.load(Relaxed) == 0 {
            self.request_started.store(now + 1, Relaxed);
            let token = bytes.split(|b| *b == b' ').next().unwrap_or_default();
            let method = Method::from_bytes(token).unwrap_or(Method::CONNECT);
            if let Ok(mut slot) = self.method.lock() {
                *slot = method;
            }
        }
    }

    fn on_write_progress(&self) {
        self.last_activity.store(self.now(), Relaxed);
        self.write_blocked.store(0, Relaxed);
    }

    fn on_write_blocked(&self) {
        if self.write_blocked.load(Relaxed) == 0 {
            self.write_blocked.store(self.now() + 1, Relaxed);
        }
    }

    /// A request's headers are in and the routes take it: returns when its
    /// first byte arrived and a guard that counts it until its response
    /// is all sent.
    pub fn begin_request(self: &Arc<Self>) -> (Instant, InFlight) {
        let started = match self.request_started.swap(0, Relaxed) {
            0 => Instant::now(),
            at => self.epoch + Duration::from_millis(at - 1),
        };
        self.in_flight.fetch_add(1, Relaxed);
        (started, InFlight(self.clone()))
    }

    /// Marks the connection upgraded (to a WebSocket).
    pub fn set_upgraded(&self) {
        self.upgraded.store(true, Relaxed);
    }

    /// The method of the request being received, or of the last one.
    pub fn method(&self) -> Method {
        self.method
            .lock()
            .map_or(Method::GET, |method| method.clone())
    }

    /// How long the request being received has taken so far.
    pub fn request_elapsed(&self) -> Duration {
        match self.request_started.load(Relaxed) {
            0 => Duration::ZERO,
            at => Duration::from_millis(self.now().saturating_sub(at - 1)),
        }
    }

    /// The next deadline (milliseconds since accept) and what passing it means.
    fn next_deadline(&self, timeouts: &Timeouts) -> (u64, Expiry) {
        let ms = |d: Duration| d.as_millis() as u64;
        let mut next = (u64::MAX, Expiry::Idle);
        let mut consider = |at: u64, expiry| {
            if at < next.0 {
                next = (at, expiry);
            }
        };
        let blocked = self.write_blocked.load(Relaxed);
        if blocked > 0 {
            consider(blocked - 1 + ms(timeouts.write), Expiry::WriteStalled);
        }
        // While the routes hold a request, they answer its deadline (408).
        if self.in_flight.load(Relaxed) == 0 {
            let started = self.request_started.load(Relaxed);
            let last = self.last_activity.load(Relaxed);
            if started > 0 {
                let allowed = timeouts.header_read.min(timeouts.request);
                consider(started - 1 + ms(allowed), Expiry::RequestTimedOut);
            } else if self.answered.load(Relaxed) {
                consider(last + ms(timeouts.idle), Expiry::Idle);
            } else {
                // A new connection that sends nothing has header time only.
                consider(last + ms(timeouts.header_read), Expiry::Idle);
            }
        }
        next
    }

    /// Resolves once a deadline has passed; with [`Expiry::RequestTimedOut`]
    /// the socket will be handed back when the connection is dropped.
    ///
    /// Nothing wakes it but its timer. Every deadline is an event's time
    /// plus a timeout, so none can come sooner than the shortest timeout
    /// from now: sleeping at most that long, it finds each deadline in
    /// time, and the requests themselves never have to ring it.
    pub async fn watchdog(&self, timeouts: Timeouts) -> Expiry {
        let shortest = [
            timeouts.header_read,
            timeouts.request,
            timeouts.idle,
            timeouts.write,
        ]
        .into_iter()
        .min()
        .unwrap_or_default()
        .as_millis()
        .max(1) as u64;
        loop {
            let (at, expiry) = self.next_deadline(&timeouts);
            let now = self.now();
            if at <= now {
                if expiry == Expiry::RequestTimedOut {
                    self.reclaim.store(true, Relaxed);
                }
                return expiry;
            }
            tokio::time::sleep(Duration::from_millis((at - now).min(shortest))).await;
        }
    }

    /// The socket, once the connection was dropped after
    /// [`Expiry::RequestTimedOut`].
    pub fn take_socket(&self) -> Option<TcpStream> {
        self.returned.lock().ok()?.take()
    }
}

/// Counts a request from the routes taking it until its response is sent
/// (hyper drops the response body then) or abandoned.
pub struct InFlight(Arc<Progress>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let progress = &self.0;
        progress.last_activity.store(progress.now(), Relaxed);
        progress.answered.store(true, Relaxed);
        progress.in_flight.fetch_sub(1, Relaxed);
    }
}
