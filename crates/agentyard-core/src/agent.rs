//! Agents (workers): who they are, what they can do, and whether they are alive.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::{AgentName, Capability, Namespace};
use crate::time::Timestamp;

/// Whether an agent takes work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// Heartbeating and taking work.
    Active,
    /// Finishing what it holds; claims hand it nothing new.
    Draining,
    /// Missed its heartbeats; its leases were released.
    Gone,
}

impl AgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentStatus::Active => "active",
            AgentStatus::Draining => "draining",
            AgentStatus::Gone => "gone",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [AgentStatus::Active, AgentStatus::Draining, AgentStatus::Gone]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for AgentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Agent {
    pub name: AgentName,
    pub namespace: Namespace,
    pub capabilities: Vec<Capability>,
    /// Most tasks it runs at once.
    pub slots: u32,
    pub metadata: Value,
    pub status: AgentStatus,
    pub last_heartbeat: Timestamp,
    pub registered_at: Timestamp,
    /// Tasks it holds a lease on right now.
    pub running: u64,
    /// Inbox sequence it started at: broadcasts before it are not its business.
    pub inbox_start: u64,
    /// Everything up to this inbox sequence is acknowledged.
    pub inbox_cursor: u64,
    /// Registered by a claim in its name rather than by `PUT /v1/agents/{name}`: removed once it
    /// has been `gone` for the server's `--forget-gone-agents-after-ms`. Registering it makes it
    /// explicit, and an explicit agent is never removed but by `DELETE /v1/agents/{name}`.
    #[serde(default)]
    pub implicit: bool,
}

/// What registering (or re-registering) an agent sets.
#[derive(Debug, Clone, PartialEq)]
pub struct AgentRegistration {
    pub capabilities: Vec<Capability>,
    pub slots: u32,
    pub metadata: Value,
}

/// Slots an agent gets when it does not say.
pub const DEFAULT_SLOTS: u32 = 1;
