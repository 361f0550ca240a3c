//! Webhooks: an HTTP endpoint that receives the events of one namespace (all, or those of some
//! types), signed, in order, at least once.

use serde::{Deserialize, Serialize};

use crate::event::EventType;
use crate::names::Namespace;
use crate::time::Timestamp;

/// A registered webhook as the API shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    pub id: String,
    pub namespace: Namespace,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The event types it receives; every type when empty.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub types: Vec<EventType>,
    pub created_at: Timestamp,
    /// The seq of the last event delivered (or, before the first, of the last event logged when
    /// it was made: a webhook receives what happens after it exists).
    pub cursor: u64,
}

impl Webhook {
    pub fn wants(&self, kind: EventType) -> bool {
        self.types.is_empty() || self.types.contains(&kind)
    }
}
