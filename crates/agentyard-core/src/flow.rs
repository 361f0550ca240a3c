//! Flow control, pure: token buckets (GCRA), keyed limits, concurrency keys, depth thresholds.
//!
//! The bucket is the GCRA form of a token bucket (the algorithm `governor` uses): one number per
//! bucket, the theoretical arrival time, and `now` passed in, so the same code limits API calls
//! and dispatch and is tested without sleeping.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;

/// A rate with a burst: `rate_per_minute` sustained, up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RateLimit {
    pub rate_per_minute: u32,
    pub burst: u32,
}

impl RateLimit {
    pub fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if self.rate_per_minute == 0 {
            return Err(("rate_per_minute", "must be at least 1"));
        }
        if self.burst == 0 {
            return Err(("burst", "must be at least 1"));
        }
        Ok(())
    }

    fn interval_us(&self) -> i64 {
        60_000_000 / i64::from(self.rate_per_minute.max(1))
    }
}

/// The dispatch limits of one key: a task's `rate_limit_key` draws from the rate, its
/// `concurrency_key` caps how many such tasks run at once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimit {
    /// Tasks of this `rate_limit_key` handed out per minute (with a burst), fleet-wide.
    pub rate: Option<RateLimit>,
    /// Tasks of this `concurrency_key` running at once; without it, one.
    pub max_concurrent: Option<u64>,
}

/// One token bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    limit: RateLimit,
    /// Theoretical arrival time of the next request, in microseconds.
    tat_us: i64,
}

impl TokenBucket {
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            tat_us: i64::MIN,
        }
    }

    /// A bucket as a store kept it: its theoretical arrival time in microseconds since the epoch
    /// (`i64::MIN` for a full bucket).
    pub fn from_state(limit: RateLimit, tat_us: i64) -> Self {
        Self { limit, tat_us }
    }

    /// What a store keeps of the bucket (see [`TokenBucket::from_state`]).
    pub fn state(&self) -> i64 {
        self.tat_us
    }

    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Takes one token, or says how many milliseconds until one is there.
    pub fn try_acquire(&mut self, now: Timestamp) -> Result<(), u64> {
        let t = now.as_millis().saturating_mul(1_000);
        let interval = self.limit.interval_us();
        let tolerance = interval.saturating_mul(i64::from(self.limit.burst.max(1)) - 1);
        let tat = self.tat_us.max(t);
        let wait = tat - tolerance - t;
        if wait > 0 {
            return Err(u64::try_from((wait + 999) / 1_000).unwrap_or(u64::MAX));
        }
        self.tat_us = tat + interval;
        Ok(())
    }

    /// Would a token be there at `now`, without taking it?
    pub fn would_allow(&self, now: Timestamp) -> bool {
        let mut probe = *self;
        probe.try_acquire(now).is_ok()
    }

    /// Changes the limit, keeping what was spent.
    pub fn set_limit(&mut self, limit: RateLimit) {
        self.limit = limit;
    }
}

/// Many buckets by key, each with its own limit (`openai` at 60/min, `github` at 5000/h, …).
#[derive(Debug, Clone, Default)]
pub struct KeyedBuckets {
    buckets: HashMap<String, TokenBucket>,
}

impl KeyedBuckets {
    /// Takes a token for `key` under `limit` (a new key starts full).
    pub fn try_acquire(&mut self, key: &str, limit: RateLimit, now: Timestamp) -> Result<(), u64> {
        let bucket = self
            .buckets
            .entry(key.to_owned())
            .or_insert_with(|| TokenBucket::new(limit));
        if bucket.limit() != limit {
            bucket.set_limit(limit);
        }
        bucket.try_acquire(now)
    }

    pub fn would_allow(&self, key: &str, limit: RateLimit, now: Timestamp) -> bool {
        match self.buckets.get(key) {
            Some(b) => {
                let mut b = *b;
                b.set_limit(limit);
                b.would_allow(now)
            }
            None => true,
        }
    }

    /// Forgets buckets idle long enough to be full again (keeps memory bounded).
    pub fn prune(&mut self, now: Timestamp) {
        let t = now.as_millis().saturating_mul(1_000);
        self.buckets.retain(|_, b| b.tat_us > t);
    }

    pub fn len(&self) -> usize {
        self.buckets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

/// Share of the maximum depth at which health reports `degraded`.
pub const DEGRADED_DEPTH_RATIO: f64 = 0.8;

/// How full a queue or inbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepthLevel {
    Ok,
    /// At or above 80 % of the limit.
    Degraded,
    /// At the limit: new work is refused.
    Full,
}

pub fn depth_level(depth: u64, limit: u64) -> DepthLevel {
    if depth >= limit {
        DepthLevel::Full
    } else if depth as f64 >= limit as f64 * DEGRADED_DEPTH_RATIO {
        DepthLevel::Degraded
    } else {
        DepthLevel::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(t: i64) -> Timestamp {
        Timestamp::from_millis(1_000_000 + t)
    }

    #[test]
    fn a_bucket_allows_its_burst_then_its_rate() {
        let mut b = TokenBucket::new(RateLimit {
            rate_per_minute: 60,
            burst: 3,
        });
        for _ in 0..3 {
            assert!(b.try_acquire(ms(0)).is_ok());
        }
        assert_eq!(b.try_acquire(ms(0)), Err(1_000), "the fourth waits one interval");
        assert_eq!(b.try_acquire(ms(400)), Err(600));
        assert!(b.try_acquire(ms(1_000)).is_ok());
        assert!(b.try_acquire(ms(1_500)).is_err());
        assert!(b.try_acquire(ms(2_000)).is_ok());
    }

    #[test]
    fn over_a_long_run_the_rate_holds() {
        let limit = RateLimit {
            rate_per_minute: 600,
            burst: 10,
        };
        let mut b = TokenBucket::new(limit);
        // Someone hammers it every millisecond for 60 s: burst + rate * minutes.
        let allowed = (0..60_000).filter(|t| b.try_acquire(ms(*t)).is_ok()).count();
        assert!((600..=610).contains(&allowed), "allowed {allowed}");
    }

    #[test]
    fn keyed_buckets_are_independent() {
        let mut k = KeyedBuckets::default();
        let one = RateLimit {
            rate_per_minute: 1,
            burst: 1,
        };
        assert!(k.try_acquire("openai", one, ms(0)).is_ok());
        assert!(k.try_acquire("openai", one, ms(1)).is_err());
        assert!(!k.would_allow("openai", one, ms(2)));
        assert!(k.try_acquire("github", one, ms(1)).is_ok());
        k.prune(ms(120_000));
        assert!(k.is_empty(), "idle buckets are forgotten");
    }

    #[test]
    fn depth_levels() {
        assert_eq!(depth_level(0, 10), DepthLevel::Ok);
        assert_eq!(depth_level(7, 10), DepthLevel::Ok);
        assert_eq!(depth_level(8, 10), DepthLevel::Degraded);
        assert_eq!(depth_level(10, 10), DepthLevel::Full);
        assert_eq!(depth_level(11, 10), DepthLevel::Full);
    }
}
