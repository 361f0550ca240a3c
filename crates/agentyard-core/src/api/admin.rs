//! `POST /v1/admin/prune`: the retention pass, on demand.

use serde::{Deserialize, Serialize};

/// What a prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PruneResult {
    /// Finished tasks (succeeded, dead-lettered, cancelled).
    pub tasks: u64,
    pub events: u64,
    /// Messages acknowledged by everyone they are for, or expired.
    pub messages: u64,
    /// Idempotency keys freed (their tasks and messages stay).
    pub idempotency_keys: u64,
}
