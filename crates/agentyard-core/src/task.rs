//! The task: its fields, its status machine and every change a task can undergo.
//!
//! Each change is a pure function of the task, the command and "now"; backends load a task,
//! call [`Task::apply`], and store the result. That keeps the semantics in one place, the same
//! for every backend.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::backoff::Backoff;
use crate::event::{LastChange, TaskChange};
use crate::id::{LeaseToken, TaskId};
use crate::merge::{self, ContextVersions};
use crate::names::{AgentName, Capability, Namespace, QueueName};
use crate::time::Timestamp;

/// Attempts a task gets when it does not say.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;

/// Where a task is in its life. See design §2 for the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for its `run_at` (a delay or a retry backoff).
    Scheduled,
    /// Ready to be claimed.
    Queued,
    /// Claimed under a lease.
    Running,
    Succeeded,
    /// Final failure: the dead-letter view lists these.
    Failed,
    Cancelled,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 6] = [
        TaskStatus::Scheduled,
        TaskStatus::Queued,
        TaskStatus::Running,
        TaskStatus::Succeeded,
        TaskStatus::Failed,
        TaskStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Scheduled => "scheduled",
            TaskStatus::Queued => "queued",
            TaskStatus::Running => "running",
            TaskStatus::Succeeded => "succeeded",
            TaskStatus::Failed => "failed",
            TaskStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, TaskStatus::Succeeded | TaskStatus::Failed | TaskStatus::Cancelled)
    }

    /// Waiting to run: counts towards a queue's depth.
    pub fn is_waiting(self) -> bool {
        matches!(self, TaskStatus::Scheduled | TaskStatus::Queued)
    }
}

impl fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The lease of a running task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Lease {
    pub agent: AgentName,
    pub token: LeaseToken,
    pub expires_at: Timestamp,
    pub acquired_at: Timestamp,
}

/// Something a task produced or refers to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Artifact {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub created_at: Timestamp,
}

/// An artifact as a client sends it (the server stamps `created_at`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewArtifact {
    /// 1 to 1024 bytes.
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1024))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
}

impl NewArtifact {
    pub fn stamp(self, now: Timestamp) -> Artifact {
        Artifact {
            name: self.name,
            uri: self.uri,
            content: self.content,
            media_type: self.media_type,
            created_at: now,
        }
    }
}

/// How far along a running task is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// 0 to 100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 100))]
    pub percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskError {
    pub kind: String,
    pub message: String,
    #[serde(default = "default_true")]
    pub retryable: bool,
}

fn default_true() -> bool {
    true
}

/// Bookkeeping a backend stores with a task but the API does not show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMeta {
    /// For each context path, the version that last wrote it (merge conflict detection).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub context_versions: ContextVersions,
    /// The token of the lease that finished the task, so a repeated `complete` is idempotent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_by: Option<LeaseToken>,
    /// What changed the task last in this process (its event); never stored.
    #[serde(skip)]
    pub change: LastChange,
}

/// A unit of work. Field names are the API contract (design §2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    pub id: TaskId,
    pub namespace: Namespace,
    pub queue: QueueName,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub input: Value,
    pub status: TaskStatus,
    pub priority: i32,
    pub required_capabilities: Vec<Capability>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub run_at: Timestamp,
    pub timeout_ms: Option<u64>,
    pub lease: Option<Lease>,
    pub idempotency_key: Option<String>,
    pub concurrency_key: Option<String>,
    pub rate_limit_key: Option<String>,
    pub correlation_id: Option<String>,
    pub artifacts: Vec<Artifact>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub context: Map<String, Value>,
    pub progress: Option<Progress>,
    pub result: Option<Value>,
    pub error: Option<TaskError>,
    pub version: u64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    #[serde(skip)]
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub meta: TaskMeta,
}

/// A validated task to create. Built at the edge from a request (see `api::CreateTaskRequest`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewTask {
    pub queue: QueueName,
    pub kind: Option<String>,
    pub title: Option<String>,
    pub input: Value,
    pub priority: i32,
    pub required_capabilities: Vec<Capability>,
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// `None` means now.
    pub run_at: Option<Timestamp>,
    pub timeout_ms: Option<u64>,
    pub idempotency_key: Option<String>,
    pub concurrency_key: Option<String>,
    pub rate_limit_key: Option<String>,
    pub correlation_id: Option<String>,
    pub context: Map<String, Value>,
}

impl NewTask {
    /// A task with every optional field at its default (tests, benchmarks).
    pub fn on(queue: QueueName, input: Value) -> Self {
        Self {
            queue,
            kind: None,
            title: None,
            input,
            priority: 0,
            required_capabilities: Vec::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            backoff: Backoff::default(),
            run_at: None,
            timeout_ms: None,
            idempotency_key: None,
            concurrency_key: None,
            rate_limit_key: None,
            correlation_id: None,
            context: Map::new(),
        }
    }

    /// The task as first stored: `queued`, or `scheduled` when `run_at` is in the future.
    pub fn into_task(self, id: TaskId, namespace: Namespace, now: Timestamp) -> Task {
        let run_at = self.run_at.unwrap_or(now).max(now);
        let status = if run_at > now {
            TaskStatus::Scheduled
        } else {
            TaskStatus::Queued
        };
        let mut meta = TaskMeta {
            change: LastChange(Some(TaskChange::Created)),
            ..TaskMeta::default()
        };
        merge::record_paths(&mut meta.context_versions, &Value::Object(self.context.clone()), 1);
        Task {
            id,
            namespace,
            queue: self.queue,
            kind: self.kind,
            title: self.title,
            input: self.input,
            status,
            priority: self.priority,
            required_capabilities: self.required_capabilities,
            attempt: 0,
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            run_at,
            timeout_ms: self.timeout_ms,
            lease: None,
            idempotency_key: self.idempotency_key,
            concurrency_key: self.concurrency_key,
            rate_limit_key: self.rate_limit_key,
            correlation_id: self.correlation_id,
            artifacts: Vec::new(),
            context: self.context,
            progress: None,
            result: None,
            error: None,
            version: 1,
            created_at: now,
            updated_at: now,
            finished_at: None,
            meta,
        }
    }
}

/// A change a client asks for with `PATCH /v1/tasks/{id}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskPatch {
    pub title: Option<String>,
    pub priority: Option<i32>,
    pub input: Option<Value>,
    /// A JSON merge patch (RFC 7396) applied to `context`.
    pub context: Option<Map<String, Value>>,
    /// Appended to `artifacts` (exact duplicates are skipped).
    pub artifacts: Vec<NewArtifact>,
    pub progress: Option<Progress>,
    /// Only moves that need no lease: `cancelled`, or `queued` from `scheduled` or `failed`.
    pub status: Option<TaskStatus>,
}

impl TaskPatch {
    pub fn is_empty(&self) -> bool {
        *self == TaskPatch::default()
    }
}

/// What a lease holder reports when it finishes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub result: Option<Value>,
    pub artifacts: Vec<NewArtifact>,
}

/// Every change to an existing task. Claims are separate: they pick tasks rather than name one.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskCommand {
    Update {
        patch: TaskPatch,
        expected_version: u64,
        merge: bool,
    },
    Heartbeat {
        token: LeaseToken,
        lease_ms: u64,
        progress: Option<Progress>,
    },
    Complete {
        token: LeaseToken,
        completion: Completion,
    },
    /// `jitter_sample` in [0, 1) drives the backoff jitter, keeping this function pure.
    Fail {
        token: LeaseToken,
        error: TaskError,
        jitter_sample: f64,
    },
    /// The lease holder gives the task back untried: it is claimable again (after `delay_ms`),
    /// and the attempt its claim counted is not spent.
    Release {
        token: LeaseToken,
        delay_ms: u64,
    },
    Cancel,
    Redrive,
}

/// Why a command was refused. Backends turn these into `StoreError`s with the current task.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TransitionError {
    #[error("version conflict: expected version {expected}, current version is {actual}")]
    VersionConflict { expected: u64, actual: u64 },
    #[error("merge conflict on {paths:?}: changed since version {expected} (current version is {actual})")]
    MergeConflict {
        expected: u64,
        actual: u64,
        paths: Vec<String>,
    },
    #[error("{0}")]
    LeaseConflict(String),
    #[error("cannot {action} a task that is {from}")]
    InvalidTransition { from: TaskStatus, action: &'static str },
    #[error("{0}")]
    Invalid(String),
}

/// What a command did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    Changed,
    /// Nothing to do: a repeated `complete` by the same lease holder.
    Unchanged,
}

impl Task {
    /// Can an agent with these capabilities run this task?
    pub fn runnable_by(&self, capabilities: &[Capability]) -> bool {
        self.required_capabilities.iter().all(|c| capabilities.contains(c))
    }

    /// Hands the task to `agent` under a fresh lease. The caller picked it from the ready set.
    pub fn claim(
        &mut self,
        agent: &AgentName,
        token: LeaseToken,
        lease_ms: u64,
        now: Timestamp,
    ) -> Result<(), TransitionError> {
        if self.status != TaskStatus::Queued {
            return Err(TransitionError::InvalidTransition {
                from: self.status,
                action: "claim",
            });
        }
        self.attempt += 1;
        self.status = TaskStatus::Running;
        self.set_change(TaskChange::Claimed {
            agent: agent.clone(),
            waited_ms: now.millis_since(self.run_at),
        });
        self.lease = Some(Lease {
            agent: agent.clone(),
            token,
            expires_at: self.lease_deadline(now, now, lease_ms),
            acquired_at: now,
        });
        self.progress = None;
        self.touch(now);
        Ok(())
    }

    /// A lease expires at `now + lease_ms`, but never past the attempt's `timeout_ms`.
    fn lease_deadline(&self, acquired_at: Timestamp, now: Timestamp, lease_ms: u64) -> Timestamp {
        let wanted = now.add_millis(lease_ms);
        match self.timeout_ms {
            Some(t) => wanted.min(acquired_at.add_millis(t)),
            None => wanted,
        }
    }

    /// Applies one command at `now`.
    pub fn apply(&mut self, command: TaskCommand, now: Timestamp) -> Result<Applied, TransitionError> {
        match command {
            TaskCommand::Update {
                patch,
                expected_version,
                merge,
            } => self.update(patch, expected_version, merge, now),
            TaskCommand::Heartbeat {
                token,
                lease_ms,
                progress,
            } => {
                self.check_lease(&token, "heartbeat")?;
                let acquired_at = self.lease.as_ref().map_or(now, |l| l.acquired_at);
                let expires_at = self.lease_deadline(acquired_at, now, lease_ms);
                if let Some(lease) = self.lease.as_mut() {
                    lease.expires_at = expires_at;
                }
                let changed_progress = progress.is_some() && progress != self.progress;
                if progress.is_some() {
                    self.progress = progress;
                }
                let agent = self.lease_agent();
                self.set_change(TaskChange::Heartbeat {
                    agent,
                    progress: changed_progress,
                });
                self.touch(now);
                Ok(Applied::Changed)
            }
            TaskCommand::Complete { token, completion } => {
                if self.status == TaskStatus::Succeeded && self.meta.finished_by.as_ref() == Some(&token) {
                    return Ok(Applied::Unchanged);
                }
                self.check_lease(&token, "complete")?;
                let (agent, run_ms) = self.lease_run(now);
                self.set_change(TaskChange::Completed { agent, run_ms });
                self.status = TaskStatus::Succeeded;
                self.result = completion.result;
                self.append_artifacts(completion.artifacts, now);
                self.finish(token, now);
                Ok(Applied::Changed)
            }
            TaskCommand::Fail {
                token,
                error,
                jitter_sample,
            } => {
                self.check_lease(&token, "fail")?;
                let (agent, run_ms) = self.lease_run(now);
                self.set_change(TaskChange::Failed { agent, run_ms });
                let retry = error.retryable && self.attempt < self.max_attempts;
                self.error = Some(error);
                if retry {
                    let delay = self.backoff.delay_ms(self.attempt, jitter_sample);
                    self.lease = None;
                    self.run_at = now.add_millis(delay);
                    self.status = if delay == 0 {
                        TaskStatus::Queued
                    } else {
                        TaskStatus::Scheduled
                    };
                    self.touch(now);
                } else {
                    self.status = TaskStatus::Failed;
                    self.finish(token, now);
                }
                Ok(Applied::Changed)
            }
            TaskCommand::Release { token, delay_ms } => {
                self.check_lease(&token, "release")?;
                let (agent, run_ms) = self.lease_run(now);
                self.set_change(TaskChange::Released { agent, run_ms });
                self.attempt = self.attempt.saturating_sub(1);
                self.lease = None;
                self.progress = None;
                self.run_at = now.add_millis(delay_ms);
                self.status = if delay_ms == 0 {
                    TaskStatus::Queued
                } else {
                    TaskStatus::Scheduled
                };
                self.touch(now);
                Ok(Applied::Changed)
            }
            TaskCommand::Cancel => {
                if self.status.is_terminal() {
                    return Err(TransitionError::InvalidTransition {
                        from: self.status,
                        action: "cancel",
                    });
                }
                self.status = TaskStatus::Cancelled;
                self.lease = None;
                self.finished_at = Some(now);
                self.set_change(TaskChange::Cancelled);
                self.touch(now);
                Ok(Applied::Changed)
            }
            TaskCommand::Redrive => {
                if self.status != TaskStatus::Failed {
                    return Err(TransitionError::InvalidTransition {
                        from: self.status,
                        action: "redrive",
                    });
                }
                self.requeue_for_redrive(now);
                self.set_change(TaskChange::Redriven);
                self.touch(now);
                Ok(Applied::Changed)
            }
        }
    }

    /// The lease ran out without a heartbeat: the task goes back to the queue (attempt counted),
    /// or to `failed` when it has no attempts left. Returns false if the lease is still valid.
    pub fn expire_lease(&mut self, now: Timestamp) -> bool {
        let Some(lease) = &self.lease else { return false };
        if self.status != TaskStatus::Running || lease.expires_at > now {
            return false;
        }
        let message = format!("lease held by {} expired at {}", lease.agent, lease.expires_at);
        let agent = lease.agent.clone();
        self.set_change(TaskChange::LeaseExpired { agent });
        self.error = Some(TaskError {
            kind: "lease_expired".into(),
            message,
            retryable: true,
        });
        self.lease = None;
        if self.attempt < self.max_attempts {
            self.status = TaskStatus::Queued;
            self.run_at = now;
        } else {
            self.status = TaskStatus::Failed;
            self.finished_at = Some(now);
        }
        self.touch(now);
        true
    }

    /// Takes the lease away now, whatever its expiry (its agent is gone or was removed): the task
    /// goes back to the queue (attempt counted) or to `failed` when it has no attempts left.
    /// Returns false if the task holds no lease.
    pub fn release_lease(&mut self, now: Timestamp, reason: &str) -> bool {
        if self.status != TaskStatus::Running || self.lease.is_none() {
            return false;
        }
        if let Some(lease) = self.lease.as_mut() {
            lease.expires_at = now;
        }
        let agent = self.lease_agent();
        let released = self.expire_lease(now);
        if let Some(e) = self.error.as_mut() {
            e.kind = "lease_released".into();
            e.message = reason.to_owned();
        }
        self.set_change(TaskChange::LeaseRevoked { agent });
        released
    }

    /// A scheduled task whose time came becomes claimable. Returns false if not yet due.
    pub fn promote_if_due(&mut self, now: Timestamp) -> bool {
        if self.status != TaskStatus::Scheduled || self.run_at > now {
            return false;
        }
        self.status = TaskStatus::Queued;
        self.set_change(TaskChange::Promoted);
        self.touch(now);
        true
    }

    /// Back to the queue with fresh attempts. The caller bumps the version.
    fn requeue_for_redrive(&mut self, now: Timestamp) {
        self.status = TaskStatus::Queued;
        self.attempt = 0;
        self.run_at = now;
        self.finished_at = None;
        self.meta.finished_by = None;
    }

    fn update(
        &mut self,
        patch: TaskPatch,
        expected: u64,
        merge: bool,
        now: Timestamp,
    ) -> Result<Applied, TransitionError> {
        if patch.is_empty() {
            return Err(TransitionError::Invalid(
                "the update changes nothing: send at least one field to change".into(),
            ));
        }
        let actual = self.version;
        if expected != actual {
            // Status moves always need the exact version: they are never merged. A version from
            // the future was never read from this task, so there is nothing to merge against.
            if !merge || patch.status.is_some() || expected > actual {
                return Err(TransitionError::VersionConflict { expected, actual });
            }
            if let Some(ctx) = &patch.context {
                let paths = merge::conflicting_paths(&self.meta.context_versions, &self.context, ctx, expected);
                if !paths.is_empty() {
                    return Err(TransitionError::MergeConflict {
                        expected,
                        actual,
                        paths,
                    });
                }
            }
        }
        self.set_change(TaskChange::Updated);
        if let Some(status) = patch.status {
            self.patch_status(status, now)?;
        }
        let new_version = actual + 1;
        if let Some(title) = patch.title {
            self.title = Some(title);
        }
        if let Some(priority) = patch.priority {
            self.priority = priority;
        }
        if let Some(input) = patch.input {
            self.input = input;
        }
        if let Some(ctx) = patch.context {
            let ctx = Value::Object(ctx);
            merge::merge_patch_object(&mut self.context, &ctx);
            merge::record_paths(&mut self.meta.context_versions, &ctx, new_version);
        }
        self.append_artifacts(patch.artifacts, now);
        if patch.progress.is_some() {
            self.progress = patch.progress;
        }
        self.touch(now);
        Ok(Applied::Changed)
    }

    fn patch_status(&mut self, to: TaskStatus, now: Timestamp) -> Result<(), TransitionError> {
        match (self.status, to) {
            (from, TaskStatus::Cancelled) if !from.is_terminal() => {
                self.status = TaskStatus::Cancelled;
                self.lease = None;
                self.finished_at = Some(now);
                self.set_change(TaskChange::Cancelled);
            }
            (TaskStatus::Scheduled, TaskStatus::Queued) => {
                self.status = TaskStatus::Queued;
                self.run_at = now;
            }
            (TaskStatus::Failed, TaskStatus::Queued) => {
                self.requeue_for_redrive(now);
                self.set_change(TaskChange::Redriven);
            }
            (from, to) if from == to => {}
            (from, TaskStatus::Running | TaskStatus::Succeeded | TaskStatus::Failed) => {
                return Err(TransitionError::Invalid(format!(
                    "status cannot be set to {to} by an update (the task is {from}); claim the task and use /complete or /fail with its lease token"
                )));
            }
            (from, to) => {
                return Err(TransitionError::InvalidTransition {
                    from,
                    action: match to {
                        TaskStatus::Cancelled => "cancel",
                        TaskStatus::Queued => "requeue",
                        _ => "schedule",
                    },
                });
            }
        }
        Ok(())
    }

    fn check_lease(&self, token: &LeaseToken, action: &str) -> Result<(), TransitionError> {
        match (&self.lease, self.status) {
            (Some(lease), TaskStatus::Running) if &lease.token == token => Ok(()),
            (Some(lease), TaskStatus::Running) => Err(TransitionError::LeaseConflict(format!(
                "cannot {action}: the lease token does not match the current lease (held by {})",
                lease.agent
            ))),
            (_, status) => Err(TransitionError::LeaseConflict(format!(
                "cannot {action}: the task is {status} and holds no lease for this token (it may have expired and moved on)"
            ))),
        }
    }

    fn append_artifacts(&mut self, artifacts: Vec<NewArtifact>, now: Timestamp) {
        for a in artifacts {
            let duplicate = self
                .artifacts
                .iter()
                .any(|e| e.name == a.name && e.uri == a.uri && e.content == a.content && e.media_type == a.media_type);
            if !duplicate {
                self.artifacts.push(a.stamp(now));
            }
        }
    }

    fn finish(&mut self, token: LeaseToken, now: Timestamp) {
        self.lease = None;
        self.finished_at = Some(now);
        self.meta.finished_by = Some(token);
        self.touch(now);
    }

    fn set_change(&mut self, change: TaskChange) {
        self.meta.change = LastChange(Some(change));
    }

    /// The lease holder (a task that holds no lease has none; its change names no agent then).
    fn lease_agent(&self) -> AgentName {
        self.lease.as_ref().map_or_else(
            || AgentName::parse("unknown").expect("a valid name"),
            |l| l.agent.clone(),
        )
    }

    /// The lease holder and how long the attempt has run.
    fn lease_run(&self, now: Timestamp) -> (AgentName, u64) {
        let run_ms = self.lease.as_ref().map_or(0, |l| now.millis_since(l.acquired_at));
        (self.lease_agent(), run_ms)
    }

    fn touch(&mut self, now: Timestamp) {
        self.version += 1;
        self.updated_at = now;
    }
}
