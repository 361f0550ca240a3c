//! The webhooks table, and `WebhookStore` on SQLite: a webhook is one row, its document the
//! store's `WebhookRecordV1` (secret and cursor included); creating, moving the cursor, removing
//! and leasing are writer commands, listing goes to the reader pool. The delivery lease is a pair
//! of columns: one process holds the database, but the lease is kept like everything else.

use agentyard_core::{Namespace, Timestamp};
use agentyard_store::record::WebhookRecordV1;
use agentyard_store::{StoreError, StoredWebhook, WebhookStore};
use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{corrupt_record, sql_error};
use crate::store::SqliteStore;

const LIST: &str = "SELECT namespace, id, doc FROM webhooks ORDER BY namespace, id";

const CREATE: &str = "INSERT INTO webhooks (namespace, id, doc) VALUES (?1, ?2, ?3) \
     ON CONFLICT (namespace, id) DO NOTHING";

const DELETE: &str = "DELETE FROM webhooks WHERE namespace = ?1 AND id = ?2";

const DOC: &str = "SELECT doc FROM webhooks WHERE namespace = ?1 AND id = ?2";

const SET_DOC: &str = "UPDATE webhooks SET doc = ?3 WHERE namespace = ?1 AND id = ?2";

const LEASE: &str = "UPDATE webhooks SET lease_holder = ?3, lease_until = ?5 \
     WHERE namespace = ?1 AND id = ?2 AND (lease_holder IS NULL OR lease_holder = ?3 OR lease_until <= ?4)";

fn encode(hook: &StoredWebhook) -> Result<String, StoreError> {
    serde_json::to_string(&WebhookRecordV1::from(hook)).map_err(|e| StoreError::Other(format!("webhook: {e}")))
}

fn decode(ns: &str, id: &str, doc: &str) -> Result<StoredWebhook, StoreError> {
    serde_json::from_str::<WebhookRecordV1<'_>>(doc)
        .map(StoredWebhook::from)
        .map_err(|e| corrupt_record(format!("webhook {id:?} of namespace {ns:?}"), e))
}

fn list(conn: &Connection) -> Result<Vec<StoredWebhook>, StoreError> {
    let mut stmt = conn.prepare_cached(LIST).map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        let ns: String = row.get(0).map_err(sql_error)?;
        let id: String = row.get(1).map_err(sql_error)?;
        let doc: String = row.get(2).map_err(sql_error)?;
        out.push(decode(&ns, &id, &doc)?);
    }
    Ok(out)
}

fn create(conn: &Connection, hook: &StoredWebhook) -> Result<(), StoreError> {
    let inserted = conn
        .prepare_cached(CREATE)
        .map_err(sql_error)?
        .execute(params![hook.hook.namespace.as_str(), hook.hook.id, encode(hook)?])
        .map_err(sql_error)?;
    if inserted == 0 {
        return Err(StoreError::Invalid {
            message: format!("webhook id {} is taken", hook.hook.id),
        });
    }
    Ok(())
}

fn advance(conn: &Connection, ns: &Namespace, id: &str, cursor: u64) -> Result<bool, StoreError> {
    let doc: Option<String> = conn
        .prepare_cached(DOC)
        .map_err(sql_error)?
        .query_row(params![ns.as_str(), id], |row| row.get(0))
        .optional()
        .map_err(sql_error)?;
    let Some(doc) = doc else { return Ok(false) };
    let mut hook = decode(ns.as_str(), id, &doc)?;
    if cursor > hook.hook.cursor {
        hook.hook.cursor = cursor;
        conn.prepare_cached(SET_DOC)
            .map_err(sql_error)?
            .execute(params![ns.as_str(), id, encode(&hook)?])
            .map_err(sql_error)?;
    }
    Ok(true)
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create_webhook(&self, hook: StoredWebhook) -> Result<(), StoreError> {
        self.writer.run(move |ctx| create(ctx.conn(), &hook)).await
    }

    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>, StoreError> {
        self.readers.run(list).await
    }

    async fn delete_webhook(&self, ns: &Namespace, id: &str) -> Result<bool, StoreError> {
        let (ns, id) = (ns.clone(), id.to_owned());
        self.writer
            .run(move |ctx| {
                let n = ctx
                    .conn()
                    .prepare_cached(DELETE)
                    .map_err(sql_error)?
                    .execute(params![ns.as_str(), id])
                    .map_err(sql_error)?;
                Ok(n > 0)
            })
            .await
    }

    async fn advance_webhook(&self, ns: &Namespace, id: &str, cursor: u64) -> Result<bool, StoreError> {
        let (ns, id) = (ns.clone(), id.to_owned());
        self.writer.run(move |ctx| advance(ctx.conn(), &ns, &id, cursor)).await
    }

    async fn lease_webhook(
        &self,
        ns: &Namespace,
        id: &str,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<bool, StoreError> {
        let (ns, id, holder) = (ns.clone(), id.to_owned(), holder.to_owned());
        self.writer
            .run(move |ctx| {
                let n = ctx
                    .conn()
                    .prepare_cached(LEASE)
                    .map_err(sql_error)?
                    .execute(params![ns.as_str(), id, holder, now.as_millis(), until.as_millis()])
                    .map_err(sql_error)?;
                Ok(n > 0)
            })
            .await
    }
}
