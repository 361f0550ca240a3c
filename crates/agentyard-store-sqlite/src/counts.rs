//! Per-queue task counts by status, kept in memory so queue stats and depth checks cost O(1).
//!
//! The table is the truth: the counts are rebuilt from it with one `GROUP BY` at open. After
//! that only the writer changes them, and only with the deltas of commands that committed: each
//! command collects its own [`Deltas`], the group keeps those of the commands that succeeded
//! (a failed one's writes are undone, or its whole group is), and the group's deltas reach
//! [`Counts`] after its `COMMIT` succeeded.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use agentyard_core::api::StatusCounts;
use agentyard_core::{Namespace, QueueName, TaskStatus};
use agentyard_store::StoreError;
use rusqlite::Connection;

use crate::error::sql_error;

type QueueKey = (Namespace, QueueName);

fn slot(status: TaskStatus) -> usize {
    TaskStatus::ALL.iter().position(|s| *s == status).unwrap_or(0)
}

/// Changes to the counts not yet committed.
#[derive(Debug, Default)]
pub(crate) struct Deltas(BTreeMap<QueueKey, [i64; 6]>);

impl Deltas {
    /// A task of the queue moved from `from` (`None`: it was just created) to `to`.
    pub(crate) fn record(&mut self, ns: &Namespace, queue: &QueueName, from: Option<TaskStatus>, to: TaskStatus) {
        if from == Some(to) {
            return;
        }
        let entry = self.0.entry((ns.clone(), queue.clone())).or_default();
        if let Some(from) = from {
            entry[slot(from)] -= 1;
        }
        entry[slot(to)] += 1;
    }

    /// A task of the queue with status `from` was deleted.
    pub(crate) fn removed(&mut self, ns: &Namespace, queue: &QueueName, from: TaskStatus) {
        self.0.entry((ns.clone(), queue.clone())).or_default()[slot(from)] -= 1;
    }

    pub(crate) fn merge(&mut self, other: Deltas) {
        for (key, d) in other.0 {
            let entry = self.0.entry(key).or_default();
            for (a, b) in entry.iter_mut().zip(d) {
                *a += b;
            }
        }
    }

    fn get(&self, ns: &Namespace, queue: &QueueName) -> Option<&[i64; 6]> {
        self.0.get(&(ns.clone(), queue.clone()))
    }
}

fn add(counts: &mut StatusCounts, delta: &[i64; 6]) {
    for (status, d) in TaskStatus::ALL.into_iter().zip(delta) {
        let n = counts.slot(status);
        *n = n.saturating_add_signed(*d);
    }
}

/// The committed counts, shared by the writer (which changes them) and the readers.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counts(Arc<Mutex<BTreeMap<QueueKey, StatusCounts>>>);

impl Counts {
    /// Counts what the table holds.
    pub(crate) fn load(conn: &Connection) -> Result<Self, StoreError> {
        let mut map: BTreeMap<QueueKey, StatusCounts> = BTreeMap::new();
        let mut stmt = conn
            .prepare("SELECT namespace, queue, status, COUNT(*) FROM tasks GROUP BY namespace, queue, status")
            .map_err(sql_error)?;
        let mut rows = stmt.query([]).map_err(sql_error)?;
        while let Some(row) = rows.next().map_err(sql_error)? {
            let ns: String = row.get(0).map_err(sql_error)?;
            let queue: String = row.get(1).map_err(sql_error)?;
            let status: String = row.get(2).map_err(sql_error)?;
            let n: i64 = row.get(3).map_err(sql_error)?;
            let bad = |what: &str| StoreError::Other(format!("the tasks table holds an invalid {what}"));
            let ns = Namespace::parse(ns.as_str()).map_err(|e| bad(&format!("namespace {ns:?}: {e}")))?;
            let queue = QueueName::parse(queue.as_str()).map_err(|e| bad(&format!("queue {queue:?}: {e}")))?;
            let status = TaskStatus::parse(&status).ok_or_else(|| bad(&format!("status {status:?}")))?;
            *map.entry((ns, queue)).or_default().slot(status) += u64::try_from(n).unwrap_or(0);
        }
        Ok(Self(Arc::new(Mutex::new(map))))
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<QueueKey, StatusCounts>> {
        // Every update is a plain arithmetic loop that cannot panic half-way, so a poisoned
        // lock still guards consistent numbers.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Applies the deltas of a committed group.
    pub(crate) fn apply(&self, deltas: Deltas) {
        let mut map = self.lock();
        for (key, d) in deltas.0 {
            add(map.entry(key).or_default(), &d);
        }
    }

    /// Queued + scheduled tasks of a queue, counting `pending` changes not yet committed.
    pub(crate) fn depth(&self, ns: &Namespace, queue: &QueueName, pending: &[&Deltas]) -> u64 {
        let mut counts = self
            .lock()
            .get(&(ns.clone(), queue.clone()))
            .copied()
            .unwrap_or_default();
        for d in pending.iter().filter_map(|d| d.get(ns, queue)) {
            add(&mut counts, d);
        }
        counts.depth()
    }

    /// The counts of every queue of the namespace that ever held a task (or of one), by name.
    pub(crate) fn of_namespace(&self, ns: &Namespace, queue: Option<&QueueName>) -> Vec<(QueueName, StatusCounts)> {
        self.lock()
            .iter()
            .filter(|((n, q), _)| n == ns && queue.is_none_or(|want| want == q))
            .map(|((_, q), c)| (q.clone(), *c))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_follow_moves_and_only_applied_ones_count() {
        let ns = Namespace::default_namespace();
        let q = QueueName::parse("q").expect("valid");
        let counts = Counts::default();
        let mut group = Deltas::default();
        group.record(&ns, &q, None, TaskStatus::Queued);
        group.record(&ns, &q, None, TaskStatus::Scheduled);
        let mut cmd = Deltas::default();
        cmd.record(&ns, &q, Some(TaskStatus::Queued), TaskStatus::Running);
        cmd.record(&ns, &q, Some(TaskStatus::Running), TaskStatus::Running);
        assert_eq!(counts.depth(&ns, &q, &[&group, &cmd]), 1);
        group.merge(cmd);
        assert_eq!(counts.depth(&ns, &q, &[]), 0, "nothing committed yet");
        counts.apply(group);
        let all = counts.of_namespace(&ns, None);
        assert_eq!(all.len(), 1);
        let c = all[0].1;
        assert_eq!((c.queued, c.scheduled, c.running), (0, 1, 1));
        assert_eq!(counts.depth(&ns, &q, &[]), 1);
    }
}
