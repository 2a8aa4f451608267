//! In-memory token-bucket rate limits, keyed by a string (a recipient, a client address, an
//! account). Used for everything that sends a message, so nobody can turn the server into a
//! spam or SMS-fraud relay, and for the addresses one client looks up, so nobody can keep the
//! CPU busy with lookups ([`RateLimiter::take_many`]).
//!
//! A request that sends a message usually counts against several limits at once (the client,
//! the recipient, a country, the whole server). [`take`] takes one token from each of them
//! atomically, before anything is sent: either every limit has a token and all are taken, or
//! none is taken and the answer is the refusing limit's 429. There is no window between the
//! check and the take, so concurrent requests cannot all pass a check before any of them
//! counts. The [`Taken`] guard keeps the tokens when dropped (the message went out); a failed
//! send calls [`Taken::give_back`], so it uses up nobody's quota.
//!
//! Keys are kept as 64-bit keyed hashes (SipHash with a random key per limiter), not as
//! strings: a bucket is then 24 bytes inside the map's one allocation, instead of about 90 in
//! two (a string allocated apart from the map), for up to 10 000 keys per limiter. Two keys
//! with the same hash would share a bucket (a stricter limit for both); with a random 128-bit
//! hash key, nobody can choose keys that collide.
//!
//! Locking: each limiter has its own mutex; [`take`] locks the limiters it needs in one fixed
//! order (by address) and holds them all while it checks and takes, so two takes over the same
//! limiters cannot deadlock. Nothing else holds two of these locks.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Mutex, MutexGuard};

use crate::config::RateLimit;
use crate::error::{Error, ErrorKind, Result};

/// Entries kept before full buckets are forgotten.
const MAX_KEYS: usize = 10_000;

/// A set of buckets with one rate.
pub struct RateLimiter {
    what: &'static str,
    burst: f64,
    refill_ms: f64,
    /// Hashes keys into bucket ids.
    ids: RandomState,
    buckets: Mutex<Buckets>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated_ms: u64,
}

/// Buckets by key id (see the module doc).
type Buckets = HashMap<u64, Bucket>;

/// Tokens taken by [`take`]. Dropping it keeps them (the event happened); [`Taken::give_back`]
/// returns them (it did not).
#[must_use = "dropping the guard keeps the tokens; call give_back() when nothing was sent"]
pub struct Taken<'a> {
    taken: Vec<(&'a RateLimiter, u64)>,
}

impl Taken<'_> {
    /// Returns the tokens: one to each bucket they were taken from (never above its burst).
    /// For an event that did not happen after all, such as a message that could not be sent.
    pub fn give_back(self) {
        for (limiter, key) in &self.taken {
            let mut buckets = limiter.lock();
            // A bucket forgotten since (make_room) counts as full already.
            if let Some(b) = buckets.get_mut(key) {
                // Its own timestamp stays: the refill since then is still owed.
                b.tokens = (b.tokens + 1.0).min(limiter.burst);
            }
        }
    }
}

/// Takes one token of each `(limiter, key)` in `limits`, all or none: 429 `M_LIMIT_EXCEEDED`
/// (with `retry_after_ms`) from the first limit that has none left, and then nothing is taken.
/// The same limiter may appear several times (with different keys, or the same key, which then
/// needs as many tokens).
pub fn take<'a, K: AsRef<str>>(limits: &[(&'a RateLimiter, K)], now_ms: u64) -> Result<Taken<'a>> {
    // Each distinct limiter locked once, in address order; `limits[i]` uses `guards[slots[i]]`.
    let mut by_address: Vec<usize> = (0..limits.len()).collect();
    by_address.sort_by_key(|&i| limits[i].0 as *const RateLimiter as usize);
    let mut order: Vec<&'a RateLimiter> = Vec::with_capacity(limits.len());
    let mut slots = vec![0; limits.len()];
    for i in by_address {
        let limiter = limits[i].0;
        if !order.last().is_some_and(|l| std::ptr::eq(*l, limiter)) {
            order.push(limiter);
        }
        slots[i] = order.len() - 1;
    }
    let mut guards: Vec<MutexGuard<'a, Buckets>> = order.iter().map(|l| l.lock()).collect();
    // Check everything first, so a refusal changes nothing.
    let ids: Vec<u64> = limits.iter().map(|(l, k)| l.id(k.as_ref())).collect();
    for (i, (limiter, _)) in limits.iter().enumerate() {
        let key = ids[i];
        let needed = limits[..=i]
            .iter()
            .zip(&ids)
            .filter(|((l, _), id)| std::ptr::eq(*l, *limiter) && **id == key)
            .count() as f64;
        let tokens = limiter.level(&guards[slots[i]], key, now_ms);
        if tokens < needed {
            let wait = ((needed - tokens) * limiter.refill_ms).ceil() as u64;
            crate::metrics::METRICS.rate_limited(limiter.what);
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!("Too many {}; try again later", limiter.what),
            )
            .with_extra("retry_after_ms", wait));
        }
    }
    let mut taken = Vec::with_capacity(limits.len());
    for (i, (limiter, _)) in limits.iter().enumerate() {
        limiter.take_one(&mut guards[slots[i]], ids[i], now_ms);
        taken.push((*limiter, ids[i]));
    }
    Ok(Taken { taken })
}

impl RateLimiter {
    /// A limiter allowing `rate.burst` events at once and one more every `rate.refill` seconds.
    /// `what` names the limit in error messages ("messages to this address").
    pub fn new(what: &'static str, rate: RateLimit) -> RateLimiter {
        RateLimiter {
            what,
            burst: f64::from(rate.burst),
            refill_ms: rate.refill as f64 * 1000.0,
            ids: RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token of `key`: [`take`] with this one limit.
    pub fn take(&self, key: &str, now_ms: u64) -> Result<Taken<'_>> {
        take(&[(self, key)], now_ms)
    }

    /// A limiter allowing `burst` at once and `per_second` more every second (for budgets
    /// counted in many small units, such as looked-up addresses). `per_second` must not be 0.
    pub fn per_second(what: &'static str, burst: u32, per_second: u32) -> RateLimiter {
        RateLimiter {
            what,
            burst: f64::from(burst),
            refill_ms: 1000.0 / f64::from(per_second.max(1)),
            ids: RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes `n` tokens of `key` at once, all or none: 429 `M_LIMIT_EXCEEDED` (with
    /// `retry_after_ms`, the wait until `n` are there) when fewer are left, and then nothing is
    /// taken. The tokens are kept (nothing gives them back).
    pub fn take_many(&self, key: &str, n: u32, now_ms: u64) -> Result<()> {
        let mut buckets = self.lock();
        let needed = f64::from(n);
        let key = self.id(key);
        let tokens = self.level(&buckets, key, now_ms);
        if tokens < needed {
            let wait = ((needed - tokens) * self.refill_ms).ceil() as u64;
            crate::metrics::METRICS.rate_limited(self.what);
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                format!("Too many {}; try again later", self.what),
            )
            .with_extra("retry_after_ms", wait));
        }
        self.take_amount(&mut buckets, key, needed, now_ms);
        Ok(())
    }

    /// The bucket id of `key`.
    fn id(&self, key: &str) -> u64 {
        self.ids.hash_one(key)
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn refilled(&self, b: Bucket, now_ms: u64) -> Bucket {
        let earned = now_ms.saturating_sub(b.updated_ms) as f64 / self.refill_ms;
        Bucket {
            tokens: (b.tokens + earned).min(self.burst),
            // Never backwards: a request that read its clock earlier must not be paid twice.
            updated_ms: now_ms.max(b.updated_ms),
        }
    }

    /// The tokens `key` has at `now_ms` (an unknown key is full).
    fn level(&self, buckets: &Buckets, key: u64, now_ms: u64) -> f64 {
        buckets
            .get(&key)
            .map_or(self.burst, |b| self.refilled(*b, now_ms).tokens)
    }

    /// Uses one token of `key`; the caller checked that there is one.
    fn take_one(&self, buckets: &mut Buckets, key: u64, now_ms: u64) {
        self.take_amount(buckets, key, 1.0, now_ms);
    }

    /// Uses `amount` tokens of `key`; the caller checked that there are as many.
    fn take_amount(&self, buckets: &mut Buckets, key: u64, amount: f64, now_ms: u64) {
        if buckets.len() >= MAX_KEYS && !buckets.contains_key(&key) {
            self.make_room(buckets, now_ms);
        }
        let b = buckets.get(&key).map(|b| self.refilled(*b, now_ms));
        let mut b = b.unwrap_or(Bucket {
            tokens: self.burst,
            updated_ms: now_ms,
        });
        b.tokens = (b.tokens - amount).max(0.0);
        buckets.insert(key, b);
    }

    /// Keeps the map bounded: drops the buckets that have refilled completely (they carry no
    /// information), and if that is not enough, the fuller half, so the keys closest to their
    /// limit stay limited.
    fn make_room(&self, buckets: &mut Buckets, now_ms: u64) {
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
                let drop: Vec<u64> = buckets.keys().take(buckets.len() / 2).copied().collect();
                for k in drop {
                    buckets.remove(&k);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn limiter(burst: u32, refill: u64) -> RateLimiter {
        RateLimiter::new("messages", RateLimit { burst, refill })
    }

    #[test]
    fn burst_then_refill() {
        let l = limiter(2, 10);
        for _ in 0..2 {
            let _ = l.take("a", 0).unwrap();
        }
        let e = l.take("a", 0).err().unwrap();
        assert_eq!(e.status(), 429);
        assert_eq!(e.body()["retry_after_ms"], 10_000);
        assert!(l.take("b", 0).is_ok(), "keys are independent");
        assert!(l.take("a", 9_999).is_err());
        assert!(l.take("a", 10_000).is_ok());
        assert!(l.take("a", 10_000).is_err(), "one token earned, one used");
    }

    #[test]
    fn all_limits_or_none() {
        let (client, recipient) = (limiter(5, 100), limiter(1, 30));
        let _ = take(&[(&client, "c"), (&recipient, "r")], 0).unwrap();
        let e = take(&[(&client, "c"), (&recipient, "r")], 0).err().unwrap();
        assert_eq!(
            e.body()["retry_after_ms"],
            30_000,
            "the refusing limit's wait"
        );
        assert_eq!(
            client.level(&client.lock(), client.id("c"), 0),
            4.0,
            "a refused take takes nothing"
        );
        // A new key of the same recipient limit shows the client limit was left alone.
        for n in 0..4 {
            let _ = take(&[(&client, "c"), (&recipient, format!("r{n}").as_str())], 0).unwrap();
        }
        assert!(take(&[(&client, "c"), (&recipient, "r9")], 0).is_err());
    }

    #[test]
    fn given_back_tokens_can_be_taken_again() {
        let (a, b) = (limiter(1, 1000), limiter(3, 1000));
        take(&[(&a, "k"), (&b, "k")], 0).unwrap().give_back();
        take(&[(&a, "k"), (&b, "k")], 0).unwrap().give_back();
        let kept = take(&[(&a, "k"), (&b, "k")], 0).unwrap();
        drop(kept);
        assert!(a.take("k", 0).is_err(), "dropping the guard keeps them");
        assert_eq!(b.level(&b.lock(), b.id("k"), 0), 2.0);
        // The refill earned before the take is kept.
        let t = b.take("k", 500_000).unwrap();
        assert_eq!(b.level(&b.lock(), b.id("k"), 500_000), 1.5);
        t.give_back();
        assert_eq!(b.level(&b.lock(), b.id("k"), 500_000), 2.5);
        let t = b.take("k", 2_000_000).unwrap();
        let _ = b.take("k", 2_000_000).unwrap();
        t.give_back();
        assert_eq!(b.level(&b.lock(), b.id("k"), 2_000_000), 2.0);
        b.take("k", 2_000_000).unwrap().give_back();
        assert_eq!(b.level(&b.lock(), b.id("k"), 2_000_000), 2.0);
    }

    #[test]
    fn a_limiter_named_twice_needs_two_tokens() {
        let l = limiter(2, 1000);
        let _ = take(&[(&l, "x"), (&l, "x")], 0).unwrap();
        assert!(l.take("x", 0).is_err());
        let _ = l.take("y", 0).unwrap();
        assert!(
            take(&[(&l, "y"), (&l, "y")], 0).is_err(),
            "one token left, two needed"
        );
        assert_eq!(l.level(&l.lock(), l.id("y"), 0), 1.0);
    }

    #[test]
    fn concurrent_takes_never_exceed_the_burst_nor_deadlock() {
        let (a, b) = (Arc::new(limiter(5, 1_000_000)), Arc::new(limiter(1000, 1)));
        let threads: Vec<_> = (0..16)
            .map(|n| {
                let (a, b) = (a.clone(), b.clone());
                std::thread::spawn(move || {
                    let mut kept = 0;
                    for i in 0..200 {
                        // Both orders, so a lock order by position would deadlock.
                        let limits = if (n + i) % 2 == 0 {
                            vec![(&*a, "k"), (&*b, "k")]
                        } else {
                            vec![(&*b, "k"), (&*a, "k")]
                        };
                        if let Ok(t) = take(&limits, 0) {
                            if i % 3 == 0 {
                                t.give_back();
                            } else {
                                kept += 1;
                            }
                        }
                    }
                    kept
                })
            })
            .collect();
        let kept: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(kept, 5);
    }

    #[test]
    fn many_tokens_are_taken_at_once_or_not_at_all() {
        // 100 at once, then 10 a second (one every 100 ms).
        let l = RateLimiter::per_second("addresses", 100, 10);
        l.take_many("a", 60, 0).unwrap();
        let e = l.take_many("a", 50, 0).unwrap_err();
        assert_eq!(
            (e.status(), e.body()["errcode"].as_str()),
            (429, Some("M_LIMIT_EXCEEDED"))
        );
        assert_eq!(e.body()["retry_after_ms"], 1_000, "10 missing, 100 ms each");
        assert_eq!(
            l.level(&l.lock(), l.id("a"), 0),
            40.0,
            "a refusal takes nothing"
        );
        l.take_many("a", 40, 0).unwrap();
        assert!(l.take_many("a", 1, 99).is_err());
        l.take_many("a", 1, 100).unwrap();
        l.take_many("b", 100, 100).unwrap();
        assert!(
            l.take_many("b", 101, 1_000_000).is_err(),
            "never more than the burst"
        );
        l.take_many("b", 100, 1_000_000).unwrap();
    }

    #[test]
    fn the_map_stays_bounded_and_keeps_exhausted_keys() {
        let l = limiter(2, 1_000_000);
        let _ = l.take("victim", 0).unwrap();
        let _ = l.take("victim", 0).unwrap();
        for n in 0..(3 * MAX_KEYS) {
            let _ = l.take(&format!("k{n}"), 0).unwrap();
        }
        assert!(l.lock().len() <= MAX_KEYS);
        assert!(
            l.take("victim", 0).is_err(),
            "an exhausted key must stay limited"
        );
    }
}
