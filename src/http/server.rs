//! The connection loop: HTTP/1.1 with upgrades (for chat), a cap on open
//! connections, deadlines on everything a client can make a connection
//! wait for, and a graceful stop that lets in-flight requests finish.
//!
//! Each connection has a watchdog (`Progress::watchdog` in `watch`) next to it:
//! - a request has `header_read` from its first byte to its complete
//!   headers and `request` to its answer (headers, body and handler); past
//!   it the client gets 408 with a `detail` if the socket takes it, and the
//!   connection closes;
//! - between requests a keep-alive connection may wait `idle`; a new
//!   connection that sends nothing gets `header_read`;
//! - a response that makes no write progress (its client stopped reading)
//!   for `write` is dropped with its connection.
//!
//! Dropping the connection's future frees its slot at once.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use warp::filters::BoxedFilter;
use warp::http::{HeaderValue, Method, Request, StatusCode, header};
use warp::reply::Response;

use super::ApiError;
pub use super::watch::Timeouts;
use super::watch::{Expiry, InFlight, Progress, Watched};
use crate::metrics::Telemetry;

/// Limits of the connection loop.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The deadlines of each connection.
    pub timeouts: Timeouts,
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Time in-flight requests get at shutdown before they are dropped.
    pub shutdown_grace: Duration,
}

/// Serves `filter` on `listener`
/// until `shutdown` resolves, then stops accepting, lets in-flight requests
/// finish (up to the grace period) and returns. Replies made here (408,
/// hyper's parse errors) are counted in `telemetry` under the handler `none`.
pub async fn serve(
    listener: TcpListener,
    filter: BoxedFilter<(Response,)>,
    limits: Limits,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()>,
) {
    let connections = TaskTracker::new();
    let stop = CancellationToken::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: wait, then retry.
                    tracing::warn!(error = %err, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        // Keepalive probes find peers that vanished without a word (a chat
        // member whose network died), so their connections do not linger.
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive());
        let progress = Progress::new();
        let io = Watched::new(stream, progress.clone(), telemetry.clone());
        let service = Timed {
            inner: TowerToHyperService::new(warp::service(filter.clone())),
            progress: progress.clone(),
            timeout: limits.timeouts.request,
            telemetry: telemetry.clone(),
        };
        let stop = stop.clone();
        let telemetry = telemetry.clone();
        connections.spawn(async move {
            let _slot = slot;
            let expired = {
                let mut builder = hyper::server::conn::http1::Builder::new();
                // The watchdog keeps every deadline, hyper's own included.
                builder.header_read_timeout(None);
                let connection = builder
                    .serve_connection(TokioIo::new(io), service)
                    .with_upgrades();
                let mut connection = std::pin::pin!(connection);
                let served = async {
                    tokio::select! {
                        result = connection.as_mut() => result,
                        () = stop.cancelled() => {
                            connection.as_mut().graceful_shutdown();
                            connection.as_mut().await
                        }
                    }
                };
                tokio::select! {
                    // The connection first: bytes that arrived while the
                    // server was busy count before any deadline is checked,
                    // so a client is never blamed for the server's delay.
                    biased;
                    result = served => {
                        log_end(result);
                        None
                    }
                    expiry = progress.watchdog(limits.timeouts) => Some(expiry),
                }
            };
            // The connection is dropped: its socket is closed, or handed back.
            if let Some(expiry) = expired {
                tracing::debug!(?expiry, "connection dropped by its watchdog");
                if expiry == Expiry::RequestTimedOut {
                    answer_late(&progress, &telemetry, limits.timeouts.request);
                }
            }
        });
    }
    drop(listener);
    stop.cancel();
    connections.close();
    if tokio::time::timeout(limits.shutdown_grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
}

/// Writes a 408 on the socket of a request whose headers never completed,
/// if the socket takes it at once; the socket closes either way.
fn answer_late(progress: &Progress, telemetry: &Telemetry, timeout: Duration) {
    let Some(stream) = progress.take_socket() else {
        return;
    };
    let reply = ApiError::RequestTimeout(timeout.as_secs()).into_closing_reply();
    if stream
        .try_write(&reply.wire)
        .is_ok_and(|n| n == reply.wire.len())
    {
        telemetry.record_request(
            "none",
            &progress.method(),
            reply.status,
            progress.request_elapsed(),
            0,
            reply.body_len as u64,
        );
    }
}

/// The routes, with the request deadline: past it the client gets 408 and
/// the connection closes. Counts each request as in flight until its
/// response is all sent.
#[derive(Clone)]
struct Timed<S> {
    inner: S,
    progress: Arc<Progress>,
    timeout: Duration,
    telemetry: Telemetry,
}

type Answer<B> =
    Pin<Box<dyn Future<Output = Result<warp::http::Response<Tracked<B>>, Infallible>> + Send>>;

impl<S, B> hyper::service::Service<Request<Incoming>> for Timed<S>
where
    S: hyper::service::Service<
            Request<Incoming>,
            Response = warp::http::Response<B>,
            Error = Infallible,
        >,
    S::Future: Send + 'static,
    B: Send + 'static,
    Response: Into<warp::http::Response<B>>,
{
    type Response = warp::http::Response<Tracked<B>>;
    type Error = Infallible;
    type Future = Answer<B>;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let (started, in_flight) = self.progress.begin_request();
        let method = request.method().clone();
        let answer = self.inner.call(request);
        let progress = self.progress.clone();
        let (telemetry, timeout) = (self.telemetry.clone(), self.timeout);
        Box::pin(async move {
            let deadline = tokio::time::Instant::from_std(started + timeout);
            let response = match tokio::time::timeout_at(deadline, answer).await {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(_) => timed_out(&method, started, timeout, &telemetry).into(),
            };
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                progress.set_upgraded();
            }
            Ok(response.map(|body| Tracked {
                body,
                _in_flight: in_flight,
            }))
        })
    }
}

/// The 408 of a request the routes did not answer in time, counted.
fn timed_out(
    method: &Method,
    started: std::time::Instant,
    timeout: Duration,
    telemetry: &Telemetry,
) -> Response {
    let mut response = ApiError::RequestTimeout(timeout.as_secs()).into_response();
    // The rest of the body may still be coming: it is not read.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    let size = response.body().size_hint().exact().unwrap_or(0);
    let status = response.status();
    telemetry.record_request("none", method, status, started.elapsed(), 0, size);
    tracing::info!(
        target: "shopd::access",
        %method,
        status = status.as_u16(),
        "request timed out"
    );
    response
}

/// A response body that keeps its request in flight until hyper drops it.
pub struct Tracked<B> {
    body: B,
    _in_flight: InFlight,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Probe after a minute of silence, every 15 s, give up after 4 misses.
fn keepalive() -> socket2::TcpKeepalive {
    socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(60))
        .with_interval(Duration::from_secs(15))
        .with_retries(4)
}

fn log_end(result: Result<(), hyper::Error>) {
    if let Err(err) = result {
        // Clients that hang up or send garbage are normal on the internet.
        tracing::debug!(error = %err, "connection ended with an error");
    }
}
