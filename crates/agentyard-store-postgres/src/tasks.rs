//! `Store` on PostgreSQL: every task query, and the claim.
//!
//! A change loads the rows it touches `FOR UPDATE` (in id order, so two transactions never wait
//! on each other in a circle), applies the same pure `Task` functions every backend uses, and
//! writes the rows back in one statement (`unnest` of column arrays). Claims, expiry, promotion
//! and bulk redrive take their rows `FOR UPDATE SKIP LOCKED`: two nodes never wait for each
//! other's candidates, and never both take one.

use std::collections::{BTreeMap, HashMap};

use agentyard_core::api::{QueueStats, StatusCounts};
use agentyard_core::event::{LastChange, NewEvent, TaskChange, task_event};
use agentyard_core::{
    AgentName, Applied, Namespace, NewTask, QueueName, Task, TaskCommand, TaskId, TaskStatus, Timestamp,
};
use agentyard_store::{Claim, CreateOptions, Created, Page, RemoteSink, Store, StoreError, TaskFilter};
use async_trait::async_trait;
use tokio_postgres::types::ToSql;

use crate::error::pg_error;
use crate::record::{TASK_COLUMN_COUNT, TASK_COLUMNS, TaskColumns, decode, id_bytes, ms, u64_col};
use crate::store::{PgStore, write_tx};
use crate::work::{TxError, TxResult, Work};

pub(crate) fn to_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn select(filter: &str) -> String {
    format!("SELECT {TASK_COLUMNS} FROM tasks WHERE {filter}")
}

/// Decodes every row.
fn decode_all(rows: &[tokio_postgres::Row]) -> Result<Vec<Task>, StoreError> {
    rows.iter().map(decode).collect()
}

/// Loads tasks of the namespace by id, locking them for this transaction, in id order.
async fn lock_tasks(w: &mut Work<'_>, ns: &Namespace, ids: &[TaskId]) -> TxResult<HashMap<TaskId, Task>> {
    let mut bytes: Vec<Vec<u8>> = ids.iter().copied().map(id_bytes).collect();
    bytes.sort();
    bytes.dedup();
    let stmt =
        w.tx.prepare_cached(&select(
            "namespace = $1 AND id = ANY($2::bytea[]) ORDER BY id FOR UPDATE",
        ))
        .await?;
    let rows = w.tx.query(&stmt, &[&ns.as_str(), &bytes]).await?;
    Ok(decode_all(&rows)?.into_iter().map(|t| (t.id, t)).collect())
}

/// Writes back what a status move, a lease or a completion changes, for many tasks at once.
const WRITE_STATE: &str = "UPDATE tasks AS t SET \
     status = u.status, attempt = u.attempt, run_at = u.run_at, lease_agent = u.lease_agent, \
     lease_token = u.lease_token, lease_expires_at = u.lease_expires_at, \
     lease_acquired_at = u.lease_acquired_at, progress = u.progress, result = u.result, \
     error = u.error, artifacts = u.artifacts, version = u.version, updated_at = u.updated_at, \
     finished_at = u.finished_at, finished_by = u.finished_by \
     FROM unnest($1::text[], $2::bytea[], $3::text[], $4::int4[], $5::int8[], $6::text[], $7::text[], \
                 $8::int8[], $9::int8[], $10::jsonb[], $11::jsonb[], $12::jsonb[], $13::jsonb[], \
                 $14::int8[], $15::int8[], $16::int8[], $17::text[]) \
       AS u(namespace, id, status, attempt, run_at, lease_agent, lease_token, lease_expires_at, \
            lease_acquired_at, progress, result, error, artifacts, version, updated_at, finished_at, finished_by) \
     WHERE t.namespace = ANY($1::text[]) AND t.id = ANY($2::bytea[]) \
       AND t.namespace = u.namespace AND t.id = u.id";

/// Writes every field a client may change as well (an update), one task.
const WRITE_ALL: &str = "UPDATE tasks SET \
     title = $3, priority = $4, input = $5, context = $6, context_versions = $7, \
     status = $8, attempt = $9, run_at = $10, lease_agent = $11, lease_token = $12, \
     lease_expires_at = $13, lease_acquired_at = $14, progress = $15, result = $16, error = $17, \
     artifacts = $18, version = $19, updated_at = $20, finished_at = $21, finished_by = $22 \
     WHERE namespace = $1 AND id = $2";

/// Stores the state of `tasks` (each moved from the status paired with it) and counts the moves.
pub(crate) async fn write_state(w: &mut Work<'_>, tasks: &[(TaskStatus, &Task)]) -> TxResult<()> {
    if tasks.is_empty() {
        return Ok(());
    }
    let mut c = TaskColumns::with_capacity(tasks.len());
    let mut progress = Vec::with_capacity(tasks.len());
    let mut error = Vec::with_capacity(tasks.len());
    let mut artifacts = Vec::with_capacity(tasks.len());
    for (before, t) in tasks {
        let bad = |e: serde_json::Error| StoreError::Other(format!("task {} cannot be stored: {e}", t.id));
        c.namespace.push(t.namespace.as_str().to_owned());
        c.id.push(id_bytes(t.id));
        c.status.push(t.status.as_str());
        c.attempt.push(i32::try_from(t.attempt).unwrap_or(i32::MAX));
        c.run_at.push(ms(t.run_at));
        c.lease_agent
            .push(t.lease.as_ref().map(|l| l.agent.as_str().to_owned()));
        c.lease_token
            .push(t.lease.as_ref().map(|l| l.token.as_str().to_owned()));
        c.lease_expires_at.push(t.lease.as_ref().map(|l| ms(l.expires_at)));
        c.lease_acquired_at.push(t.lease.as_ref().map(|l| ms(l.acquired_at)));
        progress.push(t.progress.as_ref().map(serde_json::to_value).transpose().map_err(bad)?);
        c.result.push(t.result.clone());
        error.push(t.error.as_ref().map(serde_json::to_value).transpose().map_err(bad)?);
        artifacts.push(serde_json::to_value(&t.artifacts).map_err(bad)?);
        c.version.push(u64_col(t.version));
        c.updated_at.push(ms(t.updated_at));
        c.finished_at.push(t.finished_at.map(ms));
        c.finished_by
            .push(t.meta.finished_by.as_ref().map(|f| f.as_str().to_owned()));
        w.moved(*before, t);
    }
    let stmt = w.tx.prepare_cached(WRITE_STATE).await?;
    w.tx.execute(
        &stmt,
        &[
            &c.namespace,
            &c.id,
            &c.status,
            &c.attempt,
            &c.run_at,
            &c.lease_agent,
            &c.lease_token,
            &c.lease_expires_at,
            &c.lease_acquired_at,
            &progress,
            &c.result,
            &error,
            &artifacts,
            &c.version,
            &c.updated_at,
            &c.finished_at,
            &c.finished_by,
        ],
    )
    .await?;
    Ok(())
}

/// Stores every changeable field of one task (after an update) and counts its move.
async fn write_all(w: &mut Work<'_>, before: TaskStatus, t: &Task) -> TxResult<()> {
    let mut c = TaskColumns::with_capacity(1);
    c.push(t)?;
    let stmt = w.tx.prepare_cached(WRITE_ALL).await?;
    let params: [&(dyn ToSql + Sync); 22] = [
        &c.namespace[0],
        &c.id[0],
        &c.title[0],
        &c.priority[0],
        &c.input[0],
        &c.context[0],
        &c.context_versions[0],
        &c.status[0],
        &c.attempt[0],
        &c.run_at[0],
        &c.lease_agent[0],
        &c.lease_token[0],
        &c.lease_expires_at[0],
        &c.lease_acquired_at[0],
        &c.progress[0],
        &c.result[0],
        &c.error[0],
        &c.artifacts[0],
        &c.version[0],
        &c.updated_at[0],
        &c.finished_at[0],
        &c.finished_by[0],
    ];
    w.tx.execute(&stmt, &params).await?;
    w.moved(before, t);
    Ok(())
}

const INSERT: &str = "INSERT INTO tasks (namespace, id, queue, kind, title, input, status, priority, \
     required_capabilities, attempt, max_attempts, backoff, run_at, timeout_ms, lease_agent, lease_token, \
     lease_expires_at, lease_acquired_at, idempotency_key, concurrency_key, rate_limit_key, correlation_id, \
     artifacts, context, progress, result, error, version, created_at, updated_at, finished_at, \
     context_versions, finished_by) \
     SELECT u.namespace, u.id, u.queue, u.kind, u.title, u.input, u.status, u.priority, \
            string_to_array(u.caps, ' '), u.attempt, u.max_attempts, u.backoff, u.run_at, u.timeout_ms, \
            u.lease_agent, u.lease_token, u.lease_expires_at, u.lease_acquired_at, u.idempotency_key, \
            u.concurrency_key, u.rate_limit_key, u.correlation_id, u.artifacts, u.context, u.progress, \
            u.result, u.error, u.version, u.created_at, u.updated_at, u.finished_at, u.context_versions, \
            u.finished_by \
     FROM unnest($1::text[], $2::bytea[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::text[], \
                 $8::int4[], $9::text[], $10::int4[], $11::int4[], $12::jsonb[], $13::int8[], $14::int8[], \
                 $15::text[], $16::text[], $17::int8[], $18::int8[], $19::text[], $20::text[], $21::text[], \
                 $22::text[], $23::jsonb[], $24::jsonb[], $25::jsonb[], $26::jsonb[], $27::jsonb[], \
                 $28::int8[], $29::int8[], $30::int8[], $31::int8[], $32::jsonb[], $33::text[]) \
       AS u(namespace, id, queue, kind, title, input, status, priority, caps, attempt, max_attempts, \
            backoff, run_at, timeout_ms, lease_agent, lease_token, lease_expires_at, lease_acquired_at, \
            idempotency_key, concurrency_key, rate_limit_key, correlation_id, artifacts, context, \
            progress, result, error, version, created_at, updated_at, finished_at, context_versions, \
            finished_by) \
     ON CONFLICT (namespace, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING \
     RETURNING id";

/// Inserts the tasks; returns the ids actually inserted (a task whose idempotency key another
/// node stored meanwhile is not).
async fn insert(w: &mut Work<'_>, tasks: &[&Task]) -> TxResult<Vec<Vec<u8>>> {
    let mut c = TaskColumns::with_capacity(tasks.len());
    for t in tasks {
        c.push(t)?;
    }
    let stmt = w.tx.prepare_cached(INSERT).await?;
    let params: [&(dyn ToSql + Sync); 33] = [
        &c.namespace,
        &c.id,
        &c.queue,
        &c.kind,
        &c.title,
        &c.input,
        &c.status,
        &c.priority,
        &c.required_capabilities,
        &c.attempt,
        &c.max_attempts,
        &c.backoff,
        &c.run_at,
        &c.timeout_ms,
        &c.lease_agent,
        &c.lease_token,
        &c.lease_expires_at,
        &c.lease_acquired_at,
        &c.idempotency_key,
        &c.concurrency_key,
        &c.rate_limit_key,
        &c.correlation_id,
        &c.artifacts,
        &c.context,
        &c.progress,
        &c.result,
        &c.error,
        &c.version,
        &c.created_at,
        &c.updated_at,
        &c.finished_at,
        &c.context_versions,
        &c.finished_by,
    ];
    let rows = w.tx.query(&stmt, &params).await?;
    let inserted: Vec<Vec<u8>> = rows.iter().map(|r| r.get::<_, Vec<u8>>(0)).collect();
    debug_assert!(inserted.len() <= c.len());
    Ok(inserted)
}

async fn find_by_keys(w: &mut Work<'_>, ns: &Namespace, keys: &[&str]) -> TxResult<HashMap<String, Task>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let stmt =
        w.tx.prepare_cached(&select("namespace = $1 AND idempotency_key = ANY($2::text[])"))
            .await?;
    let rows = w.tx.query(&stmt, &[&ns.as_str(), &keys]).await?;
    Ok(decode_all(&rows)?
        .into_iter()
        .filter_map(|t| t.idempotency_key.clone().map(|k| (k, t)))
        .collect())
}

/// Waiting tasks (scheduled + queued) of each queue, from the counts.
async fn depths(w: &mut Work<'_>, ns: &Namespace, queues: &[&str]) -> TxResult<HashMap<String, u64>> {
    let stmt =
        w.tx.prepare_cached(
            "SELECT queue, sum(scheduled + queued)::int8 FROM queue_counts \
             WHERE namespace = $1 AND queue = ANY($2::text[]) GROUP BY queue",
        )
        .await?;
    let rows = w.tx.query(&stmt, &[&ns.as_str(), &queues]).await?;
    Ok(rows
        .iter()
        .map(|r| (r.get::<_, String>(0), u64::try_from(r.get::<_, i64>(1)).unwrap_or(0)))
        .collect())
}

async fn create(
    w: &mut Work<'_>,
    ns: &Namespace,
    new_tasks: Vec<NewTask>,
    options: CreateOptions,
    now: Timestamp,
) -> TxResult<Vec<Created>> {
    enum Planned {
        New(Task),
        Existing(Task),
        SameAs(usize),
    }
    let keys: Vec<&str> = new_tasks.iter().filter_map(|t| t.idempotency_key.as_deref()).collect();
    let existing = find_by_keys(w, ns, &keys).await?;
    let mut plan: Vec<Planned> = Vec::with_capacity(new_tasks.len());
    let mut batch_keys: HashMap<String, usize> = HashMap::new();
    let mut added: BTreeMap<QueueName, u64> = BTreeMap::new();
    for new in new_tasks {
        if let Some(key) = &new.idempotency_key {
            if let Some(task) = existing.get(key) {
                plan.push(Planned::Existing(task.clone()));
                continue;
            }
            if let Some(&first) = batch_keys.get(key) {
                plan.push(Planned::SameAs(first));
                continue;
            }
        }
        let task = new.into_task(TaskId::generate(), ns.clone(), now);
        if let Some(key) = &task.idempotency_key {
            batch_keys.insert(key.clone(), plan.len());
        }
        *added.entry(task.queue.clone()).or_default() += 1;
        plan.push(Planned::New(task));
    }
    if let Some(limit) = options.max_queue_depth
        && !added.is_empty()
    {
        let queues: Vec<&str> = added.keys().map(QueueName::as_str).collect();
        let depths = depths(w, ns, &queues).await?;
        for (queue, n) in &added {
            let depth = depths.get(queue.as_str()).copied().unwrap_or(0);
            if depth.saturating_add(*n) > limit {
                return Err(StoreError::Backpressure {
                    queue: queue.clone(),
                    depth,
                    limit,
                }
                .into());
            }
        }
    }
    let fresh: Vec<&Task> = plan
        .iter()
        .filter_map(|p| match p {
            Planned::New(t) => Some(t),
            _ => None,
        })
        .collect();
    let inserted = if fresh.is_empty() {
        Vec::new()
    } else {
        insert(w, &fresh).await?
    };
    // Another node may have stored one of these keys since they were looked up: its task is the
    // original, and ours was not inserted.
    let lost: Vec<&str> = if inserted.len() == fresh.len() {
        Vec::new()
    } else {
        let inserted: std::collections::HashSet<&[u8]> = inserted.iter().map(Vec::as_slice).collect();
        fresh
            .iter()
            .filter(|t| !inserted.contains(id_bytes(t.id).as_slice()))
            .filter_map(|t| t.idempotency_key.as_deref())
            .collect()
    };
    let winners = find_by_keys(w, ns, &lost).await?;
    let mut out: Vec<Created> = Vec::with_capacity(plan.len());
    for item in plan {
        let created = match item {
            Planned::New(task) => match task.idempotency_key.as_ref().and_then(|k| winners.get(k)) {
                Some(original) => Created {
                    task: original.clone(),
                    created: false,
                },
                None => {
                    w.created(&task);
                    w.log_task(&task);
                    Created { task, created: true }
                }
            },
            Planned::Existing(task) => Created { task, created: false },
            Planned::SameAs(first) => Created {
                task: out[first].task.clone(),
                created: false,
            },
        };
        out.push(created);
    }
    Ok(out)
}

/// Applies each command to its task in order (a task named twice sees the first change) and
/// writes every changed task once.
async fn apply_each(
    w: &mut Work<'_>,
    ns: &Namespace,
    commands: Vec<(TaskId, TaskCommand)>,
    now: Timestamp,
) -> TxResult<Vec<Result<Task, StoreError>>> {
    if commands.is_empty() {
        return Ok(Vec::new());
    }
    // Completions without artifacts, one per task, are written by one statement; what it did not
    // match (a wrong token, a repeat, an unknown id) takes the general path below.
    let mut out: Vec<Option<Result<Task, StoreError>>> = vec![None; commands.len()];
    let done = complete_at_once(w, ns, &commands, now).await?;
    // The events of the changes, by the command that made them: logged in command order.
    let mut events: Vec<(usize, NewEvent)> = Vec::new();
    let mut log = |i: usize, task: &Task| {
        if let Some(e) = task_event(task, task.updated_at) {
            events.push((i, e));
        }
    };
    let mut rest: Vec<(usize, TaskId, TaskCommand)> = Vec::with_capacity(commands.len());
    for (i, (id, command)) in commands.into_iter().enumerate() {
        match done.get(&id) {
            Some(task) if is_plain_complete(&command) => {
                log(i, task);
                out[i] = Some(Ok(task.clone()));
            }
            _ => rest.push((i, id, command)),
        }
    }
    let commands = rest;
    if !commands.is_empty() {
        let ids: Vec<TaskId> = commands.iter().map(|(_, id, _)| *id).collect();
        let mut tasks = lock_tasks(w, ns, &ids).await?;
        // Per changed task: its status as loaded, and whether a client-changeable field moved.
        let mut changed: BTreeMap<TaskId, (TaskStatus, bool)> = BTreeMap::new();
        for (i, id, command) in commands {
            let Some(task) = tasks.get_mut(&id) else {
                out[i] = Some(Err(StoreError::task_not_found(id)));
                continue;
            };
            let full = matches!(command, TaskCommand::Update { .. });
            let before = task.clone();
            out[i] = Some(match task.apply(command, now) {
                Ok(Applied::Changed) => {
                    let entry = changed.entry(id).or_insert((before.status, false));
                    entry.1 |= full;
                    if task.version != before.version {
                        log(i, task);
                    }
                    Ok(task.clone())
                }
                Ok(Applied::Unchanged) => Ok(before),
                Err(e) => {
                    *task = before;
                    Err(StoreError::from_transition(e, task))
                }
            });
        }
        let mut state: Vec<(TaskStatus, &Task)> = Vec::new();
        for (id, (before, full)) in &changed {
            let task = &tasks[id];
            if *full {
                write_all(w, *before, task).await?;
            } else {
                state.push((*before, task));
            }
        }
        write_state(w, &state).await?;
    }
    events.sort_by_key(|(i, _)| *i);
    for (_, e) in events {
        w.log(e);
    }
    Ok(out.into_iter().flatten().collect())
}

fn is_plain_complete(command: &TaskCommand) -> bool {
    matches!(command, TaskCommand::Complete { completion, .. } if completion.artifacts.is_empty())
}

/// Completes, in one statement, the tasks of plain completions (no artifacts; a task named once
/// in the batch) whose lease the token still holds: the change of `Task::apply(Complete)`, written
/// in SQL. Returns the completed tasks by id.
async fn complete_at_once(
    w: &mut Work<'_>,
    ns: &Namespace,
    commands: &[(TaskId, TaskCommand)],
    now: Timestamp,
) -> TxResult<HashMap<TaskId, Task>> {
    let mut named: HashMap<TaskId, usize> = HashMap::new();
    for (id, _) in commands {
        *named.entry(*id).or_default() += 1;
    }
    let mut plain: Vec<(Vec<u8>, &str, Option<&serde_json::Value>)> = commands
        .iter()
        .filter(|(id, c)| named[id] == 1 && is_plain_complete(c))
        .filter_map(|(id, c)| match c {
            TaskCommand::Complete { token, completion } => {
                Some((id_bytes(*id), token.as_str(), completion.result.as_ref()))
            }
            _ => None,
        })
        .collect();
    if plain.is_empty() {
        return Ok(HashMap::new());
    }
    // Rows are locked in id order whatever else completes them at the same time.
    plain.sort_by(|a, b| a.0.cmp(&b.0));
    let ids: Vec<&[u8]> = plain.iter().map(|p| p.0.as_slice()).collect();
    let tokens: Vec<&str> = plain.iter().map(|p| p.1).collect();
    let results: Vec<Option<&serde_json::Value>> = plain.iter().map(|p| p.2).collect();
    let stmt =
        w.tx.prepare_cached(&COMPLETE_AT_ONCE.replace("COLUMNS", &prefixed("t.")))
            .await?;
    let rows =
        w.tx.query(&stmt, &[&ns.as_str(), &ms(now), &ids, &tokens, &results])
            .await?;
    let mut out = HashMap::with_capacity(rows.len());
    for row in &rows {
        let mut task = decode(row)?;
        // The lease it ended, for its event (as `Task::apply(Complete)` tells it).
        let agent: String = row
            .try_get(TASK_COLUMN_COUNT)
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let acquired_at: i64 = row
            .try_get(TASK_COLUMN_COUNT + 1)
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let agent = AgentName::parse(&agent).map_err(|e| StoreError::Other(format!("task {}: {e}", task.id)))?;
        task.meta.change = LastChange(Some(TaskChange::Completed {
            agent,
            run_ms: now.millis_since(Timestamp::from_millis(acquired_at)),
        }));
        w.moved(TaskStatus::Running, &task);
        out.insert(task.id, task);
    }
    Ok(out)
}

/// `o` is the row as the statement found it, before the change: the lease it ends (the token
/// names one lease, so its agent and start are those of the row changed).
const COMPLETE_AT_ONCE: &str = "UPDATE tasks AS t SET status = 'succeeded', result = u.result, \
     lease_agent = NULL, lease_token = NULL, lease_expires_at = NULL, lease_acquired_at = NULL, \
     finished_at = $2::int8, finished_by = u.token, version = t.version + 1, updated_at = $2::int8 \
     FROM unnest($3::bytea[], $4::text[], $5::jsonb[]) AS u(id, token, result), tasks AS o \
     WHERE t.namespace = $1 AND t.id = ANY($3::bytea[]) AND t.id = u.id \
       AND t.status = 'running' AND t.lease_token = u.token \
       AND o.namespace = $1 AND o.id = u.id AND o.lease_token = u.token \
     RETURNING COLUMNS, o.lease_agent, o.lease_acquired_at";

/// [`TASK_COLUMNS`] with each column prefixed (`t.`), for statements that join.
fn prefixed(prefix: &str) -> String {
    TASK_COLUMNS
        .split(", ")
        .map(|c| format!("{prefix}{}", c.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Locks up to `limit` rows matching `filter` (which ends in its ORDER BY) that no other
/// transaction holds, applies `change` to each and stores those it changed.
async fn change_due(
    w: &mut Work<'_>,
    filter: &str,
    params: &[&(dyn ToSql + Sync)],
    mut change: impl FnMut(&mut Task) -> bool,
) -> TxResult<Vec<Task>> {
    let stmt = w.tx.prepare_cached(&select(filter)).await?;
    let rows = w.tx.query(&stmt, params).await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut before = Vec::with_capacity(rows.len());
    for mut task in decode_all(&rows)? {
        let (status, version) = (task.status, task.version);
        if change(&mut task) {
            if task.version != version {
                w.log_task(&task);
            }
            before.push(status);
            out.push(task);
        }
    }
    let moved: Vec<(TaskStatus, &Task)> = before.into_iter().zip(out.iter()).collect();
    write_state(w, &moved).await?;
    Ok(out)
}

#[async_trait]
impl Store for PgStore {
    async fn create_tasks(
        &self,
        ns: &Namespace,
        tasks: Vec<NewTask>,
        options: CreateOptions,
        now: Timestamp,
    ) -> Result<Vec<Created>, StoreError> {
        write_tx!(self, |w| create(&mut w, ns, tasks.clone(), options, now).await)
    }

    async fn get_task(&self, ns: &Namespace, id: TaskId) -> Result<Task, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&select("namespace = $1 AND id = $2"))
            .await
            .map_err(pg_error)?;
        let row = client
            .query_opt(&stmt, &[&ns.as_str(), &id_bytes(id)])
            .await
            .map_err(pg_error)?;
        match row {
            Some(row) => decode(&row),
            None => Err(StoreError::task_not_found(id)),
        }
    }

    async fn list_tasks(
        &self,
        ns: &Namespace,
        filter: &TaskFilter,
        after: Option<TaskId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        // Every id sorts after the empty byte string, so no cursor means "from the start".
        let after = after.map(id_bytes).unwrap_or_default();
        let fetch = to_i64(limit.saturating_add(1));
        // The status is written into the statement (it is one of six words), so the planner
        // can match it to the partial indexes, which a parameter would not let it do.
        let status = filter
            .status
            .map(|s| format!(" AND status = '{}'", s.as_str()))
            .unwrap_or_default();
        let client = self.client().await?;
        let rows = match &filter.queue {
            Some(queue) => {
                let sql = select(&format!(
                    "namespace = $1 AND id > $2 AND queue = $4{status} ORDER BY id LIMIT $3"
                ));
                let stmt = client.prepare_cached(&sql).await.map_err(pg_error)?;
                client
                    .query(&stmt, &[&ns.as_str(), &after, &fetch, &queue.as_str()])
                    .await
            }
            None => {
                let sql = select(&format!("namespace = $1 AND id > $2{status} ORDER BY id LIMIT $3"));
                let stmt = client.prepare_cached(&sql).await.map_err(pg_error)?;
                client.query(&stmt, &[&ns.as_str(), &after, &fetch]).await
            }
        }
        .map_err(pg_error)?;
        let mut items = decode_all(&rows)?;
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|t| t.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn apply(
        &self,
        ns: &Namespace,
        id: TaskId,
        command: TaskCommand,
        now: Timestamp,
    ) -> Result<Task, StoreError> {
        let mut out = write_tx!(self, |w| apply_each(&mut w, ns, vec![(id, command.clone())], now).await)?;
        out.pop().unwrap_or_else(|| Err(StoreError::task_not_found(id)))
    }

    async fn apply_many(
        &self,
        ns: &Namespace,
        commands: Vec<(TaskId, TaskCommand)>,
        now: Timestamp,
    ) -> Result<Vec<Result<Task, StoreError>>, StoreError> {
        write_tx!(self, |w| apply_each(&mut w, ns, commands.clone(), now).await)
    }

    async fn apply_then_claim(
        &self,
        ns: &Namespace,
        commands: Vec<(TaskId, TaskCommand)>,
        claim: &Claim,
        now: Timestamp,
    ) -> Result<(Vec<Result<Task, StoreError>>, Vec<Task>), StoreError> {
        write_tx!(self, |w| {
            let applied = apply_each(&mut w, ns, commands.clone(), now).await?;
            let claimed = crate::claim::claim_tasks(&mut w, ns, claim, now).await?;
            TxResult::Ok((applied, claimed))
        })
    }

    async fn claim_tasks(&self, ns: &Namespace, claim: &Claim, now: Timestamp) -> Result<Vec<Task>, StoreError> {
        // Keyless tasks in one statement; a transaction only for what keyed ones need (or when
        // the statement could not run: a closed connection or a deadlock is tried again there).
        // The connection goes back to the pool before the transaction below takes one.
        let first = {
            let client = self.client().await?;
            let first = crate::claim::claim_free(&client, ns, claim, now).await;
            if matches!(&first, Err(TxError::Pg(e)) if e.code().is_none()) {
                // Most likely closed (PostgreSQL restarted): not lent out again.
                drop(deadpool_postgres::Object::take(client));
            }
            first
        };
        let (mut leased, rest) = match first {
            Ok(round) => {
                if !round.leased.is_empty() {
                    // Their events were queued by the statement.
                    self.sequencer.nudge();
                }
                (round.leased, round.rest)
            }
            Err(TxError::Pg(e)) if e.code().is_none() || crate::error::is_retryable(&e) => (Vec::new(), claim.max),
            Err(e) => return Err(e.into_store()),
        };
        if rest == 0 {
            return Ok(leased);
        }
        let rest_claim = Claim {
            max: rest,
            ..claim.clone()
        };
        let mut more = write_tx!(self, |w| crate::claim::claim_tasks(&mut w, ns, &rest_claim, now).await)?;
        leased.append(&mut more);
        leased.sort_by(crate::claim::claim_order);
        Ok(leased)
    }

    async fn expire_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
        write_tx!(self, |w| {
            change_due(
                &mut w,
                "status = 'running' AND lease_expires_at <= $1 \
                 ORDER BY lease_expires_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&ms(now), &to_i64(limit)],
                |t| t.expire_lease(now),
            )
            .await
        })
    }

    async fn promote_due(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
        write_tx!(self, |w| {
            change_due(
                &mut w,
                "status = 'scheduled' AND run_at <= $1 ORDER BY run_at, id LIMIT $2 FOR UPDATE SKIP LOCKED",
                &[&ms(now), &to_i64(limit)],
                |t| t.promote_if_due(now),
            )
            .await
        })
    }

    async fn next_wakeup(&self) -> Result<Option<Timestamp>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT least((SELECT min(run_at) FROM tasks WHERE status = 'scheduled'), \
                              (SELECT min(lease_expires_at) FROM tasks WHERE status = 'running'))",
            )
            .await
            .map_err(pg_error)?;
        let row = client.query_one(&stmt, &[]).await.map_err(pg_error)?;
        Ok(row.get::<_, Option<i64>>(0).map(Timestamp::from_millis))
    }

    async fn redrive_failed(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Task>, StoreError> {
        write_tx!(self, |w| {
            change_due(
                &mut w,
                "namespace = $1 AND queue = $2 AND status = 'failed' ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
                &[&ns.as_str(), &queue.as_str(), &to_i64(limit)],
                |t| t.apply(TaskCommand::Redrive, now).is_ok(),
            )
            .await
        })
    }

    fn watch_remote(&self, sink: RemoteSink) -> bool {
        self.start_listening(sink);
        true
    }

    async fn queue_stats(
        &self,
        ns: &Namespace,
        queue: Option<&QueueName>,
        now: Timestamp,
    ) -> Result<Vec<QueueStats>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(
                "SELECT queue, sum(scheduled)::int8, sum(queued)::int8, sum(running)::int8, \
                        sum(succeeded)::int8, sum(failed)::int8, sum(cancelled)::int8 \
                 FROM queue_counts WHERE namespace = $1 AND ($2::text IS NULL OR queue = $2) \
                 GROUP BY queue ORDER BY queue COLLATE \"C\"",
            )
            .await
            .map_err(pg_error)?;
        let rows = client
            .query(&stmt, &[&ns.as_str(), &queue.map(QueueName::as_str)])
            .await
            .map_err(pg_error)?;
        let oldest = client.prepare_cached(OLDEST_READY).await.map_err(pg_error)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let n = |i: usize| u64::try_from(row.get::<_, i64>(i)).unwrap_or(0);
            let counts = StatusCounts {
                scheduled: n(1),
                queued: n(2),
                running: n(3),
                succeeded: n(4),
                failed: n(5),
                cancelled: n(6),
            };
            let name: String = row.get(0);
            let queue =
                QueueName::parse(&name).map_err(|e| StoreError::Other(format!("stored queue {name:?}: {e}")))?;
            let oldest_ready_at = if counts.queued > 0 {
                let at: Option<i64> = client
                    .query_one(&oldest, &[&ns.as_str(), &name])
                    .await
                    .map_err(pg_error)?
                    .get(0);
                at.map(Timestamp::from_millis)
            } else {
                None
            };
            out.push(QueueStats {
                queue,
                counts,
                depth: counts.depth(),
                oldest_ready_at,
                oldest_ready_age_ms: oldest_ready_at.map(|o| now.millis_since(o)),
            });
        }
        Ok(out)
    }
}

/// The earliest `run_at` among the ready tasks of a queue, from the ready index alone: one seek
/// per distinct priority among them, not a walk of every ready task (the index is ordered by
/// priority first).
const OLDEST_READY: &str = "\
    WITH RECURSIVE priorities(p) AS ( \
        SELECT max(priority) FROM tasks WHERE namespace = $1 AND queue = $2 AND status = 'queued' \
        UNION ALL \
        SELECT (SELECT max(priority) FROM tasks \
                WHERE namespace = $1 AND queue = $2 AND status = 'queued' AND priority < priorities.p) \
        FROM priorities WHERE priorities.p IS NOT NULL \
    ) \
    SELECT min((SELECT run_at FROM tasks \
                WHERE namespace = $1 AND queue = $2 AND status = 'queued' AND priority = priorities.p \
                ORDER BY run_at LIMIT 1)) \
    FROM priorities WHERE priorities.p IS NOT NULL";
