//! The event log's entries: what happened to a task, an agent, a message or a limit, and who did
//! it. Every backend writes a change's event in the same transaction as the change, from the
//! constructors here, so the events of the four stores are the same field for field.
//!
//! A task knows what its latest change was ([`TaskChange`], kept in its `meta` and set by every
//! method of `Task` that changes it); [`task_event`] turns a changed task into its event. Changes
//! that are not worth an entry (a heartbeat that only moves the lease) give none.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::agent::Agent;
use crate::flow::KeyLimit;
use crate::message::Message;
use crate::names::{AgentName, Namespace};
use crate::task::{Task, TaskStatus};
use crate::time::Timestamp;

/// What happened. The names are the API's (`task.created`, …) and are stored as such.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    TaskCreated,
    TaskClaimed,
    TaskProgress,
    TaskUpdated,
    TaskCompleted,
    /// Failed an attempt and will be retried.
    TaskFailed,
    /// Failed for good (no attempts left, or the error was not retryable).
    TaskDeadLettered,
    TaskReleased,
    TaskLeaseExpired,
    /// Its lease was taken away (the agent was declared gone or removed).
    TaskLeaseRevoked,
    TaskCancelled,
    TaskRedriven,
    /// A scheduled task's time came: it is ready.
    TaskPromoted,
    AgentRegistered,
    AgentDraining,
    AgentGone,
    /// A `gone` agent showed signs of life again.
    AgentBack,
    AgentRemoved,
    MessageSent,
    LimitSet,
    LimitRemoved,
}

impl EventType {
    pub const ALL: [EventType; 21] = [
        EventType::TaskCreated,
        EventType::TaskClaimed,
        EventType::TaskProgress,
        EventType::TaskUpdated,
        EventType::TaskCompleted,
        EventType::TaskFailed,
        EventType::TaskDeadLettered,
        EventType::TaskReleased,
        EventType::TaskLeaseExpired,
        EventType::TaskLeaseRevoked,
        EventType::TaskCancelled,
        EventType::TaskRedriven,
        EventType::TaskPromoted,
        EventType::AgentRegistered,
        EventType::AgentDraining,
        EventType::AgentGone,
        EventType::AgentBack,
        EventType::AgentRemoved,
        EventType::MessageSent,
        EventType::LimitSet,
        EventType::LimitRemoved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::TaskCreated => "task.created",
            EventType::TaskClaimed => "task.claimed",
            EventType::TaskProgress => "task.progress",
            EventType::TaskUpdated => "task.updated",
            EventType::TaskCompleted => "task.completed",
            EventType::TaskFailed => "task.failed",
            EventType::TaskDeadLettered => "task.dead_lettered",
            EventType::TaskReleased => "task.released",
            EventType::TaskLeaseExpired => "task.lease_expired",
            EventType::TaskLeaseRevoked => "task.lease_revoked",
            EventType::TaskCancelled => "task.cancelled",
            EventType::TaskRedriven => "task.redriven",
            EventType::TaskPromoted => "task.promoted",
            EventType::AgentRegistered => "agent.registered",
            EventType::AgentDraining => "agent.draining",
            EventType::AgentGone => "agent.gone",
            EventType::AgentBack => "agent.back",
            EventType::AgentRemoved => "agent.removed",
            EventType::MessageSent => "message.sent",
            EventType::LimitSet => "limit.set",
            EventType::LimitRemoved => "limit.removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The types a filter names: an exact type (`task.completed`), or every type of a subject
    /// kind (`task.*`). `None` when it names none.
    pub fn matching(pattern: &str) -> Option<Vec<Self>> {
        let found: Vec<Self> = match pattern.strip_suffix(".*") {
            Some(kind) => Self::ALL
                .into_iter()
                .filter(|t| t.as_str().split_once('.').is_some_and(|(k, _)| k == kind))
                .collect(),
            None => Self::parse(pattern).into_iter().collect(),
        };
        (!found.is_empty()).then_some(found)
    }
}

impl std::fmt::Display for EventType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom(format!("unknown event type `{s}`")))
    }
}

/// An entry of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// Position in the log: grows with every event of the yard (all namespaces share it), so
    /// `after=seq` (or SSE's `Last-Event-ID`) goes on exactly where a reader stopped.
    pub seq: u64,
    pub ts: Timestamp,
    pub namespace: Namespace,
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "task.completed"))]
    pub kind: EventType,
    /// What it happened to: `task:<id>`, `agent:<name>`, `message:<seq>` or `limit:<key>`.
    pub subject: String,
    /// The agent that did it, when an agent did (a claim, a completion, a message it sent).
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: Value,
}

/// An event before the store gave it its place in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub ts: Timestamp,
    pub namespace: Namespace,
    pub kind: EventType,
    pub subject: String,
    pub actor: Option<String>,
    pub correlation_id: Option<String>,
    pub data: Value,
}

impl NewEvent {
    pub fn at(self, seq: u64) -> Event {
        Event {
            seq,
            ts: self.ts,
            namespace: self.namespace,
            kind: self.kind,
            subject: self.subject,
            actor: self.actor,
            correlation_id: self.correlation_id,
            data: self.data,
        }
    }
}

/// The subject of a task's events.
pub fn task_subject(id: crate::TaskId) -> String {
    format!("task:{id}")
}

/// The subject of an agent's events.
pub fn agent_subject(name: &AgentName) -> String {
    format!("agent:{name}")
}

/// What the latest change of a task was, as its `Task` method saw it (the agent is the lease
/// holder before the change; `ms` the run time of the attempt it ended, or the wait of a claim).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskChange {
    Created,
    /// `waited_ms`: from the moment it became ready (`run_at`) to the claim.
    Claimed {
        agent: AgentName,
        waited_ms: u64,
    },
    Heartbeat {
        agent: AgentName,
        progress: bool,
    },
    Updated,
    Completed {
        agent: AgentName,
        run_ms: u64,
    },
    Failed {
        agent: AgentName,
        run_ms: u64,
    },
    Released {
        agent: AgentName,
        run_ms: u64,
    },
    LeaseExpired {
        agent: AgentName,
    },
    LeaseRevoked {
        agent: AgentName,
    },
    Cancelled,
    Redriven,
    Promoted,
}

/// The latest change of a task (see [`TaskChange`]): set by every change in this process, read by
/// the store that writes the task; never stored, and no part of the task's value: two tasks that
/// differ only here are equal.
#[derive(Debug, Clone, Default)]
pub struct LastChange(pub Option<TaskChange>);

impl PartialEq for LastChange {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for LastChange {}

impl LastChange {
    pub fn get(&self) -> Option<&TaskChange> {
        self.0.as_ref()
    }
}

/// The event of a task's latest change, or `None` when the change is not logged (a heartbeat
/// that only moved the lease) or the task carries none (it was read, not changed).
pub fn task_event(task: &Task, now: Timestamp) -> Option<NewEvent> {
    let change = task.meta.change.get()?;
    let mut data = Map::new();
    data.insert("queue".into(), json!(task.queue));
    data.insert("status".into(), json!(task.status));
    data.insert("attempt".into(), json!(task.attempt));
    data.insert("version".into(), json!(task.version));
    let (kind, actor) = match change {
        TaskChange::Created => {
            if let Some(kind) = &task.kind {
                data.insert("kind".into(), json!(kind));
            }
            data.insert("priority".into(), json!(task.priority));
            if task.status == TaskStatus::Scheduled {
                data.insert("run_at".into(), json!(task.run_at));
            }
            (EventType::TaskCreated, None)
        }
        TaskChange::Claimed { agent, waited_ms } => {
            data.insert("waited_ms".into(), json!(waited_ms));
            if let Some(lease) = &task.lease {
                data.insert("lease_expires_at".into(), json!(lease.expires_at));
            }
            (EventType::TaskClaimed, Some(agent))
        }
        TaskChange::Heartbeat { agent, progress: true } => {
            data.insert("progress".into(), json!(task.progress));
            (EventType::TaskProgress, Some(agent))
        }
        TaskChange::Heartbeat { progress: false, .. } => return None,
        TaskChange::Updated => (EventType::TaskUpdated, None),
        TaskChange::Completed { agent, run_ms } => {
            data.insert("run_ms".into(), json!(run_ms));
            (EventType::TaskCompleted, Some(agent))
        }
        TaskChange::Failed { agent, run_ms } => {
            data.insert("run_ms".into(), json!(run_ms));
            insert_error(&mut data, task);
            (failed_or_dead(task, EventType::TaskFailed), Some(agent))
        }
        TaskChange::Released { agent, run_ms } => {
            data.insert("run_ms".into(), json!(run_ms));
            (EventType::TaskReleased, Some(agent))
        }
        TaskChange::LeaseExpired { agent } => {
            data.insert("agent".into(), json!(agent));
            insert_error(&mut data, task);
            (failed_or_dead(task, EventType::TaskLeaseExpired), None)
        }
        TaskChange::LeaseRevoked { agent } => {
            data.insert("agent".into(), json!(agent));
            insert_error(&mut data, task);
            (failed_or_dead(task, EventType::TaskLeaseRevoked), None)
        }
        TaskChange::Cancelled => (EventType::TaskCancelled, None),
        TaskChange::Redriven => (EventType::TaskRedriven, None),
        TaskChange::Promoted => (EventType::TaskPromoted, None),
    };
    if matches!(task.status, TaskStatus::Queued | TaskStatus::Scheduled)
        && matches!(
            kind,
            EventType::TaskFailed | EventType::TaskLeaseExpired | EventType::TaskLeaseRevoked | EventType::TaskReleased
        )
    {
        data.insert("retry_at".into(), json!(task.run_at));
    }
    Some(NewEvent {
        ts: now,
        namespace: task.namespace.clone(),
        kind,
        subject: task_subject(task.id),
        actor: actor.map(|a| a.to_string()),
        correlation_id: task.correlation_id.clone(),
        data: Value::Object(data),
    })
}

/// A change that ended in `failed` sent the task to the dead letters.
fn failed_or_dead(task: &Task, otherwise: EventType) -> EventType {
    if task.status == TaskStatus::Failed {
        EventType::TaskDeadLettered
    } else {
        otherwise
    }
}

fn insert_error(data: &mut Map<String, Value>, task: &Task) {
    if let Some(e) = &task.error {
        data.insert("error".into(), json!({ "kind": e.kind, "message": e.message }));
    }
}

/// An agent's event: `registered` (also implicitly, by a claim), `draining`, `gone`, `back`.
pub fn agent_event(kind: EventType, agent: &Agent, now: Timestamp) -> NewEvent {
    let mut data = Map::new();
    data.insert("status".into(), json!(agent.status));
    if kind == EventType::AgentRegistered {
        data.insert("capabilities".into(), json!(agent.capabilities));
        data.insert("slots".into(), json!(agent.slots));
        data.insert("implicit".into(), json!(agent.implicit));
    }
    NewEvent {
        ts: now,
        namespace: agent.namespace.clone(),
        kind,
        subject: agent_subject(&agent.name),
        actor: None,
        correlation_id: None,
        data: Value::Object(data),
    }
}

/// An agent was removed (deleted, or forgotten after being gone long enough); `released` is how
/// many leases it still held.
pub fn agent_removed(ns: &Namespace, name: &AgentName, released: usize, now: Timestamp) -> NewEvent {
    NewEvent {
        ts: now,
        namespace: ns.clone(),
        kind: EventType::AgentRemoved,
        subject: agent_subject(name),
        actor: None,
        correlation_id: None,
        data: json!({ "released": released }),
    }
}

/// A message was stored (once, whoever it is for).
pub fn message_sent(message: &Message, now: Timestamp) -> NewEvent {
    NewEvent {
        ts: now,
        namespace: message.namespace.clone(),
        kind: EventType::MessageSent,
        subject: format!("message:{}", message.seq),
        actor: message.from.as_ref().map(|a| a.to_string()),
        correlation_id: message.correlation_id.clone(),
        data: json!({ "id": message.id, "to": message.to }),
    }
}

/// A key's dispatch limits were set (`Some`, its new value) or removed (`None`).
pub fn limit_changed(ns: &Namespace, key: &str, limit: Option<&KeyLimit>, now: Timestamp) -> NewEvent {
    let (kind, data) = match limit {
        Some(limit) => (EventType::LimitSet, json!(limit)),
        None => (EventType::LimitRemoved, json!({})),
    };
    NewEvent {
        ts: now,
        namespace: ns.clone(),
        kind,
        subject: format!("limit:{key}"),
        actor: None,
        correlation_id: None,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_reads_back_from_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
    }

    #[test]
    fn a_kind_pattern_names_every_type_of_the_kind() {
        let agent = EventType::matching("agent.*").unwrap();
        assert_eq!(agent.len(), 5);
        assert!(agent.iter().all(|t| t.as_str().starts_with("agent.")));
        assert_eq!(
            EventType::matching("task.completed"),
            Some(vec![EventType::TaskCompleted])
        );
        assert_eq!(EventType::matching("task.nope"), None);
        assert_eq!(EventType::matching("nope.*"), None);
    }
}
