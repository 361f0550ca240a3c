//! Long-poll wake-ups: claimers that found nothing park on their queue's [`Notify`] and are woken
//! when a task of that queue becomes ready (created, promoted, re-queued after an expired lease,
//! a retry without delay or a redrive).
//!
//! The protocol is race-free without a lock around the store: a claimer registers as parked and
//! enables its wake-up *before* it asks the store, and a writer wakes *after* its commit. Either
//! the claimer's query sees the committed task, or the writer sees the parked claimer.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentyard_core::{Clock, Namespace, QueueName, Task};
use agentyard_store::{Claim, Store, StoreError};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::dispatch::limits::ClaimGate;

/// What a parked claim checks besides the store.
#[derive(Clone, Copy, Default)]
pub struct ClaimHooks<'a> {
    /// The claim's gate, which says when a refused rate-limit token comes.
    pub gate: Option<&'a ClaimGate>,
    /// Asked before each attempt after the first: false ends the wait with no tasks (its agent
    /// was drained meanwhile).
    pub eligible: Option<&'a (dyn Fn() -> bool + Send + Sync)>,
}

/// Claimers parked on one queue.
#[derive(Default)]
struct QueueWaiters {
    notify: Notify,
    parked: AtomicUsize,
}

/// Every parked claimer, by namespace and queue.
#[derive(Default)]
pub struct Waiters {
    queues: Mutex<HashMap<Namespace, HashMap<QueueName, Arc<QueueWaiters>>>>,
    /// Parked claimers over all queues: lets a writer skip the map when nobody waits.
    parked: AtomicUsize,
    closing: AtomicBool,
    closed: Notify,
}

/// Counts a claimer as parked for as long as it lives.
struct Parked<'a> {
    waiters: &'a Waiters,
    queue: Arc<QueueWaiters>,
}

impl Drop for Parked<'_> {
    fn drop(&mut self) {
        self.queue.parked.fetch_sub(1, Ordering::SeqCst);
        self.waiters.parked.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Waiters {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Namespace, HashMap<QueueName, Arc<QueueWaiters>>>> {
        // The map holds no invariant a panicking holder could break half-way.
        self.queues.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes up to `ready` claimers parked on the queue (all of them for `usize::MAX`).
    pub fn wake(&self, ns: &Namespace, queue: &QueueName, ready: usize) {
        if ready == 0 || self.parked.load(Ordering::SeqCst) == 0 {
            return;
        }
        let Some(q) = self.map().get(ns).and_then(|m| m.get(queue)).cloned() else {
            return;
        };
        let parked = q.parked.load(Ordering::SeqCst);
        if ready >= parked {
            q.notify.notify_waiters();
        } else {
            for _ in 0..ready {
                q.notify.notify_one();
            }
        }
    }

    /// Wakes every parked claimer to look again (tasks may have become ready unseen).
    pub fn wake_all(&self) {
        let queues: Vec<Arc<QueueWaiters>> = self.map().values().flat_map(|m| m.values().cloned()).collect();
        for q in queues {
            q.notify.notify_waiters();
        }
    }

    /// How many claimers are parked right now (all queues).
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::SeqCst)
    }

    fn park(&self, ns: &Namespace, queue: &QueueName) -> Parked<'_> {
        let q = {
            let mut map = self.map();
            let queues = match map.get_mut(ns) {
                Some(queues) => queues,
                None => map.entry(ns.clone()).or_default(),
            };
            match queues.get(queue) {
                Some(q) => q.clone(),
                None => queues.entry(queue.clone()).or_default().clone(),
            }
        };
        q.parked.fetch_add(1, Ordering::SeqCst);
        self.parked.fetch_add(1, Ordering::SeqCst);
        Parked {
            waiters: self,
            queue: q,
        }
    }

    /// Forgets queues nobody is parked on, so queue names that come and go do not pile up.
    pub fn prune(&self) {
        let mut map = self.map();
        for queues in map.values_mut() {
            queues.retain(|_, q| Arc::strong_count(q) > 1 || q.parked.load(Ordering::SeqCst) > 0);
        }
        map.retain(|_, queues| !queues.is_empty());
    }

    /// Wakes every parked claimer and makes later waits return at once.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.closed.notify_waiters();
    }

    /// Claims from the store; when nothing is ready, waits up to `wait` for a wake-up of the
    /// queue and tries again. Re-checks every `recheck` even unwoken, as a safety net for
    /// changes this process was not told about (another node, a capability mismatch).
    /// Returns no tasks when the wait ran out.
    pub async fn claim(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        ns: &Namespace,
        claim: &Claim,
        wait: Duration,
        recheck: Duration,
    ) -> Result<Vec<Task>, StoreError> {
        self.claim_with(store, clock, ns, claim, wait, recheck, ClaimHooks::default())
            .await
    }

    /// Like [`Waiters::claim`], with [`ClaimHooks`]: a parked claimer refused a rate-limit token
    /// also tries again the moment the next token comes, and stops waiting (with no tasks) once
    /// it is no longer eligible.
    #[allow(clippy::too_many_arguments)] // `claim`'s inputs plus the hooks; a struct would only rename them.
    pub async fn claim_with(
        &self,
        store: &dyn Store,
        clock: &dyn Clock,
        ns: &Namespace,
        claim: &Claim,
        wait: Duration,
        recheck: Duration,
        hooks: ClaimHooks<'_>,
    ) -> Result<Vec<Task>, StoreError> {
        let gate = hooks.gate;
        let tasks = store.claim_tasks(ns, claim, clock.now()).await?;
        if !tasks.is_empty() || wait.is_zero() {
            return Ok(tasks);
        }
        let deadline = Instant::now() + wait;
        let mut closed = pin!(self.closed.notified());
        if self.closing.load(Ordering::SeqCst) {
            return Ok(Vec::new());
        }
        let parked = self.park(ns, &claim.queue);
        let mut was_woken = false;
        loop {
            if hooks.eligible.is_some_and(|eligible| !eligible()) {
                if was_woken {
                    // The wake-up was meant for a claimer that can take the task: pass it on.
                    parked.queue.notify.notify_one();
                }
                return Ok(Vec::new());
            }
            let mut woken = pin!(parked.queue.notify.notified());
            woken.as_mut().enable();
            // Only what this attempt is refused counts.
            let _ = gate.and_then(ClaimGate::take_retry_at);
            let tasks = store.claim_tasks(ns, claim, clock.now()).await?;
            if !tasks.is_empty() {
                // Dropping `woken` passes on a wake-up it received but did not use.
                return Ok(tasks);
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(tasks);
            }
            let mut until = deadline.min(now + recheck);
            if let Some(at) = gate.and_then(ClaimGate::take_retry_at) {
                let in_ms = at.millis_since(clock.now());
                until = until.min(now + Duration::from_millis(in_ms));
            }
            was_woken = tokio::select! {
                () = woken => true,
                () = tokio::time::sleep_until(until) => false,
                () = &mut closed => return Ok(Vec::new()),
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use agentyard_core::{AgentName, NewTask, SystemClock};
    use agentyard_store::{CreateOptions, MemoryStore};

    use super::*;

    fn names() -> (Namespace, QueueName, Claim) {
        let queue = QueueName::parse("q").unwrap();
        let claim = Claim {
            queue: queue.clone(),
            agent: AgentName::parse("a").unwrap(),
            capabilities: Vec::new(),
            max: 1,
            lease_ms: 30_000,
            gate: None,
        };
        (Namespace::default(), queue, claim)
    }

    #[tokio::test]
    async fn a_parked_claimer_is_woken_by_a_create() {
        let store = Arc::new(MemoryStore::new());
        let waiters = Arc::new(Waiters::default());
        let (ns, queue, claim) = names();
        let claimer = {
            let (store, waiters, ns, claim) = (store.clone(), waiters.clone(), ns.clone(), claim.clone());
            tokio::spawn(async move {
                let wait = Duration::from_secs(30);
                let recheck = Duration::from_secs(30);
                waiters.claim(&*store, &SystemClock, &ns, &claim, wait, recheck).await
            })
        };
        while waiters.parked() == 0 {
            tokio::task::yield_now().await;
        }
        let now = SystemClock.now();
        let task = NewTask::on(queue.clone(), serde_json::json!(1));
        store
            .create_tasks(&ns, vec![task], CreateOptions::default(), now)
            .await
            .unwrap();
        waiters.wake(&ns, &queue, 1);
        let claimed = tokio::time::timeout(Duration::from_secs(5), claimer)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(claimed.len(), 1);
        assert_eq!(waiters.parked(), 0);
        waiters.prune();
        assert!(waiters.map().is_empty());
    }

    #[tokio::test]
    async fn closing_releases_parked_claimers() {
        let store = Arc::new(MemoryStore::new());
        let waiters = Arc::new(Waiters::default());
        let (ns, _, claim) = names();
        let claimer = {
            let (store, waiters) = (store.clone(), waiters.clone());
            tokio::spawn(async move {
                let wait = Duration::from_secs(30);
                waiters.claim(&*store, &SystemClock, &ns, &claim, wait, wait).await
            })
        };
        while waiters.parked() == 0 {
            tokio::task::yield_now().await;
        }
        waiters.close();
        let claimed = tokio::time::timeout(Duration::from_secs(5), claimer)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(claimed.is_empty());
    }
}
