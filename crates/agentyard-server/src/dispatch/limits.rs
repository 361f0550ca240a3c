//! Keyed dispatch limits: the server's [`DispatchGate`]. A task's `rate_limit_key` draws a token
//! from its key's GCRA bucket (`openai` at 60/min with a burst), and its `concurrency_key` caps
//! how many such tasks run at once (one when not configured).
//!
//! A key's limits come from the store (set through `PUT /v1/limits/{key}`, per namespace, kept
//! across restarts and shared by every node) and, for keys the namespace never set, from the
//! configuration file. This cache of the stored ones is loaded at start and reloaded when another
//! node reports a change. The buckets live here on a store of one node; on a store shared by
//! several nodes they live in the store, so the rate holds for the whole fleet.
//!
//! A claim passes over tasks the gate refuses; they stay queued. A parked claimer that was
//! refused a token is told when the next one comes ([`ClaimGate::take_retry_at`]), so it retries
//! then instead of at its periodic re-check.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use agentyard_core::api::Limit;
use agentyard_core::flow::{KeyLimit, KeyedBuckets, RateLimit};
use agentyard_core::{Namespace, Timestamp};
use agentyard_store::{DEFAULT_MAX_CONCURRENT, DispatchGate, LimitStore, StoreError, StoredLimit};

use crate::metrics::Counters;

/// The limits in force and this node's buckets.
#[derive(Debug)]
pub struct Limits {
    /// From the configuration file: a key's limits in every namespace that did not set its own.
    configured: HashMap<String, KeyLimit>,
    /// As the store holds them, by namespace and key.
    stored: RwLock<HashMap<Namespace, HashMap<String, KeyLimit>>>,
    /// Keyed by `namespace \0 key`.
    buckets: Mutex<KeyedBuckets>,
    /// Whether any key has a rate: claims without rates need no per-claim bookkeeping.
    any_rate: AtomicBool,
    /// The store keeps the buckets (it is shared by several nodes).
    shared_buckets: AtomicBool,
    counters: Arc<Counters>,
}

impl Limits {
    pub fn new(config: &BTreeMap<String, KeyLimit>, counters: Arc<Counters>) -> Self {
        let configured: HashMap<String, KeyLimit> = config.iter().map(|(k, v)| (k.clone(), *v)).collect();
        let any_rate = configured.values().any(|l| l.rate.is_some());
        Self {
            configured,
            stored: RwLock::new(HashMap::new()),
            buckets: Mutex::new(KeyedBuckets::default()),
            any_rate: AtomicBool::new(any_rate),
            shared_buckets: AtomicBool::new(false),
            counters,
        }
    }

    fn stored(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Namespace, HashMap<String, KeyLimit>>> {
        // A plain map of settings: nothing a panicking writer could leave half-done.
        self.stored.read().unwrap_or_else(|e| e.into_inner())
    }

    fn stored_mut(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Namespace, HashMap<String, KeyLimit>>> {
        self.stored.write().unwrap_or_else(|e| e.into_inner())
    }

    fn buckets(&self) -> std::sync::MutexGuard<'_, KeyedBuckets> {
        self.buckets.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn refresh_any_rate(&self, stored: &HashMap<Namespace, HashMap<String, KeyLimit>>) {
        let any = self.configured.values().any(|l| l.rate.is_some())
            || stored.values().flat_map(HashMap::values).any(|l| l.rate.is_some());
        self.any_rate.store(any, Ordering::SeqCst);
    }

    /// Says that the store keeps the rate buckets (a store shared by several nodes).
    pub fn use_shared_buckets(&self, shared: bool) {
        self.shared_buckets.store(shared, Ordering::SeqCst);
    }

    /// Replaces the cache with what the store holds.
    pub async fn reload(&self, store: &dyn LimitStore) -> Result<(), StoreError> {
        let all = store.list_limits().await?;
        let mut map: HashMap<Namespace, HashMap<String, KeyLimit>> = HashMap::new();
        for StoredLimit { namespace, key, limit } in all {
            map.entry(namespace).or_default().insert(key, limit);
        }
        let mut stored = self.stored_mut();
        *stored = map;
        self.refresh_any_rate(&stored);
        Ok(())
    }

    /// Records a limit the store just took.
    pub fn set(&self, ns: &Namespace, key: String, limit: KeyLimit) {
        let mut stored = self.stored_mut();
        stored.entry(ns.clone()).or_default().insert(key, limit);
        self.refresh_any_rate(&stored);
    }

    /// Records a limit the store just removed.
    pub fn remove(&self, ns: &Namespace, key: &str) {
        let mut stored = self.stored_mut();
        if let Some(keys) = stored.get_mut(ns) {
            keys.remove(key);
            if keys.is_empty() {
                stored.remove(ns);
            }
        }
        self.refresh_any_rate(&stored);
    }

    /// The limits of `key` in force in the namespace, if any.
    pub fn lookup(&self, ns: &Namespace, key: &str) -> Option<KeyLimit> {
        self.stored()
            .get(ns)
            .and_then(|keys| keys.get(key))
            .or_else(|| self.configured.get(key))
            .copied()
    }

    /// Every key with limits in force in the namespace, by key.
    pub fn list(&self, ns: &Namespace) -> Vec<Limit> {
        let mut all: BTreeMap<&str, KeyLimit> = self.configured.iter().map(|(k, l)| (k.as_str(), *l)).collect();
        let stored = self.stored();
        if let Some(keys) = stored.get(ns) {
            all.extend(keys.iter().map(|(k, l)| (k.as_str(), *l)));
        }
        all.into_iter().map(|(k, l)| view(k, &l)).collect()
    }

    pub fn get(&self, ns: &Namespace, key: &str) -> Option<Limit> {
        self.lookup(ns, key).map(|l| view(key, &l))
    }

    /// The gate of one claim in the namespace, and (when some key has a rate) the handle that
    /// tells the claimer when a refused token comes.
    pub fn gate(self: &Arc<Self>, ns: &Namespace) -> (Arc<dyn DispatchGate>, Option<Arc<ClaimGate>>) {
        let gate = Arc::new(ClaimGate {
            limits: self.clone(),
            namespace: ns.clone(),
            retry_at: AtomicI64::new(i64::MAX),
        });
        let hint = self.any_rate.load(Ordering::Relaxed).then(|| gate.clone());
        (gate, hint)
    }

    /// Forgets buckets that are full again.
    pub fn prune(&self, now: Timestamp) {
        self.buckets().prune(now);
    }

    fn rate(&self, ns: &Namespace, key: &str) -> Option<RateLimit> {
        self.lookup(ns, key).and_then(|l| l.rate)
    }

    /// Takes a token from this node's bucket, or says in how many milliseconds one comes.
    fn try_take(&self, ns: &Namespace, key: &str, now: Timestamp) -> Result<(), u64> {
        let Some(rate) = self.rate(ns, key) else {
            return Ok(());
        };
        let bucket = format!("{ns}\0{key}");
        let taken = self.buckets().try_acquire(&bucket, rate, now);
        if taken.is_err() {
            Counters::add(&self.counters.dispatch_rate_limited, 1);
        }
        taken
    }
}

fn view(key: &str, l: &KeyLimit) -> Limit {
    Limit {
        key: key.to_owned(),
        rate_per_minute: l.rate.map(|r| r.rate_per_minute),
        burst: l.rate.map(|r| r.burst),
        max_concurrent: l.max_concurrent,
    }
}

/// The gate of one claim: the limits of its namespace, and the earliest moment a refused token
/// becomes available.
#[derive(Debug)]
pub struct ClaimGate {
    limits: Arc<Limits>,
    namespace: Namespace,
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
        self.limits
            .lookup(&self.namespace, key)
            .and_then(|l| l.max_concurrent)
            .unwrap_or(DEFAULT_MAX_CONCURRENT)
    }

    fn take_rate_token(&self, key: &str, now: Timestamp) -> bool {
        match self.limits.try_take(&self.namespace, key, now) {
            Ok(()) => true,
            Err(wait_ms) => {
                let at = now.add_millis(wait_ms).as_millis();
                self.retry_at.fetch_min(at, Ordering::SeqCst);
                false
            }
        }
    }

    fn shared_rate(&self, key: &str) -> Option<RateLimit> {
        if self.limits.shared_buckets.load(Ordering::Relaxed) {
            self.limits.rate(&self.namespace, key)
        } else {
            None
        }
    }

    fn rate_refused(&self, _key: &str, retry_at: Timestamp) {
        Counters::add(&self.limits.counters.dispatch_rate_limited, 1);
        self.retry_at.fetch_min(retry_at.as_millis(), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(name: &str) -> Namespace {
        Namespace::parse(name).expect("valid")
    }

    fn limits() -> Arc<Limits> {
        let mut config = BTreeMap::new();
        config.insert(
            "openai".to_owned(),
            KeyLimit {
                rate: Some(RateLimit {
                    rate_per_minute: 60,
                    burst: 2,
                }),
                max_concurrent: None,
            },
        );
        config.insert(
            "repo".to_owned(),
            KeyLimit {
                rate: None,
                max_concurrent: Some(3),
            },
        );
        Arc::new(Limits::new(&config, Arc::new(Counters::default())))
    }

    #[test]
    fn unconfigured_keys_run_one_at_a_time_and_are_not_rate_limited() {
        let l = limits();
        let (gate, _) = l.gate(&ns("default"));
        assert_eq!(gate.max_concurrent("anything"), DEFAULT_MAX_CONCURRENT);
        assert_eq!(gate.max_concurrent("repo"), 3);
        let now = Timestamp::from_millis(1_000_000);
        assert!((0..100).all(|_| gate.take_rate_token("anything", now)));
    }

    #[test]
    fn a_claim_gate_says_when_the_next_token_comes() {
        let l = limits();
        let now = Timestamp::from_millis(1_000_000);
        let (gate, hint) = l.gate(&ns("default"));
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
    fn stored_limits_are_per_namespace_and_win_over_the_file() {
        let l = limits();
        l.set(
            &ns("tenant-a"),
            "repo".into(),
            KeyLimit {
                rate: None,
                max_concurrent: Some(8),
            },
        );
        let (a, _) = l.gate(&ns("tenant-a"));
        let (b, _) = l.gate(&ns("tenant-b"));
        assert_eq!(a.max_concurrent("repo"), 8);
        assert_eq!(
            b.max_concurrent("repo"),
            3,
            "the file's value where the namespace set none"
        );
        // Buckets are per namespace too: tenant-a spending its burst leaves tenant-b's alone.
        let now = Timestamp::from_millis(1_000_000);
        assert!(a.take_rate_token("openai", now) && a.take_rate_token("openai", now));
        assert!(!a.take_rate_token("openai", now));
        assert!(b.take_rate_token("openai", now));
        l.remove(&ns("tenant-a"), "repo");
        assert_eq!(a.max_concurrent("repo"), 3);
        assert_eq!(l.list(&ns("tenant-a")).len(), 2);
    }

    #[test]
    fn shared_buckets_leave_the_rate_to_the_store() {
        let l = limits();
        let (gate, hint) = l.gate(&ns("default"));
        assert_eq!(gate.shared_rate("openai"), None, "this node's buckets");
        l.use_shared_buckets(true);
        assert_eq!(gate.shared_rate("openai").map(|r| r.rate_per_minute), Some(60));
        assert_eq!(gate.shared_rate("other"), None);
        let at = Timestamp::from_millis(5_000);
        gate.rate_refused("openai", at);
        assert_eq!(hint.expect("rates").take_retry_at(), Some(at));
    }
}
