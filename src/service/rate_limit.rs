//! In-memory token-bucket rate limits, keyed by a string (a recipient, a client address, an
//! account). Used for everything that sends a message, so nobody can turn the server into a
//! spam or SMS-fraud relay.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::RateLimit;
use crate::error::{Error, ErrorKind, Result};

/// Entries kept before full buckets are forgotten.
const MAX_KEYS: usize = 10_000;

/// A set of buckets with one rate.
pub struct RateLimiter {
    what: &'static str,
    burst: f64,
    refill_ms: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_ms: u64,
}

impl RateLimiter {
    /// A limiter allowing `rate.burst` events at once and one more every `rate.refill` seconds.
    /// `what` names the limit in error messages ("messages to this address").
    pub fn new(what: &'static str, rate: RateLimit) -> RateLimiter {
        RateLimiter {
            what,
            burst: f64::from(rate.burst),
            refill_ms: rate.refill as f64 * 1000.0,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn refilled(&self, b: Bucket, now_ms: u64) -> Bucket {
        let earned = now_ms.saturating_sub(b.updated_ms) as f64 / self.refill_ms;
        Bucket {
            tokens: (b.tokens + earned).min(self.burst),
            updated_ms: now_ms,
        }
    }

    /// Fails with 429 `M_LIMIT_EXCEEDED` (and `retry_after_ms`) when `key` has no event left;
    /// does not use one up.
    pub fn check(&self, key: &str, now_ms: u64) -> Result<()> {
        let buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let Some(b) = buckets.get(key).map(|b| self.refilled(*b, now_ms)) else {
            return Ok(());
        };
        if b.tokens >= 1.0 {
            return Ok(());
        }
        let wait = ((1.0 - b.tokens) * self.refill_ms).ceil() as u64;
        crate::metrics::METRICS.rate_limited(self.what);
        Err(Error::new(
            ErrorKind::LimitExceeded,
            format!("Too many {}; try again later", self.what),
        )
        .with_extra("retry_after_ms", wait))
    }

    /// Uses one event of `key`.
    pub fn consume(&self, key: &str, now_ms: u64) {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(key) {
            self.make_room(&mut buckets, now_ms);
        }
        let b = buckets.get(key).map(|b| self.refilled(*b, now_ms));
        let mut b = b.unwrap_or(Bucket {
            tokens: self.burst,
            updated_ms: now_ms,
        });
        b.tokens = (b.tokens - 1.0).max(0.0);
        buckets.insert(key.to_string(), b);
    }

    /// Keeps the map bounded: drops the buckets that have refilled completely (they carry no
    /// information), and if that is not enough, the fuller half, so the keys closest to their
    /// limit stay limited.
    fn make_room(&self, buckets: &mut HashMap<String, Bucket>, now_ms: u64) {
        for b in buckets.values_mut() {
            *b = self.refilled(*b, now_ms);
        }
        buckets.retain(|_, b| b.tokens < self.burst);
        if buckets.len() >= MAX_KEYS {
            let mut levels: Vec<f64> = buckets.values().map(|b| b.tokens).collect();
            levels.sort_by(f64::total_cmp);
            let median = levels[levels.len() / 2];
            buckets.retain(|_, b| b.tokens < median);
            if buckets.len() >= MAX_KEYS {
                // Every bucket at the same level: forget half of them.
                let drop: Vec<String> = buckets.keys().take(buckets.len() / 2).cloned().collect();
                for k in drop {
                    buckets.remove(&k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refill() {
        let l = RateLimiter::new(
            "messages",
            RateLimit {
                burst: 2,
                refill: 10,
            },
        );
        for _ in 0..2 {
            l.check("a", 0).unwrap();
            l.consume("a", 0);
        }
        let e = l.check("a", 0).unwrap_err();
        assert_eq!(e.status(), 429);
        assert_eq!(e.body()["retry_after_ms"], 10_000);
        assert!(l.check("b", 0).is_ok(), "keys are independent");
        assert!(l.check("a", 9_999).is_err());
        assert!(l.check("a", 10_000).is_ok());
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_exhausted_keys() {
        let l = RateLimiter::new(
            "messages",
            RateLimit {
                burst: 2,
                refill: 1_000_000,
            },
        );
        l.consume("victim", 0);
        l.consume("victim", 0);
        for n in 0..(3 * MAX_KEYS) {
            l.consume(&format!("k{n}"), 0);
        }
        assert!(l.buckets.lock().unwrap().len() <= MAX_KEYS);
        assert!(
            l.check("victim", 0).is_err(),
            "an exhausted key must stay limited"
        );
    }
}
