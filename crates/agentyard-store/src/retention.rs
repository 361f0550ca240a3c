//! Retention: deleting history older than configured ages (`RetentionStore`). The server's
//! retention loop and `agentyard admin prune` call [`RetentionStore::prune`] until it finds
//! nothing more to delete.

use agentyard_core::Timestamp;
use async_trait::async_trait;

use crate::StoreError;

/// What a prune deletes: each kind older than its cutoff; `None` keeps that kind forever.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneCutoffs {
    /// Tasks that finished (succeeded, failed for good, cancelled) at or before this moment.
    pub finished_tasks: Option<Timestamp>,
    /// Events logged at or before this moment, oldest first: the log is cut in `seq` order up to
    /// the first event newer than the cutoff, so what is left has no holes.
    pub events: Option<Timestamp>,
    /// Messages created at or before this moment that expired, or that every agent they are for
    /// has acknowledged (a direct message: its recipient, or it no longer exists; a topic
    /// message: the topic's subscribers that get it; a broadcast: the agents registered before
    /// it). A message still unread somewhere is kept.
    pub messages: Option<Timestamp>,
    /// Idempotency keys of tasks and messages created at or before this moment: the task or
    /// message stays, and the key is free again (a running task's, once it stopped running).
    pub idempotency_keys: Option<Timestamp>,
}

/// How much one prune deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub tasks: u64,
    pub events: u64,
    pub messages: u64,
    pub idempotency_keys: u64,
}

impl Pruned {
    pub fn total(&self) -> u64 {
        self.tasks + self.events + self.messages + self.idempotency_keys
    }

    pub fn add(&mut self, other: Pruned) {
        self.tasks += other.tasks;
        self.events += other.events;
        self.messages += other.messages;
        self.idempotency_keys += other.idempotency_keys;
    }
}

#[async_trait]
pub trait RetentionStore: Send + Sync + 'static {
    /// Deletes at most `limit` of each kind older than its cutoff, in one transaction (or call):
    /// the oldest first. Returns what it deleted; call again while anything was.
    async fn prune(&self, cutoffs: &PruneCutoffs, now: Timestamp, limit: usize) -> Result<Pruned, StoreError>;
}
