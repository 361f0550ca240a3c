//! Wire shapes of `/v1/agents…`: registration, the agent list, removal; and the bounds agents share.

use super::*;

/// Most slots an agent may declare.
pub const MAX_SLOTS: u32 = 10_000;
/// Most capabilities an agent or a task may name.
pub const MAX_CAPABILITIES: usize = 64;
/// Longest message time-to-live: thirty days.
pub const MAX_TTL_MS: u64 = 30 * 24 * 3_600_000;
/// Most messages one inbox read returns, and the default.
pub const MAX_INBOX_PAGE: usize = 1_000;
pub const DEFAULT_INBOX_PAGE: usize = 100;

/// `PUT /v1/agents/{name}`: registers the agent, or replaces its registration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RegisterAgentRequest {
    /// Labels of what it can do (at most 64); tasks requiring capabilities go only to agents offering them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub capabilities: Option<Vec<Capability>>,
    /// Most tasks it runs at once (1–10000, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 10_000))]
    pub slots: Option<u32>,
    /// Anything the operator wants to see next to it (a JSON value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

impl RegisterAgentRequest {
    pub fn into_registration(self) -> Result<AgentRegistration, FieldError> {
        let mut capabilities = self.capabilities.unwrap_or_default();
        if capabilities.len() > MAX_CAPABILITIES {
            return Err(FieldError::new(
                "capabilities",
                format!("at most {MAX_CAPABILITIES} capabilities"),
            ));
        }
        capabilities.sort();
        capabilities.dedup();
        let slots = self.slots.unwrap_or(DEFAULT_SLOTS);
        if !(1..=MAX_SLOTS).contains(&slots) {
            return Err(FieldError::new("slots", format!("must be between 1 and {MAX_SLOTS}")));
        }
        Ok(AgentRegistration {
            capabilities,
            slots,
            metadata: self.metadata.unwrap_or(Value::Null),
        })
    }
}

/// `GET /v1/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AgentList {
    /// By name.
    pub agents: Vec<Agent>,
    /// Pass as `cursor` to get the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `DELETE /v1/agents/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RemovedAgent {
    pub agent: AgentName,
    /// Tasks it held, released back to their queues (or dead-lettered when out of attempts).
    pub released: Vec<TaskId>,
}
