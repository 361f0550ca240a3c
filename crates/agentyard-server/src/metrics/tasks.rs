//! What happened to tasks, per namespace and queue: counters of creates, claims, completions,
//! failures (and whether a retry or the dead-letter view followed), expired and revoked leases,
//! and two histograms, pick-up latency (ready → claimed) and run time (claimed → finished).
//!
//! Each is counted where the change is made: the handlers and the timer and agent loops call
//! one method per kind of change with the tasks the store returned. Labels stay bounded:
//! namespace and queue (and the outcome of a run), never a task id or an agent name.

use agentyard_core::event::TaskChange;
use agentyard_core::{Task, TaskStatus, Timestamp};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{
    TASK_PICKUP_LATENCY_SECONDS, TASK_RUN_DURATION_SECONDS, TASKS_CLAIMED_TOTAL, TASKS_COMPLETED_TOTAL,
    TASKS_CREATED_TOTAL, TASKS_DEAD_LETTERED_TOTAL, TASKS_FAILED_TOTAL, TASKS_LEASE_EXPIRED_TOTAL,
    TASKS_LEASE_REVOKED_TOTAL, TASKS_RETRIED_TOTAL, counter_base,
};

/// Upper bounds of the pick-up latency buckets, in seconds: from a claimer parked on the queue
/// (milliseconds) to a backlog of hours.
const PICKUP_BUCKETS: [f64; 16] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];
/// Upper bounds of the run time buckets, in seconds: agents' tasks run from milliseconds (a
/// lookup) to an hour (a long model call chain).
const RUN_BUCKETS: [f64; 15] = [
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 900.0, 3600.0,
];

/// The labels of the task metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub namespace: String,
    pub queue: String,
}

impl QueueLabels {
    fn of(task: &Task) -> Self {
        Self {
            namespace: task.namespace.to_string(),
            queue: task.queue.to_string(),
        }
    }
}

/// The labels of a run: its queue and how it ended (`succeeded` or `failed`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RunLabels {
    pub namespace: String,
    pub queue: String,
    pub outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn pickup_histogram() -> Histogram {
    Histogram::new(PICKUP_BUCKETS)
}

fn run_histogram() -> Histogram {
    Histogram::new(RUN_BUCKETS)
}

/// See the module docs. Cheap to clone: the families are shared.
#[derive(Debug, Clone)]
pub struct TaskMetrics {
    created: Family<QueueLabels, Counter>,
    claimed: Family<QueueLabels, Counter>,
    completed: Family<QueueLabels, Counter>,
    failed: Family<QueueLabels, Counter>,
    retried: Family<QueueLabels, Counter>,
    dead_lettered: Family<QueueLabels, Counter>,
    lease_expired: Family<QueueLabels, Counter>,
    lease_revoked: Family<QueueLabels, Counter>,
    pickup: Histograms<QueueLabels>,
    run: Histograms<RunLabels>,
}

impl Default for TaskMetrics {
    fn default() -> Self {
        Self {
            created: Family::default(),
            claimed: Family::default(),
            completed: Family::default(),
            failed: Family::default(),
            retried: Family::default(),
            dead_lettered: Family::default(),
            lease_expired: Family::default(),
            lease_revoked: Family::default(),
            pickup: Family::new_with_constructor(pickup_histogram),
            run: Family::new_with_constructor(run_histogram),
        }
    }
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

impl TaskMetrics {
    /// Tasks a create stored (not the originals an idempotency key brought back).
    pub fn created(&self, task: &Task) {
        self.created.get_or_create(&QueueLabels::of(task)).inc();
    }

    /// Tasks a claim handed to its agent, with the time each waited since it became ready. From
    /// the lease and `run_at` rather than the task's change: PostgreSQL's claim returns rows,
    /// which carry none.
    pub fn claimed(&self, tasks: &[Task]) {
        for task in tasks {
            let labels = QueueLabels::of(task);
            self.claimed.get_or_create(&labels).inc();
            if let Some(lease) = &task.lease {
                let waited = lease.acquired_at.millis_since(task.run_at);
                self.pickup.get_or_create(&labels).observe(seconds(waited));
            }
        }
    }

    /// A task a handler changed at `now`: counts a completion or a failed attempt (and what
    /// followed it). A task not changed at `now` was not changed by this call (a completion
    /// repeated under the same lease answers the task as it was) and is not counted again.
    pub fn changed(&self, task: &Task, now: Timestamp) {
        if task.updated_at != now {
            return;
        }
        match task.meta.change.get() {
            Some(TaskChange::Completed { run_ms, .. }) => {
                let labels = QueueLabels::of(task);
                self.completed.get_or_create(&labels).inc();
                self.observe_run(task, "succeeded", *run_ms);
            }
            Some(TaskChange::Failed { run_ms, .. }) => {
                self.failed.get_or_create(&QueueLabels::of(task)).inc();
                self.observe_run(task, "failed", *run_ms);
                self.attempt_ended(task);
            }
            _ => {}
        }
    }

    /// Tasks whose lease ran out (the timer loop): each attempt ended, retried or dead-lettered.
    pub fn lease_expired(&self, tasks: &[Task]) {
        for task in tasks {
            self.lease_expired.get_or_create(&QueueLabels::of(task)).inc();
            self.attempt_ended(task);
        }
    }

    /// Tasks whose lease was taken back because their agent went away (gone, or removed).
    pub fn lease_revoked(&self, tasks: &[Task]) {
        for task in tasks {
            self.lease_revoked.get_or_create(&QueueLabels::of(task)).inc();
            if task.status == TaskStatus::Failed {
                self.dead_lettered.get_or_create(&QueueLabels::of(task)).inc();
            }
        }
    }

    /// After a failed attempt: a retry (queued or scheduled again) or the dead-letter view.
    fn attempt_ended(&self, task: &Task) {
        let labels = QueueLabels::of(task);
        match task.status {
            TaskStatus::Failed => self.dead_lettered.get_or_create(&labels).inc(),
            TaskStatus::Queued | TaskStatus::Scheduled => self.retried.get_or_create(&labels).inc(),
            _ => 0,
        };
    }

    fn observe_run(&self, task: &Task, outcome: &'static str, run_ms: u64) {
        let labels = RunLabels {
            namespace: task.namespace.to_string(),
            queue: task.queue.to_string(),
            outcome,
        };
        self.run.get_or_create(&labels).observe(seconds(run_ms));
    }

    /// Adds every task metric to a scrape's registry.
    pub fn register(&self, registry: &mut Registry) {
        let counters = [
            (
                TASKS_CREATED_TOTAL,
                "Tasks created (not the originals an idempotency key returned)",
                &self.created,
            ),
            (TASKS_CLAIMED_TOTAL, "Tasks handed to agents by claims", &self.claimed),
            (TASKS_COMPLETED_TOTAL, "Tasks completed successfully", &self.completed),
            (
                TASKS_FAILED_TOTAL,
                "Failed attempts reported by agents, whatever followed",
                &self.failed,
            ),
            (
                TASKS_RETRIED_TOTAL,
                "Attempts that failed or whose lease expired, after which the task waits for another try",
                &self.retried,
            ),
            (
                TASKS_DEAD_LETTERED_TOTAL,
                "Tasks that ended failed (the dead-letter view): no attempt left or not retryable",
                &self.dead_lettered,
            ),
            (
                TASKS_LEASE_EXPIRED_TOTAL,
                "Leases that ran out before their task finished",
                &self.lease_expired,
            ),
            (
                TASKS_LEASE_REVOKED_TOTAL,
                "Leases taken back because their agent went gone or was removed",
                &self.lease_revoked,
            ),
        ];
        for (name, help, family) in counters {
            registry.register(counter_base(name), help, family.clone());
        }
        registry.register(
            TASK_PICKUP_LATENCY_SECONDS,
            "Time from a task becoming ready (its run_at) to its claim",
            self.pickup.clone(),
        );
        registry.register(
            TASK_RUN_DURATION_SECONDS,
            "Time from a claim to the completion or the failure report of that attempt",
            self.run.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use agentyard_core::{AgentName, Completion, LeaseToken, Namespace, NewTask, QueueName, TaskCommand, TaskId};
    use prometheus_client::encoding::text::encode;

    use super::*;

    /// A task ready at `now`, claimed 1.5 s later.
    fn running(now: Timestamp) -> Task {
        let new = NewTask::on(QueueName::parse("work").expect("valid"), serde_json::json!({}));
        let mut task = new.into_task(TaskId::generate(), Namespace::default(), now);
        let agent = AgentName::parse("w").expect("valid");
        let later = Timestamp::from_millis(now.as_millis() + 1_500);
        task.claim(&agent, LeaseToken::generate(), 30_000, later)
            .expect("claimed");
        task
    }

    fn text(m: &TaskMetrics) -> String {
        let mut registry = Registry::default();
        m.register(&mut registry);
        let mut out = String::new();
        encode(&mut out, &registry).expect("encoded");
        out
    }

    #[test]
    fn a_repeated_completion_counts_once() {
        let m = TaskMetrics::default();
        let t0 = Timestamp::from_millis(1_000_000);
        let mut task = running(t0);
        m.claimed(std::slice::from_ref(&task));
        let token: LeaseToken = task.lease.clone().expect("a lease").token;
        let done = Timestamp::from_millis(t0.as_millis() + 4_000);
        let complete = TaskCommand::Complete {
            token,
            completion: Completion::default(),
        };
        task.apply(complete.clone(), done).expect("completes");
        m.changed(&task, done);
        // The same completion later: the store answers the task as it was.
        let later = Timestamp::from_millis(done.as_millis() + 10);
        task.apply(complete, later).expect("harmless");
        m.changed(&task, later);
        let text = text(&m);
        assert!(
            text.contains("agentyard_tasks_completed_total{namespace=\"default\",queue=\"work\"} 1"),
            "{text}"
        );
        assert!(text.contains("agentyard_tasks_claimed_total{namespace=\"default\",queue=\"work\"} 1"));
        // Ready at t0, claimed 1.5 s later; ran 2.5 s.
        assert!(text.contains("agentyard_task_pickup_latency_seconds_sum{namespace=\"default\",queue=\"work\"} 1.5"));
        assert!(text.contains(
            "agentyard_task_run_duration_seconds_sum{namespace=\"default\",queue=\"work\",outcome=\"succeeded\"} 2.5"
        ));
    }
}
