//! Backend-neutral store errors. Backends map their driver errors into these; the API maps these
//! to HTTP statuses; the conformance suite asserts the variant, never the message.

use agentyard_core::{AgentName, Namespace, QueueName, Task, TransitionError};

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("{what} not found")]
    NotFound { what: String },
    #[error("version conflict: expected version {expected}, current version is {actual}")]
    VersionConflict {
        expected: u64,
        actual: u64,
        current: Box<Task>,
    },
    #[error("merge conflict on {paths:?}: changed since version {expected} (current version is {actual})")]
    MergeConflict {
        expected: u64,
        actual: u64,
        paths: Vec<String>,
        current: Box<Task>,
    },
    #[error("{message}")]
    LeaseConflict { message: String, current: Box<Task> },
    #[error("{message}")]
    InvalidTransition { message: String, current: Box<Task> },
    #[error("{message}")]
    Invalid { message: String },
    #[error("queue {queue} holds {depth} waiting tasks; its limit is {limit}")]
    Backpressure { queue: QueueName, depth: u64, limit: u64 },
    #[error("agent {agent} has {depth} unacknowledged messages; its inbox limit is {limit}")]
    InboxFull { agent: AgentName, depth: u64, limit: u64 },
    #[error("namespace {namespace} already has {limit} agents, its limit: agent {agent} is not created")]
    TooManyAgents {
        namespace: Namespace,
        agent: AgentName,
        limit: u64,
    },
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Other(String),
}

impl StoreError {
    pub fn task_not_found(id: impl std::fmt::Display) -> Self {
        StoreError::NotFound {
            what: format!("task {id}"),
        }
    }

    /// Attaches the task as it is now to a refused command.
    pub fn from_transition(err: TransitionError, current: &Task) -> Self {
        let current = Box::new(current.clone());
        match err {
            TransitionError::VersionConflict { expected, actual } => StoreError::VersionConflict {
                expected,
                actual,
                current,
            },
            TransitionError::MergeConflict {
                expected,
                actual,
                paths,
            } => StoreError::MergeConflict {
                expected,
                actual,
                paths,
                current,
            },
            TransitionError::LeaseConflict(message) => StoreError::LeaseConflict { message, current },
            e @ TransitionError::InvalidTransition { .. } => StoreError::InvalidTransition {
                message: e.to_string(),
                current,
            },
            TransitionError::Invalid(message) => StoreError::Invalid { message },
        }
    }

    /// Short stable name of the variant (the conformance suite compares these).
    pub fn kind(&self) -> &'static str {
        match self {
            StoreError::NotFound { .. } => "not_found",
            StoreError::VersionConflict { .. } => "version_conflict",
            StoreError::MergeConflict { .. } => "merge_conflict",
            StoreError::LeaseConflict { .. } => "lease_conflict",
            StoreError::InvalidTransition { .. } => "invalid_transition",
            StoreError::Invalid { .. } => "invalid",
            StoreError::Backpressure { .. } => "backpressure",
            StoreError::InboxFull { .. } => "inbox_full",
            StoreError::TooManyAgents { .. } => "too_many_agents",
            StoreError::Unavailable(_) => "unavailable",
            StoreError::Other(_) => "other",
        }
    }
}
