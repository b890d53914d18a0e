//! Who a request comes from: the socket peer's address or, when the peer
//! is one of the `trusted_proxies`, the address its `Forwarded` or
//! `X-Forwarded-For` header names (the rightmost one that is not itself a
//! trusted proxy, so a client cannot choose its own address by sending the
//! header first). The per-client limits and the access log use it.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use serde::Deserialize;
use warp::http::{HeaderMap, header};

/// The socket peer of a request, put in its extensions by the connection
/// loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer(pub SocketAddr);

/// One network, `ADDR/BITS` (or a bare address, a network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    bits: u8,
}

impl Cidr {
    /// Whether `addr` is in this network (an IPv4-mapped IPv6 address
    /// counts as its IPv4 address).
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self.net, canonical(addr)) {
            (IpAddr::V4(net), IpAddr::V4(addr)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.bits)).unwrap_or(0);
                u32::from(net) & mask == u32::from(addr) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(addr)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.bits))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(addr) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (addr, bits) = match text.split_once('/') {
            Some((addr, bits)) => (addr, Some(bits)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?} is not an address or ADDR/BITS network"))?;
        let net = canonical(net);
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits = match bits {
            Some(bits) => bits
                .parse::<u8>()
                .ok()
                .filter(|bits| *bits <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
            None => max,
        };
        Ok(Cidr { net, bits })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.bits)
    }
}

/// The `trusted_proxies` setting: networks, comma separated (or a TOML
/// array); empty trusts no one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "StringOrList")]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    /// Whether `addr` is a trusted proxy.
    #[must_use]
    pub fn trusts(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(addr))
    }

    /// Whether no proxy is trusted.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The client of a request from `peer` with `headers`: `peer`, unless
    /// it is a trusted proxy and the request says whom it forwards.
    #[must_use]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let forwarded = forwarded_for(headers);
        // Right to left: each hop appends the address it got the request
        // from, so the first untrusted one from the right is the client as
        // the last trusted hop saw it; what is left of it, anyone can write.
        let mut client = peer;
        for addr in forwarded.iter().rev() {
            client = *addr;
            if !self.trusts(*addr) {
                break;
            }
        }
        client
    }
}

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        list(text)
            .map(str::parse)
            .collect::<Result<Vec<Cidr>, String>>()
            .map(TrustedProxies)
    }
}

impl TryFrom<StringOrList> for TrustedProxies {
    type Error = String;

    fn try_from(value: StringOrList) -> Result<Self, Self::Error> {
        value.joined().parse()
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self.0.iter().map(ToString::to_string).collect();
        f.write_str(&shown.join(","))
    }
}

/// A list setting as `config.toml` may spell it: an array of strings or
/// one comma-separated string (as the flag and the environment do).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum StringOrList {
    /// `"a,b"`.
    One(String),
    /// `["a", "b"]`.
    List(Vec<String>),
}

impl StringOrList {
    /// The items, comma separated.
    #[must_use]
    pub fn joined(self) -> String {
        match self {
            StringOrList::One(text) => text,
            StringOrList::List(items) => items.join(","),
        }
    }
}

/// The non-empty, trimmed items of a comma-separated list.
pub fn list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// The addresses a request says it was forwarded for, in order: from
/// `Forwarded` (RFC 7239) if it has any, else from `X-Forwarded-For`.
/// Entries that are not addresses (`unknown`, obfuscated names) are skipped.
fn forwarded_for(headers: &HeaderMap) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split([',', ';']) {
            let Some((key, node)) = pair.split_once('=') else {
                continue;
            };
            if key.trim().eq_ignore_ascii_case("for")
                && let Some(addr) = node_addr(node.trim().trim_matches('"'))
            {
                found.push(addr);
            }
        }
    }
    if !found.is_empty() {
        return found;
    }
    for value in headers.get_all("x-forwarded-for") {
        let Ok(value) = value.to_str() else { continue };
        found.extend(value.split(',').filter_map(|node| node_addr(node.trim())));
    }
    found
}

/// The address of a node: `1.2.3.4`, `1.2.3.4:5678`, `[::1]`, `[::1]:5678`, `::1`.
fn node_addr(node: &str) -> Option<IpAddr> {
    if let Ok(addr) = node.parse::<IpAddr>() {
        return Some(canonical(addr));
    }
    if let Ok(addr) = node.parse::<SocketAddr>() {
        return Some(canonical(addr.ip()));
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    inner.parse().ok().map(canonical)
}

/// `addr`, with an IPv4-mapped IPv6 address as its IPv4 address.
#[must_use]
pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        IpAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let net: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(net.contains(ip("10.1.255.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(net.contains(ip("::ffff:10.1.0.9")));
        let one: Cidr = "::1".parse().unwrap();
        assert!(one.contains(ip("::1")) && !one.contains(ip("::2")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.9")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("example.com".parse::<Cidr>().is_err());
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_says() {
        let trusted: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        let sent = headers(&[("x-forwarded-for", "198.51.100.7")]);
        assert_eq!(trusted.client(ip("192.0.2.1"), &sent), ip("192.0.2.1"));
        let none = TrustedProxies::default();
        assert_eq!(none.client(ip("10.0.0.1"), &sent), ip("10.0.0.1"));
    }

    #[test]
    fn a_trusted_peer_names_the_rightmost_untrusted_address() {
        let trusted: TrustedProxies = "10.0.0.0/8, 127.0.0.1".parse().unwrap();
        let sent = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.0.0.5")]);
        assert_eq!(trusted.client(ip("127.0.0.1"), &sent), ip("198.51.100.7"));
        let forwarded = headers(&[
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8::1]:443\";proto=https",
            ),
            ("x-forwarded-for", "6.6.6.6"),
        ]);
        assert_eq!(
            trusted.client(ip("10.9.9.9"), &forwarded),
            ip("2001:db8::1")
        );
        let silent = HeaderMap::new();
        assert_eq!(trusted.client(ip("10.9.9.9"), &silent), ip("10.9.9.9"));
        let only_proxies = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        assert_eq!(
            trusted.client(ip("127.0.0.1"), &only_proxies),
            ip("10.0.0.1")
        );
    }
}
