//! How a task maps to a row of `tasks` and back. The row is the store's own format, versioned by
//! the migrations: plain columns for every scalar field, `jsonb` for the structured values
//! (input, context, result, artifacts, progress, error, backoff policy).

use agentyard_core::task::TaskMeta;
use agentyard_core::{
    AgentName, Artifact, Backoff, Capability, Lease, LeaseToken, Namespace, Progress, QueueName, Task, TaskError,
    TaskId, TaskStatus, Timestamp,
};
use agentyard_store::StoreError;
use serde_json::{Map, Value};
use tokio_postgres::Row;
use tokio_postgres::types::Json;

use crate::error::corrupt;

/// Every column of a task, in the order [`decode`] reads them.
pub(crate) const TASK_COLUMNS: &str = "namespace, id, queue, kind, title, input, status, priority, \
     required_capabilities, attempt, max_attempts, backoff, run_at, timeout_ms, lease_agent, lease_token, \
     lease_expires_at, lease_acquired_at, idempotency_key, concurrency_key, rate_limit_key, correlation_id, \
     artifacts, context, progress, result, error, version, created_at, updated_at, finished_at, \
     context_versions, finished_by";

/// How many columns [`TASK_COLUMNS`] names: a statement may add its own after them.
pub(crate) const TASK_COLUMN_COUNT: usize = 33;

/// The 16 bytes of an id, big-endian: byte order is id order.
pub(crate) fn id_bytes(id: TaskId) -> Vec<u8> {
    id.to_u128().to_be_bytes().to_vec()
}

pub(crate) fn id_of(bytes: &[u8]) -> Result<TaskId, StoreError> {
    let raw: [u8; 16] = bytes
        .try_into()
        .map_err(|_| corrupt("task id", format!("{} bytes, not 16", bytes.len())))?;
    Ok(TaskId::from_u128(u128::from_be_bytes(raw)))
}

pub(crate) fn ms(t: Timestamp) -> i64 {
    t.as_millis()
}

fn opt_ms(t: Option<Timestamp>) -> Option<i64> {
    t.map(Timestamp::as_millis)
}

pub(crate) fn u64_col(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn u32_col(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn status_of(s: &str) -> Result<TaskStatus, StoreError> {
    TaskStatus::parse(s).ok_or_else(|| corrupt("task status", format!("{s:?} is not a status")))
}

/// Reads a row whose columns are [`TASK_COLUMNS`].
pub(crate) fn decode(row: &Row) -> Result<Task, StoreError> {
    let id = id_of(row.try_get::<_, &[u8]>(1).map_err(|e| corrupt("task id", e))?)?;
    let what = || format!("task {id}");
    let bad = |e: tokio_postgres::Error| corrupt(what(), e);
    let ns: &str = row.try_get(0).map_err(bad)?;
    let namespace = Namespace::parse(ns).map_err(|e| corrupt(what(), e))?;
    let queue = QueueName::parse(row.try_get::<_, &str>(2).map_err(bad)?).map_err(|e| corrupt(what(), e))?;
    let caps: Vec<&str> = row.try_get(8).map_err(bad)?;
    let required_capabilities = caps
        .into_iter()
        .map(Capability::parse)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| corrupt(what(), e))?;
    let lease_agent: Option<&str> = row.try_get(14).map_err(bad)?;
    let lease = match lease_agent {
        Some(agent) => Some(Lease {
            agent: AgentName::parse(agent).map_err(|e| corrupt(what(), e))?,
            token: LeaseToken::new(row.try_get::<_, String>(15).map_err(bad)?),
            expires_at: Timestamp::from_millis(row.try_get(16).map_err(bad)?),
            acquired_at: Timestamp::from_millis(row.try_get(17).map_err(bad)?),
        }),
        None => None,
    };
    let Json(backoff): Json<Backoff> = row.try_get(11).map_err(bad)?;
    let Json(artifacts): Json<Vec<Artifact>> = row.try_get(22).map_err(bad)?;
    let Json(context): Json<Map<String, Value>> = row.try_get(23).map_err(bad)?;
    let progress: Option<Json<Progress>> = row.try_get(24).map_err(bad)?;
    let error: Option<Json<TaskError>> = row.try_get(26).map_err(bad)?;
    let Json(context_versions) = row.try_get(31).map_err(bad)?;
    let finished_by: Option<String> = row.try_get(32).map_err(bad)?;
    let count = |i: usize| -> Result<u32, StoreError> {
        u32::try_from(row.try_get::<_, i32>(i).map_err(bad)?).map_err(|e| corrupt(what(), e))
    };
    let timeout_ms: Option<i64> = row.try_get(13).map_err(bad)?;
    Ok(Task {
        id,
        namespace,
        queue,
        kind: row.try_get(3).map_err(bad)?,
        title: row.try_get(4).map_err(bad)?,
        input: row.try_get(5).map_err(bad)?,
        status: status_of(row.try_get(6).map_err(bad)?)?,
        priority: row.try_get(7).map_err(bad)?,
        required_capabilities,
        attempt: count(9)?,
        max_attempts: count(10)?,
        backoff,
        run_at: Timestamp::from_millis(row.try_get(12).map_err(bad)?),
        timeout_ms: timeout_ms.map(|t| u64::try_from(t).unwrap_or(0)),
        lease,
        idempotency_key: row.try_get(18).map_err(bad)?,
        concurrency_key: row.try_get(19).map_err(bad)?,
        rate_limit_key: row.try_get(20).map_err(bad)?,
        correlation_id: row.try_get(21).map_err(bad)?,
        artifacts,
        context,
        progress: progress.map(|Json(p)| p),
        result: row.try_get(25).map_err(bad)?,
        error: error.map(|Json(e)| e),
        version: u64::try_from(row.try_get::<_, i64>(27).map_err(bad)?).map_err(|e| corrupt(what(), e))?,
        created_at: Timestamp::from_millis(row.try_get(28).map_err(bad)?),
        updated_at: Timestamp::from_millis(row.try_get(29).map_err(bad)?),
        finished_at: row
            .try_get::<_, Option<i64>>(30)
            .map_err(bad)?
            .map(Timestamp::from_millis),
        meta: TaskMeta {
            context_versions,
            finished_by: finished_by.map(LeaseToken::new),
            ..TaskMeta::default()
        },
    })
}

/// Tasks as column arrays, for statements that write many rows with `unnest`.
#[derive(Default)]
pub(crate) struct TaskColumns {
    pub namespace: Vec<String>,
    pub id: Vec<Vec<u8>>,
    pub queue: Vec<String>,
    pub kind: Vec<Option<String>>,
    pub title: Vec<Option<String>>,
    pub input: Vec<Value>,
    pub status: Vec<&'static str>,
    pub priority: Vec<i32>,
    /// Postgres arrays of arrays must be rectangular, so capabilities travel space-joined.
    pub required_capabilities: Vec<String>,
    pub attempt: Vec<i32>,
    pub max_attempts: Vec<i32>,
    pub backoff: Vec<Value>,
    pub run_at: Vec<i64>,
    pub timeout_ms: Vec<Option<i64>>,
    pub lease_agent: Vec<Option<String>>,
    pub lease_token: Vec<Option<String>>,
    pub lease_expires_at: Vec<Option<i64>>,
    pub lease_acquired_at: Vec<Option<i64>>,
    pub idempotency_key: Vec<Option<String>>,
    pub concurrency_key: Vec<Option<String>>,
    pub rate_limit_key: Vec<Option<String>>,
    pub correlation_id: Vec<Option<String>>,
    pub artifacts: Vec<Value>,
    pub context: Vec<Value>,
    pub progress: Vec<Option<Value>>,
    pub result: Vec<Option<Value>>,
    pub error: Vec<Option<Value>>,
    pub version: Vec<i64>,
    pub created_at: Vec<i64>,
    pub updated_at: Vec<i64>,
    pub finished_at: Vec<Option<i64>>,
    pub context_versions: Vec<Value>,
    pub finished_by: Vec<Option<String>>,
}

fn json<T: serde::Serialize>(task: &Task, v: &T) -> Result<Value, StoreError> {
    serde_json::to_value(v).map_err(|e| corrupt(format!("task {}", task.id), e))
}

impl TaskColumns {
    pub(crate) fn with_capacity(n: usize) -> Self {
        let mut c = Self::default();
        c.id.reserve(n);
        c
    }

    pub(crate) fn len(&self) -> usize {
        self.id.len()
    }

    pub(crate) fn push(&mut self, t: &Task) -> Result<(), StoreError> {
        self.namespace.push(t.namespace.as_str().to_owned());
        self.id.push(id_bytes(t.id));
        self.queue.push(t.queue.as_str().to_owned());
        self.kind.push(t.kind.clone());
        self.title.push(t.title.clone());
        self.input.push(t.input.clone());
        self.status.push(t.status.as_str());
        self.priority.push(t.priority);
        self.required_capabilities.push(
            t.required_capabilities
                .iter()
                .map(Capability::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        );
        self.attempt.push(u32_col(t.attempt));
        self.max_attempts.push(u32_col(t.max_attempts));
        self.backoff.push(json(t, &t.backoff)?);
        self.run_at.push(ms(t.run_at));
        self.timeout_ms.push(t.timeout_ms.map(u64_col));
        self.lease_agent
            .push(t.lease.as_ref().map(|l| l.agent.as_str().to_owned()));
        self.lease_token
            .push(t.lease.as_ref().map(|l| l.token.as_str().to_owned()));
        self.lease_expires_at.push(t.lease.as_ref().map(|l| ms(l.expires_at)));
        self.lease_acquired_at.push(t.lease.as_ref().map(|l| ms(l.acquired_at)));
        self.idempotency_key.push(t.idempotency_key.clone());
        self.concurrency_key.push(t.concurrency_key.clone());
        self.rate_limit_key.push(t.rate_limit_key.clone());
        self.correlation_id.push(t.correlation_id.clone());
        self.artifacts.push(json(t, &t.artifacts)?);
        self.context.push(Value::Object(t.context.clone()));
        self.progress.push(t.progress.as_ref().map(|p| json(t, p)).transpose()?);
        self.result.push(t.result.clone());
        self.error.push(t.error.as_ref().map(|e| json(t, e)).transpose()?);
        self.version.push(u64_col(t.version));
        self.created_at.push(ms(t.created_at));
        self.updated_at.push(ms(t.updated_at));
        self.finished_at.push(opt_ms(t.finished_at));
        self.context_versions.push(json(t, &t.meta.context_versions)?);
        self.finished_by
            .push(t.meta.finished_by.as_ref().map(|f| f.as_str().to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_column_count_is_the_columns_named() {
        assert_eq!(TASK_COLUMNS.split(", ").count(), TASK_COLUMN_COUNT);
    }

    #[test]
    fn ids_as_bytes_sort_as_ids_and_round_trip() {
        let a = TaskId::from_parts(1, u128::from(u64::MAX));
        let b = TaskId::from_parts(2, 0);
        assert!(id_bytes(a) < id_bytes(b));
        assert_eq!(id_of(&id_bytes(b)).expect("16 bytes"), b);
        assert!(id_of(&[1, 2, 3]).is_err());
    }
}
