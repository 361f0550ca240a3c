//! Webhooks on PostgreSQL: `WebhookStore`. A webhook is a row whose `doc` is the store's
//! `WebhookRecordV1` (secret and delivery cursor included); the delivery lease is a pair of
//! columns, taken with one conditional `UPDATE`, so one node at a time delivers a webhook and
//! another takes over once the lease of a stopped one ran out.

use agentyard_core::{Namespace, Timestamp};
use agentyard_store::record::WebhookRecordV1;
use agentyard_store::{StoreError, StoredWebhook, WebhookStore};
use async_trait::async_trait;

use crate::error::{corrupt, pg_error};
use crate::store::{PgStore, write_tx};
use crate::work::{TxResult, Work};

fn encode(hook: &StoredWebhook) -> Result<serde_json::Value, StoreError> {
    serde_json::to_value(WebhookRecordV1::from(hook)).map_err(|e| StoreError::Other(format!("webhook: {e}")))
}

fn decode(ns: &str, id: &str, doc: serde_json::Value) -> Result<StoredWebhook, StoreError> {
    serde_json::from_value::<WebhookRecordV1<'static>>(doc)
        .map(StoredWebhook::from)
        .map_err(|e| corrupt(format!("webhook {id:?} of namespace {ns:?}"), e))
}

async fn create(w: &mut Work<'_>, hook: &StoredWebhook) -> TxResult<()> {
    let stmt =
        w.tx.prepare_cached(
            "INSERT INTO webhooks (namespace, id, doc) VALUES ($1, $2, $3) ON CONFLICT (namespace, id) DO NOTHING",
        )
        .await?;
    let doc = encode(hook)?;
    let inserted =
        w.tx.execute(&stmt, &[&hook.hook.namespace.as_str(), &hook.hook.id, &doc])
            .await?;
    if inserted == 0 {
        return Err(StoreError::Invalid {
            message: format!("webhook id {} is taken", hook.hook.id),
        }
        .into());
    }
    Ok(())
}

async fn advance(w: &mut Work<'_>, ns: &Namespace, id: &str, cursor: u64) -> TxResult<bool> {
    let stmt =
        w.tx.prepare_cached("SELECT doc FROM webhooks WHERE namespace = $1 AND id = $2 FOR UPDATE")
            .await?;
    let Some(row) = w.tx.query_opt(&stmt, &[&ns.as_str(), &id]).await? else {
        return Ok(false);
    };
    let mut hook = decode(ns.as_str(), id, row.try_get(0)?)?;
    if cursor > hook.hook.cursor {
        hook.hook.cursor = cursor;
        let doc = encode(&hook)?;
        let stmt =
            w.tx.prepare_cached("UPDATE webhooks SET doc = $3 WHERE namespace = $1 AND id = $2")
                .await?;
        w.tx.execute(&stmt, &[&ns.as_str(), &id, &doc]).await?;
    }
    Ok(true)
}

#[async_trait]
impl WebhookStore for PgStore {
    async fn create_webhook(&self, hook: StoredWebhook) -> Result<(), StoreError> {
        write_tx!(self, |w| create(&mut w, &hook).await)
    }

    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("SELECT namespace, id, doc FROM webhooks ORDER BY namespace, id")
            .await
            .map_err(pg_error)?;
        let rows = client.query(&stmt, &[]).await.map_err(pg_error)?;
        rows.iter()
            .map(|row| {
                let ns: String = row.try_get(0).map_err(pg_error)?;
                let id: String = row.try_get(1).map_err(pg_error)?;
                decode(&ns, &id, row.try_get(2).map_err(pg_error)?)
            })
            .collect()
    }

    async fn delete_webhook(&self, ns: &Namespace, id: &str) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached("DELETE FROM webhooks WHERE namespace = $1 AND id = $2")
            .await
            .map_err(pg_error)?;
        Ok(client.execute(&stmt, &[&ns.as_str(), &id]).await.map_err(pg_error)? > 0)
    }

    async fn advance_webhook(&self, ns: &Namespace, id: &str, cursor: u64) -> Result<bool, StoreError> {
        write_tx!(self, |w| advance(&mut w, ns, id, cursor).await)
    }

    async fn lease_webhook(
        &self,
        ns: &Namespace,
        id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "UPDATE webhooks SET lease_holder = $3, lease_until = $5 WHERE namespace = $1 AND id = $2 \
                 AND (lease_holder IS NULL OR lease_holder = $3 OR lease_until <= $4)",
            )
            .await
            .map_err(pg_error)?;
        let n = client
            .execute(
                &stmt,
                &[&ns.as_str(), &id, &holder, &now.as_millis(), &until.as_millis()],
            )
            .await
            .map_err(pg_error)?;
        Ok(n > 0)
    }
}
