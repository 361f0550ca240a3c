//! Wire shapes of the HTTP API, shared by the server and the client so they cannot disagree.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::agent::{Agent, AgentRegistration, DEFAULT_SLOTS};
use crate::backoff::Backoff;
use crate::flow::RateLimit;
use crate::id::{LeaseToken, TaskId};
use crate::message::{Message, NewMessage, Recipient, TopicName};
use crate::names::{AgentName, Capability, Namespace, QueueName};
use crate::task::{
    Completion, DEFAULT_MAX_ATTEMPTS, NewArtifact, NewTask, Progress, Task, TaskError, TaskPatch, TaskStatus,
};
use crate::time::Timestamp;

mod admin;
mod agents;
mod complete;
mod events;
mod health;
mod limits;
mod messages;
mod release;
mod webhooks;

pub use admin::PruneResult;
pub use agents::*;
use complete::completions;
pub use complete::*;
pub use events::{EventList, Trace};
pub use health::*;
pub use limits::*;
pub use messages::*;
pub use release::ReleaseRequest;
pub use webhooks::*;

/// Longest free-text field (titles, kinds, keys) the API accepts, in bytes.
pub const MAX_TEXT_LEN: usize = 1024;
/// Most tasks one batch create or claim handles.
pub const MAX_BATCH: usize = 1000;
/// Most tasks one claim hands out.
pub const MAX_CLAIM: u32 = 100;
/// Longest long-poll of a claim.
pub const MAX_WAIT_MS: u64 = 60_000;
/// Shortest and longest lease.
pub const MIN_LEASE_MS: u64 = 100;
pub const MAX_LEASE_MS: u64 = 24 * 3_600_000;
/// Most attempts a task may ask for.
pub const MAX_ATTEMPTS_LIMIT: u32 = 1_000;
/// Furthest a task may be scheduled ahead (`run_at`, `delay_ms`): one year.
pub const MAX_DELAY_MS: u64 = 365 * 24 * 3_600_000;
/// Most tasks of one concurrency key a limit may let run at once.
pub const MAX_CONCURRENT_LIMIT: u64 = 1_000_000;

/// A request field that is out of range or inconsistent. Becomes a 422 naming `field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefixes the field with its position in a batch, e.g. `tasks[3].queue`.
    pub fn within(self, prefix: &str) -> Self {
        Self {
            field: format!("{prefix}.{}", self.field),
            message: self.message,
        }
    }
}

fn check_text(field: &str, value: &Option<String>) -> Result<(), FieldError> {
    match value {
        Some(v) if v.len() > MAX_TEXT_LEN => Err(FieldError::new(
            field,
            format!("is {} bytes long; the limit is {MAX_TEXT_LEN}", v.len()),
        )),
        Some(v) if v.is_empty() => Err(FieldError::new(field, "must not be empty (leave it out instead)")),
        _ => Ok(()),
    }
}

/// A dispatch key (`concurrency_key`, `rate_limit_key`, a limit's key): text as [`check_text`]
/// takes it, without control characters (they would reach log lines and terminals as they are).
fn check_key(field: &str, value: &Option<String>) -> Result<(), FieldError> {
    check_text(field, value)?;
    match value {
        Some(v) if v.chars().any(char::is_control) => Err(FieldError::new(
            field,
            "must not hold control characters (newlines, tabs, escapes)",
        )),
        _ => Ok(()),
    }
}

/// Partial backoff policy: fields left out take the defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BackoffRequest {
    /// At most 604800000 (7 days).
    #[cfg_attr(feature = "openapi", schema(maximum = 604_800_000))]
    pub initial_ms: Option<u64>,
    /// At least `initial_ms`, at most 604800000 (7 days).
    #[cfg_attr(feature = "openapi", schema(maximum = 604_800_000))]
    pub max_ms: Option<u64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub multiplier: Option<f64>,
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 1))]
    pub jitter: Option<f64>,
}

/// `POST /v1/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateTaskRequest {
    pub queue: QueueName,
    /// 1 to 1024 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub kind: Option<String>,
    /// 1 to 1024 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub title: Option<String>,
    #[serde(default)]
    pub input: Value,
    /// Higher runs first. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(max_items = 64))]
    pub required_capabilities: Option<Vec<Capability>>,
    /// 1 to 1000, default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<BackoffRequest>,
    /// Not before this time, at most a year from now (a past time is due at once). Exclusive with
    /// `delay_ms`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_at: Option<Timestamp>,
    /// Not before this many milliseconds from now (at most a year). Exclusive with `run_at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 31_536_000_000_u64))]
    pub delay_ms: Option<u64>,
    /// Hard limit of one attempt (100 ms to 24 hours): its lease is never extended past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 86_400_000))]
    pub timeout_ms: Option<u64>,
    /// 1 to 1024 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub idempotency_key: Option<String>,
    /// 1 to 1024 bytes, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")
    )]
    pub concurrency_key: Option<String>,
    /// 1 to 1024 bytes, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(min_length = 1, max_length = 1024, pattern = "^[^\\u0000-\\u001F\\u007F-\\u009F]*$")
    )]
    pub rate_limit_key: Option<String>,
    /// 1 to 1024 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub correlation_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub context: Option<Map<String, Value>>,
}

impl CreateTaskRequest {
    pub fn new(queue: QueueName, input: Value) -> Self {
        Self {
            queue,
            kind: None,
            title: None,
            input,
            priority: None,
            required_capabilities: None,
            max_attempts: None,
            backoff: None,
            run_at: None,
            delay_ms: None,
            timeout_ms: None,
            idempotency_key: None,
            concurrency_key: None,
            rate_limit_key: None,
            correlation_id: None,
            context: None,
        }
    }

    /// Checks ranges and consistency and builds the task to create.
    pub fn into_new_task(self, now: Timestamp) -> Result<NewTask, FieldError> {
        for (field, value) in [
            ("kind", &self.kind),
            ("title", &self.title),
            ("idempotency_key", &self.idempotency_key),
            ("correlation_id", &self.correlation_id),
        ] {
            check_text(field, value)?;
        }
        check_key("concurrency_key", &self.concurrency_key)?;
        check_key("rate_limit_key", &self.rate_limit_key)?;
        let max_attempts = self.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS);
        if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
            return Err(FieldError::new(
                "max_attempts",
                format!("must be between 1 and {MAX_ATTEMPTS_LIMIT}"),
            ));
        }
        let defaults = Backoff::default();
        let b = self.backoff.unwrap_or_default();
        let initial_ms = b.initial_ms.unwrap_or(defaults.initial_ms);
        let backoff = Backoff {
            initial_ms,
            max_ms: b.max_ms.unwrap_or(defaults.max_ms.max(initial_ms)),
            multiplier: b.multiplier.unwrap_or(defaults.multiplier),
            jitter: b.jitter.unwrap_or(defaults.jitter),
        };
        backoff
            .check()
            .map_err(|(f, m)| FieldError::new(format!("backoff.{f}"), m))?;
        let run_at = match (self.run_at, self.delay_ms) {
            (Some(_), Some(_)) => return Err(FieldError::new("delay_ms", "give either run_at or delay_ms, not both")),
            (Some(t), None) if t > now.add_millis(MAX_DELAY_MS) => {
                return Err(FieldError::new("run_at", "must be at most one year from now"));
            }
            (Some(t), None) => Some(t),
            (None, Some(d)) if d > MAX_DELAY_MS => {
                return Err(FieldError::new("delay_ms", "must be at most one year"));
            }
            (None, Some(d)) => Some(now.add_millis(d)),
            (None, None) => None,
        };
        if let Some(t) = self.timeout_ms
            && !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&t)
        {
            return Err(FieldError::new(
                "timeout_ms",
                format!("must be between {MIN_LEASE_MS} and {MAX_LEASE_MS} (24 hours)"),
            ));
        }
        let mut caps = self.required_capabilities.unwrap_or_default();
        if caps.len() > 64 {
            return Err(FieldError::new("required_capabilities", "at most 64 capabilities"));
        }
        caps.sort();
        caps.dedup();
        Ok(NewTask {
            queue: self.queue,
            kind: self.kind,
            title: self.title,
            input: self.input,
            priority: self.priority.unwrap_or(0),
            required_capabilities: caps,
            max_attempts,
            backoff,
            run_at,
            timeout_ms: self.timeout_ms,
            idempotency_key: self.idempotency_key,
            concurrency_key: self.concurrency_key,
            rate_limit_key: self.rate_limit_key,
            correlation_id: self.correlation_id,
            context: self.context.unwrap_or_default(),
        })
    }
}

/// `POST /v1/tasks/batch`: all are created, or none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BatchCreateRequest {
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub tasks: Vec<CreateTaskRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BatchCreateResponse {
    /// In request order; an item whose `idempotency_key` was seen is the original task.
    pub tasks: Vec<Task>,
    /// How many were new.
    pub created: usize,
}

/// `PATCH /v1/tasks/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct UpdateTaskRequest {
    /// The version this change is based on (or send `If-Match: "<version>"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_version: Option<u64>,
    /// 1 to 1024 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    /// A JSON merge patch applied to the task's context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub context: Option<Map<String, Value>>,
    /// Appended to the task's artifacts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<NewArtifact>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
    /// `cancelled`, or `queued` (run a scheduled task now, or redrive a failed one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<TaskStatus>,
}

impl UpdateTaskRequest {
    pub fn into_patch(self) -> Result<TaskPatch, FieldError> {
        check_text("title", &self.title)?;
        let artifacts = self.artifacts.unwrap_or_default();
        check_artifacts(&artifacts)?;
        check_progress(&self.progress)?;
        let patch = TaskPatch {
            title: self.title,
            priority: self.priority,
            input: self.input,
            context: self.context,
            artifacts,
            progress: self.progress,
            status: self.status,
        };
        if patch.is_empty() {
            return Err(FieldError::new(
                "body",
                "the update changes nothing: send at least one field to change",
            ));
        }
        Ok(patch)
    }
}

fn check_artifacts(artifacts: &[NewArtifact]) -> Result<(), FieldError> {
    if artifacts.len() > MAX_BATCH {
        return Err(FieldError::new("artifacts", format!("at most {MAX_BATCH} per request")));
    }
    for (i, a) in artifacts.iter().enumerate() {
        if a.name.is_empty() || a.name.len() > MAX_TEXT_LEN {
            return Err(FieldError::new(
                format!("artifacts[{i}].name"),
                format!("must be 1 to {MAX_TEXT_LEN} bytes"),
            ));
        }
        if a.uri.is_none() && a.content.is_none() {
            return Err(FieldError::new(format!("artifacts[{i}]"), "needs a uri or a content"));
        }
    }
    Ok(())
}

fn check_progress(progress: &Option<Progress>) -> Result<(), FieldError> {
    if let Some(Progress { percent: Some(p), .. }) = progress
        && !(0.0..=100.0).contains(p)
    {
        return Err(FieldError::new("progress.percent", "must be between 0 and 100"));
    }
    Ok(())
}

/// `POST /v1/queues/{queue}/claim`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub agent: AgentName,
    /// Only tasks whose `required_capabilities` are all in this list are handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<Capability>>,
    /// Most tasks to take (1–100, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100))]
    pub max: Option<u32>,
    /// Long-poll: wait up to this long for a task when none is ready (at most 60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(maximum = 60000))]
    pub wait_ms: Option<u64>,
    /// Lease length; the server default when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 86400000))]
    pub lease_ms: Option<u64>,
    /// Running tasks to finish successfully before claiming (1 to 1000, each at most once), as
    /// `POST /v1/tasks/complete` would: a worker's "done, next" in one round trip. Each succeeds
    /// or fails on its own (see `completed` in the answer); the claim comes after them whatever
    /// their outcomes (a draining agent gets no task, but its completions are applied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 1000))]
    pub complete: Option<Vec<CompleteItem>>,
}

impl ClaimRequest {
    pub fn new(agent: AgentName) -> Self {
        Self {
            agent,
            capabilities: None,
            max: None,
            wait_ms: None,
            lease_ms: None,
            complete: None,
        }
    }

    /// Takes the completions to apply before the claim out of the request (leaving `complete`
    /// empty), checked as `POST /v1/tasks/complete` checks its items; empty when there are none.
    pub fn take_completions(&mut self) -> Result<Vec<(TaskId, LeaseToken, Completion)>, FieldError> {
        match self.complete.take() {
            Some(items) => completions("complete", items),
            None => Ok(Vec::new()),
        }
    }

    /// Checks ranges; returns `(max, wait_ms, lease_ms)` with defaults filled in.
    pub fn limits(&self, default_lease_ms: u64) -> Result<(u32, u64, u64), FieldError> {
        let max = self.max.unwrap_or(1);
        if !(1..=MAX_CLAIM).contains(&max) {
            return Err(FieldError::new("max", format!("must be between 1 and {MAX_CLAIM}")));
        }
        let wait = self.wait_ms.unwrap_or(0);
        if wait > MAX_WAIT_MS {
            return Err(FieldError::new("wait_ms", format!("must be at most {MAX_WAIT_MS}")));
        }
        let lease = self.lease_ms.unwrap_or(default_lease_ms);
        if !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&lease) {
            return Err(FieldError::new(
                "lease_ms",
                format!("must be between {MIN_LEASE_MS} and {MAX_LEASE_MS}"),
            ));
        }
        Ok((max, wait, lease))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClaimResponse {
    /// Each with its `lease` set. Empty when nothing was ready within `wait_ms`.
    pub tasks: Vec<Task>,
    /// With `complete` in the request: one outcome per item, in request order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed: Option<Vec<CompleteOutcome>>,
}

/// `POST /v1/tasks/{id}/heartbeat`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {
    pub lease_token: LeaseToken,
    /// New lease length from now (100 ms to 24 hours); the server default when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 100, maximum = 86_400_000))]
    pub lease_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Progress>,
}

impl HeartbeatRequest {
    pub fn check(&self) -> Result<(), FieldError> {
        if let Some(l) = self.lease_ms
            && !(MIN_LEASE_MS..=MAX_LEASE_MS).contains(&l)
        {
            return Err(FieldError::new(
                "lease_ms",
                format!("must be between {MIN_LEASE_MS} and {MAX_LEASE_MS}"),
            ));
        }
        check_progress(&self.progress)
    }
}

/// `POST /v1/tasks/{id}/complete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CompleteRequest {
    pub lease_token: LeaseToken,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifacts: Option<Vec<NewArtifact>>,
}

impl CompleteRequest {
    pub fn into_completion(self) -> Result<(LeaseToken, Completion), FieldError> {
        let artifacts = self.artifacts.unwrap_or_default();
        check_artifacts(&artifacts)?;
        Ok((
            self.lease_token,
            Completion {
                result: self.result,
                artifacts,
            },
        ))
    }
}

/// The error a failing agent reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FailureReport {
    /// A short machine-readable kind (1 to 128 bytes), e.g. `timeout`, `rate_limited`. Default `error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 128))]
    pub kind: Option<String>,
    /// At most 65536 bytes.
    #[cfg_attr(feature = "openapi", schema(max_length = 65536))]
    pub message: String,
    /// `false` sends the task straight to the dead-letter view. Default `true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retryable: Option<bool>,
}

/// `POST /v1/tasks/{id}/fail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FailRequest {
    pub lease_token: LeaseToken,
    pub error: FailureReport,
}

impl FailRequest {
    pub fn into_error(self) -> Result<(LeaseToken, TaskError), FieldError> {
        let kind = self.error.kind.unwrap_or_else(|| "error".to_owned());
        if kind.is_empty() || kind.len() > 128 {
            return Err(FieldError::new("error.kind", "must be 1 to 128 bytes"));
        }
        if self.error.message.len() > 64 * 1024 {
            return Err(FieldError::new("error.message", "must be at most 65536 bytes"));
        }
        let error = TaskError {
            kind,
            message: self.error.message,
            retryable: self.error.retryable.unwrap_or(true),
        };
        Ok((self.lease_token, error))
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskPage {
    pub items: Vec<Task>,
    /// Pass as `cursor` to get the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Tasks of one queue by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusCounts {
    pub scheduled: u64,
    pub queued: u64,
    pub running: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub cancelled: u64,
}

impl StatusCounts {
    pub fn get(&self, s: TaskStatus) -> u64 {
        match s {
            TaskStatus::Scheduled => self.scheduled,
            TaskStatus::Queued => self.queued,
            TaskStatus::Running => self.running,
            TaskStatus::Succeeded => self.succeeded,
            TaskStatus::Failed => self.failed,
            TaskStatus::Cancelled => self.cancelled,
        }
    }

    pub fn slot(&mut self, s: TaskStatus) -> &mut u64 {
        match s {
            TaskStatus::Scheduled => &mut self.scheduled,
            TaskStatus::Queued => &mut self.queued,
            TaskStatus::Running => &mut self.running,
            TaskStatus::Succeeded => &mut self.succeeded,
            TaskStatus::Failed => &mut self.failed,
            TaskStatus::Cancelled => &mut self.cancelled,
        }
    }

    /// Tasks waiting to run (queued + scheduled): what the depth limit counts.
    pub fn depth(&self) -> u64 {
        self.queued + self.scheduled
    }
}

/// `GET /v1/queues/{queue}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    pub queue: QueueName,
    pub counts: StatusCounts,
    /// Tasks waiting to run (queued + scheduled).
    pub depth: u64,
    /// When the oldest claimable task became ready; `null` when none is.
    pub oldest_ready_at: Option<Timestamp>,
    /// Age of that task in milliseconds; `null` when none is ready.
    pub oldest_ready_age_ms: Option<u64>,
}

/// `GET /v1/queues`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueList {
    pub queues: Vec<QueueStats>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn send(body: Value) -> Result<NewMessage, String> {
        let req: SendMessageRequest = serde_json::from_value(body).map_err(|e| format!("serde: {e}"))?;
        req.into_new_message().map_err(|e| e.field)
    }

    #[test]
    fn messages_are_checked_at_the_edge() {
        assert!(send(json!({"to": {"agent": "a"}, "body": 1})).is_ok());
        assert!(send(json!({"to": {"topic": "news"}})).is_ok());
        assert!(send(json!({"to": {"broadcast": true}, "ttl_ms": 5})).is_ok());
        assert_eq!(send(json!({"to": {"broadcast": false}})).unwrap_err(), "to.broadcast");
        assert_eq!(send(json!({"to": {"agent": "a"}, "ttl_ms": 0})).unwrap_err(), "ttl_ms");
        assert_eq!(
            send(json!({"to": {"agent": "a"}, "correlation_id": ""})).unwrap_err(),
            "correlation_id"
        );
        assert!(send(json!({"to": {"agent": "Bad"}})).unwrap_err().starts_with("serde"));
    }

    #[test]
    fn a_reply_goes_back_with_the_correlation_id() {
        let original: Message = serde_json::from_value(json!({
            "id": "m1", "seq": 3, "namespace": "default", "from": "asker", "to": {"agent": "me"},
            "body": null, "correlation_id": "c-9", "reply_to": null, "expires_at": null,
            "idempotency_key": null, "created_at": "2026-11-22T07:33:35.123Z"
        }))
        .unwrap();
        let reply = SendMessageRequest::reply(&original, json!("yes")).unwrap();
        assert_eq!(
            reply.to,
            Recipient::Agent {
                agent: AgentName::parse("asker").unwrap()
            }
        );
        assert_eq!(reply.correlation_id.as_deref(), Some("c-9"));
        assert_eq!(reply.reply_to.as_deref(), Some("m1"));
    }

    fn limit(rate: Option<u32>, burst: Option<u32>, max: Option<u64>) -> Result<Limit, String> {
        LimitRequest {
            rate_per_minute: rate,
            burst,
            max_concurrent: max,
        }
        .into_limit("openai".into())
        .map_err(|e| e.field)
    }

    #[test]
    fn limits_need_something_sensible() {
        assert_eq!(limit(Some(60), None, None).unwrap().rate().unwrap().burst, 1);
        assert_eq!(limit(Some(60), Some(5), Some(2)).unwrap().max_concurrent, Some(2));
        assert_eq!(limit(None, None, None).unwrap_err(), "body");
        assert_eq!(limit(None, Some(5), None).unwrap_err(), "rate_per_minute");
        assert_eq!(limit(Some(0), None, None).unwrap_err(), "rate_per_minute");
        assert_eq!(limit(Some(1), Some(0), None).unwrap_err(), "burst");
        assert_eq!(limit(None, None, Some(0)).unwrap_err(), "max_concurrent");
        assert_eq!(
            limit(None, None, Some(MAX_CONCURRENT_LIMIT + 1)).unwrap_err(),
            "max_concurrent"
        );
        assert!(limit(None, None, Some(MAX_CONCURRENT_LIMIT)).is_ok());
    }

    #[test]
    fn times_of_a_new_task_are_bounded() {
        let now = Timestamp::from_millis(1_000_000);
        let task = |extra: serde_json::Value| {
            let mut body = serde_json::json!({"queue": "q", "input": {}});
            body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<CreateTaskRequest>(body)
                .unwrap()
                .into_new_task(now)
                .map_err(|e| e.field)
        };
        assert_eq!(task(json!({"timeout_ms": MAX_LEASE_MS + 1})).unwrap_err(), "timeout_ms");
        assert!(task(json!({"timeout_ms": MAX_LEASE_MS})).is_ok());
        assert_eq!(task(json!({"delay_ms": MAX_DELAY_MS + 1})).unwrap_err(), "delay_ms");
        let far = now.add_millis(MAX_DELAY_MS + 1);
        assert_eq!(task(json!({"run_at": far})).unwrap_err(), "run_at");
        assert!(task(json!({"run_at": now.add_millis(MAX_DELAY_MS)})).is_ok());
        assert!(
            task(json!({"run_at": Timestamp::from_millis(0)})).is_ok(),
            "a past run_at is due now"
        );
    }

    #[test]
    fn dispatch_keys_hold_no_control_characters() {
        let forged = "openai\n2026-12-07T00:00:00Z INFO agentyard: all is well \u{1b}[2K";
        let refused = LimitRequest {
            rate_per_minute: Some(60),
            burst: None,
            max_concurrent: None,
        }
        .into_limit(forged.into())
        .unwrap_err();
        assert_eq!(refused.field, "key");
        assert!(refused.message.contains("control characters"), "{}", refused.message);
        for field in ["concurrency_key", "rate_limit_key"] {
            let mut req: CreateTaskRequest = serde_json::from_value(serde_json::json!({
                "queue": "q", "input": {}, field: "a\tb"
            }))
            .unwrap();
            assert_eq!(
                req.clone().into_new_task(Timestamp::from_millis(0)).unwrap_err().field,
                field
            );
            req.concurrency_key = Some("repo: acme/web (main)".into());
            req.rate_limit_key = Some("provider:openai/gpt-4o".into());
            assert!(
                req.into_new_task(Timestamp::from_millis(0)).is_ok(),
                "printable keys pass"
            );
        }
    }

    #[test]
    fn registrations_are_checked() {
        let ok = RegisterAgentRequest {
            capabilities: Some(vec![Capability::parse("b").unwrap(), Capability::parse("a").unwrap()]),
            ..Default::default()
        };
        let reg = ok.into_registration().unwrap();
        assert_eq!(reg.slots, DEFAULT_SLOTS);
        assert_eq!(reg.capabilities[0].as_str(), "a");
        let bad = RegisterAgentRequest {
            slots: Some(0),
            ..Default::default()
        };
        assert_eq!(bad.into_registration().unwrap_err().field, "slots");
    }
}
