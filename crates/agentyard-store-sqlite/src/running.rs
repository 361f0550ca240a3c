//! The running tasks as the writer last wrote them, so that a completion, a heartbeat or a failure
//! report (each about a task claimed moments before) neither reads nor parses its row again.
//!
//! Only the writer touches it, under the connection it holds, and every write of a task goes
//! through it ([`crate::writer::WriteCtx::update`]), so an entry is always the task as the last
//! write left it. A write that does not commit (its command or its group rolled back) forgets
//! the tasks it wrote: the next read goes to the database.

use std::collections::HashMap;

use agentyard_core::event::LastChange;
use agentyard_core::{Namespace, Task, TaskId, TaskStatus};

/// Most tasks kept; beyond it, newly claimed tasks are simply read from their rows again.
pub(crate) const CAPACITY: usize = 100_000;

#[derive(Debug, Default)]
pub(crate) struct RunningTasks {
    // Task ids are ULIDs generated here, unique across namespaces; the namespace is checked on
    // the way out all the same.
    tasks: HashMap<TaskId, Task>,
}

impl RunningTasks {
    /// Takes the task out, if kept and of that namespace.
    pub(crate) fn take(&mut self, ns: &Namespace, id: TaskId) -> Option<Task> {
        let task = self.tasks.remove(&id)?;
        if task.namespace == *ns {
            Some(task)
        } else {
            self.tasks.insert(id, task);
            None
        }
    }

    /// Keeps `task` if it is running (and there is room), else forgets it. It is kept without its
    /// last change, which was logged when it was written: the next command that takes it out
    /// starts from no change, as if it had read the row, so nothing is ever logged twice.
    pub(crate) fn keep(&mut self, mut task: Task) {
        if task.status == TaskStatus::Running && (self.tasks.len() < CAPACITY || self.tasks.contains_key(&task.id)) {
            task.meta.change = LastChange::default();
            self.tasks.insert(task.id, task);
        } else {
            self.tasks.remove(&task.id);
        }
    }

    pub(crate) fn forget(&mut self, id: TaskId) {
        self.tasks.remove(&id);
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.tasks.len()
    }
}

#[cfg(test)]
mod tests {
    use agentyard_core::{AgentName, LeaseToken, NewTask, QueueName, Timestamp};

    use super::*;

    fn running(ns: &Namespace) -> Task {
        let mut task = NewTask::on(QueueName::parse("q").expect("valid"), serde_json::json!({})).into_task(
            TaskId::generate(),
            ns.clone(),
            Timestamp::from_millis(0),
        );
        let agent = AgentName::parse("w").expect("valid");
        task.claim(&agent, LeaseToken::generate(), 1_000, Timestamp::from_millis(0))
            .expect("claim");
        task
    }

    #[test]
    fn keeps_running_tasks_only_and_per_namespace() {
        let ns = Namespace::default_namespace();
        let other = Namespace::parse("other").expect("valid");
        let mut kept = RunningTasks::default();
        let task = running(&ns);
        let id = task.id;
        kept.keep(task.clone());
        assert_eq!(kept.take(&other, id), None, "another namespace's id is not found");
        assert_eq!(kept.take(&ns, id), Some(task.clone()));
        assert_eq!(kept.take(&ns, id), None, "taken out");
        let mut done = task;
        done.status = TaskStatus::Succeeded;
        kept.keep(done);
        assert_eq!(kept.len(), 0, "a finished task is not kept");
    }
}
