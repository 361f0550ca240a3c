//! The in-memory backend: everything in one mutex-guarded map with the same indexes a database
//! would keep. For tests and ephemeral runs (`memory://`); nothing survives a restart by itself.
//!
//! A [`ChangeSink`] attached with [`MemoryStore::attach`] sees every change, in order, under the
//! store's lock, and a seal after each call that changed something: that is what the log store
//! (`agentyard-store-log`) appends to its file. [`MemoryStore::restore`] reads such changes back.
//!
//! Dispatch limits (`LimitStore`) are in `memory/limits.rs`, API tokens (`TokenStore`) in
//! `memory/tokens.rs`, the event log (`EventStore`) in `memory/events.rs`.

mod events;
mod limits;
mod retention;
mod tokens;
mod webhooks;

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

use agentyard_core::agent::{Agent, AgentRegistration, AgentStatus, DEFAULT_SLOTS};
use agentyard_core::api::{QueueStats, StatusCounts};
use agentyard_core::auth::TokenId;
use agentyard_core::event::{self, Event, EventType, task_event};
use agentyard_core::flow::KeyLimit;
use agentyard_core::message::{Message, NewMessage, Recipient, TopicName};
use agentyard_core::task::TaskMeta;
use agentyard_core::{
    AgentName, Capability, LeaseToken, Namespace, NewTask, QueueName, Task, TaskCommand, TaskId, TaskStatus, Timestamp,
};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::agents::{AgentOptions, AgentStore, InboxPage, MessageStore, SendOptions, Sent};
use crate::{Claim, CreateOptions, Created, Page, Store, StoreError, StoredToken, StoredWebhook, TaskFilter};

type ReadyKey = (Namespace, QueueName, Reverse<i32>, Timestamp, TaskId);

/// One change of the store's state, as a [`ChangeSink`] sees it: the whole new version of what
/// changed. Serialized, it reads back as an [`OwnedChange`].
#[derive(Debug, Serialize)]
pub enum Change<'a> {
    /// A task was created or changed; this is all of it (its `meta` is not serialized with the
    /// task, so it comes beside it).
    Task {
        task: &'a Task,
        meta: &'a TaskMeta,
    },
    /// An agent was registered or changed (its `running` count is not part of it).
    Agent(&'a Agent),
    AgentRemoved {
        namespace: &'a Namespace,
        name: &'a AgentName,
    },
    Message(&'a Message),
    /// The agent gets the topic's messages with sequences above `after`.
    Subscribed {
        namespace: &'a Namespace,
        agent: &'a AgentName,
        topic: &'a TopicName,
        after: u64,
    },
    Unsubscribed {
        namespace: &'a Namespace,
        agent: &'a AgentName,
        topic: &'a TopicName,
    },
    /// The dispatch limits of a key were set, replacing any it had.
    Limit {
        namespace: &'a Namespace,
        key: &'a str,
        limit: &'a KeyLimit,
    },
    LimitRemoved {
        namespace: &'a Namespace,
        key: &'a str,
    },
    /// A token was created or revoked; this is all of it (serialized as its stored record).
    Token(#[serde(serialize_with = "crate::record::write_token")] &'a StoredToken),
    /// An event was appended to the log.
    Event(&'a Event),
    /// A task was deleted (retention).
    TaskRemoved {
        namespace: &'a Namespace,
        id: TaskId,
    },
    /// A message was deleted (retention).
    MessageRemoved {
        namespace: &'a Namespace,
        seq: u64,
    },
    /// The events up to this seq were deleted (retention).
    EventsPruned {
        through: u64,
    },
    /// A webhook was made or its cursor moved; this is all of it (serialized as its record).
    Webhook(#[serde(serialize_with = "crate::record::write_webhook")] &'a StoredWebhook),
    WebhookRemoved {
        namespace: &'a Namespace,
        id: &'a str,
    },
}

/// A [`Change`] read back, for [`MemoryStore::restore`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum OwnedChange {
    Task {
        task: Box<Task>,
        meta: TaskMeta,
    },
    Agent(Agent),
    AgentRemoved {
        namespace: Namespace,
        name: AgentName,
    },
    Message(Message),
    Subscribed {
        namespace: Namespace,
        agent: AgentName,
        topic: TopicName,
        after: u64,
    },
    Unsubscribed {
        namespace: Namespace,
        agent: AgentName,
        topic: TopicName,
    },
    Limit {
        namespace: Namespace,
        key: String,
        limit: KeyLimit,
    },
    LimitRemoved {
        namespace: Namespace,
        key: String,
    },
    Token(#[serde(deserialize_with = "crate::record::read_token")] StoredToken),
    Event(Event),
    TaskRemoved {
        namespace: Namespace,
        id: TaskId,
    },
    MessageRemoved {
        namespace: Namespace,
        seq: u64,
    },
    EventsPruned {
        through: u64,
    },
    Webhook(#[serde(deserialize_with = "crate::record::read_webhook")] StoredWebhook),
    WebhookRemoved {
        namespace: Namespace,
        id: String,
    },
}

/// Sees every change of a [`MemoryStore`]. Both methods are called with the store's lock held, so
/// the order of the calls is the order of the changes.
pub trait ChangeSink: Send + Sync {
    fn record(&self, change: &Change<'_>);
    /// Ends a call that recorded something: the changes since the previous seal are one atomic
    /// unit (a call of the store either happened entirely or not at all).
    fn seal(&self);
}

#[derive(Default)]
struct State {
    /// Boxed: a `Task` is ~800 bytes, and a B-tree node holds eleven values inline, moving them
    /// on every split and leaving its empty slots allocated (ids arrive in order, so nodes stay
    /// about half full).
    tasks: BTreeMap<TaskId, Box<Task>>,
    idempotency: HashMap<(Namespace, String), TaskId>,
    ready: BTreeSet<ReadyKey>,
    scheduled: BTreeSet<(Timestamp, TaskId)>,
    leases: BTreeSet<(Timestamp, TaskId)>,
    counts: BTreeMap<(Namespace, QueueName), StatusCounts>,
    agents: BTreeMap<(Namespace, AgentName), Agent>,
    messages: BTreeMap<(Namespace, u64), Message>,
    last_seq: HashMap<Namespace, u64>,
    /// (namespace, agent, topic) → sequence the subscription started after.
    subscriptions: BTreeMap<(Namespace, AgentName, TopicName), u64>,
    message_keys: HashMap<(Namespace, String), u64>,
    /// Running tasks per (namespace, concurrency key).
    running_keys: HashMap<(Namespace, String), u64>,
    /// Running tasks per (namespace, lease holder): an agent's view counts them, and releasing
    /// an agent's leases walks them.
    running_by_agent: HashMap<(Namespace, AgentName), BTreeSet<TaskId>>,
    /// Dispatch limits set through the API, per (namespace, key).
    limits: BTreeMap<(Namespace, String), KeyLimit>,
    /// API tokens, revoked ones included, by id.
    tokens: BTreeMap<TokenId, StoredToken>,
    /// The event log, by seq.
    events: BTreeMap<u64, Event>,
    /// The last seq given (never reused, also once the events it was given to are pruned).
    last_event: u64,
    /// Webhooks by (namespace, id).
    webhooks: BTreeMap<(Namespace, String), StoredWebhook>,
    /// Who delivers each webhook, until when (never recorded: a restart is a new process).
    webhook_leases: HashMap<(Namespace, String), (String, Timestamp)>,
    sink: Option<Arc<dyn ChangeSink>>,
    /// Something was recorded since the last seal.
    unsealed: Cell<bool>,
}

impl State {
    fn record(&self, change: Change<'_>) {
        if let Some(sink) = &self.sink {
            sink.record(&change);
            self.unsealed.set(true);
        }
    }

    fn record_agent(&self, ns: &Namespace, name: &AgentName) {
        if self.sink.is_some()
            && let Some(a) = self.agents.get(&(ns.clone(), name.clone()))
        {
            self.record(Change::Agent(a));
        }
    }

    /// Puts back one change a sink recorded (see [`MemoryStore::restore`]).
    fn restore(&mut self, change: OwnedChange) {
        match change {
            OwnedChange::Task { mut task, meta } => {
                task.meta = meta;
                let old_key = match self.tasks.remove(&task.id) {
                    Some(old) => {
                        self.unindex(&old);
                        old.idempotency_key.clone()
                    }
                    None => None,
                };
                if old_key != task.idempotency_key {
                    if let Some(key) = old_key {
                        self.idempotency.remove(&(task.namespace.clone(), key));
                    }
                    if let Some(key) = &task.idempotency_key {
                        self.idempotency.insert((task.namespace.clone(), key.clone()), task.id);
                    }
                }
                self.index(&task);
                self.tasks.insert(task.id, task);
            }
            OwnedChange::Agent(agent) => {
                self.agents.insert((agent.namespace.clone(), agent.name.clone()), agent);
            }
            OwnedChange::AgentRemoved { namespace, name } => {
                self.agents.remove(&(namespace.clone(), name.clone()));
                self.subscriptions
                    .retain(|(n, a, _), _| !(n == &namespace && a == &name));
            }
            OwnedChange::Message(m) => {
                let ns = m.namespace.clone();
                let last = self.last_seq.entry(ns.clone()).or_default();
                *last = (*last).max(m.seq);
                let old_key = self
                    .messages
                    .get(&(ns.clone(), m.seq))
                    .and_then(|o| o.idempotency_key.clone());
                if let Some(key) = old_key.filter(|k| m.idempotency_key.as_ref() != Some(k)) {
                    self.message_keys.remove(&(ns.clone(), key));
                }
                if let Some(key) = &m.idempotency_key {
                    self.message_keys.insert((ns.clone(), key.clone()), m.seq);
                }
                self.messages.insert((ns, m.seq), m);
            }
            OwnedChange::Subscribed {
                namespace,
                agent,
                topic,
                after,
            } => {
                self.subscriptions.insert((namespace, agent, topic), after);
            }
            OwnedChange::Unsubscribed {
                namespace,
                agent,
                topic,
            } => {
                self.subscriptions.remove(&(namespace, agent, topic));
            }
            OwnedChange::Limit { namespace, key, limit } => {
                self.limits.insert((namespace, key), limit);
            }
            OwnedChange::LimitRemoved { namespace, key } => {
                self.limits.remove(&(namespace, key));
            }
            OwnedChange::Token(token) => {
                self.tokens.insert(token.info.id.clone(), token);
            }
            OwnedChange::Event(event) => {
                self.last_event = self.last_event.max(event.seq);
                self.events.insert(event.seq, event);
            }
            OwnedChange::TaskRemoved { id, .. } => self.remove_task(id),
            OwnedChange::MessageRemoved { namespace, seq } => self.remove_message(&namespace, seq),
            OwnedChange::Webhook(w) => {
                self.webhooks.insert((w.hook.namespace.clone(), w.hook.id.clone()), w);
            }
            OwnedChange::WebhookRemoved { namespace, id } => {
                self.webhooks.remove(&(namespace, id));
            }
            OwnedChange::EventsPruned { through } => {
                self.last_event = self.last_event.max(through);
                self.remove_events_through(through);
            }
        }
    }

    fn index(&mut self, t: &Task) {
        match t.status {
            TaskStatus::Queued => {
                self.ready.insert(ready_key(t));
            }
            TaskStatus::Scheduled => {
                self.scheduled.insert((t.run_at, t.id));
            }
            TaskStatus::Running => {
                if let Some(l) = &t.lease {
                    self.leases.insert((l.expires_at, t.id));
                    self.running_by_agent
                        .entry((t.namespace.clone(), l.agent.clone()))
                        .or_default()
                        .insert(t.id);
                }
                if let Some(k) = &t.concurrency_key {
                    *self.running_keys.entry((t.namespace.clone(), k.clone())).or_default() += 1;
                }
            }
            _ => {}
        }
        *self
            .counts
            .entry((t.namespace.clone(), t.queue.clone()))
            .or_default()
            .slot(t.status) += 1;
    }

    fn unindex(&mut self, t: &Task) {
        self.ready.remove(&ready_key(t));
        self.scheduled.remove(&(t.run_at, t.id));
        if let Some(l) = &t.lease {
            self.leases.remove(&(l.expires_at, t.id));
            let key = (t.namespace.clone(), l.agent.clone());
            if let Some(ids) = self.running_by_agent.get_mut(&key) {
                ids.remove(&t.id);
                if ids.is_empty() {
                    self.running_by_agent.remove(&key);
                }
            }
        }
        if let Some(c) = self.counts.get_mut(&(t.namespace.clone(), t.queue.clone())) {
            *c.slot(t.status) -= 1;
        }
        if t.status == TaskStatus::Running
            && let Some(k) = &t.concurrency_key
            && let Some(n) = self.running_keys.get_mut(&(t.namespace.clone(), k.clone()))
        {
            *n -= 1;
        }
    }

    /// Runs `f` on a task in place, keeping the indexes right whether it succeeds or not; returns
    /// its outcome and a copy of the task as stored after it.
    fn modify<R>(&mut self, id: TaskId, f: impl FnOnce(&mut Task) -> R) -> Option<(R, Task)> {
        // Out of the map while it changes, so its old index entries can go without a copy of it.
        let mut task = self.tasks.remove(&id)?;
        self.unindex(&task);
        let version = task.version;
        let r = f(&mut task);
        self.index(&task);
        self.record(Change::Task {
            task: &task,
            meta: &task.meta,
        });
        if task.version != version
            && let Some(event) = task_event(&task, task.updated_at)
        {
            self.log(event);
        }
        let stored = Task::clone(&task);
        self.tasks.insert(id, task);
        Some((r, stored))
    }

    fn get(&self, ns: &Namespace, id: TaskId) -> Result<&Task, StoreError> {
        self.tasks
            .get(&id)
            .map(|t| &**t)
            .filter(|t| &t.namespace == ns)
            .ok_or_else(|| StoreError::task_not_found(id))
    }
}

fn ready_key(t: &Task) -> ReadyKey {
    (
        t.namespace.clone(),
        t.queue.clone(),
        Reverse(t.priority),
        t.run_at,
        t.id,
    )
}

/// See the module docs.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> Locked<'_> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the process, so recover the guard rather than cascade.
        Locked(self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// From now on every change goes to `sink` too (replacing any sink attached before).
    pub fn attach(&self, sink: Arc<dyn ChangeSink>) {
        self.lock().sink = Some(sink);
    }

    /// Applies changes a sink recorded, in their order, as they were: nothing is checked, and an
    /// attached sink does not see them again.
    pub fn restore(&self, changes: impl IntoIterator<Item = OwnedChange>) {
        let mut st = self.lock();
        let sink = st.sink.take();
        for change in changes {
            st.restore(change);
        }
        st.sink = sink;
    }

    /// Everything the store holds, as changes that [`MemoryStore::restore`] turns back into the
    /// same state, copied under one hold of the lock.
    pub fn export(&self) -> Vec<OwnedChange> {
        let mut cursor = ExportCursor::default();
        self.export_page(&mut cursor, usize::MAX)
    }

    /// The next `max` entries of the state after `cursor` (agents, then tasks, then messages,
    /// then subscriptions, then limits, then tokens, then webhooks, then events), copied under one short hold of the lock; the cursor
    /// moves past them. Pages taken while the store changes are not one consistent copy: each
    /// entry is as it was when its page was taken. Restored and followed by every change
    /// recorded since the first page was taken, they give the state back exactly, since each
    /// change is a whole new version.
    pub fn export_page(&self, cursor: &mut ExportCursor, max: usize) -> Vec<OwnedChange> {
        let st = self.lock();
        let mut out = Vec::new();
        while out.len() < max && !cursor.done() {
            let want = max - out.len();
            let last = match cursor.stage {
                0 => page(&st.agents, &mut cursor.agent, want, &mut out, |_, a| {
                    OwnedChange::Agent(a.clone())
                }),
                1 => page(&st.tasks, &mut cursor.task, want, &mut out, |_, t| OwnedChange::Task {
                    task: t.clone(),
                    meta: t.meta.clone(),
                }),
                2 => page(&st.messages, &mut cursor.message, want, &mut out, |_, m| {
                    OwnedChange::Message(m.clone())
                }),
                3 => page(
                    &st.subscriptions,
                    &mut cursor.subscription,
                    want,
                    &mut out,
                    |(namespace, agent, topic), after| OwnedChange::Subscribed {
                        namespace: namespace.clone(),
                        agent: agent.clone(),
                        topic: topic.clone(),
                        after: *after,
                    },
                ),
                4 => page(
                    &st.limits,
                    &mut cursor.limit,
                    want,
                    &mut out,
                    |(namespace, key), limit| OwnedChange::Limit {
                        namespace: namespace.clone(),
                        key: key.clone(),
                        limit: *limit,
                    },
                ),
                5 => page(&st.tokens, &mut cursor.token, want, &mut out, |_, t| {
                    OwnedChange::Token(t.clone())
                }),
                6 => page(&st.webhooks, &mut cursor.webhook, want, &mut out, |_, w| {
                    OwnedChange::Webhook(w.clone())
                }),
                _ => page(&st.events, &mut cursor.event, want, &mut out, |_, e| {
                    OwnedChange::Event(e.clone())
                }),
            };
            if last {
                cursor.stage += 1;
            }
        }
        out
    }
}

/// Where [`MemoryStore::export_page`] goes on from.
#[derive(Debug, Clone, Default)]
pub struct ExportCursor {
    stage: u8,
    agent: Option<(Namespace, AgentName)>,
    task: Option<TaskId>,
    message: Option<(Namespace, u64)>,
    subscription: Option<(Namespace, AgentName, TopicName)>,
    limit: Option<(Namespace, String)>,
    token: Option<TokenId>,
    webhook: Option<(Namespace, String)>,
    event: Option<u64>,
}

impl ExportCursor {
    /// Every entry was exported.
    pub fn done(&self) -> bool {
        self.stage > 7
    }
}

/// Up to `want` entries of `map` after `after`, converted into `out`; `after` moves to the last
/// one. True when the map has nothing after them.
fn page<K: Ord + Clone, V>(
    map: &BTreeMap<K, V>,
    after: &mut Option<K>,
    want: usize,
    out: &mut Vec<OwnedChange>,
    convert: impl Fn(&K, &V) -> OwnedChange,
) -> bool {
    use std::ops::Bound::{Excluded, Unbounded};
    let start = after.clone().map_or(Unbounded, Excluded);
    let mut entries = map.range((start, Unbounded));
    for (k, v) in entries.by_ref().take(want) {
        out.push(convert(k, v));
        *after = Some(k.clone());
    }
    entries.next().is_none()
}

/// The store's lock; when it is let go after changes were recorded, the sink gets its seal.
struct Locked<'a>(MutexGuard<'a, State>);

impl Deref for Locked<'_> {
    type Target = State;
    fn deref(&self) -> &State {
        &self.0
    }
}

impl DerefMut for Locked<'_> {
    fn deref_mut(&mut self) -> &mut State {
        &mut self.0
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        if self.0.unsealed.replace(false)
            && let Some(sink) = &self.0.sink
        {
            sink.seal();
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn create_tasks(
        &self,
        ns: &Namespace,
        tasks: Vec<NewTask>,
        options: CreateOptions,
        now: Timestamp,
    ) -> Result<Vec<Created>, StoreError> {
        let mut st = self.lock();
        // First pass: resolve idempotency and check depth, without changing anything.
        let mut plan: Vec<Result<Task, TaskId>> = Vec::with_capacity(tasks.len());
        let mut batch_keys: HashMap<String, usize> = HashMap::new();
        let mut added: HashMap<QueueName, u64> = HashMap::new();
        for new in tasks {
            if let Some(key) = &new.idempotency_key {
                if let Some(id) = st.idempotency.get(&(ns.clone(), key.clone())) {
                    plan.push(Err(*id));
                    continue;
                }
                if let Some(&i) = batch_keys.get(key) {
                    let id = plan[i].as_ref().map(|t| t.id).unwrap_or_else(|id| *id);
                    plan.push(Err(id));
                    continue;
                }
                batch_keys.insert(key.clone(), plan.len());
            }
            let task = new.into_task(TaskId::generate(), ns.clone(), now);
            *added.entry(task.queue.clone()).or_default() += 1;
            plan.push(Ok(task));
        }
        if let Some(limit) = options.max_queue_depth {
            for (queue, n) in &added {
                let depth = st.counts.get(&(ns.clone(), queue.clone())).map_or(0, |c| c.depth());
                if depth + n > limit {
                    return Err(StoreError::Backpressure {
                        queue: queue.clone(),
                        depth,
                        limit,
                    });
                }
            }
        }
        let mut out = Vec::with_capacity(plan.len());
        for item in plan {
            match item {
                Ok(task) => {
                    if let Some(key) = &task.idempotency_key {
                        st.idempotency.insert((ns.clone(), key.clone()), task.id);
                    }
                    st.index(&task);
                    st.record(Change::Task {
                        task: &task,
                        meta: &task.meta,
                    });
                    if let Some(event) = task_event(&task, now) {
                        st.log(event);
                    }
                    st.tasks.insert(task.id, Box::new(task.clone()));
                    out.push(Created { task, created: true });
                }
                Err(id) => {
                    let task = st
                        .tasks
                        .get(&id)
                        .map(|t| Task::clone(t))
                        .ok_or_else(|| StoreError::task_not_found(id))?;
                    out.push(Created { task, created: false });
                }
            }
        }
        Ok(out)
    }

    async fn get_task(&self, ns: &Namespace, id: TaskId) -> Result<Task, StoreError> {
        self.lock().get(ns, id).cloned()
    }

    async fn list_tasks(
        &self,
        ns: &Namespace,
        filter: &TaskFilter,
        after: Option<TaskId>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let st = self.lock();
        let range = match after {
            Some(a) => st
                .tasks
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => st.tasks.range(..),
        };
        let mut items: Vec<Task> = range
            .map(|(_, t)| &**t)
            .filter(|t| &t.namespace == ns)
            .filter(|t| filter.queue.as_ref().is_none_or(|q| &t.queue == q))
            .filter(|t| filter.status.is_none_or(|s| t.status == s))
            .take(limit + 1)
            .cloned()
            .collect();
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|t| t.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    async fn apply(
        &self,
        ns: &Namespace,
        id: TaskId,
        command: TaskCommand,
        now: Timestamp,
    ) -> Result<Task, StoreError> {
        let mut st = self.lock();
        let current = st.get(ns, id)?;
        // Changed on a copy: a refused command leaves the stored task as it was.
        let mut task = current.clone();
        match task.apply(command, now) {
            Ok(_) => st
                .modify(id, |t| *t = task)
                .map(|(_, t)| t)
                .ok_or_else(|| StoreError::task_not_found(id)),
            Err(e) => Err(StoreError::from_transition(e, current)),
        }
    }

    async fn claim_tasks(&self, ns: &Namespace, claim: &Claim, now: Timestamp) -> Result<Vec<Task>, StoreError> {
        let mut st = self.lock();
        let start: ReadyKey = (
            ns.clone(),
            claim.queue.clone(),
            Reverse(i32::MAX),
            Timestamp::from_millis(i64::MIN),
            TaskId::from_parts(0, 0),
        );
        let mut picked: Vec<TaskId> = Vec::new();
        let mut taken_per_key: HashMap<String, u64> = HashMap::new();
        for key in st.ready.range(start..).take_while(|k| &k.0 == ns && k.1 == claim.queue) {
            if picked.len() == claim.max as usize {
                break;
            }
            let Some(task) = st.tasks.get(&key.4) else { continue };
            if !task.runnable_by(&claim.capabilities) {
                continue;
            }
            if let Some(k) = &task.concurrency_key {
                let running = st.running_keys.get(&(ns.clone(), k.clone())).copied().unwrap_or(0);
                let taken = taken_per_key.get(k).copied().unwrap_or(0);
                if running + taken >= claim.max_concurrent(k) {
                    continue;
                }
            }
            if let Some(k) = &task.rate_limit_key
                && !claim.take_rate_token(k, now)
            {
                continue;
            }
            if let Some(k) = &task.concurrency_key {
                *taken_per_key.entry(k.clone()).or_default() += 1;
            }
            picked.push(key.4);
        }
        let mut out = Vec::with_capacity(picked.len());
        for id in picked {
            let token = LeaseToken::generate();
            if let Some((Ok(()), task)) = st.modify(id, |t| t.claim(&claim.agent, token, claim.lease_ms, now)) {
                out.push(task);
            }
        }
        Ok(out)
    }

    async fn expire_leases(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
        let mut st = self.lock();
        let due: Vec<TaskId> = st
            .leases
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, id)| *id)
            .collect();
        Ok(due
            .into_iter()
            .filter_map(|id| st.modify(id, |t| t.expire_lease(now)))
            .filter(|(c, _)| *c)
            .map(|(_, t)| t)
            .collect())
    }

    async fn promote_due(&self, now: Timestamp, limit: usize) -> Result<Vec<Task>, StoreError> {
        let mut st = self.lock();
        let due: Vec<TaskId> = st
            .scheduled
            .iter()
            .take_while(|(t, _)| *t <= now)
            .take(limit)
            .map(|(_, id)| *id)
            .collect();
        Ok(due
            .into_iter()
            .filter_map(|id| st.modify(id, |t| t.promote_if_due(now)))
            .filter(|(c, _)| *c)
            .map(|(_, t)| t)
            .collect())
    }

    async fn next_wakeup(&self) -> Result<Option<Timestamp>, StoreError> {
        let st = self.lock();
        let a = st.scheduled.first().map(|(t, _)| *t);
        let b = st.leases.first().map(|(t, _)| *t);
        Ok(a.into_iter().chain(b).min())
    }

    async fn redrive_failed(
        &self,
        ns: &Namespace,
        queue: &QueueName,
        limit: usize,
        now: Timestamp,
    ) -> Result<Vec<Task>, StoreError> {
        let mut st = self.lock();
        let ids: Vec<TaskId> = st
            .tasks
            .values()
            .filter(|t| &t.namespace == ns && &t.queue == queue && t.status == TaskStatus::Failed)
            .take(limit)
            .map(|t| t.id)
            .collect();
        Ok(ids
            .into_iter()
            .filter_map(|id| st.modify(id, |t| t.apply(TaskCommand::Redrive, now)))
            .filter(|(r, _)| r.is_ok())
            .map(|(_, t)| t)
            .collect())
    }

    async fn queue_stats(
        &self,
        ns: &Namespace,
        queue: Option<&QueueName>,
        now: Timestamp,
    ) -> Result<Vec<QueueStats>, StoreError> {
        let st = self.lock();
        let mut out = Vec::new();
        for ((n, q), counts) in &st.counts {
            if n != ns || queue.is_some_and(|want| want != q) {
                continue;
            }
            let start: ReadyKey = (
                n.clone(),
                q.clone(),
                Reverse(i32::MAX),
                Timestamp::from_millis(i64::MIN),
                TaskId::from_parts(0, 0),
            );
            let oldest = st
                .ready
                .range(start..)
                .take_while(|k| &k.0 == n && &k.1 == q)
                .map(|k| k.3)
                .min();
            out.push(QueueStats {
                queue: q.clone(),
                counts: *counts,
                depth: counts.depth(),
                oldest_ready_at: oldest,
                oldest_ready_age_ms: oldest.map(|o| now.millis_since(o)),
            });
        }
        Ok(out)
    }
}

fn agent_not_found(name: &AgentName) -> StoreError {
    StoreError::NotFound {
        what: format!("agent {name}"),
    }
}

impl State {
    fn running_of(&self, ns: &Namespace, name: &AgentName) -> Option<&BTreeSet<TaskId>> {
        self.running_by_agent.get(&(ns.clone(), name.clone()))
    }

    fn agent_view(&self, ns: &Namespace, name: &AgentName) -> Result<Agent, StoreError> {
        let mut agent = self
            .agents
            .get(&(ns.clone(), name.clone()))
            .cloned()
            .ok_or_else(|| agent_not_found(name))?;
        agent.running = self.running_of(ns, name).map_or(0, |ids| ids.len() as u64);
        Ok(agent)
    }

    fn release_all(&mut self, ns: &Namespace, name: &AgentName, now: Timestamp, reason: &str) -> Vec<Task> {
        let ids: Vec<TaskId> = self.running_of(ns, name).into_iter().flatten().copied().collect();
        ids.into_iter()
            .filter_map(|id| self.modify(id, |t| t.release_lease(now, reason)))
            .filter(|(released, _)| *released)
            .map(|(_, t)| t)
            .collect()
    }

    fn latest_seq(&self, ns: &Namespace) -> u64 {
        self.last_seq.get(ns).copied().unwrap_or(0)
    }

    /// A new agent, unless its namespace is at `options.max_agents`.
    fn new_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        reg: AgentRegistration,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        if let Some(limit) = options.max_agents {
            // Only a new agent pays for the count, and it stops at the limit.
            let count = self
                .agents
                .range((ns.clone(), name.clone())..)
                .take_while(|((n, _), _)| n == ns)
                .chain(
                    self.agents
                        .range(..(ns.clone(), name.clone()))
                        .rev()
                        .take_while(|((n, _), _)| n == ns),
                )
                .take(usize::try_from(limit).unwrap_or(usize::MAX))
                .count() as u64;
            if count >= limit {
                return Err(StoreError::TooManyAgents {
                    namespace: ns.clone(),
                    agent: name.clone(),
                    limit,
                });
            }
        }
        let start = self.latest_seq(ns);
        Ok(Agent {
            name: name.clone(),
            namespace: ns.clone(),
            capabilities: reg.capabilities,
            slots: reg.slots,
            metadata: reg.metadata,
            status: AgentStatus::Active,
            last_heartbeat: now,
            registered_at: now,
            running: 0,
            inbox_start: start,
            inbox_cursor: start,
            implicit: false,
        })
    }

    /// Removes the agent and its subscriptions and releases its leases (false if it is unknown).
    fn remove_agent(&mut self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Option<Vec<Task>> {
        self.agents.remove(&(ns.clone(), name.clone()))?;
        self.subscriptions.retain(|(n, a, _), _| !(n == ns && a == name));
        self.record(Change::AgentRemoved { namespace: ns, name });
        let holding = self.running_of(ns, name).map_or(0, BTreeSet::len);
        self.log(event::agent_removed(ns, name, holding, now));
        Some(self.release_all(ns, name, now, &format!("agent {name} was removed")))
    }

    fn deliverable(&self, ns: &Namespace, agent: &Agent, m: &Message) -> bool {
        match &m.to {
            Recipient::Agent { agent: to } => to == &agent.name,
            Recipient::Topic { topic } => self
                .subscriptions
                .get(&(ns.clone(), agent.name.clone(), topic.clone()))
                .is_some_and(|start| m.seq > *start),
            Recipient::Broadcast { .. } => m.seq > agent.inbox_start,
        }
    }
}

#[async_trait]
impl AgentStore for MemoryStore {
    async fn register_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        registration: AgentRegistration,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        let mut st = self.lock();
        let key = (ns.clone(), name.clone());
        let agent = match st.agents.get(&key).cloned() {
            Some(mut a) => {
                a.capabilities = registration.capabilities;
                a.slots = registration.slots;
                a.metadata = registration.metadata;
                a.status = AgentStatus::Active;
                a.last_heartbeat = now;
                a.implicit = false;
                a
            }
            None => st.new_agent(ns, name, registration, options, now)?,
        };
        st.agents.insert(key, agent);
        st.record_agent(ns, name);
        let view = st.agent_view(ns, name)?;
        st.log(event::agent_event(EventType::AgentRegistered, &view, now));
        Ok(view)
    }

    async fn touch_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        capabilities: Option<Vec<Capability>>,
        options: AgentOptions,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        let mut st = self.lock();
        let key = (ns.clone(), name.clone());
        let (agent, kind) = match st.agents.get(&key).cloned() {
            Some(mut a) => {
                let back = a.status == AgentStatus::Gone;
                if back {
                    a.status = AgentStatus::Active;
                }
                a.last_heartbeat = now;
                (a, back.then_some(EventType::AgentBack))
            }
            None => {
                let reg = AgentRegistration {
                    capabilities: capabilities.unwrap_or_default(),
                    slots: DEFAULT_SLOTS,
                    metadata: serde_json::Value::Null,
                };
                let mut a = st.new_agent(ns, name, reg, options, now)?;
                a.implicit = true;
                (a, Some(EventType::AgentRegistered))
            }
        };
        st.agents.insert(key, agent);
        st.record_agent(ns, name);
        let view = st.agent_view(ns, name)?;
        if let Some(kind) = kind {
            st.log(event::agent_event(kind, &view, now));
        }
        Ok(view)
    }

    async fn heartbeat_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError> {
        let mut st = self.lock();
        let a = st
            .agents
            .get_mut(&(ns.clone(), name.clone()))
            .ok_or_else(|| agent_not_found(name))?;
        let back = a.status == AgentStatus::Gone;
        if back {
            a.status = AgentStatus::Active;
        }
        a.last_heartbeat = now;
        st.record_agent(ns, name);
        let view = st.agent_view(ns, name)?;
        if back {
            st.log(event::agent_event(EventType::AgentBack, &view, now));
        }
        Ok(view)
    }

    async fn get_agent(&self, ns: &Namespace, name: &AgentName) -> Result<Agent, StoreError> {
        self.lock().agent_view(ns, name)
    }

    async fn list_agents(&self, ns: &Namespace) -> Result<Vec<Agent>, StoreError> {
        let st = self.lock();
        let names: Vec<AgentName> = st
            .agents
            .keys()
            .filter(|(n, _)| n == ns)
            .map(|(_, a)| a.clone())
            .collect();
        names.iter().map(|name| st.agent_view(ns, name)).collect()
    }

    async fn drain_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError> {
        let mut st = self.lock();
        let a = st
            .agents
            .get_mut(&(ns.clone(), name.clone()))
            .ok_or_else(|| agent_not_found(name))?;
        let draining = a.status != AgentStatus::Draining;
        a.status = AgentStatus::Draining;
        a.last_heartbeat = a.last_heartbeat.max(now);
        st.record_agent(ns, name);
        let view = st.agent_view(ns, name)?;
        if draining {
            st.log(event::agent_event(EventType::AgentDraining, &view, now));
        }
        Ok(view)
    }

    async fn delete_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Vec<Task>, StoreError> {
        self.lock()
            .remove_agent(ns, name, now)
            .ok_or_else(|| agent_not_found(name))
    }

    async fn expire_agents(&self, now: Timestamp, timeout_ms: u64) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
        let mut st = self.lock();
        let silent: Vec<(Namespace, AgentName)> = st
            .agents
            .iter()
            .filter(|(_, a)| a.status != AgentStatus::Gone && a.last_heartbeat.add_millis(timeout_ms) <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for (ns, name) in silent {
            if let Some(a) = st.agents.get_mut(&(ns.clone(), name.clone())) {
                a.status = AgentStatus::Gone;
            }
            st.record_agent(&ns, &name);
            let gone = st.agent_view(&ns, &name)?;
            st.log(event::agent_event(EventType::AgentGone, &gone, now));
            let reason = format!("agent {name} stopped heartbeating");
            let released = st.release_all(&ns, &name, now, &reason);
            out.push((st.agent_view(&ns, &name)?, released));
        }
        Ok(out)
    }

    async fn forget_agents(
        &self,
        now: Timestamp,
        silent_since: Timestamp,
        limit: usize,
    ) -> Result<Vec<(Agent, Vec<Task>)>, StoreError> {
        let mut st = self.lock();
        let mut forgotten: Vec<Agent> = st
            .agents
            .values()
            .filter(|a| a.implicit && a.status == AgentStatus::Gone && a.last_heartbeat <= silent_since)
            .cloned()
            .collect();
        forgotten
            .sort_by(|a, b| (a.last_heartbeat, &a.namespace, &a.name).cmp(&(b.last_heartbeat, &b.namespace, &b.name)));
        forgotten.truncate(limit);
        let mut out = Vec::with_capacity(forgotten.len());
        for agent in forgotten {
            let agent = st.agent_view(&agent.namespace, &agent.name)?;
            let released = st.remove_agent(&agent.namespace, &agent.name, now).unwrap_or_default();
            out.push((agent, released));
        }
        Ok(out)
    }
}

#[async_trait]
impl MessageStore for MemoryStore {
    async fn send_message(
        &self,
        ns: &Namespace,
        message: NewMessage,
        options: SendOptions,
        now: Timestamp,
    ) -> Result<Sent, StoreError> {
        let mut st = self.lock();
        if let Some(key) = &message.idempotency_key
            && let Some(seq) = st.message_keys.get(&(ns.clone(), key.clone()))
        {
            let original = st.messages.get(&(ns.clone(), *seq)).cloned();
            return original
                .map(|message| Sent {
                    message,
                    created: false,
                })
                .ok_or_else(|| StoreError::Other(format!("message {seq} of idempotency key {key:?} is missing")));
        }
        if let Recipient::Agent { agent } = &message.to {
            let to = st
                .agents
                .get(&(ns.clone(), agent.clone()))
                .cloned()
                .ok_or_else(|| agent_not_found(agent))?;
            if let Some(limit) = options.max_inbox_depth {
                let depth = st
                    .messages
                    .range((ns.clone(), to.inbox_cursor + 1)..=(ns.clone(), u64::MAX))
                    .filter(|(_, m)| !m.is_expired(now) && st.deliverable(ns, &to, m))
                    .count() as u64;
                if depth >= limit {
                    return Err(StoreError::InboxFull {
                        agent: agent.clone(),
                        depth,
                        limit,
                    });
                }
            }
        }
        let seq = st.latest_seq(ns) + 1;
        st.last_seq.insert(ns.clone(), seq);
        let stored = message.into_message(ns.clone(), seq, now);
        if let Some(key) = &stored.idempotency_key {
            st.message_keys.insert((ns.clone(), key.clone()), seq);
        }
        st.record(Change::Message(&stored));
        st.log(event::message_sent(&stored, now));
        st.messages.insert((ns.clone(), seq), stored.clone());
        Ok(Sent {
            message: stored,
            created: true,
        })
    }

    async fn read_inbox(
        &self,
        ns: &Namespace,
        agent: &AgentName,
        after: Option<u64>,
        limit: usize,
        now: Timestamp,
    ) -> Result<InboxPage, StoreError> {
        let st = self.lock();
        let a = st.agent_view(ns, agent)?;
        let after = after.unwrap_or(a.inbox_cursor);
        let messages: Vec<Message> = st
            .messages
            .range((ns.clone(), after.saturating_add(1))..=(ns.clone(), u64::MAX))
            .map(|(_, m)| m)
            .filter(|m| !m.is_expired(now) && st.deliverable(ns, &a, m))
            .take(limit)
            .cloned()
            .collect();
        let cursor = messages.last().map_or(after, |m| m.seq);
        Ok(InboxPage { messages, cursor })
    }

    async fn ack_inbox(&self, ns: &Namespace, agent: &AgentName, cursor: u64) -> Result<Agent, StoreError> {
        let mut st = self.lock();
        let latest = st.latest_seq(ns);
        if cursor > latest {
            return Err(StoreError::Invalid {
                message: format!("cursor {cursor} is past the latest message ({latest})"),
            });
        }
        let a = st
            .agents
            .get_mut(&(ns.clone(), agent.clone()))
            .ok_or_else(|| agent_not_found(agent))?;
        a.inbox_cursor = a.inbox_cursor.max(cursor);
        st.record_agent(ns, agent);
        st.agent_view(ns, agent)
    }

    async fn subscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
        let mut st = self.lock();
        st.agent_view(ns, agent)?;
        let start = st.latest_seq(ns);
        let key = (ns.clone(), agent.clone(), topic.clone());
        if st.subscriptions.contains_key(&key) {
            return Ok(false);
        }
        st.record(Change::Subscribed {
            namespace: ns,
            agent,
            topic,
            after: start,
        });
        st.subscriptions.insert(key, start);
        Ok(true)
    }

    async fn unsubscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
        let mut st = self.lock();
        st.agent_view(ns, agent)?;
        let removed = st
            .subscriptions
            .remove(&(ns.clone(), agent.clone(), topic.clone()))
            .is_some();
        if removed {
            st.record(Change::Unsubscribed {
                namespace: ns,
                agent,
                topic,
            });
        }
        Ok(removed)
    }

    async fn subscriptions(&self, ns: &Namespace, agent: &AgentName) -> Result<Vec<TopicName>, StoreError> {
        let st = self.lock();
        st.agent_view(ns, agent)?;
        Ok(st
            .subscriptions
            .keys()
            .filter(|(n, a, _)| n == ns && a == agent)
            .map(|(_, _, t)| t.clone())
            .collect())
    }

    async fn message_count(&self, ns: &Namespace) -> Result<u64, StoreError> {
        let st = self.lock();
        Ok(st.messages.keys().filter(|(n, _)| n == ns).count() as u64)
    }

    async fn inbox_depth(&self, ns: &Namespace, agent: &AgentName, now: Timestamp) -> Result<u64, StoreError> {
        let st = self.lock();
        let a = st.agent_view(ns, agent)?;
        Ok(st
            .messages
            .range((ns.clone(), a.inbox_cursor.saturating_add(1))..=(ns.clone(), u64::MAX))
            .filter(|(_, m)| !m.is_expired(now) && st.deliverable(ns, &a, m))
            .count() as u64)
    }
}
