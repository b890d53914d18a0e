//! A free port, for the programs a test starts that cannot listen on port 0
//! and report where (NATS, Prometheus, chromedriver). shopd itself always
//! binds port 0.

use std::net::TcpListener;

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}
