//! The state every handler and loop shares: the store, the clock, the settings, the dispatcher,
//! what the server keeps in memory about its fleet, and the counters.

use std::sync::Arc;

use agentyard_core::{AgentName, Clock, Namespace};
use agentyard_store::Yard;

use crate::api::agent_rate::AgentRates;
use crate::api::health::HealthCache;
use crate::api::messages::AgentCounts;
use crate::auth::TokenCache;
use crate::config::ServerConfig;
use crate::dispatch::{Dispatch, Limits, Presence};
use crate::metrics::Counters;

/// Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct AppState {
    /// Tasks, agents and messages.
    pub store: Arc<dyn Yard>,
    pub clock: Arc<dyn Clock>,
    pub config: Arc<ServerConfig>,
    pub dispatch: Arc<Dispatch>,
    pub fleet: Arc<Fleet>,
    pub counters: Arc<Counters>,
    /// API tokens looked up recently (used when auth is on).
    pub tokens: Arc<TokenCache>,
    /// Webhook deliveries this node makes.
    pub webhooks: Arc<crate::dispatch::Webhooks>,
}

/// What the server keeps in memory about its agents: liveness between heartbeat writes, API
/// rate buckets, keyed dispatch limits, and the last health verdict.
pub struct Fleet {
    pub presence: Presence,
    pub agent_rates: AgentRates,
    pub limits: Arc<Limits>,
    pub health: HealthCache,
    /// Agents per namespace, for the broadcast fan-out counter.
    pub agent_counts: AgentCounts,
}

impl Fleet {
    /// Counts the agent as alive until the guard drops (a long poll or a stream in its name).
    pub fn park(self: &Arc<Self>, ns: &Namespace, name: &AgentName) -> ParkedAgent {
        self.presence.park(ns, name);
        ParkedAgent {
            fleet: self.clone(),
            ns: ns.clone(),
            name: name.clone(),
        }
    }
}

/// See [`Fleet::park`].
pub struct ParkedAgent {
    fleet: Arc<Fleet>,
    ns: Namespace,
    name: AgentName,
}

impl Drop for ParkedAgent {
    fn drop(&mut self) {
        self.fleet.presence.unpark(&self.ns, &self.name);
    }
}

impl AppState {
    pub fn new(store: Arc<dyn Yard>, clock: Arc<dyn Clock>, config: ServerConfig) -> Self {
        let counters = Arc::new(Counters::default());
        let fleet = Fleet {
            presence: Presence::new(config.agent_timeout_ms),
            agent_rates: AgentRates::default(),
            limits: Arc::new(Limits::new(&config.limits, counters.clone())),
            health: HealthCache::default(),
            agent_counts: AgentCounts::default(),
        };
        let webhooks = Arc::new(crate::dispatch::Webhooks::new(config.webhooks.timeout));
        Self {
            store,
            clock,
            webhooks,
            config: Arc::new(config),
            dispatch: Arc::new(Dispatch::new()),
            fleet: Arc::new(fleet),
            counters,
            tokens: Arc::new(TokenCache::default()),
        }
    }
}
