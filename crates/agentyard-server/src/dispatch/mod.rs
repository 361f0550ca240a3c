//! Dispatch: waking long-polling claimers when tasks become ready ([`waiters`]), the timer loop
//! that promotes due tasks and expires leases ([`timers`]), keyed dispatch limits ([`limits`]),
//! agent liveness and its expiry loop ([`agents`]), inbox readers' wake-ups ([`inboxes`]) and the
//! event log's followers' ([`events`]).
//!
//! Every handler that changes tasks reports the result to [`Dispatch::tasks_changed`]; that is
//! the one place deciding who must be woken, so no code path can forget a wake-up.

pub mod agents;
pub mod events;
pub mod inboxes;
pub mod limits;
pub mod retention;
pub mod timers;
pub mod waiters;
pub mod webhooks;

use agentyard_core::{Namespace, QueueName, Task, TaskStatus, Timestamp};
use agentyard_store::RemoteChange;

pub use agents::{AgentExpiry, AgentTick, Presence};
pub use events::EventFeed;
pub use inboxes::Inboxes;
pub use limits::{ClaimGate, Limits};
pub use retention::Retention;
pub use timers::{Tick, TimerSignal, Timers};
pub use waiters::{ClaimHooks, Waiters};
pub use webhooks::{WebhookLoop, Webhooks};

/// The in-memory side of dispatch shared by handlers and loops.
#[derive(Default)]
pub struct Dispatch {
    pub waiters: Waiters,
    pub timer: TimerSignal,
    pub inboxes: Inboxes,
    pub events: EventFeed,
}

impl Dispatch {
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports a changed task: see [`Dispatch::tasks_changed`].
    pub fn task_changed(&self, task: &Task) {
        self.tasks_changed(std::slice::from_ref(task));
    }

    /// Reports tasks as they are after a committed change. Queued ones wake claimers parked on
    /// their queue; scheduled and leased ones may move the timer loop's next wake-up earlier.
    pub fn tasks_changed(&self, tasks: &[Task]) {
        self.events.poke();
        // Most changes touch one queue, so a short list beats a hash map here.
        let mut ready: Vec<(&Namespace, &QueueName, usize, bool)> = Vec::new();
        let mut earliest: Option<Timestamp> = None;
        for task in tasks {
            let due = match task.status {
                TaskStatus::Queued => {
                    let picky = !task.required_capabilities.is_empty();
                    match ready
                        .iter_mut()
                        .find(|(ns, q, ..)| *ns == &task.namespace && *q == &task.queue)
                    {
                        Some(entry) => {
                            entry.2 += 1;
                            entry.3 |= picky;
                        }
                        None => ready.push((&task.namespace, &task.queue, 1, picky)),
                    }
                    None
                }
                TaskStatus::Scheduled => Some(task.run_at),
                TaskStatus::Running => task.lease.as_ref().map(|l| l.expires_at),
                _ => None,
            };
            // A task that stopped running freed a slot of its concurrency key: a claimer of its
            // queue may now take one that was held back. (Queued tasks wake claimers anyway.)
            if task.concurrency_key.is_some() && !matches!(task.status, TaskStatus::Running | TaskStatus::Queued) {
                match ready
                    .iter_mut()
                    .find(|(ns, q, ..)| *ns == &task.namespace && *q == &task.queue)
                {
                    Some(entry) => entry.2 += 1,
                    None => ready.push((&task.namespace, &task.queue, 1, false)),
                }
            }
            if let Some(t) = due {
                earliest = Some(earliest.map_or(t, |e| e.min(t)));
            }
        }
        for (ns, queue, n, picky) in ready {
            // A task that needs capabilities may not suit the claimers woken first; waking all
            // of them lets the able one find it without waiting for its periodic re-check.
            let n = if picky { usize::MAX } else { n };
            self.waiters.wake(ns, queue, n);
        }
        if let Some(t) = earliest {
            self.timer.wake_by(t);
        }
    }

    /// Wakes who waits for a change made through another node (see [`RemoteChange`]).
    /// Limits changes are the caller's to reload.
    pub fn remote_changed(&self, change: &RemoteChange) {
        self.events.poke();
        match change {
            RemoteChange::TasksReady {
                namespace,
                queue,
                ready,
            } => self.waiters.wake(namespace, queue, *ready),
            RemoteChange::MessageSent { namespace, to } => self.inboxes.message_to(namespace, to),
            RemoteChange::LimitsChanged | RemoteChange::TokensChanged => {}
            RemoteChange::Resync => {
                self.waiters.wake_all();
                self.inboxes.wake_all();
            }
        }
    }

    /// Wakes every parked claimer for good (they answer with no tasks) so a graceful shutdown
    /// does not wait for long polls to time out.
    pub fn shut_down(&self) {
        self.waiters.close();
        self.inboxes.close();
        self.events.close();
    }
}
