//! The log store: the yard's whole state in memory (the [`MemoryStore`]), every change appended
//! to one file, and every caller answered once the frames of its call are written.
//!
//! The durable write of a call is an append, shared by everyone waiting: the first caller to
//! wait takes the turn to write and writes every call sealed by then with one `write` (and, with
//! [`LogOptions::fsync`], one `fdatasync`); those who waited meanwhile find theirs written or take
//! the next turn. A read is answered once everything it could have seen
//! is written, so no answer reflects a change a crash could lose.
//!
//! Durability is that of the SQLite store's settings of the same name:
//! - without `fsync` (`normal`) an acknowledged change survives the process dying (`kill -9`, a
//!   panic, an OOM kill): it is in the operating system's hands. A power loss may lose the last
//!   writes; the file is never left unreadable by it (a torn last frame is cut off at open, and
//!   kept in a file beside the log).
//! - with `fsync` (`full`) it survives a power loss too.
//!
//! The file starts with a header (magic bytes and a format version; see `format.rs`), checked at
//! open: a file of another kind or of a newer format is refused, and a log from before headers is
//! read as format 1. At open the file is read back frame by frame (`replay.rs`): a torn last
//! write is cut off, but damage with whole frames after it stops the open, unless
//! [`LogOptions::repair`] asks to cut the log there. When it has grown to twice its size after the
//! last compaction (and at least [`LogOptions::compact_at_bytes`]), a thread writes a snapshot of
//! the state beside it, page by page while the store goes on, then copies behind it the frames
//! written meanwhile and renames it over the log; writes wait only for that copy and rename.
//!
//! What it costs: every task, agent and message ever stored stays in memory (there is no
//! retention yet, in this store or the SQLite one), start-up reads the whole file, and a
//! compaction writes the whole state out again.

mod events;
mod format;
mod journal;
mod replay;
mod retention;
mod tokens;
mod trim;
mod webhooks;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use agentyard_core::agent::{Agent, AgentRegistration};
use agentyard_core::api::QueueStats;
use agentyard_core::flow::KeyLimit;
use agentyard_core::message::{NewMessage, TopicName};
use agentyard_core::{AgentName, Capability, Namespace, NewTask, QueueName, Task, TaskCommand, TaskId, Timestamp};
use agentyard_store::{
    AgentOptions, AgentStore, Claim, CreateOptions, Created, InboxPage, LimitStore, MemoryStore, MessageStore,
    OwnedChange, Page, SendOptions, Sent, StorageStats, Store, StoreError, StoredLimit, TaskFilter,
};
use async_trait::async_trait;

use journal::{Journal, Out, compact_path};
pub use replay::Replayed;
use replay::replay;

/// How the log store writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogOptions {
    /// `fdatasync` after every group's write (durability `full`).
    pub fsync: bool,
    /// The file is not compacted below this size.
    pub compact_at_bytes: u64,
    /// Open a log damaged before its last frame (a frame that fails its checksum with whole
    /// frames after it) by cutting it at the damage, losing every change from there on; the cut
    /// bytes are kept beside it. Without it such a log is refused. A torn last frame is cut
    /// either way.
    pub repair: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        Self {
            fsync: false,
            compact_at_bytes: 64 << 20,
            repair: false,
        }
    }
}

/// See the crate docs.
pub struct LogStore {
    mem: Arc<MemoryStore>,
    journal: Arc<Journal>,
    path: PathBuf,
    replayed: Replayed,
}

impl LogStore {
    /// Opens (or creates) the log at `path` and reads it back. Only one process may have it open.
    pub fn open(path: impl AsRef<Path>, options: LogOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        let shown = path.display();
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(|e| StoreError::Other(format!("cannot open the log {shown}: {e}")))?;
        file.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => StoreError::Other(format!(
                "the log {shown} is in use by another process (another agentyard serve?)"
            )),
            std::fs::TryLockError::Error(e) => StoreError::Other(format!("cannot lock the log {shown}: {e}")),
        })?;
        let leftover = compact_path(&path);
        if leftover.exists() {
            // A compaction the last stop interrupted before its rename: the log itself is whole.
            std::fs::remove_file(&leftover)
                .map_err(|e| StoreError::Other(format!("cannot remove {}: {e}", leftover.display())))?;
        }
        let mem = Arc::new(MemoryStore::new());
        let replayed = replay(&path, &mut file, &mem, options.repair)?;
        let out = Out {
            path: path.clone(),
            file: Some(file),
            len: replayed.bytes,
            fsync: options.fsync,
            min_compact: options.compact_at_bytes,
            compact_at: options.compact_at_bytes.max(replayed.bytes.saturating_mul(2)),
            chunk: Vec::new(),
        };
        let journal = Arc::new(Journal::new(out, Arc::downgrade(&mem)));
        mem.attach(journal.clone());
        Ok(Self {
            mem,
            journal,
            path,
            replayed,
        })
    }

    /// What was read back at open.
    pub fn replayed(&self) -> &Replayed {
        &self.replayed
    }

    /// Waits until a compaction in progress (if any) has ended. Closing the store does this too.
    pub fn finish_compaction(&self) {
        self.journal.finish_compaction();
    }

    /// Compactions finished since open.
    pub fn compactions(&self) -> u64 {
        self.journal.compactions.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Everything the store holds, in the form its snapshots take (agents, tasks, messages,
    /// subscriptions, limits and tokens, in a stable order): what a reopened store must give back.
    pub fn export(&self) -> Vec<OwnedChange> {
        self.mem.export()
    }

    /// Answers `r` once everything sealed so far (this call's frames among it) is written.
    async fn durable<T>(&self, r: Result<T, StoreError>) -> Result<T, StoreError> {
        self.journal.settle(self.journal.sealed()).await?;
        r
    }
}

impl Drop for LogStore {
    fn drop(&mut self) {
        self.journal.finish_compaction();
        self.journal.close();
    }
}

#[async_trait]
impl Store for LogStore {
    async fn create_tasks(
        &self,
        ns: &Namespace,
        tasks: Vec<NewTask>,
        options: CreateOptions,
        now: Timestamp,
    ) -> Result<Vec<Created>, StoreError> {
        let r = self.mem.create_tasks(ns, tasks, options, now).await;
        self.durable(r).await
    }

    async fn get_task(&self, ns: &Namespace, id: TaskId) -> Result<Task, StoreError> {
        let r = self.mem.get_task(ns, id).await;
        self.durable(r).await
    }

    async fn list_tasks(
        &self,
        ns: &Namespace,
        filter: &TaskFilter,
        after: Option<TaskId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let r = self.mem.list_tasks(ns, filter, after, limit).await;
        self.durable(r).await
    }

    async fn apply(
        &self,
        ns: &Namespace,
        id: TaskId,
        command: TaskCommand,
        now: Timestamp,
    ) -> Result<Task, StoreError> {
        let r = self.mem.apply(ns, id, command, now).await;
        self.durable(r).await
    }

    async fn apply_many(
        &self,
        ns: &Namespace,
        commands: Vec<(TaskId, TaskCommand)>,
        now: Timestamp,
    ) -> Result<Vec<Result<Task, StoreError>>, StoreError> {
        // One wait for all of them: each command is its own call (and frame) of the memory store.
        let r = self.mem.apply_many(ns, commands, now).await;
        self.durable(r).await
    }

    async fn apply_then_claim(
        &self,
        ns: &Namespace,
        commands: Vec<(TaskId, TaskCommand)>,
        claim: &Claim,
        now: Timestamp,
    ) -> Result<(Vec<Result<Task, StoreError>>, Vec<Task>), StoreError> {
        let r = self.mem.apply_then_claim(ns, commands, claim, now).await;
        self.durable(r).await
    }

    async fn claim_tasks(&self, ns: &Namespace, claim: &Claim, now: Timestamp) -> Result<Vec<Task>, StoreError> {
        let r = self.mem.claim_tasks(ns, claim, now).await;
        self.durable(r).await
    }

    async fn expire_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
        let r = self.mem.expire_leases(now, limit).await;
        self.durable(r).await
    }

    async fn promote_due(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
        let r = self.mem.promote_due(now, limit).await;
        self.durable(r).await
    }

    async fn next_wakeup(&self) -> Result<Option<Timestamp>, StoreError> {
        let r = self.mem.next_wakeup().await;
        self.durable(r).await
    }

    async fn redrive_failed(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Task>, StoreError> {
        let r = self.mem.redrive_failed(ns, queue, limit, now).await;
        self.durable(r).await
    }

    async fn queue_stats(
        &self,
        ns: &Namespace,
        queue: Option<&QueueName>,
        now: Timestamp,
    ) -> Result<Vec<QueueStats>, StoreError> {
        let r = self.mem.queue_stats(ns, queue, now).await;
        self.durable(r).await
    }

    fn storage_stats(&self) -> StorageStats {
        StorageStats {
            directory: Some(StorageStats::directory_of(&self.path)),
            compactions: Some(self.compactions()),
            ..StorageStats::default()
        }
    }
}

#[async_trait]
impl AgentStore for LogStore {
    async fn register_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        registration: AgentRegistration,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        let r = self.mem.register_agent(ns, name, registration, options, now).await;
        self.durable(r).await
    }

    async fn touch_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        capabilities: Option<Vec<Capability>>,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        let r = self.mem.touch_agent(ns, name, capabilities, options, now).await;
        self.durable(r).await
    }

    async fn heartbeat_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError> {
        let r = self.mem.heartbeat_agent(ns, name, now).await;
        self.durable(r).await
    }

    async fn get_agent(&self, ns: &Namespace, name: &AgentName) -> Result<Agent, StoreError> {
        let r = self.mem.get_agent(ns, name).await;
        self.durable(r).await
    }

    async fn list_agents(&self, ns: &Namespace) -> Result<Vec<Agent>, StoreError> {
        let r = self.mem.list_agents(ns).await;
        self.durable(r).await
    }

    async fn drain_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError> {
        let r = self.mem.drain_agent(ns, name, now).await;
        self.durable(r).await
    }

    async fn delete_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Vec<Task>, StoreError> {
        let r = self.mem.delete_agent(ns, name, now).await;
        self.durable(r).await
    }

    async fn expire_agents(&self, now: Timestamp, timeout_ms: u64) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
        let r = self.mem.expire_agents(now, timeout_ms).await;
        self.durable(r).await
    }

    async fn forget_agents(
        &self,
        now: Timestamp,
        silent_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
        let r = self.mem.forget_agents(now, silent_since, limit).await;
        self.durable(r).await
    }
}

#[async_trait]
impl MessageStore for LogStore {
    async fn send_message(
        &self,
        ns: &Namespace,
        message: NewMessage,
        options: SendOptions,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        let r = self.mem.send_message(ns, message, options, now).await;
        self.durable(r).await
    }

    async fn read_inbox(
        &self,
        ns: &Namespace,
        agent: &AgentName,
        after: Option<u64>,
        limit: usize,
        now: Timestamp,
    ) -> Result<InboxPage, StoreError> {
        let r = self.mem.read_inbox(ns, agent, after, limit, now).await;
        self.durable(r).await
    }

    async fn ack_inbox(&self, ns: &Namespace, agent: &AgentName, cursor: u64) -> Result<Agent, StoreError> {
        let r = self.mem.ack_inbox(ns, agent, cursor).await;
        self.durable(r).await
    }

    async fn subscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
        let r = self.mem.subscribe(ns, agent, topic).await;
        self.durable(r).await
    }

    async fn unsubscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
        let r = self.mem.unsubscribe(ns, agent, topic).await;
        self.durable(r).await
    }

    async fn subscriptions(&self, ns: &Namespace, agent: &AgentName) -> Result<Vec<TopicName>, StoreError> {
        let r = self.mem.subscriptions(ns, agent).await;
        self.durable(r).await
    }

    async fn message_count(&self, ns: &Namespace) -> Result<u64, StoreError> {
        let r = self.mem.message_count(ns).await;
        self.durable(r).await
    }

    async fn inbox_depth(&self, ns: &Namespace, agent: &AgentName, now: Timestamp) -> Result<u64, StoreError> {
        let r = self.mem.inbox_depth(ns, agent, now).await;
        self.durable(r).await
    }
}

#[async_trait]
impl LimitStore for LogStore {
    async fn list_limits(&self) -> Result<Vec<StoredLimit>, StoreError> {
        let r = self.mem.list_limits().await;
        self.durable(r).await
    }

    async fn put_limit(&self, ns: &Namespace, key: &str, limit: KeyLimit, now: Timestamp) -> Result<(), StoreError> {
        let r = self.mem.put_limit(ns, key, limit, now).await;
        self.durable(r).await
    }

    async fn delete_limit(&self, ns: &Namespace, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let r = self.mem.delete_limit(ns, key, now).await;
        self.durable(r).await
    }
}
