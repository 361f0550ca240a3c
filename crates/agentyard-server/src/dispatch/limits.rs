//! Keyed dispatch limits: the server's [`DispatchGate`]. A task's `rate_limit_key` draws a token
//! from a GCRA bucket shared by every claimer of this server (`openai` at 60/min with a burst),
//! and its `concurrency_key` caps how many such tasks run at once (one when not configured).
//!
//! A claim passes over tasks the gate refuses; they stay queued. A parked claimer that was
//! refused a token is told when the next one comes ([`ClaimGate::take_retry_at`]), so it retries
//! then instead of at its periodic re-check.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use agentyard_core::Timestamp;
use agentyard_core::api::Limit;
use agentyard_core::flow::KeyedBuckets;
use agentyard_store::{DEFAULT_MAX_CONCURRENT, DispatchGate};

use crate::config::LimitConfig;
use crate::metrics::Counters;

/// The configured limits and the buckets behind them.
#[derive(Debug)]
pub struct Limits {
    keys: RwLock<HashMap<String, LimitConfig>>,
    buckets: Mutex<KeyedBuckets>,
    /// Whether any key has a rate: claims without rates need no per-claim bookkeeping.
    any_rate: AtomicBool,
    counters: Arc<Counters>,
}

impl Limits {
    pub fn new(config: &BTreeMap<String, LimitConfig>, counters: Arc<Counters>) -> Self {
        let keys: HashMap<String, LimitConfig> = config.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let any_rate = keys.values().any(|l| l.rate.is_some());
        Self {
            keys: RwLock::new(keys),
            buckets: Mutex::new(KeyedBuckets::default()),
            any_rate: AtomicBool::new(any_rate),
            counters,
        }
    }

    fn keys(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, LimitConfig>> {
        // A plain map of settings: nothing a panicking writer could leave half-done.
        self.keys.read().unwrap_or_else(|e| e.into_inner())
    }

    fn buckets(&self) -> std::sync::MutexGuard<'_, KeyedBuckets> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets (replaces) the limits of `key`.
    pub fn set(&self, key: String, limit: LimitConfig) {
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        keys.insert(key, limit);
        self.any_rate
            .store(keys.values().any(|l| l.rate.is_some()), Ordering::SeqCst);
    }

    /// Every configured key, by key.
    pub fn list(&self) -> Vec<Limit> {
        let mut out: Vec<Limit> = self.keys().iter().map(|(k, l)| view(k, l)).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }

    pub fn get(&self, key: &str) -> Option<Limit> {
        self.keys().get(key).map(|l| view(key, l))
    }

    /// The gate of one claim: the shared limits, wrapped (when some key has a rate) so the
    /// claimer learns when a refused token comes.
    pub fn gate(self: &Arc<Self>) -> (Arc<dyn DispatchGate>, Option<Arc<ClaimGate>>) {
        if !self.any_rate.load(Ordering::Relaxed) {
            return (self.clone(), None);
        }
        let gate = Arc::new(ClaimGate {
            limits: self.clone(),
            retry_at: AtomicI64::new(i64::MAX),
        });
        (gate.clone(), Some(gate))
    }

    /// Forgets buckets that are full again.
    pub fn prune(&self, now: Timestamp) {
        self.buckets().prune(now);
    }

    /// Takes a token, or says in how many milliseconds one comes.
    fn try_take(&self, key: &str, now: Timestamp) -> Result<(), u64> {
        let Some(rate) = self.keys().get(key).and_then(|l| l.rate) else {
            return Ok(());
        };
        let taken = self.buckets().try_acquire(key, rate, now);
        if taken.is_err() {
            Counters::add(&self.counters.dispatch_rate_limited, 1);
        }
        taken
    }
}

fn view(key: &str, l: &LimitConfig) -> Limit {
    Limit {
        key: key.to_owned(),
        rate_per_minute: l.rate.map(|r| r.rate_per_minute),
        burst: l.rate.map(|r| r.burst),
        max_concurrent: l.max_concurrent,
    }
}

impl DispatchGate for Limits {
    fn max_concurrent(&self, key: &str) -> u64 {
        self.keys()
            .get(key)
            .and_then(|l| l.max_concurrent)
            .unwrap_or(DEFAULT_MAX_CONCURRENT)
    }

    fn take_rate_token(&self, key: &str, now: Timestamp) -> bool {
        self.try_take(key, now).is_ok()
    }
}

/// The gate of one claim: remembers the earliest moment a refused token becomes available.
#[derive(Debug)]
pub struct ClaimGate {
    limits: Arc<Limits>,
    /// Milliseconds since the epoch; `i64::MAX` while no token was refused.
    retry_at: AtomicI64,
}

impl ClaimGate {
    /// When a token refused since the last call comes, if one was refused.
    pub fn take_retry_at(&self) -> Option<Timestamp> {
        match self.retry_at.swap(i64::MAX, Ordering::SeqCst) {
            i64::MAX => None,
            ms => Some(Timestamp::from_millis(ms)),
        }
    }
}

impl DispatchGate for ClaimGate {
    fn max_concurrent(&self, key: &str) -> u64 {
        self.limits.max_concurrent(key)
    }

    fn take_rate_token(&self, key: &str, now: Timestamp) -> bool {
        match self.limits.try_take(key, now) {
            Ok(()) => true,
            Err(wait_ms) => {
                let at = now.add_millis(wait_ms).as_millis();
                self.retry_at.fetch_min(at, Ordering::SeqCst);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use agentyard_core::flow::RateLimit;

    use super::*;

    fn limits() -> Arc<Limits> {
        let mut config = BTreeMap::new();
        config.insert(
            "openai".to_owned(),
            LimitConfig {
                rate: Some(RateLimit {
                    rate_per_minute: 60,
                    burst: 2,
                }),
                max_concurrent: None,
            },
        );
        config.insert(
            "repo".to_owned(),
            LimitConfig {
                rate: None,
                max_concurrent: Some(3),
            },
        );
        Arc::new(Limits::new(&config, Arc::new(Counters::default())))
    }

    #[test]
    fn unconfigured_keys_run_one_at_a_time_and_are_not_rate_limited() {
        let l = limits();
        assert_eq!(l.max_concurrent("anything"), DEFAULT_MAX_CONCURRENT);
        assert_eq!(l.max_concurrent("repo"), 3);
        let now = Timestamp::from_millis(1_000_000);
        assert!((0..100).all(|_| l.take_rate_token("anything", now)));
    }

    #[test]
    fn a_claim_gate_says_when_the_next_token_comes() {
        let l = limits();
        let now = Timestamp::from_millis(1_000_000);
        let (gate, hint) = l.gate();
        let hint = hint.expect("a rate is configured, so claims get a hint");
        assert!(gate.take_rate_token("openai", now));
        assert!(gate.take_rate_token("openai", now));
        assert_eq!(hint.take_retry_at(), None);
        assert!(!gate.take_rate_token("openai", now));
        assert_eq!(hint.take_retry_at(), Some(now.add_millis(1_000)));
        assert_eq!(hint.take_retry_at(), None, "taken once");
        assert_eq!(l.counters.dispatch_rate_limited.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn limits_change_at_run_time() {
        let l = Arc::new(Limits::new(&BTreeMap::new(), Arc::new(Counters::default())));
        assert!(l.gate().1.is_none(), "no rates, no per-claim hint");
        l.set(
            "x".into(),
            LimitConfig {
                rate: Some(RateLimit {
                    rate_per_minute: 1,
                    burst: 1,
                }),
                max_concurrent: Some(4),
            },
        );
        assert!(l.gate().1.is_some());
        assert_eq!(l.max_concurrent("x"), 4);
        assert_eq!(l.list().len(), 1);
        assert_eq!(l.get("x").unwrap().rate_per_minute, Some(1));
    }
}
