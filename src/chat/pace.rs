//! The per-member rate limit: a token bucket that makes a member's reader
//! wait, rather than dropping its lines or closing it.

use std::time::Duration;

use tokio::time::Instant;

/// A member's allowance: `rate` lines a second on average, `burst` at once.
#[derive(Debug)]
pub(crate) struct Pace {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: Instant,
}

impl Pace {
    /// A full bucket of `burst` lines that refills at `rate` lines a second.
    pub(crate) fn new(rate: u32, burst: u32) -> Pace {
        let rate = f64::from(rate.max(1));
        let burst = f64::from(burst.max(1));
        Pace {
            rate,
            burst,
            tokens: burst,
            refilled: Instant::now(),
        }
    }

    /// Takes one line's token, first waiting for one if the bucket is
    /// empty (the token stays taken if the wait is cancelled).
    pub(crate) async fn take(&mut self) {
        let wait = self.take_at(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }

    /// Takes a token at `now`; how long the caller must wait before the
    /// line it pays for may go (the token is borrowed from that future).
    fn take_at(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_goes_at_once_then_lines_are_spaced_by_the_rate() {
        let mut pace = Pace::new(10, 3);
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(pace.take_at(start), Duration::ZERO);
        }
        let wait = pace.take_at(start);
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        let wait = pace.take_at(start);
        assert!((wait.as_secs_f64() - 0.2).abs() < 1e-9, "{wait:?}");
    }

    #[test]
    fn an_idle_member_earns_back_at_most_its_burst() {
        let mut pace = Pace::new(10, 3);
        let start = Instant::now();
        for _ in 0..3 {
            pace.take_at(start);
        }
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(pace.take_at(later), Duration::ZERO);
        }
        assert!(pace.take_at(later) > Duration::ZERO);
    }
}
