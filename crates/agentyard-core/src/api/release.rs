//! `POST /v1/tasks/{id}/release`: the lease holder gives a task back untried.

use serde::{Deserialize, Serialize};

use super::{FieldError, MAX_DELAY_MS};
use crate::id::LeaseToken;

/// Body of `POST /v1/tasks/{id}/release`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReleaseRequest {
    pub lease_token: LeaseToken,
    /// Claimable again only after this many milliseconds (default: at once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 31_536_000_000_u64))]
    pub delay_ms: Option<u64>,
}

impl ReleaseRequest {
    pub fn new(lease_token: LeaseToken) -> Self {
        Self {
            lease_token,
            delay_ms: None,
        }
    }

    pub fn check(&self) -> Result<(), FieldError> {
        match self.delay_ms {
            Some(d) if d > MAX_DELAY_MS => Err(FieldError::new(
                "delay_ms",
                format!("must be at most {MAX_DELAY_MS} (one year)"),
            )),
            _ => Ok(()),
        }
    }
}
