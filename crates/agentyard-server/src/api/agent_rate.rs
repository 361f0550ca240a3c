//! Per-agent API rate limits: one token bucket (GCRA, from core) per agent a request names — a
//! claim's `agent`, a message's `from`, an agent route's `{name}`. An agent over its rate gets
//! 429 with `Retry-After`; other agents' buckets are untouched, so a flooding agent slows only
//! itself. Buckets live in sharded maps so agents rarely share a lock.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;

use agentyard_core::flow::{RateLimit, TokenBucket};
use agentyard_core::{AgentName, Namespace, Timestamp};

use crate::api::error::ApiError;
use crate::config::ServerConfig;

const SHARDS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct Entry {
    bucket: TokenBucket,
    /// Last request (ms since the epoch): a bucket idle long enough to be full is forgotten.
    used_ms: i64,
}

type Shard = HashMap<Namespace, HashMap<AgentName, Entry>>;

/// Every agent's bucket.
pub struct AgentRates {
    shards: [Mutex<Shard>; SHARDS],
    hasher: std::hash::RandomState,
}

impl Default for AgentRates {
    fn default() -> Self {
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: std::hash::RandomState::new(),
        }
    }
}

impl AgentRates {
    fn shard(&self, name: &AgentName) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(name) as usize) % SHARDS;
        // Plain buckets: a panicking holder leaves at worst one bucket a token off.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes one token of the agent's bucket, or refuses the request with 429.
    pub fn check(
        &self,
        config: &ServerConfig,
        ns: &Namespace,
        agent: &AgentName,
        now: Timestamp,
    ) -> Result<(), ApiError> {
        let Some(limit) = config.agent_rate_in(ns) else {
            return Ok(());
        };
        self.take(limit, ns, agent, now)
            .map_err(|retry_after_ms| ApiError::RateLimited {
                agent: agent.to_string(),
                rate_per_minute: limit.rate_per_minute,
                burst: limit.burst,
                retry_after_ms,
            })
    }

    fn take(&self, limit: RateLimit, ns: &Namespace, agent: &AgentName, now: Timestamp) -> Result<(), u64> {
        let mut shard = self.shard(agent);
        let agents = match shard.get_mut(ns) {
            Some(agents) => agents,
            None => shard.entry(ns.clone()).or_default(),
        };
        let entry = match agents.get_mut(agent) {
            Some(entry) => entry,
            None => agents.entry(agent.clone()).or_insert(Entry {
                bucket: TokenBucket::new(limit),
                used_ms: now.as_millis(),
            }),
        };
        if entry.bucket.limit() != limit {
            entry.bucket.set_limit(limit);
        }
        entry.used_ms = now.as_millis();
        entry.bucket.try_acquire(now)
    }

    /// Forgets buckets idle long enough to have refilled.
    pub fn prune(&self, now: Timestamp) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for agents in shard.values_mut() {
                agents.retain(|_, e| {
                    let l = e.bucket.limit();
                    let refill_ms = 60_000 * i64::from(l.burst) / i64::from(l.rate_per_minute.max(1));
                    now.as_millis().saturating_sub(e.used_ms) <= refill_ms
                });
            }
            shard.retain(|_, agents| !agents.is_empty());
        }
    }

    /// How many buckets are kept.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .values()
                    .map(HashMap::len)
                    .sum::<usize>()
            })
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_agent_over_its_rate_does_not_slow_another() {
        let config = ServerConfig {
            agent_rate: Some(RateLimit {
                rate_per_minute: 60,
                burst: 3,
            }),
            ..ServerConfig::default()
        };
        let rates = AgentRates::default();
        let ns = Namespace::default();
        let (flood, calm) = (AgentName::parse("flood").unwrap(), AgentName::parse("calm").unwrap());
        let now = Timestamp::from_millis(1_000_000);
        for _ in 0..3 {
            rates.check(&config, &ns, &flood, now).unwrap();
        }
        match rates.check(&config, &ns, &flood, now) {
            Err(ApiError::RateLimited { retry_after_ms, .. }) => assert_eq!(retry_after_ms, 1_000),
            other => panic!("expected a rate limit, got {other:?}"),
        }
        rates.check(&config, &ns, &calm, now).unwrap();
        assert_eq!(rates.len(), 2);
        rates.prune(now.add_millis(3_001));
        assert!(rates.is_empty(), "refilled buckets are forgotten");
    }

    #[test]
    fn a_namespace_can_lift_the_limit() {
        let team = Namespace::parse("team").unwrap();
        let mut config = ServerConfig {
            agent_rate: Some(RateLimit {
                rate_per_minute: 1,
                burst: 1,
            }),
            ..ServerConfig::default()
        };
        config.namespaces.insert(
            team.clone(),
            crate::config::NamespaceConfig {
                agent_rate: Some(None),
                ..Default::default()
            },
        );
        let rates = AgentRates::default();
        let a = AgentName::parse("a").unwrap();
        let now = Timestamp::from_millis(0);
        for _ in 0..10 {
            rates.check(&config, &team, &a, now).unwrap();
        }
        rates.check(&config, &Namespace::default(), &a, now).unwrap();
        assert!(rates.check(&config, &Namespace::default(), &a, now).is_err());
    }
}
