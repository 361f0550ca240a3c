//! The in-memory backend: everything in one mutex-guarded map with the same indexes a database
//! would keep. For tests and ephemeral runs (`memory://`); nothing survives a restart.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use agentyard_core::agent::{Agent, AgentRegistration, AgentStatus, DEFAULT_SLOTS};
use agentyard_core::api::{QueueStats, StatusCounts};
use agentyard_core::message::{Message, NewMessage, Recipient, TopicName};
use agentyard_core::{
    AgentName, Capability, LeaseToken, Namespace, NewTask, QueueName, Task, TaskCommand, TaskId, TaskStatus, Timestamp,
};
use async_trait::async_trait;

use crate::agents::{AgentStore, InboxPage, MessageStore, SendOptions, Sent};
use crate::{Claim, CreateOptions, Created, Page, Store, StoreError, TaskFilter};

type ReadyKey = (Namespace, QueueName, Reverse<i32>, Timestamp, TaskId);

#[derive(Default)]
struct State {
    tasks: BTreeMap<TaskId, Task>,
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
}

impl State {
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
        let r = f(&mut task);
        self.index(&task);
        let stored = task.clone();
        self.tasks.insert(id, task);
        Some((r, stored))
    }

    fn get(&self, ns: &Namespace, id: TaskId) -> Result<&Task, StoreError> {
        self.tasks
            .get(&id)
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

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the maps half-updated in a way that
        // matters more than losing the process, so recover the guard rather than cascade.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
                    st.tasks.insert(task.id, task.clone());
                    out.push(Created { task, created: true });
                }
                Err(id) => {
                    let task = st
                        .tasks
                        .get(&id)
                        .cloned()
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
            .map(|(_, t)| t)
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

    fn new_agent(&self, ns: &Namespace, name: &AgentName, reg: AgentRegistration, now: Timestamp) -> Agent {
        let start = self.latest_seq(ns);
        Agent {
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
        }
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
                a
            }
            None => st.new_agent(ns, name, registration, now),
        };
        st.agents.insert(key, agent);
        st.agent_view(ns, name)
    }

    async fn touch_agent(
        &self,
        ns: &Namespace,
        name: &AgentName,
        capabilities: Option<Vec<Capability>>,
        now: Timestamp,
    ) -> Result<Agent, StoreError> {
        let mut st = self.lock();
        let key = (ns.clone(), name.clone());
        let agent = match st.agents.get(&key).cloned() {
            Some(mut a) => {
                if a.status == AgentStatus::Gone {
                    a.status = AgentStatus::Active;
                }
                a.last_heartbeat = now;
                a
            }
            None => {
                let reg = AgentRegistration {
                    capabilities: capabilities.unwrap_or_default(),
                    slots: DEFAULT_SLOTS,
                    metadata: serde_json::Value::Null,
                };
                st.new_agent(ns, name, reg, now)
            }
        };
        st.agents.insert(key, agent);
        st.agent_view(ns, name)
    }

    async fn heartbeat_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Agent, StoreError> {
        let mut st = self.lock();
        let a = st
            .agents
            .get_mut(&(ns.clone(), name.clone()))
            .ok_or_else(|| agent_not_found(name))?;
        if a.status == AgentStatus::Gone {
            a.status = AgentStatus::Active;
        }
        a.last_heartbeat = now;
        st.agent_view(ns, name)
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
        a.status = AgentStatus::Draining;
        a.last_heartbeat = a.last_heartbeat.max(now);
        st.agent_view(ns, name)
    }

    async fn delete_agent(&self, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<Vec<Task>, StoreError> {
        let mut st = self.lock();
        if st.agents.remove(&(ns.clone(), name.clone())).is_none() {
            return Err(agent_not_found(name));
        }
        st.subscriptions.retain(|(n, a, _), _| !(n == ns && a == name));
        Ok(st.release_all(ns, name, now, &format!("agent {name} was removed")))
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
            let reason = format!("agent {name} stopped heartbeating");
            let released = st.release_all(&ns, &name, now, &reason);
            out.push((st.agent_view(&ns, &name)?, released));
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
        st.subscriptions.insert(key, start);
        Ok(true)
    }

    async fn unsubscribe(&self, ns: &Namespace, agent: &AgentName, topic: &TopicName) -> Result<bool, StoreError> {
        let mut st = self.lock();
        st.agent_view(ns, agent)?;
        Ok(st
            .subscriptions
            .remove(&(ns.clone(), agent.clone(), topic.clone()))
            .is_some())
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
