//! Reads shared by `/metrics`, `/health` and `/health/detailed`: the namespaces the server knows
//! of, how full the inboxes of a namespace are, and how long the store takes to answer.

use std::time::{Duration, Instant};

use agentyard_core::{AgentName, Namespace, Timestamp};
use agentyard_store::StoreError;

use crate::state::AppState;

/// Most agents per namespace whose inbox depth one reading checks: each is a store read.
pub const MAX_INBOXES_CHECKED: usize = 1_000;

/// The namespaces the server reports on: `default`, the configured ones and those of agents it
/// has seen (the store has no list of namespaces).
pub fn known_namespaces(s: &AppState) -> Vec<Namespace> {
    let mut namespaces = vec![Namespace::default()];
    namespaces.extend(s.config.namespaces.keys().cloned());
    namespaces.extend(s.fleet.presence.namespaces());
    namespaces.sort();
    namespaces.dedup();
    namespaces
}

/// The inboxes of one namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InboxPressure {
    /// Agents whose inbox was read (at most [`MAX_INBOXES_CHECKED`]).
    pub agents: usize,
    /// Unacknowledged messages over those inboxes.
    pub total: u64,
    /// Each agent read with its depth, deepest first.
    pub depths: Vec<(AgentName, u64)>,
}

impl InboxPressure {
    pub fn deepest(&self) -> u64 {
        self.depths.first().map_or(0, |(_, d)| *d)
    }
}

/// Reads the inbox depth of the namespace's agents (the first [`MAX_INBOXES_CHECKED`]).
pub async fn inboxes(s: &AppState, ns: &Namespace, now: Timestamp) -> Result<InboxPressure, StoreError> {
    let mut p = InboxPressure::default();
    for agent in s.store.list_agents(ns).await?.into_iter().take(MAX_INBOXES_CHECKED) {
        let depth = s.store.inbox_depth(ns, &agent.name, now).await?;
        p.agents += 1;
        p.total = p.total.saturating_add(depth);
        p.depths.push((agent.name, depth));
    }
    p.depths.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(p)
}

/// How long the store takes to answer a small read (the next timer wake-up).
pub async fn store_round_trip(s: &AppState) -> Result<Duration, StoreError> {
    let started = Instant::now();
    s.store.next_wakeup().await?;
    Ok(started.elapsed())
}
