//! `WebhookStore` on the memory store: webhooks in one map of the state, each creation, cursor
//! move and removal recorded (the whole webhook) for the sink, so the log store keeps them.
//! Delivery leases stay in memory: one process uses this store, and a restart starts a new one.

use agentyard_core::{Namespace, Timestamp};
use async_trait::async_trait;

use super::{Change, MemoryStore};
use crate::{StoreError, StoredWebhook, WebhookStore};

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn create_webhook(&self, hook: StoredWebhook) -> Result<(), StoreError> {
        let mut st = self.lock();
        let key = (hook.hook.namespace.clone(), hook.hook.id.clone());
        if st.webhooks.contains_key(&key) {
            return Err(StoreError::Invalid {
                message: format!("webhook id {} is taken", hook.hook.id),
            });
        }
        st.record(Change::Webhook(&hook));
        st.webhooks.insert(key, hook);
        Ok(())
    }

    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        Ok(self.lock().webhooks.values().cloned().collect())
    }

    async fn delete_webhook(&self, ns: &Namespace, id: &str) -> Result<bool, StoreError> {
        let mut st = self.lock();
        let key = (ns.clone(), id.to_owned());
        if st.webhooks.remove(&key).is_none() {
            return Ok(false);
        }
        st.webhook_leases.remove(&key);
        st.record(Change::WebhookRemoved { namespace: ns, id });
        Ok(true)
    }

    async fn advance_webhook(&self, ns: &Namespace, id: &str, cursor: u64) -> Result<bool, StoreError> {
        let mut st = self.lock();
        let Some(hook) = st.webhooks.get_mut(&(ns.clone(), id.to_owned())) else {
            return Ok(false);
        };
        if cursor <= hook.hook.cursor {
            return Ok(true);
        }
        hook.hook.cursor = cursor;
        let hook = hook.clone();
        st.record(Change::Webhook(&hook));
        Ok(true)
    }

    async fn lease_webhook(
        &self,
        ns: &Namespace,
        id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let mut st = self.lock();
        let key = (ns.clone(), id.to_owned());
        if !st.webhooks.contains_key(&key) {
            return Ok(false);
        }
        let free = match st.webhook_leases.get(&key) {
            Some((h, ends)) => h == holder || *ends <= now,
            None => true,
        };
        if free {
            st.webhook_leases.insert(key, (holder.to_owned(), until));
        }
        Ok(free)
    }
}
