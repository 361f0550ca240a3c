//! Storage of webhooks: the `WebhookStore` trait. A webhook is kept with its secret (deliveries
//! are signed with it, so it cannot be only a hash), its delivery cursor (so a restart resumes
//! after the last event delivered, losing none), and a lease naming the node that delivers it
//! (one node at a time, when several share the store).

use agentyard_core::webhook::Webhook;
use agentyard_core::{Namespace, Timestamp};
use async_trait::async_trait;

use crate::StoreError;

/// One stored webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredWebhook {
    pub hook: Webhook,
    /// The HMAC-SHA256 key of its signatures.
    pub secret: String,
}

/// Webhooks. Every method is atomic and durable once it returns `Ok`.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Stores a new webhook. `StoreError::Invalid` when its id is taken.
    async fn create_webhook(&self, hook: StoredWebhook) -> Result<(), StoreError>;

    /// Every webhook of every namespace, by namespace then id.
    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError>;

    /// Removes a webhook; false if the namespace has none with this id.
    async fn delete_webhook(&self, ns: &Namespace, id: &str) -> Result<bool, StoreError>;

    /// Moves the webhook's cursor to `cursor` (never back: a smaller one changes nothing).
    /// False when the webhook is gone.
    async fn advance_webhook(&self, ns: &Namespace, id: &str, cursor: u64) -> Result<bool, StoreError>;

    /// Takes (or extends) the right to deliver the webhook until `until` for `holder`: granted
    /// when nobody holds it, the holder is `holder`, or the holder's lease ended at or before
    /// `now`. False when another holder has it, or the webhook is gone.
    async fn lease_webhook(
        &self,
        ns: &Namespace,
        id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError>;
}
