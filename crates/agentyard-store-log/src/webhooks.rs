//! `WebhookStore` on the log store: the memory store's, each creation, cursor move and removal
//! answered once its frame (the whole webhook, as `ChangeRecordV1::Webhook`) is written.

use agentyard_core::{Namespace, Timestamp};
use agentyard_store::{StoreError, StoredWebhook, WebhookStore};
use async_trait::async_trait;

use crate::LogStore;

#[async_trait]
impl WebhookStore for LogStore {
    async fn create_webhook(&self, hook: StoredWebhook) -> Result<(), StoreError> {
        let r = self.mem.create_webhook(hook).await;
        self.durable(r).await
    }

    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        let r = self.mem.list_webhooks().await;
        self.durable(r).await
    }

    async fn delete_webhook(&self, ns: &Namespace, id: &str) -> Result<bool, StoreError> {
        let r = self.mem.delete_webhook(ns, id).await;
        self.durable(r).await
    }

    async fn advance_webhook(&self, ns: &Namespace, id: &str, cursor: u64) -> Result<bool, StoreError> {
        let r = self.mem.advance_webhook(ns, id, cursor).await;
        self.durable(r).await
    }

    async fn lease_webhook(
        &self,
        ns: &Namespace,
        id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        // A lease is never written: it lives as long as this process.
        self.mem.lease_webhook(ns, id, holder, now, until).await
    }
}
