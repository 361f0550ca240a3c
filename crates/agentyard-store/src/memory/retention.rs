//! `RetentionStore` on the memory store: history older than the cutoffs leaves the maps (and
//! their indexes), each removal recorded for the sink, so the log store's replay and its next
//! compaction forget it too.

use agentyard_core::Timestamp;
use agentyard_core::message::Message;
use agentyard_core::{Namespace, TaskId};
use async_trait::async_trait;

use super::{Change, MemoryStore, State};
use crate::StoreError;
use crate::retention::{PruneCutoffs, Pruned, RetentionStore};

impl State {
    /// Takes a task out of the store with its index entries and idempotency key.
    pub(super) fn remove_task(&mut self, id: TaskId) {
        if let Some(task) = self.tasks.remove(&id) {
            self.unindex(&task);
            if let Some(key) = &task.idempotency_key {
                self.idempotency.remove(&(task.namespace.clone(), key.clone()));
            }
            self.record(Change::TaskRemoved {
                namespace: &task.namespace,
                id,
            });
        }
    }

    /// Takes a message out of the store with its idempotency key.
    pub(super) fn remove_message(&mut self, ns: &Namespace, seq: u64) {
        if let Some(m) = self.messages.remove(&(ns.clone(), seq)) {
            if let Some(key) = &m.idempotency_key {
                self.message_keys.remove(&(ns.clone(), key.clone()));
            }
            self.record(Change::MessageRemoved { namespace: ns, seq });
        }
    }

    /// Drops the events up to `through` (the log's oldest).
    pub(super) fn remove_events_through(&mut self, through: u64) {
        let kept = self.events.split_off(&(through + 1));
        self.events = kept;
        self.record(Change::EventsPruned { through });
    }

    /// Has every agent the message is for acknowledged it?
    fn acknowledged(&self, m: &Message) -> bool {
        self.agents
            .iter()
            .filter(|((n, _), _)| n == &m.namespace)
            .all(|(_, a)| a.inbox_cursor >= m.seq || !self.deliverable(&m.namespace, a, m))
    }

    fn prune(&mut self, cutoffs: &PruneCutoffs, now: Timestamp, limit: usize) -> Pruned {
        let mut pruned = Pruned::default();
        if let Some(cutoff) = cutoffs.finished_tasks {
            let old: Vec<TaskId> = self
                .tasks
                .values()
                .filter(|t| t.status.is_terminal() && t.finished_at.is_some_and(|f| f <= cutoff))
                .take(limit)
                .map(|t| t.id)
                .collect();
            pruned.tasks = old.len() as u64;
            for id in old {
                self.remove_task(id);
            }
        }
        if let Some(cutoff) = cutoffs.events {
            let through = self
                .events
                .values()
                .take(limit)
                .take_while(|e| e.ts <= cutoff)
                .map(|e| e.seq)
                .enumerate()
                .last();
            if let Some((n, seq)) = through {
                pruned.events = n as u64 + 1;
                self.remove_events_through(seq);
            }
        }
        if let Some(cutoff) = cutoffs.messages {
            let old: Vec<(Namespace, u64)> = self
                .messages
                .values()
                .filter(|m| m.created_at <= cutoff && (m.is_expired(now) || self.acknowledged(m)))
                .take(limit)
                .map(|m| (m.namespace.clone(), m.seq))
                .collect();
            pruned.messages = old.len() as u64;
            for (ns, seq) in old {
                self.remove_message(&ns, seq);
            }
        }
        if let Some(cutoff) = cutoffs.idempotency_keys {
            let tasks: Vec<TaskId> = self
                .tasks
                .values()
                .filter(|t| {
                    t.idempotency_key.is_some()
                        && t.status != agentyard_core::TaskStatus::Running
                        && t.created_at <= cutoff
                })
                .take(limit)
                .map(|t| t.id)
                .collect();
            for id in tasks {
                if let Some(task) = self.tasks.get_mut(&id)
                    && let Some(key) = task.idempotency_key.take()
                {
                    let ns = task.namespace.clone();
                    self.idempotency.remove(&(ns, key));
                    pruned.idempotency_keys += 1;
                    if let Some(task) = self.tasks.get(&id) {
                        self.record(Change::Task { task, meta: &task.meta });
                    }
                }
            }
            let messages: Vec<(Namespace, u64)> = self
                .messages
                .values()
                .filter(|m| m.idempotency_key.is_some() && m.created_at <= cutoff)
                .take(limit)
                .map(|m| (m.namespace.clone(), m.seq))
                .collect();
            for key in messages {
                if let Some(m) = self.messages.get_mut(&key)
                    && let Some(k) = m.idempotency_key.take()
                {
                    self.message_keys.remove(&(key.0.clone(), k));
                    pruned.idempotency_keys += 1;
                    if let Some(m) = self.messages.get(&key) {
                        self.record(Change::Message(m));
                    }
                }
            }
        }
        pruned
    }
}

#[async_trait]
impl RetentionStore for MemoryStore {
    async fn prune(&self, cutoffs: &PruneCutoffs, now: Timestamp, limit: usize) -> Result<Pruned, StoreError> {
        Ok(self.lock().prune(cutoffs, now, limit))
    }
}
