//! `RetentionStore` on SQLite: one writer command deletes, oldest first and at most `limit` of
//! each kind, finished tasks, the oldest events, messages everyone they are for acknowledged (or
//! that expired), and frees old idempotency keys. SQLite puts the pages it freed on its free list
//! and fills them before it grows the file, so a yard pruned as fast as it works keeps its size.
//!
//! Times inside documents are the records' RFC 3339 text (`2026-12-08T01:02:03.004Z`, always UTC
//! and milliseconds), so comparing them as text compares the times.

use agentyard_core::{Namespace, QueueName, TaskId, TaskStatus, Timestamp};
use agentyard_store::{PruneCutoffs, Pruned, RetentionStore, StoreError};
use async_trait::async_trait;
use rusqlite::params;

use crate::error::{corrupt, sql_error};
use crate::store::SqliteStore;
use crate::writer::WriteCtx;

const FINISHED: &str = "SELECT namespace, queue, status, id FROM tasks \
     WHERE status IN ('succeeded', 'failed', 'cancelled') AND json_extract(doc, '$.finished_at') <= ?1 \
     LIMIT ?2";

/// The oldest events, to cut the log at the first one newer than the cutoff.
const OLDEST_EVENTS: &str = "SELECT seq, ts FROM events ORDER BY seq LIMIT ?1";

const DELETE_EVENTS: &str = "DELETE FROM events WHERE seq <= ?1";

/// Messages old enough that expired or that no agent they are for still has to read: a direct
/// message's recipient, a topic's subscribers since before it, the agents registered before a
/// broadcast (their cursor below it means unread).
const DONE_MESSAGES: &str = "SELECT m.namespace, m.seq FROM messages m \
     WHERE json_extract(m.doc, '$.created_at') <= ?1 \
     AND ((m.expires_at IS NOT NULL AND m.expires_at <= ?2) OR NOT EXISTS ( \
         SELECT 1 FROM agents a WHERE a.namespace = m.namespace \
         AND json_extract(a.doc, '$.inbox_cursor') < m.seq AND ( \
             (m.kind = 'agent' AND a.name = m.to_name) \
             OR (m.kind = 'broadcast' AND json_extract(a.doc, '$.inbox_start') < m.seq) \
             OR (m.kind = 'topic' AND EXISTS (SELECT 1 FROM subscriptions s WHERE s.namespace = m.namespace \
                 AND s.agent = a.name AND s.topic = m.to_name AND s.start_seq < m.seq))))) \
     LIMIT ?3";

const DELETE_MESSAGE: &str = "DELETE FROM messages WHERE namespace = ?1 AND seq = ?2";

/// Keys of tasks that are not running: a running task is also in the writer's running-task
/// cache, whose copy would write the key back; it loses its key in a pass after it finished.
const FREE_TASK_KEYS: &str = "UPDATE tasks SET idempotency_key = NULL, doc = json_set(doc, '$.idempotency_key', NULL) \
     WHERE rowid IN (SELECT rowid FROM tasks WHERE idempotency_key IS NOT NULL AND status != 'running' \
         AND json_extract(doc, '$.created_at') <= ?1 LIMIT ?2)";

const FREE_MESSAGE_KEYS: &str = "UPDATE messages SET idempotency_key = NULL, \
     doc = json_set(doc, '$.idempotency_key', NULL) \
     WHERE rowid IN (SELECT rowid FROM messages WHERE idempotency_key IS NOT NULL \
         AND json_extract(doc, '$.created_at') <= ?1 LIMIT ?2)";

fn prune(ctx: &mut WriteCtx<'_>, cutoffs: &PruneCutoffs, now: Timestamp, limit: usize) -> Result<Pruned, StoreError> {
    let mut pruned = Pruned::default();
    let limit_sql = i64::try_from(limit).unwrap_or(i64::MAX);
    if let Some(cutoff) = cutoffs.finished_tasks {
        let mut found: Vec<(Namespace, QueueName, TaskStatus, TaskId)> = Vec::new();
        {
            let mut stmt = ctx.conn().prepare_cached(FINISHED).map_err(sql_error)?;
            let mut rows = stmt.query(params![cutoff.to_rfc3339(), limit_sql]).map_err(sql_error)?;
            while let Some(row) = rows.next().map_err(sql_error)? {
                let (ns, queue, status, id): (String, String, String, String) = (
                    row.get(0).map_err(sql_error)?,
                    row.get(1).map_err(sql_error)?,
                    row.get(2).map_err(sql_error)?,
                    row.get(3).map_err(sql_error)?,
                );
                found.push((
                    Namespace::parse(ns.as_str()).map_err(|e| corrupt(&id, "namespace", e))?,
                    QueueName::parse(queue.as_str()).map_err(|e| corrupt(&id, "queue", e))?,
                    TaskStatus::parse(&status).ok_or_else(|| corrupt(&id, "status", &status))?,
                    TaskId::parse(&id).map_err(|e| corrupt(&id, "id", e))?,
                ));
            }
        }
        for (ns, queue, status, id) in found {
            ctx.delete_finished(&ns, &queue, status, id)?;
            pruned.tasks += 1;
        }
    }
    if let Some(cutoff) = cutoffs.events {
        let mut through = None;
        let mut n = 0;
        {
            let mut stmt = ctx.conn().prepare_cached(OLDEST_EVENTS).map_err(sql_error)?;
            let mut rows = stmt.query([limit_sql]).map_err(sql_error)?;
            while let Some(row) = rows.next().map_err(sql_error)? {
                let (seq, ts): (i64, i64) = (row.get(0).map_err(sql_error)?, row.get(1).map_err(sql_error)?);
                if ts > cutoff.as_millis() {
                    break;
                }
                through = Some(seq);
                n += 1;
            }
        }
        if let Some(seq) = through {
            ctx.conn()
                .prepare_cached(DELETE_EVENTS)
                .map_err(sql_error)?
                .execute([seq])
                .map_err(sql_error)?;
            pruned.events = n;
        }
    }
    if let Some(cutoff) = cutoffs.messages {
        let done: Vec<(String, i64)> = {
            let mut stmt = ctx.conn().prepare_cached(DONE_MESSAGES).map_err(sql_error)?;
            let rows = stmt
                .query_map(params![cutoff.to_rfc3339(), now.as_millis(), limit_sql], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .map_err(sql_error)?;
            rows.collect::<Result<_, _>>().map_err(sql_error)?
        };
        let mut stmt = ctx.conn().prepare_cached(DELETE_MESSAGE).map_err(sql_error)?;
        for (ns, seq) in done {
            pruned.messages += stmt.execute(params![ns, seq]).map_err(sql_error)? as u64;
        }
    }
    if let Some(cutoff) = cutoffs.idempotency_keys {
        for sql in [FREE_TASK_KEYS, FREE_MESSAGE_KEYS] {
            pruned.idempotency_keys += ctx
                .conn()
                .prepare_cached(sql)
                .map_err(sql_error)?
                .execute(params![cutoff.to_rfc3339(), limit_sql])
                .map_err(sql_error)? as u64;
        }
    }
    Ok(pruned)
}

#[async_trait]
impl RetentionStore for SqliteStore {
    async fn prune(&self, cutoffs: &PruneCutoffs, now: Timestamp, limit: usize) -> Result<Pruned, StoreError> {
        let cutoffs = *cutoffs;
        self.writer.run(move |ctx| prune(ctx, &cutoffs, now, limit)).await
    }
}
