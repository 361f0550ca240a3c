//! The storage abstraction: the [`Store`] trait every backend implements, its backend-neutral
//! [`StoreError`], the in-memory backend, and (feature `conformance`) the suite every backend
//! must pass.

pub mod agents;
mod error;
pub mod events;
pub mod limits;
pub mod memory;
pub mod record;
pub mod retention;
pub mod tokens;
pub mod webhooks;

#[cfg(feature = "conformance")]
pub mod conformance;

use std::path::PathBuf;
use std::sync::Arc;

use agentyard_core::api::QueueStats;
use agentyard_core::{
    AgentName, Capability, Namespace, NewTask, QueueName, Task, TaskCommand, TaskId, TaskStatus, Timestamp,
};
use async_trait::async_trait;

pub use agents::{AgentOptions, AgentStore, InboxPage, MessageStore, SendOptions, Sent};
pub use error::StoreError;
pub use events::{EVENT_SCAN_WINDOW, EventFilter, EventPage, EventStore};
pub use limits::{LimitStore, StoredLimit};
pub use memory::{Change, ChangeSink, ExportCursor, MemoryStore, OwnedChange};
pub use retention::{PruneCutoffs, Pruned, RetentionStore};
pub use tokens::{StoredToken, TokenStore};
pub use webhooks::{StoredWebhook, WebhookStore};

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
#[derive(Clone)]
pub struct Claim {
    pub queue: QueueName,
    pub agent: AgentName,
    pub capabilities: Vec<Capability>,
    pub max: u32,
    pub lease_ms: u64,
    /// Keyed rate limits and concurrency limits; `None` means no rate limits and the default of
    /// one running task per concurrency key.
    pub gate: Option<Arc<dyn DispatchGate>>,
}

impl Claim {
    pub fn new(queue: QueueName, agent: AgentName, max: u32, lease_ms: u64) -> Self {
        Self {
            queue,
            agent,
            capabilities: Vec::new(),
            max,
            lease_ms,
            gate: None,
        }
    }

    /// Most running tasks allowed for a concurrency key.
    pub fn max_concurrent(&self, key: &str) -> u64 {
        self.gate
            .as_ref()
            .map_or(DEFAULT_MAX_CONCURRENT, |g| g.max_concurrent(key))
    }

    /// Takes a token of a rate-limit key (always granted without a gate).
    pub fn take_rate_token(&self, key: &str, now: Timestamp) -> bool {
        self.gate.as_ref().is_none_or(|g| g.take_rate_token(key, now))
    }
}

impl std::fmt::Debug for Claim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Claim")
            .field("queue", &self.queue)
            .field("agent", &self.agent)
            .field("capabilities", &self.capabilities)
            .field("max", &self.max)
            .field("lease_ms", &self.lease_ms)
            .field("gate", &self.gate.is_some())
            .finish()
    }
}

impl PartialEq for Claim {
    fn eq(&self, other: &Self) -> bool {
        let same_gate = match (&self.gate, &other.gate) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        same_gate
            && self.queue == other.queue
            && self.agent == other.agent
            && self.capabilities == other.capabilities
            && self.max == other.max
            && self.lease_ms == other.lease_ms
    }
}

/// Running tasks allowed per concurrency key that has no configured limit.
pub const DEFAULT_MAX_CONCURRENT: u64 = 1;

/// Dispatch limits a claim must respect, consulted by the backend task by task, in claim order,
/// inside the claim's transaction: a task whose concurrency key is at its limit, or whose
/// rate-limit key has no token left, is passed over (it stays queued) rather than handed out.
pub trait DispatchGate: Send + Sync {
    /// Most tasks of this concurrency key that may run at once.
    fn max_concurrent(&self, key: &str) -> u64;
    /// Takes one token of this rate-limit key; false when none is left at `now`.
    fn take_rate_token(&self, key: &str, now: Timestamp) -> bool;
    /// The configured rate of this key, for a store that keeps the buckets itself (shared by
    /// several nodes): it then draws tokens from its own bucket and reports refusals through
    /// [`DispatchGate::rate_refused`] instead of calling [`DispatchGate::take_rate_token`].
    /// `None` (the default): the gate's own buckets decide.
    fn shared_rate(&self, key: &str) -> Option<agentyard_core::flow::RateLimit> {
        let _ = key;
        None
    }
    /// A store's shared bucket of `key` had no token; the next one comes at `retry_at`.
    fn rate_refused(&self, key: &str, retry_at: Timestamp) {
        let _ = (key, retry_at);
    }
}

/// A change made through another node, that claimers and inbox readers parked on this node may
/// be waiting for. Only stores shared by several nodes (PostgreSQL) report these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteChange {
    /// `ready` tasks of the queue became ready (or freed a concurrency key's slot): as many
    /// parked claimers may find one. `usize::MAX` when some need capabilities, so any parked
    /// claimer may be the one able to run them.
    TasksReady {
        namespace: Namespace,
        queue: QueueName,
        ready: usize,
    },
    /// A message went to an agent, a topic or everyone (`Recipient`).
    MessageSent {
        namespace: Namespace,
        to: agentyard_core::message::Recipient,
    },
    /// Dispatch limits changed.
    LimitsChanged,
    /// A token was made or revoked: forget what is cached about tokens.
    TokensChanged,
    /// Changes may have been missed (the store lost and regained its feed): wake every waiter.
    Resync,
}

/// Where a store reports [`RemoteChange`]s.
pub type RemoteSink = Arc<dyn Fn(RemoteChange) + Send + Sync>;

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

/// What a backend tells about its own upkeep, for `/metrics` and `/health/detailed`: each figure
/// is `None` where the backend keeps no such thing (the default: the memory and PostgreSQL
/// stores report nothing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// The directory holding the store's files, where disk free space matters.
    pub directory: Option<PathBuf>,
    /// Transactions the writer committed since the store opened (SQLite's group commit).
    pub commit_groups: Option<u64>,
    /// Commands those transactions held: `commit_commands / commit_groups` is the mean group size.
    pub commit_commands: Option<u64>,
    /// Times the log store rewrote its file without the history it no longer needs.
    pub compactions: Option<u64>,
}

impl StorageStats {
    /// The directory of a store kept in `file` (`.` for a bare file name).
    pub fn directory_of(file: &std::path::Path) -> PathBuf {
        match file.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
            _ => PathBuf::from("."),
        }
    }
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

    /// Applies each command to its task as [`Store::apply`] would, each succeeding or failing on
    /// its own; the outcomes come back in order. The outer error is for the store failing as a
    /// whole (then none was applied). A backend may write them all in one transaction, as the
    /// SQLite one does; by default they are applied one after the other.
    async fn apply_many(
        &self,
        ns: &Namespace,
        commands: Vec<(TaskId, TaskCommand)>,
        now: Timestamp,
    ) -> Result<Vec<Result<Task, StoreError>>, StoreError> {
        let mut out = Vec::with_capacity(commands.len());
        for (id, command) in commands {
            out.push(self.apply(ns, id, command, now).await);
        }
        Ok(out)
    }

    /// Applies `commands` as [`Store::apply_many`] does, then claims as [`Store::claim_tasks`]
    /// does: a worker's "done, next" in one call, so the claim sees what the commands freed (a
    /// concurrency key's slot, say). A backend may write it all in one transaction, as the
    /// SQLite one does; by default it is the two calls one after the other, so an error of the
    /// claim may come after the commands were applied (callers retry completions safely: one
    /// repeated under the same lease changes nothing).
    async fn apply_then_claim(
        &self,
        ns: &Namespace,
        commands: Vec<(TaskId, TaskCommand)>,
        claim: &Claim,
        now: Timestamp,
    ) -> Result<(Vec<Result<Task, StoreError>>, Vec<Task>), StoreError> {
        let applied = self.apply_many(ns, commands, now).await?;
        let claimed = self.claim_tasks(ns, claim, now).await?;
        Ok((applied, claimed))
    }

    /// Leases up to `claim.max` ready tasks of the queue to the agent: highest priority first,
    /// then earliest `run_at`, then creation order. Never hands one task to two claimers. Skips
    /// tasks the agent lacks capabilities for, tasks whose `concurrency_key` already has
    /// `claim.max_concurrent(key)` running, and tasks whose `rate_limit_key` has no token.
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

    /// Asks the store to report changes made through other nodes to `sink`. Returns false for a
    /// store only this process uses (the default), which has nothing to report.
    fn watch_remote(&self, sink: RemoteSink) -> bool {
        let _ = sink;
        false
    }

    /// Figures the backend keeps about its own upkeep (see [`StorageStats`]); cheap, no IO.
    fn storage_stats(&self) -> StorageStats {
        StorageStats::default()
    }

    /// Counts per status and the oldest ready task of each queue of the namespace (or of one).
    async fn queue_stats(
        &self,
        ns: &Namespace,
        queue: Option<&QueueName>,
        now: Timestamp,
    ) -> Result<Vec<QueueStats>, StoreError>;
}

/// A backend that stores everything: tasks, agents, messages, limits, tokens, the event log and its
/// retention, webhooks. The server holds one.
pub trait Yard:
    Store + AgentStore + MessageStore + LimitStore + TokenStore + EventStore + RetentionStore + WebhookStore
{
}

impl<T> Yard for T where
    T: Store + AgentStore + MessageStore + LimitStore + TokenStore + EventStore + RetentionStore + WebhookStore
{
}
