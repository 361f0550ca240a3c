//! `RetentionStore` on PostgreSQL: one write transaction deletes, oldest first and at most `limit`
//! of each kind, finished tasks (taking them off their queues' counts), the oldest events,
//! messages everyone they are for acknowledged (or that expired), and frees old idempotency keys.
//!
//! Candidate tasks and messages are locked `FOR UPDATE SKIP LOCKED`: a prune never waits for a
//! row another transaction is changing (it is taken by a later prune, if it still qualifies), and
//! prunes on several nodes at once delete different rows. Events are not skipped: the log must be
//! cut without holes, so a second prune waits for the first and finds its rows gone.

use agentyard_core::Timestamp;
use agentyard_store::{PruneCutoffs, Pruned, RetentionStore, StoreError};
use async_trait::async_trait;

use crate::error::pg_error;
use crate::record::ms;
use crate::store::{PgStore, write_tx};
use crate::tasks::to_i64;
use crate::work::{TxResult, Work};

/// Deletes up to `$2` tasks finished at or before `$1`, the first finished first, and subtracts
/// them from their queues' counts in the same statement: the counts are deltas added to the
/// connection's shard (as `Work` adds them), in (namespace, queue) order bytewise, the order in
/// which every transaction locks counter rows. Returns how many it deleted.
const DELETE_FINISHED: &str = "WITH gone AS ( \
         DELETE FROM tasks WHERE (namespace, id) IN ( \
             SELECT namespace, id FROM tasks \
             WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at <= $1 \
             ORDER BY finished_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
         RETURNING namespace, queue, status \
     ), counted AS ( \
         INSERT INTO queue_counts AS c \
             (namespace, queue, shard, scheduled, queued, running, succeeded, failed, cancelled) \
         SELECT namespace, queue, pg_backend_pid() % 64, 0, 0, 0, \
                -count(*) FILTER (WHERE status = 'succeeded'), -count(*) FILTER (WHERE status = 'failed'), \
                -count(*) FILTER (WHERE status = 'cancelled') \
         FROM gone GROUP BY namespace, queue ORDER BY namespace COLLATE \"C\", queue COLLATE \"C\" \
         ON CONFLICT (namespace, queue, shard) DO UPDATE SET \
             succeeded = c.succeeded + excluded.succeeded, failed = c.failed + excluded.failed, \
             cancelled = c.cancelled + excluded.cancelled \
     ) \
     SELECT count(*) FROM gone";

/// Deletes the oldest `$2` events up to the first one newer than `$1` (so what is left has no
/// holes). `event_seq.last` stays: a seq is never given again.
const DELETE_EVENTS: &str = "WITH oldest AS (SELECT seq, ts FROM events ORDER BY seq LIMIT $2) \
     DELETE FROM events WHERE seq IN (SELECT seq FROM oldest) \
       AND seq < coalesce((SELECT min(seq) FROM oldest WHERE ts > $1), 9223372036854775807)";

/// Deletes up to `$3` messages created at or before `$1` that expired by `$2`, or that no agent
/// they are for still has to read (its cursor below the message): a direct message's recipient,
/// a topic's subscribers since before it, the agents registered before a broadcast.
const DELETE_MESSAGES: &str = "DELETE FROM messages WHERE (namespace, seq) IN ( \
     SELECT m.namespace, m.seq FROM messages m \
     WHERE m.created_at <= $1 \
       AND ((m.expires_at IS NOT NULL AND m.expires_at <= $2) OR NOT EXISTS ( \
           SELECT 1 FROM agents a WHERE a.namespace = m.namespace AND a.inbox_cursor < m.seq AND ( \
               (m.kind = 'agent' AND a.name = m.to_name) \
               OR (m.kind = 'broadcast' AND a.inbox_start < m.seq) \
               OR (m.kind = 'topic' AND EXISTS ( \
                   SELECT 1 FROM subscriptions s WHERE s.namespace = m.namespace AND s.agent = a.name \
                     AND s.topic = m.to_name AND s.start_seq < m.seq))))) \
     ORDER BY m.created_at LIMIT $3 FOR UPDATE OF m SKIP LOCKED)";

/// Frees the keys of up to `$2` tasks created at or before `$1` that are not running: a running
/// task keeps its key until it stopped running (as on every store). The task is not changed
/// otherwise, not even its version.
const FREE_TASK_KEYS: &str = "UPDATE tasks SET idempotency_key = NULL WHERE (namespace, id) IN ( \
     SELECT namespace, id FROM tasks \
     WHERE idempotency_key IS NOT NULL AND status <> 'running' AND created_at <= $1 \
     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// Frees the keys of up to `$2` messages created at or before `$1`.
const FREE_MESSAGE_KEYS: &str = "UPDATE messages SET idempotency_key = NULL WHERE (namespace, seq) IN ( \
     SELECT namespace, seq FROM messages \
     WHERE idempotency_key IS NOT NULL AND created_at <= $1 \
     ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)";

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

async fn prune(w: &mut Work<'_>, cutoffs: &PruneCutoffs, now: Timestamp, limit: usize) -> TxResult<Pruned> {
    let mut pruned = Pruned::default();
    let limit = to_i64(limit);
    if let Some(cutoff) = cutoffs.finished_tasks {
        let stmt = w.tx.prepare_cached(DELETE_FINISHED).await?;
        pruned.tasks = count(w.tx.query_one(&stmt, &[&ms(cutoff), &limit]).await?.get(0));
    }
    if let Some(cutoff) = cutoffs.events {
        let stmt = w.tx.prepare_cached(DELETE_EVENTS).await?;
        pruned.events = w.tx.execute(&stmt, &[&ms(cutoff), &limit]).await?;
    }
    if let Some(cutoff) = cutoffs.messages {
        let stmt = w.tx.prepare_cached(DELETE_MESSAGES).await?;
        pruned.messages = w.tx.execute(&stmt, &[&ms(cutoff), &ms(now), &limit]).await?;
    }
    if let Some(cutoff) = cutoffs.idempotency_keys {
        for sql in [FREE_TASK_KEYS, FREE_MESSAGE_KEYS] {
            let stmt = w.tx.prepare_cached(sql).await?;
            pruned.idempotency_keys += w.tx.execute(&stmt, &[&ms(cutoff), &limit]).await?;
        }
    }
    Ok(pruned)
}

#[async_trait]
impl RetentionStore for PgStore {
    async fn prune(&self, cutoffs: &PruneCutoffs, now: Timestamp, limit: usize) -> Result<Pruned, StoreError> {
        if cutoffs.events.is_some() {
            // Events committed but still waiting for their seqs get them first, so the cut sees
            // the whole log up to now. In a statement of its own, not in the prune's transaction:
            // the sequencer's lock would be held until the prune commits, and every reader waits
            // for it.
            let client = self.client().await?;
            let stmt = client
                .prepare_cached("SELECT sequence_events()")
                .await
                .map_err(pg_error)?;
            client.query_one(&stmt, &[]).await.map_err(pg_error)?;
        }
        write_tx!(self, |w| prune(&mut w, cutoffs, now, limit).await)
    }
}
