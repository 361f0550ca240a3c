//! The tasks table: how a task maps to a row, and every query the store runs on it.
//!
//! These functions neither open nor end transactions: the writer runs them inside its group
//! transaction, the readers inside the implicit one of a single statement. All of them use
//! cached prepared statements, since the same dozen statements run over and over.

use agentyard_core::task::TaskMeta;
use agentyard_core::{AgentName, Capability, Namespace, QueueName, Task, TaskId, TaskStatus, Timestamp};
use agentyard_store::record::{TaskMetaRecordV1, TaskRecordV1};
use agentyard_store::{Page, StoreError, TaskFilter};
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OptionalExtension, Row, ToSql, params};

use crate::error::{corrupt, corrupt_id, sql_error};

/// How many ready tasks a claim may pass over because the claimer lacks their capabilities,
/// before it gives up. Keeps a claim's cost bounded when the head of a queue is full of tasks
/// that need a capability nobody polling has.
pub(crate) const CLAIM_SKIP_LIMIT: usize = 1_000;

fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The `capabilities` column: required capabilities, space separated; NULL when none.
fn capabilities_column(task: &Task) -> Option<String> {
    if task.required_capabilities.is_empty() {
        return None;
    }
    let names: Vec<&str> = task.required_capabilities.iter().map(Capability::as_str).collect();
    Some(names.join(" "))
}

/// The `lease_agent` column: who holds the lease, if anyone.
fn lease_agent(task: &Task) -> Option<&str> {
    task.lease.as_ref().map(|l| l.agent.as_str())
}

fn text<'r>(row: &'r Row<'_>, index: usize, id: &str, what: &str) -> Result<&'r str, StoreError> {
    match row.get_ref(index).map_err(sql_error)? {
        ValueRef::Text(bytes) => std::str::from_utf8(bytes).map_err(|e| corrupt(id, what, e)),
        other => Err(corrupt(
            id,
            what,
            format!("expected text, found {:?}", other.data_type()),
        )),
    }
}

/// Decodes a row whose first three columns are `id, doc, meta`: a [`TaskRecordV1`] and a
/// [`TaskMetaRecordV1`] (the store's own format, not the API's JSON; see `migrations.rs`).
fn decode(row: &Row<'_>) -> Result<Task, StoreError> {
    let id: String = row.get(0).map_err(sql_error)?;
    let doc = text(row, 1, &id, "document")?;
    let meta = text(row, 2, &id, "metadata")?;
    let record: TaskRecordV1<'_> = serde_json::from_str(doc).map_err(|e| corrupt(&id, "document", e))?;
    let mut task = Task::from(record);
    if task.id.to_string() != id {
        return Err(corrupt(&id, "document", format!("it holds task {}", task.id)));
    }
    let meta: TaskMetaRecordV1<'_> = serde_json::from_str(meta).map_err(|e| corrupt(&id, "metadata", e))?;
    task.meta = TaskMeta::from(meta);
    Ok(task)
}

fn encode(task: &Task) -> Result<(String, String), StoreError> {
    // Serializing our own types into a string cannot fail short of a bug; report it, never panic.
    let doc = serde_json::to_string(&TaskRecordV1::from(task)).map_err(|e| corrupt_id(task.id, "document", e))?;
    let meta =
        serde_json::to_string(&TaskMetaRecordV1::from(&task.meta)).map_err(|e| corrupt_id(task.id, "metadata", e))?;
    Ok((doc, meta))
}

fn collect(mut rows: rusqlite::Rows<'_>) -> Result<Vec<Task>, StoreError> {
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

pub(crate) fn load(conn: &Connection, ns: &Namespace, id: TaskId) -> Result<Task, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id, doc, meta FROM tasks WHERE namespace = ?1 AND id = ?2")
        .map_err(sql_error)?;
    let mut rows = stmt.query(params![ns.as_str(), id.to_string()]).map_err(sql_error)?;
    match rows.next().map_err(sql_error)? {
        Some(row) => decode(row),
        None => Err(StoreError::task_not_found(id)),
    }
}

pub(crate) fn insert(conn: &Connection, task: &Task) -> Result<(), StoreError> {
    let (doc, meta) = encode(task)?;
    let mut stmt = conn
        .prepare_cached(
            "INSERT INTO tasks (namespace, id, queue, status, priority, run_at, lease_expires_at, \
             idempotency_key, capabilities, doc, meta, lease_agent, concurrency_key) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        )
        .map_err(sql_error)?;
    stmt.execute(params![
        task.namespace.as_str(),
        task.id.to_string(),
        task.queue.as_str(),
        task.status.as_str(),
        task.priority,
        task.run_at.as_millis(),
        task.lease.as_ref().map(|l| l.expires_at.as_millis()),
        task.idempotency_key,
        capabilities_column(task),
        doc,
        meta,
        lease_agent(task),
        task.concurrency_key,
    ])
    .map_err(sql_error)?;
    Ok(())
}

/// Stores a changed task that had status `before`. Namespace, queue, idempotency key, required
/// capabilities and concurrency key never change after creation, so they are never written.
///
/// SQLite rewrites the entries of every index a column of the `SET` list takes part in (in its
/// key or in its partial `WHERE`), even when the value did not change, and each index touched
/// is one more page for the commit to write. So when the status stays (a heartbeat, progress,
/// an edit) neither `status` nor `lease_agent` is set: the lease holder only changes with the
/// status (a claim takes a queued task; expiry, release and completion end the running), and
/// `tasks_by_status`, `tasks_running_by_agent` and `tasks_running_by_key` stay untouched.
pub(crate) fn update(conn: &Connection, before: TaskStatus, task: &Task) -> Result<(), StoreError> {
    let (doc, meta) = encode(task)?;
    let id = task.id.to_string();
    let lease_expires_at = task.lease.as_ref().map(|l| l.expires_at.as_millis());
    let changed = if before == task.status {
        let mut stmt = conn
            .prepare_cached(
                "UPDATE tasks SET priority = ?3, run_at = ?4, lease_expires_at = ?5, doc = ?6, meta = ?7 \
                 WHERE namespace = ?1 AND id = ?2",
            )
            .map_err(sql_error)?;
        stmt.execute(params![
            task.namespace.as_str(),
            id,
            task.priority,
            task.run_at.as_millis(),
            lease_expires_at,
            doc,
            meta,
        ])
    } else {
        let mut stmt = conn
            .prepare_cached(
                "UPDATE tasks SET status = ?3, priority = ?4, run_at = ?5, lease_expires_at = ?6, doc = ?7, \
                 meta = ?8, lease_agent = ?9 WHERE namespace = ?1 AND id = ?2",
            )
            .map_err(sql_error)?;
        stmt.execute(params![
            task.namespace.as_str(),
            id,
            task.status.as_str(),
            task.priority,
            task.run_at.as_millis(),
            lease_expires_at,
            doc,
            meta,
            lease_agent(task),
        ])
    }
    .map_err(sql_error)?;
    if changed == 1 {
        Ok(())
    } else {
        Err(StoreError::task_not_found(task.id))
    }
}

/// Deletes a task's row (retention; the writer keeps the counts).
pub(crate) fn delete(conn: &Connection, ns: &Namespace, id: TaskId) -> Result<(), StoreError> {
    conn.prepare_cached("DELETE FROM tasks WHERE namespace = ?1 AND id = ?2")
        .map_err(sql_error)?
        .execute(params![ns.as_str(), id.to_string()])
        .map_err(sql_error)?;
    Ok(())
}

pub(crate) fn find_by_idempotency_key(
    conn: &Connection,
    ns: &Namespace,
    key: &str,
) -> Result<Option<TaskId>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id FROM tasks WHERE namespace = ?1 AND idempotency_key = ?2")
        .map_err(sql_error)?;
    let id: Option<String> = stmt
        .query_row(params![ns.as_str(), key], |row| row.get(0))
        .optional()
        .map_err(sql_error)?;
    id.map(|id| TaskId::parse(&id).map_err(|e| corrupt(&id, "id", e)))
        .transpose()
}

const LIST_ALL: &str = "SELECT id, doc, meta FROM tasks WHERE namespace = ?1 AND id > ?2 ORDER BY id LIMIT ?3";
const LIST_QUEUE: &str =
    "SELECT id, doc, meta FROM tasks WHERE namespace = ?1 AND id > ?2 AND queue = ?4 ORDER BY id LIMIT ?3";
// Running tasks: the page's ids are sorted from the index alone, and only their rows are read.
const LIST_RUNNING: &str = "SELECT id, doc, meta FROM tasks WHERE rowid IN (\
     SELECT rowid FROM tasks INDEXED BY tasks_running_by_agent \
     WHERE status = 'running' AND namespace = ?1 AND id > ?2 ORDER BY id LIMIT ?3) ORDER BY id";
const LIST_QUEUE_RUNNING: &str = "SELECT id, doc, meta FROM tasks WHERE rowid IN (\
     SELECT rowid FROM tasks INDEXED BY tasks_running_by_agent \
     WHERE status = 'running' AND namespace = ?1 AND id > ?2 AND queue = ?4 ORDER BY id LIMIT ?3) ORDER BY id";
const LIST_STATUS: &str = "SELECT id, doc, meta FROM tasks \
     WHERE status != 'running' AND namespace = ?1 AND id > ?2 AND status = ?4 ORDER BY id LIMIT ?3";
const LIST_QUEUE_STATUS: &str = "SELECT id, doc, meta FROM tasks \
     WHERE status != 'running' AND namespace = ?1 AND id > ?2 AND queue = ?4 AND status = ?5 ORDER BY id LIMIT ?3";

/// At most `limit` tasks with ids greater than `after`, in id order (see `Store::list_tasks`).
pub(crate) fn list(
    conn: &Connection,
    ns: &Namespace,
    filter: &TaskFilter,
    after: Option<TaskId>,
    limit: usize,
) -> Result<Page, StoreError> {
    // Every ULID sorts after the empty string, so no cursor means "from the start".
    let after = after.map(|a| a.to_string()).unwrap_or_default();
    let fetch = to_i64(limit.saturating_add(1));
    let queue = filter.queue.as_ref().map(QueueName::as_str);
    let status = filter.status.map(|s| s.as_str());
    // One fixed statement per filter shape, so each can use its index and stay cached. Running
    // tasks are not in `tasks_by_status` (migration 3): they are listed from
    // `tasks_running_by_agent`, which holds only the running few, their ids sorted.
    let base: [&dyn ToSql; 3] = [&ns.as_str(), &after, &fetch];
    let running = filter.status == Some(TaskStatus::Running);
    let (sql, extra): (&str, Vec<&dyn ToSql>) = match (&queue, &status) {
        (None, None) => (LIST_ALL, vec![]),
        (Some(q), None) => (LIST_QUEUE, vec![q]),
        (None, Some(_)) if running => (LIST_RUNNING, vec![]),
        (Some(q), Some(_)) if running => (LIST_QUEUE_RUNNING, vec![q]),
        (None, Some(s)) => (LIST_STATUS, vec![s]),
        (Some(q), Some(s)) => (LIST_QUEUE_STATUS, vec![q, s]),
    };
    let all: Vec<&dyn ToSql> = base.into_iter().chain(extra).collect();
    let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
    let mut items = collect(stmt.query(all.as_slice()).map_err(sql_error)?)?;
    let next = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|t| t.id)
    } else {
        None
    };
    Ok(Page { items, next })
}

/// Up to `max` ready tasks of the queue the claimer can run, in claim order (priority, then
/// `run_at`, then id), walking the ready index and passing over at most [`CLAIM_SKIP_LIMIT`]
/// tasks it cannot run.
pub(crate) fn claimable(
    conn: &Connection,
    ns: &Namespace,
    queue: &QueueName,
    capabilities: &[Capability],
    max: usize,
    mut admit: impl FnMut(&Task) -> Result<bool, StoreError>,
) -> Result<Vec<Task>, StoreError> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, doc, meta, capabilities FROM tasks \
             WHERE namespace = ?1 AND queue = ?2 AND status = 'queued' \
             ORDER BY priority DESC, run_at, id LIMIT ?3",
        )
        .map_err(sql_error)?;
    let scan = to_i64(max.saturating_add(CLAIM_SKIP_LIMIT));
    let mut rows = stmt
        .query(params![ns.as_str(), queue.as_str(), scan])
        .map_err(sql_error)?;
    let mut out = Vec::new();
    // Rows are stepped lazily: the scan stops as soon as `max` tasks are found, and the document
    // of a task the claimer cannot run is never read.
    while let Some(row) = rows.next().map_err(sql_error)? {
        let required: Option<String> = row.get(3).map_err(sql_error)?;
        let can_run = required.as_deref().is_none_or(|required| {
            required
                .split(' ')
                .all(|need| capabilities.iter().any(|have| have.as_str() == need))
        });
        if !can_run {
            continue;
        }
        let task = decode(row)?;
        // The document is the truth; the column only saves parsing it.
        if task.runnable_by(capabilities) && admit(&task)? {
            out.push(task);
            if out.len() == max {
                break;
            }
        }
    }
    Ok(out)
}

const RUNNING_WITH_KEY: &str =
    "SELECT COUNT(*) FROM tasks WHERE status = 'running' AND namespace = ?1 AND concurrency_key = ?2";

/// How many tasks of a concurrency key run in the namespace right now.
pub(crate) fn running_with_key(conn: &Connection, ns: &Namespace, key: &str) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(RUNNING_WITH_KEY).map_err(sql_error)?;
    let n: i64 = stmt
        .query_row(params![ns.as_str(), key], |r| r.get(0))
        .map_err(sql_error)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

const RUNNING_COUNT_OF: &str =
    "SELECT COUNT(*) FROM tasks WHERE status = 'running' AND namespace = ?1 AND lease_agent = ?2";

/// How many tasks the agent holds a lease on right now.
pub(crate) fn running_count_of(conn: &Connection, ns: &Namespace, agent: &AgentName) -> Result<u64, StoreError> {
    let mut stmt = conn.prepare_cached(RUNNING_COUNT_OF).map_err(sql_error)?;
    let n: i64 = stmt
        .query_row(params![ns.as_str(), agent.as_str()], |r| r.get(0))
        .map_err(sql_error)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

const RUNNING_OF: &str =
    "SELECT id, doc, meta FROM tasks WHERE status = 'running' AND namespace = ?1 AND lease_agent = ?2 ORDER BY id";

/// The running tasks the agent holds a lease on, in id order.
pub(crate) fn running_of(conn: &Connection, ns: &Namespace, agent: &AgentName) -> Result<Vec<Task>, StoreError> {
    let mut stmt = conn.prepare_cached(RUNNING_OF).map_err(sql_error)?;
    collect(stmt.query(params![ns.as_str(), agent.as_str()]).map_err(sql_error)?)
}

/// Running tasks whose lease expired at or before `now`, earliest first.
pub(crate) fn expired_leases(conn: &Connection, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, doc, meta FROM tasks WHERE status = 'running' AND lease_expires_at <= ?1 \
             ORDER BY lease_expires_at, id LIMIT ?2",
        )
        .map_err(sql_error)?;
    collect(stmt.query(params![now.as_millis(), to_i64(limit)]).map_err(sql_error)?)
}

/// Scheduled tasks whose `run_at` is at or before `now`, earliest first.
pub(crate) fn due_scheduled(conn: &Connection, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, doc, meta FROM tasks WHERE status = 'scheduled' AND run_at <= ?1 \
             ORDER BY run_at, id LIMIT ?2",
        )
        .map_err(sql_error)?;
    collect(stmt.query(params![now.as_millis(), to_i64(limit)]).map_err(sql_error)?)
}

/// Failed (dead-lettered) tasks of a queue, in id order.
pub(crate) fn failed(
    conn: &Connection,
    ns: &Namespace,
    queue: &QueueName,
    limit: usize,
) -> Result<Vec<Task>, StoreError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT id, doc, meta FROM tasks WHERE namespace = ?1 AND queue = ?2 AND status = 'failed' \
             ORDER BY id LIMIT ?3",
        )
        .map_err(sql_error)?;
    collect(
        stmt.query(params![ns.as_str(), queue.as_str(), to_i64(limit)])
            .map_err(sql_error)?,
    )
}

/// The earliest `run_at` among the ready tasks of a queue, read from the ready index alone.
///
/// The index is ordered by priority first, so `MIN(run_at)` over it would read every ready task
/// of the queue (10 ms for 100,000, measured). Instead this skips from one priority to the next
/// (each a seek) and takes the first `run_at` of each: as many seeks as the queue has distinct
/// priorities among its ready tasks.
const OLDEST_READY: &str = "\
    WITH RECURSIVE priorities(p) AS ( \
        SELECT MAX(priority) FROM tasks WHERE namespace = ?1 AND queue = ?2 AND status = 'queued' \
        UNION ALL \
        SELECT (SELECT MAX(priority) FROM tasks \
                WHERE namespace = ?1 AND queue = ?2 AND status = 'queued' AND priority < priorities.p) \
        FROM priorities WHERE priorities.p IS NOT NULL \
    ) \
    SELECT MIN((SELECT run_at FROM tasks \
                WHERE namespace = ?1 AND queue = ?2 AND status = 'queued' AND priority = priorities.p \
                ORDER BY run_at LIMIT 1)) \
    FROM priorities WHERE priorities.p IS NOT NULL";

pub(crate) fn oldest_ready(
    conn: &Connection,
    ns: &Namespace,
    queue: &QueueName,
) -> Result<Option<Timestamp>, StoreError> {
    let mut stmt = conn.prepare_cached(OLDEST_READY).map_err(sql_error)?;
    let min: Option<i64> = stmt
        .query_row(params![ns.as_str(), queue.as_str()], |row| row.get(0))
        .map_err(sql_error)?;
    Ok(min.map(Timestamp::from_millis))
}

/// The earliest moment a scheduled task becomes due or a lease expires.
pub(crate) fn next_wakeup(conn: &Connection) -> Result<Option<Timestamp>, StoreError> {
    let first = |sql: &str| -> Result<Option<i64>, StoreError> {
        let mut stmt = conn.prepare_cached(sql).map_err(sql_error)?;
        stmt.query_row([], |row| row.get(0)).optional().map_err(sql_error)
    };
    let due = first("SELECT run_at FROM tasks WHERE status = 'scheduled' ORDER BY run_at LIMIT 1")?;
    let lease = first(
        "SELECT lease_expires_at FROM tasks WHERE status = 'running' AND lease_expires_at IS NOT NULL \
         ORDER BY lease_expires_at LIMIT 1",
    )?;
    Ok(due.into_iter().chain(lease).min().map(Timestamp::from_millis))
}

#[cfg(test)]
mod tests {
    use agentyard_core::{AgentName, Completion, LeaseToken, Namespace, NewTask, QueueName, TaskCommand, TaskId};
    use rusqlite::Connection;

    use super::*;
    use crate::migrations::migrate;
    use crate::migrations::plans::{assert_uses, assert_uses_sorting};

    /// The copied columns follow the document through a claim, heartbeats (which leave the
    /// status and so do not rewrite them) and the completion.
    #[test]
    fn lease_holder_column_follows_the_task() {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrate");
        let ns = Namespace::default_namespace();
        let agent = AgentName::parse("w-1").expect("valid");
        let now = Timestamp::from_millis(1_000);
        let mut new = NewTask::on(QueueName::parse("q").expect("valid"), serde_json::json!({}));
        new.concurrency_key = Some("repo".into());
        let mut task = new.into_task(TaskId::generate(), ns.clone(), now);
        insert(&conn, &task).expect("insert");
        let columns = |conn: &Connection| -> (String, Option<String>, Option<String>, Option<i64>) {
            conn.query_row(
                "SELECT status, lease_agent, concurrency_key, lease_expires_at FROM tasks",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .expect("row")
        };
        assert_eq!(columns(&conn), ("queued".into(), None, Some("repo".into()), None));
        let token = LeaseToken::generate();
        task.claim(&agent, token.clone(), 1_000, now).expect("claim");
        update(&conn, TaskStatus::Queued, &task).expect("update");
        assert_eq!(running_count_of(&conn, &ns, &agent).expect("count"), 1);
        assert_eq!(running_with_key(&conn, &ns, "repo").expect("count"), 1);
        for (i, at) in [2_000, 3_000].into_iter().enumerate() {
            let heartbeat = TaskCommand::Heartbeat {
                token: token.clone(),
                lease_ms: 5_000,
                progress: None,
            };
            task.apply(heartbeat, Timestamp::from_millis(at)).expect("heartbeat");
            update(&conn, TaskStatus::Running, &task).expect("update");
            let (status, holder, _, expires) = columns(&conn);
            assert_eq!(
                (status.as_str(), holder.as_deref()),
                ("running", Some("w-1")),
                "heartbeat {i}"
            );
            assert_eq!(expires, Some(at + 5_000));
            assert_eq!(load(&conn, &ns, task.id).expect("load"), task);
        }
        let complete = TaskCommand::Complete {
            token,
            completion: Completion::default(),
        };
        task.apply(complete, Timestamp::from_millis(4_000)).expect("complete");
        update(&conn, TaskStatus::Running, &task).expect("update");
        assert_eq!(columns(&conn).0, "succeeded");
        assert_eq!(running_count_of(&conn, &ns, &agent).expect("count"), 0);
        assert_eq!(running_with_key(&conn, &ns, "repo").expect("count"), 0);
    }

    /// Every hot query must walk an index and never sort: a claim or an expiry sweep that scans
    /// or sorts the table gets slower with every task ever stored.
    #[test]
    fn hot_queries_use_their_index_without_sorting() {
        for (sql, index) in [
            (
                "SELECT id, doc, meta, capabilities FROM tasks WHERE namespace = ?1 AND queue = ?2 \
                 AND status = 'queued' ORDER BY priority DESC, run_at, id LIMIT ?3",
                "tasks_ready",
            ),
            (
                "SELECT id FROM tasks WHERE status = 'running' AND lease_expires_at <= ?1 \
                 ORDER BY lease_expires_at, id LIMIT ?2",
                "tasks_leases",
            ),
            (
                "SELECT id FROM tasks WHERE status = 'scheduled' AND run_at <= ?1 ORDER BY run_at, id LIMIT ?2",
                "tasks_scheduled",
            ),
            (
                "SELECT id FROM tasks WHERE namespace = ?1 AND idempotency_key = ?2",
                "tasks_idempotency",
            ),
            (LIST_QUEUE, "tasks_by_queue"),
            (LIST_STATUS, "tasks_by_status"),
            (LIST_ALL, "sqlite_autoindex_tasks_1"),
            (RUNNING_WITH_KEY, "tasks_running_by_key"),
            (RUNNING_COUNT_OF, "tasks_running_by_agent"),
            (RUNNING_OF, "tasks_running_by_agent"),
        ] {
            assert_uses(sql, index);
        }
        // Every step of the oldest-ready walk is a seek in the ready index; the only scan is of
        // the list of priorities it builds.
        let plan = crate::migrations::plans::plan_of(OLDEST_READY);
        assert!(plan.contains("tasks_ready"), "{plan}");
        assert!(!plan.contains("SCAN tasks") && !plan.contains("TEMP B-TREE"), "{plan}");
        // Running tasks, few by nature, are listed from their own index with a sort.
        for sql in [LIST_RUNNING, LIST_QUEUE_RUNNING] {
            assert_uses_sorting(sql, "tasks_running_by_agent");
        }
    }
}
