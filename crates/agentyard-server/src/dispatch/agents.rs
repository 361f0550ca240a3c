//! Agent liveness: [`Presence`], what this server remembers of each agent between store writes,
//! and the loop ([`AgentExpiry`]) that marks silent agents `gone` and hands their leased tasks
//! to others, and removes implicit agents (registered by a claim) gone for
//! [`crate::config::ServerConfig::forget_gone_agents_after_ms`], so agents that came and went
//! do not pile up.
//!
//! Every request in an agent's name is a sign of life, but writing each one through to the store
//! would cost a write per claim. The store's heartbeat is moved at most once per
//! [`Presence::touch_every_ms`] per agent; in between, the remembered status (active, draining)
//! answers. Agents parked in a long poll are signs of life too: the loop writes their heartbeat
//! before it looks for silent agents, so a patient claimer is never taken for a dead one.

use std::collections::HashMap;
use std::future::Future;
use std::hash::BuildHasher;
use std::pin::pin;
use std::sync::Mutex;
use std::time::Duration;

use agentyard_core::agent::{Agent, AgentStatus};
use agentyard_core::{AgentName, Namespace, Task, Timestamp};
use agentyard_store::{AgentOptions, StoreError};

use crate::metrics::Counters;
use crate::state::AppState;

const SHARDS: usize = 16;
/// Longest pause after failing ticks.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(5);
/// How often the loop forgets state it no longer needs (full buckets, long-gone agents).
const PRUNE_EVERY_MS: u64 = 10_000;
/// A `gone` agent not heard of for this long is forgotten by [`Presence`] (not by the store).
const FORGET_GONE_AFTER_MS: u64 = 600_000;
/// Most agents one tick removes from the store: a backlog drains over a few ticks, and no tick
/// holds the store for long.
pub const FORGET_BATCH: usize = 100;

#[derive(Debug, Clone, Copy)]
struct Seen {
    /// When its heartbeat was last written to the store (ms since the epoch).
    written_ms: i64,
    status: AgentStatus,
    /// Requests of this agent waiting in a long poll right now.
    parked: u32,
}

type Shard = HashMap<Namespace, HashMap<AgentName, Seen>>;

/// What this server knows of its agents' liveness. See the module docs.
pub struct Presence {
    shards: [Mutex<Shard>; SHARDS],
    hasher: std::hash::RandomState,
    touch_every_ms: i64,
}

impl Presence {
    /// Moves heartbeats in the store at most every `min(1 s, timeout / 4)`.
    pub fn new(agent_timeout_ms: u64) -> Self {
        let every = (agent_timeout_ms / 4).clamp(1, 1_000);
        Self {
            shards: std::array::from_fn(|_| Mutex::new(HashMap::new())),
            hasher: std::hash::RandomState::new(),
            touch_every_ms: i64::try_from(every).unwrap_or(1_000),
        }
    }

    pub fn touch_every_ms(&self) -> u64 {
        self.touch_every_ms.unsigned_abs()
    }

    fn shard(&self, name: &AgentName) -> std::sync::MutexGuard<'_, Shard> {
        let i = (self.hasher.hash_one(name) as usize) % SHARDS;
        // Plain maps: a panicking holder cannot leave them in a state worse than stale.
        self.shards[i].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The agent's status if its heartbeat was written recently enough that this request need
    /// not write it again; `None` when the caller must touch the store (unknown, stale, gone).
    pub fn fresh_status(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Option<AgentStatus> {
        let shard = self.shard(name);
        let seen = shard.get(ns)?.get(name)?;
        let fresh = now.as_millis().saturating_sub(seen.written_ms) < self.touch_every_ms;
        (fresh && seen.status != AgentStatus::Gone).then_some(seen.status)
    }

    /// The agent's remembered status, however old.
    pub fn status(&self, ns: &Namespace, name: &AgentName) -> Option<AgentStatus> {
        self.shard(name).get(ns)?.get(name).map(|seen| seen.status)
    }

    /// Remembers the agent as the store just returned it (its heartbeat written at `now`).
    pub fn record(&self, agent: &Agent, now: Timestamp) {
        let mut shard = self.shard(&agent.name);
        let agents = match shard.get_mut(&agent.namespace) {
            Some(agents) => agents,
            None => shard.entry(agent.namespace.clone()).or_default(),
        };
        match agents.get_mut(&agent.name) {
            Some(seen) => {
                seen.written_ms = now.as_millis();
                seen.status = agent.status;
            }
            None => {
                agents.insert(
                    agent.name.clone(),
                    Seen {
                        written_ms: now.as_millis(),
                        status: agent.status,
                        parked: 0,
                    },
                );
            }
        }
    }

    /// Changes the remembered status (drained, expired) without touching the heartbeat.
    pub fn set_status(&self, ns: &Namespace, name: &AgentName, status: AgentStatus) {
        if let Some(seen) = self.shard(name).get_mut(ns).and_then(|a| a.get_mut(name)) {
            seen.status = status;
        }
    }

    pub fn forget(&self, ns: &Namespace, name: &AgentName) {
        let mut shard = self.shard(name);
        if let Some(agents) = shard.get_mut(ns) {
            agents.remove(name);
            if agents.is_empty() {
                shard.remove(ns);
            }
        }
    }

    /// Counts the agent as alive while it waits in a long poll; [`Presence::unpark`] ends it
    /// (see [`crate::state::Fleet::park`] for a guard).
    pub fn park(&self, ns: &Namespace, name: &AgentName) {
        if let Some(seen) = self.shard(name).get_mut(ns).and_then(|a| a.get_mut(name)) {
            seen.parked += 1;
        }
    }

    pub fn unpark(&self, ns: &Namespace, name: &AgentName) {
        if let Some(seen) = self.shard(name).get_mut(ns).and_then(|a| a.get_mut(name)) {
            seen.parked = seen.parked.saturating_sub(1);
        }
    }

    /// Parked agents whose heartbeat in the store is older than the touch interval.
    fn due_parked(&self, now: Timestamp) -> Vec<(Namespace, AgentName)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for (ns, agents) in shard.iter() {
                for (name, seen) in agents {
                    if seen.parked > 0 && now.as_millis().saturating_sub(seen.written_ms) >= self.touch_every_ms {
                        out.push((ns.clone(), name.clone()));
                    }
                }
            }
        }
        out
    }

    /// Every namespace some agent of which this server has seen.
    pub fn namespaces(&self) -> Vec<Namespace> {
        let mut out: Vec<Namespace> = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(shard.keys().cloned());
        }
        out.sort();
        out.dedup();
        out
    }

    fn prune(&self, now: Timestamp) {
        for shard in &self.shards {
            let mut shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            for agents in shard.values_mut() {
                agents.retain(|_, seen| {
                    seen.status != AgentStatus::Gone
                        || seen.parked > 0
                        || now.as_millis().saturating_sub(seen.written_ms) < FORGET_GONE_AFTER_MS as i64
                });
            }
            shard.retain(|_, agents| !agents.is_empty());
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentTick {
    /// Heartbeats written for agents waiting in long polls.
    pub touched: usize,
    /// Agents newly marked `gone`.
    pub gone: Vec<AgentName>,
    /// Tasks they held, released for others.
    pub released: Vec<Task>,
    /// Implicit agents removed for having been gone too long.
    pub forgotten: Vec<AgentName>,
}

/// The loop marking silent agents `gone`. [`AgentExpiry::tick`] runs one pass.
pub struct AgentExpiry {
    state: AppState,
}

impl AgentExpiry {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Writes the heartbeats of parked agents, then marks agents silent for `agent_timeout_ms`
    /// as `gone`, releases their leases and wakes the claimers of the queues that got tasks back;
    /// then removes up to [`FORGET_BATCH`] implicit agents gone for `forget_gone_agents_after_ms`
    /// (silent for the agent timeout and that much more).
    pub async fn tick(&self) -> Result<AgentTick, StoreError> {
        let s = &self.state;
        let presence = &s.fleet.presence;
        let now = s.clock.now();
        let mut tick = AgentTick::default();
        for (ns, name) in presence.due_parked(now) {
            let options = AgentOptions {
                max_agents: s.config.max_agents_in(&ns),
            };
            match s.store.touch_agent(&ns, &name, None, options, now).await {
                Ok(agent) => {
                    presence.record(&agent, now);
                    tick.touched += 1;
                }
                Err(e) => tracing::debug!(error = %e, agent = %name, "cannot write a parked agent's heartbeat"),
            }
        }
        for (agent, released) in s.store.expire_agents(now, s.config.agent_timeout_ms).await? {
            presence.set_status(&agent.namespace, &agent.name, AgentStatus::Gone);
            tracing::info!(
                agent = %agent.name,
                namespace = %agent.namespace,
                released = released.len(),
                "agent stopped heartbeating: gone"
            );
            s.dispatch.tasks_changed(&released);
            s.counters.tasks.lease_revoked(&released);
            tick.gone.push(agent.name);
            tick.released.extend(released);
        }
        Counters::add(&s.counters.agents_expired, tick.gone.len() as u64);
        self.forget(now, &mut tick).await?;
        Ok(tick)
    }

    /// Removes implicit agents gone for longer than the setting, as `DELETE /v1/agents/{name}`
    /// does (a gone agent holds no lease, but one it somehow kept is released all the same).
    async fn forget(&self, now: Timestamp, tick: &mut AgentTick) -> Result<(), StoreError> {
        let s = &self.state;
        let after = s.config.forget_gone_agents_after_ms;
        if after == 0 {
            return Ok(());
        }
        let silence = i64::try_from(s.config.agent_timeout_ms.saturating_add(after)).unwrap_or(i64::MAX);
        let silent_since = Timestamp::from_millis(now.as_millis().saturating_sub(silence));
        for (agent, released) in s.store.forget_agents(now, silent_since, FORGET_BATCH).await? {
            s.fleet.presence.forget(&agent.namespace, &agent.name);
            tracing::info!(
                agent = %agent.name,
                namespace = %agent.namespace,
                last_heartbeat = %agent.last_heartbeat,
                "implicit agent gone too long: removed"
            );
            s.dispatch.tasks_changed(&released);
            s.counters.tasks.lease_revoked(&released);
            tick.forgotten.push(agent.name);
            tick.released.extend(released);
        }
        Counters::add(&s.counters.agents_forgotten, tick.forgotten.len() as u64);
        Ok(())
    }

    /// How often the loop ticks: often enough that an agent is declared gone at most a quarter
    /// of its timeout late.
    pub fn interval(&self) -> Duration {
        Duration::from_millis((self.state.config.agent_timeout_ms / 4).clamp(10, 1_000))
    }

    /// Ticks until `shutdown` completes; store errors are logged and retried with backoff.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let interval = self.interval();
        let mut failures: u32 = 0;
        let mut last_prune = self.state.clock.now();
        loop {
            let pause = match self.tick().await {
                Ok(_) => {
                    failures = 0;
                    interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause =
                        Duration::from_millis(100u64.saturating_mul(1 << failures.min(10))).min(MAX_ERROR_BACKOFF);
                    tracing::warn!(error = %e, failures, "agent expiry loop: store call failed");
                    pause.max(interval)
                }
            };
            let now = self.state.clock.now();
            if now.millis_since(last_prune) >= PRUNE_EVERY_MS {
                let fleet = &self.state.fleet;
                fleet.presence.prune(now);
                fleet.agent_rates.prune(now);
                fleet.limits.prune(now);
                self.state.dispatch.inboxes.prune();
                last_prune = now;
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::debug!("agent expiry loop stopped");
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn agent(name: &str, status: AgentStatus) -> Agent {
        let t = Timestamp::from_millis(0);
        Agent {
            name: AgentName::parse(name).unwrap(),
            namespace: Namespace::default(),
            capabilities: Vec::new(),
            slots: 1,
            metadata: Value::Null,
            status,
            last_heartbeat: t,
            registered_at: t,
            running: 0,
            inbox_start: 0,
            inbox_cursor: 0,
            implicit: true,
        }
    }

    #[test]
    fn the_store_is_touched_at_most_once_per_interval() {
        let p = Presence::new(30_000);
        assert_eq!(p.touch_every_ms(), 1_000);
        let a = agent("a", AgentStatus::Active);
        let ns = Namespace::default();
        let t0 = Timestamp::from_millis(10_000);
        assert_eq!(p.fresh_status(&ns, &a.name, t0), None, "unknown: touch");
        p.record(&a, t0);
        assert_eq!(
            p.fresh_status(&ns, &a.name, t0.add_millis(999)),
            Some(AgentStatus::Active)
        );
        assert_eq!(p.fresh_status(&ns, &a.name, t0.add_millis(1_000)), None, "stale: touch");
        p.set_status(&ns, &a.name, AgentStatus::Draining);
        assert_eq!(p.fresh_status(&ns, &a.name, t0), Some(AgentStatus::Draining));
        p.set_status(&ns, &a.name, AgentStatus::Gone);
        assert_eq!(p.fresh_status(&ns, &a.name, t0), None, "gone: touch revives");
        p.forget(&ns, &a.name);
        assert!(p.namespaces().is_empty());
    }

    #[test]
    fn parked_agents_are_due_for_a_heartbeat() {
        let p = Presence::new(400);
        assert_eq!(p.touch_every_ms(), 100);
        let a = agent("patient", AgentStatus::Active);
        let ns = Namespace::default();
        let t0 = Timestamp::from_millis(10_000);
        p.record(&a, t0);
        p.park(&ns, &a.name);
        assert!(p.due_parked(t0.add_millis(50)).is_empty());
        assert_eq!(p.due_parked(t0.add_millis(100)).len(), 1);
        p.unpark(&ns, &a.name);
        assert!(p.due_parked(t0.add_millis(100)).is_empty());
    }
}
