//! The request rate per client (`rate_limit_per_sec`, `rate_limit_burst`):
//! a token bucket per client address, refilled at the rate up to the
//! burst; a request takes a token, and without one it gets 429 with
//! `Retry-After`. Off unless the rate is set.
//!
//! An IPv6 client is its /64 (one host usually holds a whole /64, so a
//! client cannot dodge its bucket by changing the low bits).
//!
//! Memory: a tracked client is one map entry, [`ENTRY_BYTES`] bytes (the
//! address, the bucket, the map's control byte, over its 7/8 load
//! factor), in one of [`SHARDS`] shards. An entry whose bucket would have
//! refilled to the burst is the same as no entry, so each shard drops such
//! idle entries every [`SWEEP_MS`] and, when it holds
//! [`MAX_PER_SHARD`] entries, before adding one (at most every
//! [`FULL_SWEEP_MS`]). Past that (more
//! clients active within one refill time than the cap allows) a new
//! client is served untracked rather than refused: the bound on memory
//! holds, and no one is blamed for others' traffic.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Shards of the table, so concurrent requests rarely share a lock.
pub const SHARDS: usize = 16;

/// Most clients tracked per shard: 65,536 clients in all, about 2 MiB.
pub const MAX_PER_SHARD: usize = 4096;

/// How often a shard drops its idle entries, at most, in milliseconds.
pub const SWEEP_MS: u64 = 10_000;

/// How often a full shard drops its idle entries, at most, in
/// milliseconds, when a new client finds it full.
pub const FULL_SWEEP_MS: u64 = 100;

/// Bytes one tracked client costs: its entry, the map's control byte,
/// over the map's 7/8 load factor.
pub const ENTRY_BYTES: usize = (std::mem::size_of::<(IpAddr, Bucket)>() + 1) * 8 / 7;

/// One client's bucket.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    /// Tokens left at `at`.
    tokens: f32,
    /// Milliseconds since the limiter started, when `tokens` was counted.
    at: u32,
}

/// The per-client rate limit.
pub struct RateLimit {
    /// Tokens per millisecond.
    per_ms: f32,
    burst: f32,
    /// Milliseconds an idle bucket takes to refill to the burst.
    refill_ms: u32,
    epoch: Instant,
    hasher: RandomState,
    shards: Box<[Mutex<Shard>]>,
}

#[derive(Default)]
struct Shard {
    buckets: HashMap<IpAddr, Bucket>,
    swept: u32,
    /// Sweeps so far.
    sweeps: u64,
}

impl RateLimit {
    /// `per_sec` requests a second on average, `burst` at once.
    #[must_use]
    pub fn new(per_sec: u32, burst: u32) -> RateLimit {
        #[allow(clippy::cast_precision_loss)] // Rates are far below 2^24.
        let (per_sec, burst) = (per_sec.max(1) as f32, burst.max(1) as f32);
        let per_ms = per_sec / 1000.0;
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let refill_ms = (burst / per_ms).ceil().min(u32::MAX as f32) as u32;
        RateLimit {
            per_ms,
            burst,
            refill_ms,
            epoch: Instant::now(),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Takes a token for `client`; without one, how long until there is.
    pub fn take(&self, client: IpAddr) -> Result<(), Duration> {
        let client = keyed(client);
        let now = u32::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u32::MAX);
        #[allow(clippy::cast_possible_truncation)] // Reduced modulo SHARDS.
        let index = (self.hasher.hash_one(client) % SHARDS as u64) as usize;
        let Some(shard) = self.shards.get(index) else {
            return Ok(());
        };
        let mut shard = shard.lock().unwrap_or_else(PoisonError::into_inner);
        let since = u64::from(now.wrapping_sub(shard.swept));
        // A full shard sweeps for a new client at most every
        // [`FULL_SWEEP_MS`]: a crowd of new clients past the cap costs each
        // a lookup, not a walk of the whole shard under its lock.
        if since >= SWEEP_MS
            || (since >= FULL_SWEEP_MS
                && shard.buckets.len() >= MAX_PER_SHARD
                && !shard.buckets.contains_key(&client))
        {
            shard.swept = now;
            shard.sweeps += 1;
            let refill_ms = self.refill_ms;
            shard
                .buckets
                .retain(|_, bucket| now.saturating_sub(bucket.at) < refill_ms);
        }
        let full = shard.buckets.len() >= MAX_PER_SHARD;
        let bucket = match shard.buckets.get_mut(&client) {
            Some(bucket) => bucket,
            None if full => return Ok(()),
            None => shard.buckets.entry(client).or_insert(Bucket {
                tokens: self.burst,
                at: now,
            }),
        };
        #[allow(clippy::cast_precision_loss)]
        let refilled = bucket.tokens + now.saturating_sub(bucket.at) as f32 * self.per_ms;
        bucket.tokens = refilled.min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait_ms = (1.0 - bucket.tokens) / self.per_ms;
            Err(Duration::from_secs_f32(wait_ms / 1000.0))
        }
    }

    /// Sweeps of idle entries so far, in all shards.
    #[must_use]
    pub fn sweeps(&self) -> u64 {
        self.shards
            .iter()
            .map(|shard| shard.lock().map_or(0, |shard| shard.sweeps))
            .sum()
    }

    /// Clients tracked now.
    #[must_use]
    pub fn tracked(&self) -> usize {
        self.shards
            .iter()
            .map(|shard| shard.lock().map_or(0, |shard| shard.buckets.len()))
            .sum()
    }
}

/// The key of a client: its address, or for IPv6 its /64.
fn keyed(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        IpAddr::V4(_) => client,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_apart() {
        let limit = RateLimit::new(10, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.take(a).is_ok());
        }
        let wait = limit.take(a).unwrap_err();
        assert!(wait <= Duration::from_millis(101), "{wait:?}");
        assert!(limit.take("192.0.2.2".parse().unwrap()).is_ok());
        let v6a: IpAddr = "2001:db8::1".parse().unwrap();
        let v6b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        for _ in 0..3 {
            assert!(limit.take(v6a).is_ok());
        }
        assert!(limit.take(v6b).is_err(), "one /64, one bucket");
        assert_eq!(limit.tracked(), 3);
    }

    #[test]
    fn memory_per_client_is_small_and_bounded() {
        const { assert!(ENTRY_BYTES <= 40) };
        let limit = RateLimit::new(1, 1);
        for n in 0..(SHARDS * MAX_PER_SHARD + 5000) as u32 {
            let _ = limit.take(IpAddr::V4(n.into()));
        }
        assert!(limit.tracked() <= SHARDS * MAX_PER_SHARD);
    }

    #[test]
    fn new_clients_past_the_cap_do_not_each_sweep_a_full_shard() {
        // A bucket takes an hour to refill: nothing is idle to drop.
        let limit = RateLimit::new(1, 3600);
        let crowd = u32::try_from(SHARDS * MAX_PER_SHARD * 2).unwrap();
        for n in 0..crowd {
            let _ = limit.take(IpAddr::V4(n.into()));
        }
        assert_eq!(limit.tracked(), SHARDS * MAX_PER_SHARD);
        // Without the pause between sweeps this is one per new client
        // past the cap (65,536); with it, a few per shard at most.
        assert!(limit.sweeps() <= 64, "{} sweeps", limit.sweeps());
    }
}
