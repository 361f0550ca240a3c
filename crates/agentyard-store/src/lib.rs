//! The storage abstraction: the [`Store`] trait every backend implements, its backend-neutral
//! [`StoreError`], the in-memory backend, and (feature `conformance`) the suite every backend
//! must pass.

pub mod agents;
mod error;
pub mod memory;

#[cfg(feature = "conformance")]
pub mod conformance;

use agentyard_core::api::QueueStats;
use agentyard_core::{
    AgentName, Capability, Namespace, NewTask, QueueName, Task, TaskCommand, TaskId, TaskStatus, Timestamp,
};
use async_trait::async_trait;

pub use agents::{AgentStore, InboxPage, MessageStore, SendOptions, Sent};
pub use error::StoreError;
pub use memory::MemoryStore;

/// Options of a create.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CreateOptions {
    /// Refuse the whole batch when a queue would hold more than this many waiting tasks.
    pub max_queue_depth: Option<u64>,
}

/// The outcome of creating one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub task: Task,
    /// False when the `idempotency_key` was seen before: `task` is the original.
    pub created: bool,
}

/// What a claimer asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub queue: QueueName,
    pub agent: AgentName,
    pub capabilities: Vec<Capability>,
    pub max: u32,
    pub lease_ms: u64,
}

/// Which tasks to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskFilter {
    pub queue: Option<QueueName>,
    pub status: Option<TaskStatus>,
}

/// One page of tasks, ordered by id (creation order).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub items: Vec<Task>,
    /// The id to pass as `after` for the next page; `None` on the last page.
    pub next: Option<TaskId>,
}

/// Durable storage of the yard. Every method is atomic: it happens entirely or not at all, and
/// once it returns `Ok` the change survives a crash (subject to the backend's durability setting).
///
/// Time is passed in (`now`) rather than read, so tests control it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates all `tasks` in one transaction, or none. A task whose `idempotency_key` already
    /// exists in the namespace is not created; its original comes back with `created: false`.
    async fn create_tasks(
        &self,
        ns: &Namespace,
        tasks: Vec<NewTask>,
        options: CreateOptions,
        now: Timestamp,
    ) -> Result<Vec<Created>, StoreError>;

    async fn get_task(&self, ns: &Namespace, id: TaskId) -> Result<Task, StoreError>;

    /// At most `limit` tasks with ids greater than `after`, in id order.
    async fn list_tasks(
        &self,
        ns: &Namespace,
        filter: &TaskFilter,
        after: Option<TaskId>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Applies one command to one task (see [`Task::apply`]) and returns the task as stored.
    async fn apply(&self, ns: &Namespace, id: TaskId, command: TaskCommand, now: Timestamp)
    -> Result<Task, StoreError>;

    /// Leases up to `claim.max` ready tasks of the queue to the agent: highest priority first,
    /// then earliest `run_at`, then creation order. Never hands one task to two claimers.
    async fn claim_tasks(&self, ns: &Namespace, claim: &Claim, now: Timestamp) -> Result<Vec<Task>, StoreError>;

    /// Re-queues (or dead-letters) running tasks whose lease expired at or before `now`.
    /// Returns the changed tasks (at most `limit`).
    async fn expire_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError>;

    /// Makes scheduled tasks whose `run_at` came claimable. Returns them (at most `limit`).
    async fn promote_due(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError>;

    /// The earliest moment a scheduled task becomes due or a lease expires, if any.
    async fn next_wakeup(&self) -> Result<Option<Timestamp>, StoreError>;

    /// Re-queues up to `limit` failed tasks of a queue (bulk redrive). Returns them.
    async fn redrive_failed(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Task>, StoreError>;

    /// Counts per status and the oldest ready task of each queue of the namespace (or of one).
    async fn queue_stats(
        &self,
        ns: &Namespace,
        queue: Option<&QueueName>,
        now: Timestamp,
    ) -> Result<Vec<QueueStats>, StoreError>;
}
