//! The stored form of tasks, agents, messages, limits and tokens: record types of the stores' own,
//! converted from and to the core types, so the bytes a store keeps do not follow the API's JSON.
//!
//! The core types (`Task`, `Agent`, `Message`, …) are the API's shapes: their JSON follows their
//! fields, so renaming one for the API would change what a store writes, and make every store
//! written before unreadable. The SQLite store's documents and the log store's changes are these
//! records instead, and the only code that knows both sides is the conversions below.
//!
//! Version 1 is exactly the JSON the core types produced when the records were introduced, field
//! for field and in the same order, so everything stored before reads as version 1 (the tests
//! below hold fixtures of those bytes). These names are frozen: a record that must change shape
//! becomes a new type (`TaskRecordV2`) read beside the old one, and the store says which one a
//! file holds (the log store in its file header, the SQLite store by its schema version).
//!
//! What a record still takes from the core: names (`Namespace`, `QueueName`, `AgentName`,
//! `Capability`), task ids and lease tokens are plain strings, read back through their parsers;
//! JSON values (input, context, result, metadata, bodies) are kept as given. Timestamps are
//! written here (RFC 3339 UTC with milliseconds), not by `Timestamp`'s own serde.
//!
//! A record borrows what it is made from (`Cow`), so writing one copies no string or value; a
//! record read back owns its data and becomes the core type by moves.
//!
//! API tokens are in `record/tokens.rs`.

mod events;
mod fleet;
mod tokens;
mod webhooks;

use std::borrow::Cow;
use std::collections::BTreeMap;

use agentyard_core::agent::{Agent, AgentStatus};
use agentyard_core::flow::{KeyLimit, RateLimit};
use agentyard_core::message::{Message, Recipient, TopicName};
use agentyard_core::task::TaskMeta;
use agentyard_core::{
    AgentName, Artifact, Backoff, Capability, Lease, LeaseToken, Namespace, Progress, QueueName, Task, TaskError,
    TaskId, TaskStatus, Timestamp,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::memory::{Change, OwnedChange};

pub use events::EventRecordV1;
pub use fleet::{
    AgentRecordV1, AgentStatusRecordV1, KeyLimitRecordV1, MessageRecordV1, RateLimitRecordV1, RecipientRecordV1,
};
pub use tokens::{ALL_NAMESPACES, RoleRecordV1, TokenRecordV1, namespaces_from_names, namespaces_to_names};
pub(crate) use tokens::{read_token, write_token};
pub use webhooks::WebhookRecordV1;
pub(crate) use webhooks::{read_webhook, write_webhook};

/// A task without its [`TaskMeta`] (stored beside it as a [`TaskMetaRecordV1`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRecordV1<'a> {
    pub id: TaskId,
    pub namespace: Cow<'a, Namespace>,
    pub queue: Cow<'a, QueueName>,
    pub kind: Option<Cow<'a, str>>,
    pub title: Option<Cow<'a, str>>,
    pub input: Cow<'a, Value>,
    pub status: TaskStatusRecordV1,
    pub priority: i32,
    pub required_capabilities: Cow<'a, [Capability]>,
    pub attempt: u32,
    pub max_attempts: u32,
    pub backoff: BackoffRecordV1,
    #[serde(with = "time_v1")]
    pub run_at: Timestamp,
    pub timeout_ms: Option<u64>,
    pub lease: Option<LeaseRecordV1<'a>>,
    pub idempotency_key: Option<Cow<'a, str>>,
    pub concurrency_key: Option<Cow<'a, str>>,
    pub rate_limit_key: Option<Cow<'a, str>>,
    pub correlation_id: Option<Cow<'a, str>>,
    pub artifacts: Vec<ArtifactRecordV1<'a>>,
    pub context: Cow<'a, Map<String, Value>>,
    pub progress: Option<ProgressRecordV1<'a>>,
    pub result: Option<Cow<'a, Value>>,
    pub error: Option<TaskErrorRecordV1<'a>>,
    pub version: u64,
    #[serde(with = "time_v1")]
    pub created_at: Timestamp,
    #[serde(with = "time_v1")]
    pub updated_at: Timestamp,
    #[serde(default, with = "opt_time_v1")]
    pub finished_at: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatusRecordV1 {
    Scheduled,
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BackoffRecordV1 {
    pub initial_ms: u64,
    pub max_ms: u64,
    pub multiplier: f64,
    pub jitter: f64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseRecordV1<'a> {
    pub agent: Cow<'a, AgentName>,
    pub token: Cow<'a, LeaseToken>,
    #[serde(with = "time_v1")]
    pub expires_at: Timestamp,
    #[serde(with = "time_v1")]
    pub acquired_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecordV1<'a> {
    pub name: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Cow<'a, Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<Cow<'a, str>>,
    #[serde(with = "time_v1")]
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProgressRecordV1<'a> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskErrorRecordV1<'a> {
    pub kind: Cow<'a, str>,
    pub message: Cow<'a, str>,
    #[serde(default = "yes")]
    pub retryable: bool,
}

fn yes() -> bool {
    true
}

/// The bookkeeping stored with a task that the API does not show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskMetaRecordV1<'a> {
    #[serde(default, skip_serializing_if = "no_versions")]
    pub context_versions: Cow<'a, BTreeMap<String, u64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_by: Option<Cow<'a, LeaseToken>>,
}

#[allow(
    clippy::ptr_arg,
    reason = "serde hands `skip_serializing_if` the field itself, a `&Cow`"
)]
fn no_versions(v: &Cow<'_, BTreeMap<String, u64>>) -> bool {
    v.is_empty()
}

/// One change as the log store writes it, one JSON line each (see [`Change`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(
    clippy::large_enum_variant,
    reason = "made for one change at a time and written at once, never kept: boxing the task would cost an \
              allocation per change"
)]
pub enum ChangeRecordV1<'a> {
    Task {
        task: TaskRecordV1<'a>,
        meta: TaskMetaRecordV1<'a>,
    },
    Agent(AgentRecordV1<'a>),
    AgentRemoved {
        namespace: Cow<'a, Namespace>,
        name: Cow<'a, AgentName>,
    },
    Message(MessageRecordV1<'a>),
    Subscribed {
        namespace: Cow<'a, Namespace>,
        agent: Cow<'a, AgentName>,
        topic: Cow<'a, TopicName>,
        after: u64,
    },
    Unsubscribed {
        namespace: Cow<'a, Namespace>,
        agent: Cow<'a, AgentName>,
        topic: Cow<'a, TopicName>,
    },
    Limit {
        namespace: Cow<'a, Namespace>,
        key: Cow<'a, str>,
        limit: KeyLimitRecordV1,
    },
    LimitRemoved {
        namespace: Cow<'a, Namespace>,
        key: Cow<'a, str>,
    },
    /// A token was created or revoked; this is all of it.
    Token(TokenRecordV1<'a>),
    Event(EventRecordV1<'a>),
    TaskRemoved {
        namespace: Cow<'a, Namespace>,
        id: TaskId,
    },
    MessageRemoved {
        namespace: Cow<'a, Namespace>,
        seq: u64,
    },
    EventsPruned {
        through: u64,
    },
    Webhook(WebhookRecordV1<'a>),
    WebhookRemoved {
        namespace: Cow<'a, Namespace>,
        id: Cow<'a, str>,
    },
}

/// Timestamps as version 1 writes them: `2026-11-22T07:33:35.123Z`; any RFC 3339 form is read.
mod time_v1 {
    use std::fmt;

    use agentyard_core::Timestamp;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        // `Display` is the canonical form, written with no allocation.
        s.collect_str(t)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        d.deserialize_str(Rfc3339)
    }

    struct Rfc3339;

    impl serde::de::Visitor<'_> for Rfc3339 {
        type Value = Timestamp;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an RFC 3339 time")
        }

        fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
            Timestamp::parse_rfc3339(s).map_err(|e| E::custom(format!("invalid timestamp {s:?}: {e}")))
        }
    }
}

/// An optional timestamp: `null` or as [`time_v1`].
mod opt_time_v1 {
    use agentyard_core::Timestamp;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    struct Time(Timestamp);

    impl Serialize for Time {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::time_v1::serialize(&self.0, s)
        }
    }

    impl<'de> Deserialize<'de> for Time {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            super::time_v1::deserialize(d).map(Time)
        }
    }

    pub fn serialize<S: Serializer>(t: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        t.map(Time).serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Ok(Option::<Time>::deserialize(d)?.map(|t| t.0))
    }
}

fn borrowed_str(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(Cow::Borrowed)
}

fn owned_str(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned)
}

impl<'a> From<&'a Task> for TaskRecordV1<'a> {
    fn from(t: &'a Task) -> Self {
        Self {
            id: t.id,
            namespace: Cow::Borrowed(&t.namespace),
            queue: Cow::Borrowed(&t.queue),
            kind: borrowed_str(&t.kind),
            title: borrowed_str(&t.title),
            input: Cow::Borrowed(&t.input),
            status: t.status.into(),
            priority: t.priority,
            required_capabilities: Cow::Borrowed(&t.required_capabilities),
            attempt: t.attempt,
            max_attempts: t.max_attempts,
            backoff: t.backoff.into(),
            run_at: t.run_at,
            timeout_ms: t.timeout_ms,
            lease: t.lease.as_ref().map(LeaseRecordV1::from),
            idempotency_key: borrowed_str(&t.idempotency_key),
            concurrency_key: borrowed_str(&t.concurrency_key),
            rate_limit_key: borrowed_str(&t.rate_limit_key),
            correlation_id: borrowed_str(&t.correlation_id),
            artifacts: t.artifacts.iter().map(ArtifactRecordV1::from).collect(),
            context: Cow::Borrowed(&t.context),
            progress: t.progress.as_ref().map(ProgressRecordV1::from),
            result: t.result.as_ref().map(Cow::Borrowed),
            error: t.error.as_ref().map(TaskErrorRecordV1::from),
            version: t.version,
            created_at: t.created_at,
            updated_at: t.updated_at,
            finished_at: t.finished_at,
        }
    }
}

/// The task with a default `meta`: set it from the [`TaskMetaRecordV1`] stored beside it.
impl From<TaskRecordV1<'_>> for Task {
    fn from(r: TaskRecordV1<'_>) -> Self {
        Self {
            id: r.id,
            namespace: r.namespace.into_owned(),
            queue: r.queue.into_owned(),
            kind: owned_str(r.kind),
            title: owned_str(r.title),
            input: r.input.into_owned(),
            status: r.status.into(),
            priority: r.priority,
            required_capabilities: r.required_capabilities.into_owned(),
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            backoff: r.backoff.into(),
            run_at: r.run_at,
            timeout_ms: r.timeout_ms,
            lease: r.lease.map(Lease::from),
            idempotency_key: owned_str(r.idempotency_key),
            concurrency_key: owned_str(r.concurrency_key),
            rate_limit_key: owned_str(r.rate_limit_key),
            correlation_id: owned_str(r.correlation_id),
            artifacts: r.artifacts.into_iter().map(Artifact::from).collect(),
            context: r.context.into_owned(),
            progress: r.progress.map(Progress::from),
            result: r.result.map(Cow::into_owned),
            error: r.error.map(TaskError::from),
            version: r.version,
            created_at: r.created_at,
            updated_at: r.updated_at,
            finished_at: r.finished_at,
            meta: TaskMeta::default(),
        }
    }
}

impl From<TaskStatus> for TaskStatusRecordV1 {
    fn from(s: TaskStatus) -> Self {
        match s {
            TaskStatus::Scheduled => Self::Scheduled,
            TaskStatus::Queued => Self::Queued,
            TaskStatus::Running => Self::Running,
            TaskStatus::Succeeded => Self::Succeeded,
            TaskStatus::Failed => Self::Failed,
            TaskStatus::Cancelled => Self::Cancelled,
        }
    }
}

impl From<TaskStatusRecordV1> for TaskStatus {
    fn from(s: TaskStatusRecordV1) -> Self {
        match s {
            TaskStatusRecordV1::Scheduled => Self::Scheduled,
            TaskStatusRecordV1::Queued => Self::Queued,
            TaskStatusRecordV1::Running => Self::Running,
            TaskStatusRecordV1::Succeeded => Self::Succeeded,
            TaskStatusRecordV1::Failed => Self::Failed,
            TaskStatusRecordV1::Cancelled => Self::Cancelled,
        }
    }
}

impl From<Backoff> for BackoffRecordV1 {
    fn from(b: Backoff) -> Self {
        Self {
            initial_ms: b.initial_ms,
            max_ms: b.max_ms,
            multiplier: b.multiplier,
            jitter: b.jitter,
        }
    }
}

impl From<BackoffRecordV1> for Backoff {
    fn from(b: BackoffRecordV1) -> Self {
        Self {
            initial_ms: b.initial_ms,
            max_ms: b.max_ms,
            multiplier: b.multiplier,
            jitter: b.jitter,
        }
    }
}

impl<'a> From<&'a Lease> for LeaseRecordV1<'a> {
    fn from(l: &'a Lease) -> Self {
        Self {
            agent: Cow::Borrowed(&l.agent),
            token: Cow::Borrowed(&l.token),
            expires_at: l.expires_at,
            acquired_at: l.acquired_at,
        }
    }
}

impl From<LeaseRecordV1<'_>> for Lease {
    fn from(l: LeaseRecordV1<'_>) -> Self {
        Self {
            agent: l.agent.into_owned(),
            token: l.token.into_owned(),
            expires_at: l.expires_at,
            acquired_at: l.acquired_at,
        }
    }
}

impl<'a> From<&'a Artifact> for ArtifactRecordV1<'a> {
    fn from(a: &'a Artifact) -> Self {
        Self {
            name: Cow::Borrowed(&a.name),
            uri: borrowed_str(&a.uri),
            content: a.content.as_ref().map(Cow::Borrowed),
            media_type: borrowed_str(&a.media_type),
            created_at: a.created_at,
        }
    }
}

impl From<ArtifactRecordV1<'_>> for Artifact {
    fn from(a: ArtifactRecordV1<'_>) -> Self {
        Self {
            name: a.name.into_owned(),
            uri: owned_str(a.uri),
            content: a.content.map(Cow::into_owned),
            media_type: owned_str(a.media_type),
            created_at: a.created_at,
        }
    }
}

impl<'a> From<&'a Progress> for ProgressRecordV1<'a> {
    fn from(p: &'a Progress) -> Self {
        Self {
            percent: p.percent,
            message: borrowed_str(&p.message),
        }
    }
}

impl From<ProgressRecordV1<'_>> for Progress {
    fn from(p: ProgressRecordV1<'_>) -> Self {
        Self {
            percent: p.percent,
            message: owned_str(p.message),
        }
    }
}

impl<'a> From<&'a TaskError> for TaskErrorRecordV1<'a> {
    fn from(e: &'a TaskError) -> Self {
        Self {
            kind: Cow::Borrowed(&e.kind),
            message: Cow::Borrowed(&e.message),
            retryable: e.retryable,
        }
    }
}

impl From<TaskErrorRecordV1<'_>> for TaskError {
    fn from(e: TaskErrorRecordV1<'_>) -> Self {
        Self {
            kind: e.kind.into_owned(),
            message: e.message.into_owned(),
            retryable: e.retryable,
        }
    }
}

impl<'a> From<&'a TaskMeta> for TaskMetaRecordV1<'a> {
    fn from(m: &'a TaskMeta) -> Self {
        Self {
            context_versions: Cow::Borrowed(&m.context_versions),
            finished_by: m.finished_by.as_ref().map(Cow::Borrowed),
        }
    }
}

impl From<TaskMetaRecordV1<'_>> for TaskMeta {
    fn from(m: TaskMetaRecordV1<'_>) -> Self {
        Self {
            context_versions: m.context_versions.into_owned(),
            finished_by: m.finished_by.map(Cow::into_owned),
            ..TaskMeta::default()
        }
    }
}

impl<'a> From<&Change<'a>> for ChangeRecordV1<'a> {
    fn from(c: &Change<'a>) -> Self {
        match *c {
            Change::Task { task, meta } => Self::Task {
                task: task.into(),
                meta: meta.into(),
            },
            Change::Agent(a) => Self::Agent(a.into()),
            Change::AgentRemoved { namespace, name } => Self::AgentRemoved {
                namespace: Cow::Borrowed(namespace),
                name: Cow::Borrowed(name),
            },
            Change::Message(m) => Self::Message(m.into()),
            Change::Subscribed {
                namespace,
                agent,
                topic,
                after,
            } => Self::Subscribed {
                namespace: Cow::Borrowed(namespace),
                agent: Cow::Borrowed(agent),
                topic: Cow::Borrowed(topic),
                after,
            },
            Change::Unsubscribed {
                namespace,
                agent,
                topic,
            } => Self::Unsubscribed {
                namespace: Cow::Borrowed(namespace),
                agent: Cow::Borrowed(agent),
                topic: Cow::Borrowed(topic),
            },
            Change::Limit { namespace, key, limit } => Self::Limit {
                namespace: Cow::Borrowed(namespace),
                key: Cow::Borrowed(key),
                limit: (*limit).into(),
            },
            Change::LimitRemoved { namespace, key } => Self::LimitRemoved {
                namespace: Cow::Borrowed(namespace),
                key: Cow::Borrowed(key),
            },
            Change::Token(t) => Self::Token(t.into()),
            Change::Event(e) => Self::Event(e.into()),
            Change::TaskRemoved { namespace, id } => Self::TaskRemoved {
                namespace: Cow::Borrowed(namespace),
                id,
            },
            Change::MessageRemoved { namespace, seq } => Self::MessageRemoved {
                namespace: Cow::Borrowed(namespace),
                seq,
            },
            Change::EventsPruned { through } => Self::EventsPruned { through },
            Change::Webhook(w) => Self::Webhook(w.into()),
            Change::WebhookRemoved { namespace, id } => Self::WebhookRemoved {
                namespace: Cow::Borrowed(namespace),
                id: Cow::Borrowed(id),
            },
        }
    }
}

impl<'a> From<&'a OwnedChange> for ChangeRecordV1<'a> {
    fn from(c: &'a OwnedChange) -> Self {
        match c {
            OwnedChange::Task { task, meta } => Self::Task {
                task: (&**task).into(),
                meta: meta.into(),
            },
            OwnedChange::Agent(a) => Self::Agent(a.into()),
            OwnedChange::AgentRemoved { namespace, name } => Self::AgentRemoved {
                namespace: Cow::Borrowed(namespace),
                name: Cow::Borrowed(name),
            },
            OwnedChange::Message(m) => Self::Message(m.into()),
            OwnedChange::Subscribed {
                namespace,
                agent,
                topic,
                after,
            } => Self::Subscribed {
                namespace: Cow::Borrowed(namespace),
                agent: Cow::Borrowed(agent),
                topic: Cow::Borrowed(topic),
                after: *after,
            },
            OwnedChange::Unsubscribed {
                namespace,
                agent,
                topic,
            } => Self::Unsubscribed {
                namespace: Cow::Borrowed(namespace),
                agent: Cow::Borrowed(agent),
                topic: Cow::Borrowed(topic),
            },
            OwnedChange::Limit { namespace, key, limit } => Self::Limit {
                namespace: Cow::Borrowed(namespace),
                key: Cow::Borrowed(key),
                limit: (*limit).into(),
            },
            OwnedChange::LimitRemoved { namespace, key } => Self::LimitRemoved {
                namespace: Cow::Borrowed(namespace),
                key: Cow::Borrowed(key),
            },
            OwnedChange::Token(t) => Self::Token(t.into()),
            OwnedChange::Event(e) => Self::Event(e.into()),
            OwnedChange::TaskRemoved { namespace, id } => Self::TaskRemoved {
                namespace: Cow::Borrowed(namespace),
                id: *id,
            },
            OwnedChange::MessageRemoved { namespace, seq } => Self::MessageRemoved {
                namespace: Cow::Borrowed(namespace),
                seq: *seq,
            },
            OwnedChange::EventsPruned { through } => Self::EventsPruned { through: *through },
            OwnedChange::Webhook(w) => Self::Webhook(w.into()),
            OwnedChange::WebhookRemoved { namespace, id } => Self::WebhookRemoved {
                namespace: Cow::Borrowed(namespace),
                id: Cow::Borrowed(id),
            },
        }
    }
}

impl From<ChangeRecordV1<'_>> for OwnedChange {
    fn from(c: ChangeRecordV1<'_>) -> Self {
        match c {
            ChangeRecordV1::Task { task, meta } => Self::Task {
                task: Box::new(task.into()),
                meta: meta.into(),
            },
            ChangeRecordV1::Agent(a) => Self::Agent(a.into()),
            ChangeRecordV1::AgentRemoved { namespace, name } => Self::AgentRemoved {
                namespace: namespace.into_owned(),
                name: name.into_owned(),
            },
            ChangeRecordV1::Message(m) => Self::Message(m.into()),
            ChangeRecordV1::Subscribed {
                namespace,
                agent,
                topic,
                after,
            } => Self::Subscribed {
                namespace: namespace.into_owned(),
                agent: agent.into_owned(),
                topic: topic.into_owned(),
                after,
            },
            ChangeRecordV1::Unsubscribed {
                namespace,
                agent,
                topic,
            } => Self::Unsubscribed {
                namespace: namespace.into_owned(),
                agent: agent.into_owned(),
                topic: topic.into_owned(),
            },
            ChangeRecordV1::Limit { namespace, key, limit } => Self::Limit {
                namespace: namespace.into_owned(),
                key: key.into_owned(),
                limit: limit.into(),
            },
            ChangeRecordV1::LimitRemoved { namespace, key } => Self::LimitRemoved {
                namespace: namespace.into_owned(),
                key: key.into_owned(),
            },
            ChangeRecordV1::Token(t) => Self::Token(t.into()),
            ChangeRecordV1::Event(e) => Self::Event(e.into()),
            ChangeRecordV1::TaskRemoved { namespace, id } => Self::TaskRemoved {
                namespace: namespace.into_owned(),
                id,
            },
            ChangeRecordV1::MessageRemoved { namespace, seq } => Self::MessageRemoved {
                namespace: namespace.into_owned(),
                seq,
            },
            ChangeRecordV1::EventsPruned { through } => Self::EventsPruned { through },
            ChangeRecordV1::Webhook(w) => Self::Webhook(w.into()),
            ChangeRecordV1::WebhookRemoved { namespace, id } => Self::WebhookRemoved {
                namespace: namespace.into_owned(),
                id: id.into_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    //! The fixtures are the bytes the stores wrote before the records existed (the JSON of the
    //! core types then, made by `serde_json` from them), committed here: whatever the API types
    //! become, these must read back, and the records must go on writing exactly them.

    use super::*;

    const TASK: &str = r#"{"id":"01KBWQ8T3E0000000000000000","namespace":"team-a","queue":"builds","kind":"compile","title":"Build \"web\" ✓","input":{"repo":"acme/web","n":1,"f":0.5},"status":"running","priority":-3,"required_capabilities":["rust","gpu"],"attempt":2,"max_attempts":5,"backoff":{"initial_ms":1500,"max_ms":60000,"multiplier":2.5,"jitter":0.1},"run_at":"2027-01-15T08:00:00.001Z","timeout_ms":90000,"lease":{"agent":"worker-1","token":"01kbwq8t3e00000000000000zz","expires_at":"2027-01-15T08:00:30.002Z","acquired_at":"2027-01-15T08:00:00.002Z"},"idempotency_key":"build-42","concurrency_key":"repo:acme/web","rate_limit_key":null,"correlation_id":"corr-1","artifacts":[{"name":"log","uri":"s3://b/log.txt","media_type":"text/plain","created_at":"2027-01-15T08:00:00.003Z"},{"name":"summary","content":{"ok":true},"created_at":"2027-01-15T08:00:00.004Z"}],"context":{"plan":{"step":2,"notes":["a","b"]}},"progress":{"percent":42.5,"message":"linking"},"result":null,"error":{"kind":"timeout","message":"took too long","retryable":true},"version":7,"created_at":"2027-01-15T08:00:00.000Z","updated_at":"2027-01-15T08:00:00.004Z","finished_at":null}"#;
    const DONE: &str = r#"{"id":"01KBWQ8T3E0000000000000000","namespace":"team-a","queue":"builds","kind":"compile","title":"Build \"web\" ✓","input":{"repo":"acme/web","n":1,"f":0.5},"status":"succeeded","priority":-3,"required_capabilities":["rust","gpu"],"attempt":2,"max_attempts":5,"backoff":{"initial_ms":1500,"max_ms":60000,"multiplier":2.5,"jitter":0.1},"run_at":"2027-01-15T08:00:00.001Z","timeout_ms":90000,"lease":null,"idempotency_key":"build-42","concurrency_key":"repo:acme/web","rate_limit_key":null,"correlation_id":"corr-1","artifacts":[{"name":"log","uri":"s3://b/log.txt","media_type":"text/plain","created_at":"2027-01-15T08:00:00.003Z"},{"name":"summary","content":{"ok":true},"created_at":"2027-01-15T08:00:00.004Z"}],"context":{"plan":{"step":2,"notes":["a","b"]}},"progress":null,"result":{"artifacts":2},"error":null,"version":7,"created_at":"2027-01-15T08:00:00.000Z","updated_at":"2027-01-15T08:00:00.004Z","finished_at":"2027-01-15T08:00:00.009Z"}"#;
    const META: &str = r#"{"context_versions":{"plan":5,"plan.step":7},"finished_by":"01kbwq8t3e00000000000000yy"}"#;
    /// As the log store wrote an agent: with its running count.
    const AGENT_IN_LOG: &str = r#"{"name":"worker-1","namespace":"team-a","capabilities":["rust"],"slots":4,"metadata":{"host":"a"},"status":"draining","last_heartbeat":"2027-01-15T08:00:00.005Z","registered_at":"2027-01-15T08:00:00.001Z","running":2,"inbox_start":3,"inbox_cursor":9}"#;
    /// As the SQLite store wrote it: without.
    const AGENT: &str = r#"{"name":"worker-1","namespace":"team-a","capabilities":["rust"],"slots":4,"metadata":{"host":"a"},"status":"draining","last_heartbeat":"2027-01-15T08:00:00.005Z","registered_at":"2027-01-15T08:00:00.001Z","inbox_start":3,"inbox_cursor":9}"#;
    const MESSAGES: [&str; 3] = [
        r#"{"id":"msg-0","seq":10,"namespace":"team-a","from":"lead","to":{"agent":"worker-1"},"body":{"text":"hi","i":0},"correlation_id":"c-1","reply_to":"msg-0","expires_at":null,"idempotency_key":"k-1","created_at":"2027-01-15T08:00:00.006Z"}"#,
        r#"{"id":"msg-1","seq":11,"namespace":"team-a","from":"lead","to":{"topic":"news"},"body":{"text":"hi","i":1},"correlation_id":null,"reply_to":null,"expires_at":"2027-01-15T08:01:00.000Z","idempotency_key":null,"created_at":"2027-01-15T08:00:00.006Z"}"#,
        r#"{"id":"msg-2","seq":12,"namespace":"team-a","from":null,"to":{"broadcast":true},"body":{"text":"hi","i":2},"correlation_id":null,"reply_to":null,"expires_at":null,"idempotency_key":null,"created_at":"2027-01-15T08:00:00.006Z"}"#,
    ];
    const LIMIT_CHANGE: &str = r#"{"Limit":{"namespace":"team-a","key":"openai","limit":{"rate":{"rate_per_minute":60,"burst":5},"max_concurrent":2}}}"#;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + ms)
    }

    fn ns() -> Namespace {
        Namespace::parse("team-a").expect("valid")
    }

    fn name(s: &str) -> AgentName {
        AgentName::parse(s).expect("valid")
    }

    fn task() -> Task {
        let mut context = Map::new();
        context.insert("plan".into(), serde_json::json!({"step": 2, "notes": ["a", "b"]}));
        Task {
            id: TaskId::parse("01KBWQ8T3E0000000000000000").expect("valid"),
            namespace: ns(),
            queue: QueueName::parse("builds").expect("valid"),
            kind: Some("compile".into()),
            title: Some("Build \"web\" ✓".into()),
            input: serde_json::json!({"repo": "acme/web", "n": 1, "f": 0.5}),
            status: TaskStatus::Running,
            priority: -3,
            required_capabilities: vec![
                Capability::parse("rust").expect("valid"),
                Capability::parse("gpu").expect("valid"),
            ],
            attempt: 2,
            max_attempts: 5,
            backoff: Backoff {
                initial_ms: 1_500,
                max_ms: 60_000,
                multiplier: 2.5,
                jitter: 0.1,
            },
            run_at: at(1),
            timeout_ms: Some(90_000),
            lease: Some(Lease {
                agent: name("worker-1"),
                token: LeaseToken::new("01kbwq8t3e00000000000000zz"),
                expires_at: at(30_002),
                acquired_at: at(2),
            }),
            idempotency_key: Some("build-42".into()),
            concurrency_key: Some("repo:acme/web".into()),
            rate_limit_key: None,
            correlation_id: Some("corr-1".into()),
            artifacts: vec![
                Artifact {
                    name: "log".into(),
                    uri: Some("s3://b/log.txt".into()),
                    content: None,
                    media_type: Some("text/plain".into()),
                    created_at: at(3),
                },
                Artifact {
                    name: "summary".into(),
                    uri: None,
                    content: Some(serde_json::json!({"ok": true})),
                    media_type: None,
                    created_at: at(4),
                },
            ],
            context,
            progress: Some(Progress {
                percent: Some(42.5),
                message: Some("linking".into()),
            }),
            result: None,
            error: Some(TaskError {
                kind: "timeout".into(),
                message: "took too long".into(),
                retryable: true,
            }),
            version: 7,
            created_at: at(0),
            updated_at: at(4),
            finished_at: None,
            meta: TaskMeta::default(),
        }
    }

    fn done() -> Task {
        let mut t = task();
        t.status = TaskStatus::Succeeded;
        t.lease = None;
        t.result = Some(serde_json::json!({"artifacts": 2}));
        t.error = None;
        t.progress = None;
        t.finished_at = Some(at(9));
        t
    }

    fn meta() -> TaskMeta {
        TaskMeta {
            context_versions: [("plan".to_owned(), 5), ("plan.step".to_owned(), 7)].into(),
            finished_by: Some(LeaseToken::new("01kbwq8t3e00000000000000yy")),
            ..TaskMeta::default()
        }
    }

    fn agent() -> Agent {
        Agent {
            name: name("worker-1"),
            namespace: ns(),
            capabilities: vec![Capability::parse("rust").expect("valid")],
            slots: 4,
            metadata: serde_json::json!({"host": "a"}),
            status: AgentStatus::Draining,
            last_heartbeat: at(5),
            registered_at: at(1),
            running: 0,
            inbox_start: 3,
            inbox_cursor: 9,
            implicit: false,
        }
    }

    fn messages() -> [Message; 3] {
        let to = [
            Recipient::Agent {
                agent: name("worker-1"),
            },
            Recipient::Topic {
                topic: QueueName::parse("news").expect("valid"),
            },
            Recipient::Broadcast { broadcast: true },
        ];
        let mut i = 0u64;
        to.map(|to| {
            let m = Message {
                id: format!("msg-{i}"),
                seq: 10 + i,
                namespace: ns(),
                from: (i != 2).then(|| name("lead")),
                to,
                body: serde_json::json!({"text": "hi", "i": i}),
                correlation_id: (i == 0).then(|| "c-1".into()),
                reply_to: (i == 0).then(|| "msg-0".into()),
                expires_at: (i == 1).then(|| at(60_000)),
                idempotency_key: (i == 0).then(|| "k-1".into()),
                created_at: at(6),
            };
            i += 1;
            m
        })
    }

    fn limit() -> KeyLimit {
        KeyLimit {
            rate: Some(RateLimit {
                rate_per_minute: 60,
                burst: 5,
            }),
            max_concurrent: Some(2),
        }
    }

    fn json<T: Serialize>(record: &T) -> String {
        serde_json::to_string(record).expect("a record encodes")
    }

    fn read<'de, T: Deserialize<'de>>(json: &'de str) -> T {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    /// What the stores wrote before the records existed reads back as the same values.
    #[test]
    fn what_was_written_before_reads_back() {
        assert_eq!(Task::from(read::<TaskRecordV1<'_>>(TASK)), task());
        assert_eq!(Task::from(read::<TaskRecordV1<'_>>(DONE)), done());
        assert_eq!(TaskMeta::from(read::<TaskMetaRecordV1<'_>>(META)), meta());
        assert_eq!(TaskMeta::from(read::<TaskMetaRecordV1<'_>>("{}")), TaskMeta::default());
        assert_eq!(Agent::from(read::<AgentRecordV1<'_>>(AGENT)), agent());
        assert_eq!(
            Agent::from(read::<AgentRecordV1<'_>>(AGENT_IN_LOG)),
            agent(),
            "the stored running count is left out: the store counts it"
        );
        for (json, message) in MESSAGES.iter().zip(messages()) {
            assert_eq!(Message::from(read::<MessageRecordV1<'_>>(json)), message);
        }
        assert_eq!(
            OwnedChange::from(read::<ChangeRecordV1<'_>>(LIMIT_CHANGE)),
            OwnedChange::Limit {
                namespace: ns(),
                key: "openai".into(),
                limit: limit(),
            }
        );
        let change = format!(r#"{{"Task":{{"task":{TASK},"meta":{META}}}}}"#);
        let OwnedChange::Task {
            task: read_task,
            meta: read_meta,
        } = read::<ChangeRecordV1<'_>>(&change).into()
        else {
            panic!("a task change")
        };
        assert_eq!((*read_task, read_meta), (task(), meta()));
        let change = format!(r#"{{"Agent":{AGENT_IN_LOG}}}"#);
        assert_eq!(
            OwnedChange::from(read::<ChangeRecordV1<'_>>(&change)),
            OwnedChange::Agent(agent())
        );
    }

    /// The records write exactly the committed bytes: their shape is theirs, fixed here, and no
    /// change to the API types can move it (a renamed API field changes the conversion above,
    /// never this JSON).
    #[test]
    fn records_are_written_as_version_1() {
        assert_eq!(json(&TaskRecordV1::from(&task())), TASK);
        assert_eq!(json(&TaskRecordV1::from(&done())), DONE);
        assert_eq!(json(&TaskMetaRecordV1::from(&meta())), META);
        assert_eq!(json(&TaskMetaRecordV1::from(&TaskMeta::default())), "{}");
        let mut busy = agent();
        busy.running = 2;
        assert_eq!(json(&AgentRecordV1::from(&busy)), AGENT, "no running count");
        for (expected, message) in MESSAGES.iter().zip(messages()) {
            assert_eq!(json(&MessageRecordV1::from(&message)), *expected);
        }
        let (ns, limit) = (ns(), limit());
        let change = Change::Limit {
            namespace: &ns,
            key: "openai",
            limit: &limit,
        };
        assert_eq!(json(&ChangeRecordV1::from(&change)), LIMIT_CHANGE);
        let (task, meta) = (task(), meta());
        let change = Change::Task {
            task: &task,
            meta: &meta,
        };
        assert_eq!(
            json(&ChangeRecordV1::from(&change)),
            format!(r#"{{"Task":{{"task":{TASK},"meta":{META}}}}}"#)
        );
        let owned = OwnedChange::Task {
            task: Box::new(task.clone()),
            meta: meta.clone(),
        };
        assert_eq!(
            json(&ChangeRecordV1::from(&owned)),
            json(&ChangeRecordV1::from(&change))
        );
    }

    /// An implicit agent's record says so after the fields it always had; read back, it is
    /// implicit again.
    #[test]
    fn an_implicit_agent_is_recorded_as_such() {
        let mut implicit = agent();
        implicit.implicit = true;
        let expected = format!("{},\"implicit\":true}}", &AGENT[..AGENT.len() - 1]);
        assert_eq!(json(&AgentRecordV1::from(&implicit)), expected);
        assert_eq!(Agent::from(read::<AgentRecordV1<'_>>(&expected)), implicit);
    }

    /// Every status has a record of its own name.
    #[test]
    fn statuses_keep_their_names() {
        for status in TaskStatus::ALL {
            let record = TaskStatusRecordV1::from(status);
            assert_eq!(serde_json::to_string(&record).expect("json"), format!("\"{status}\""));
            assert_eq!(TaskStatus::from(record), status);
        }
        for status in [AgentStatus::Active, AgentStatus::Draining, AgentStatus::Gone] {
            let record = AgentStatusRecordV1::from(status);
            assert_eq!(serde_json::to_string(&record).expect("json"), format!("\"{status}\""));
            assert_eq!(AgentStatus::from(record), status);
        }
    }
}
