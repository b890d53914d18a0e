//! Open connections per socket peer, for `max_connections_per_client`:
//! past the cap a new connection from that peer is closed at once, so one
//! address cannot take every slot of `max_connections` while others wait.
//! A connection counts from its accept until its socket closes, a chat
//! member's WebSocket included. Trusted proxies are not counted: their
//! connections carry many clients.
//!
//! An address is tracked only while it has an open connection: its entry
//! (the address and a count, about 48 bytes with the map's overhead) goes
//! when its last connection closes, so nothing needs to expire.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use crate::http::client::{TrustedProxies, canonical};

/// Open connections by peer address. Cheap to share.
pub struct Peers {
    cap: u32,
    exempt: TrustedProxies,
    open: Mutex<HashMap<IpAddr, u32>>,
}

impl Peers {
    /// At most `cap` connections per peer, but none counted for `exempt`.
    #[must_use]
    pub fn new(cap: usize, exempt: TrustedProxies) -> Arc<Peers> {
        Arc::new(Peers {
            cap: u32::try_from(cap).unwrap_or(u32::MAX),
            exempt,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a new connection from `peer`, held until it is dropped;
    /// `None` when `peer` already has its cap open.
    #[must_use]
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<PeerSlot> {
        let peer = canonical(peer);
        if self.exempt.trusts(peer) {
            return Some(PeerSlot { peers: None, peer });
        }
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(peer).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(PeerSlot {
            peers: Some(self.clone()),
            peer,
        })
    }

    /// Addresses tracked now (those with an open connection).
    #[cfg(test)]
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.open.lock().map_or(0, |open| open.len())
    }
}

/// One open connection of a peer; dropping it frees the peer's slot.
pub struct PeerSlot {
    peers: Option<Arc<Peers>>,
    peer: IpAddr,
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let Some(peers) = self.peers.take() else {
            return;
        };
        let mut open = peers.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_gets_its_cap_and_its_slots_back() {
        let peers = Peers::new(2, "10.0.0.1".parse().unwrap());
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let first = peers.admit(a).unwrap();
        let _second = peers.admit(a).unwrap();
        assert!(peers.admit(a).is_none());
        assert!(peers.admit("::ffff:127.0.0.1".parse().unwrap()).is_none());
        let _other = peers.admit(b).unwrap();
        drop(first);
        assert!(peers.admit(a).is_some());
        let proxy: Vec<_> = (0..5)
            .map(|_| peers.admit("10.0.0.1".parse().unwrap()))
            .collect();
        assert!(proxy.iter().all(Option::is_some));
        assert_eq!(peers.tracked(), 2);
    }
}
