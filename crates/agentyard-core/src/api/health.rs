//! Wire shapes of `/health…`.

use super::*;

/// Why the server reports itself degraded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HealthReason {
    /// `queue` or `inbox`.
    pub kind: String,
    pub namespace: Namespace,
    /// The queue or the agent.
    pub name: String,
    pub depth: u64,
    pub limit: u64,
    pub detail: String,
}

/// `GET /health`, `/health/live`, `/health/ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    /// `ok`, `degraded` (some queue or inbox is at 80 % of its limit or more), `ready`, or
    /// `unavailable`.
    pub status: String,
    /// What is degraded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<HealthReason>,
}
