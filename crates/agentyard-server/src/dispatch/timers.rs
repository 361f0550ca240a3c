//! The timer loop: promotes scheduled tasks whose time came and expires overdue leases, then
//! sleeps until the store's next wake-up (or `timer_max_sleep`), or until a change needs it
//! sooner (a new scheduled task, a new lease, a retry with backoff).

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use agentyard_core::Timestamp;
use agentyard_store::StoreError;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::state::AppState;

/// Most tasks one store call promotes or expires; a tick repeats calls until a batch comes back
/// short.
const BATCH: usize = 1_000;
/// Longest pause after failing ticks.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(5);
/// How often the loop forgets queues nobody waits on.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// How handlers tell the sleeping loop to look again.
pub struct TimerSignal {
    kick: Notify,
    /// When the loop plans to wake (ms since the epoch); `i64::MAX` while it is evaluating, so
    /// a change made meanwhile kicks it.
    planned: AtomicI64,
}

impl Default for TimerSignal {
    fn default() -> Self {
        Self {
            kick: Notify::new(),
            planned: AtomicI64::new(i64::MAX),
        }
    }
}

impl TimerSignal {
    /// Makes the loop re-evaluate if `at` comes before its planned wake-up.
    pub fn wake_by(&self, at: Timestamp) {
        let at = at.as_millis();
        if at < self.planned.fetch_min(at, Ordering::SeqCst) {
            // A stored permit survives until the loop next waits, so this is never lost.
            self.kick.notify_one();
        }
    }
}

/// What one tick did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tick {
    pub promoted: usize,
    pub expired: usize,
}

/// The loop itself. [`Timers::tick`] runs one pass (tests call it directly).
pub struct Timers {
    state: AppState,
}

impl Timers {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// Promotes every due scheduled task and expires every overdue lease as of the clock's now,
    /// waking the claimers of queues that got ready tasks.
    pub async fn tick(&self) -> Result<Tick, StoreError> {
        let s = &self.state;
        let now = s.clock.now();
        let mut tick = Tick::default();
        loop {
            let promoted = s.store.promote_due(now, BATCH).await?;
            tick.promoted += promoted.len();
            s.dispatch.tasks_changed(&promoted);
            if promoted.len() < BATCH {
                break;
            }
        }
        loop {
            let expired = s.store.expire_leases(now, BATCH).await?;
            tick.expired += expired.len();
            s.dispatch.tasks_changed(&expired);
            s.counters.tasks.lease_expired(&expired);
            if expired.len() < BATCH {
                break;
            }
        }
        if tick != Tick::default() {
            tracing::debug!(promoted = tick.promoted, expired = tick.expired, "timer tick");
        }
        Ok(tick)
    }

    /// Ticks until `shutdown` completes. Store errors are logged and retried with backoff; they
    /// never end the loop.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let signal = &self.state.dispatch.timer;
        let max_sleep = self.state.config.timer_max_sleep;
        let mut failures: u32 = 0;
        let mut last_prune = Instant::now();
        loop {
            signal.planned.store(i64::MAX, Ordering::SeqCst);
            let sleep = match self.evaluate().await {
                Ok(next) => {
                    failures = 0;
                    let now = self.state.clock.now();
                    let planned = next.map_or(i64::MAX, Timestamp::as_millis);
                    let until_next = Duration::from_millis(next.map_or(u64::MAX, |t| t.millis_since(now)));
                    signal.planned.store(planned, Ordering::SeqCst);
                    until_next.min(max_sleep)
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let pause =
                        Duration::from_millis(100u64.saturating_mul(1 << failures.min(10))).min(MAX_ERROR_BACKOFF);
                    tracing::warn!(error = %e, failures, retry_in_ms = pause.as_millis() as u64, "timer loop: store call failed");
                    pause
                }
            };
            if last_prune.elapsed() >= PRUNE_EVERY {
                self.state.dispatch.waiters.prune();
                last_prune = Instant::now();
            }
            tokio::select! {
                () = &mut shutdown => break,
                () = signal.kick.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
        tracing::debug!("timer loop stopped");
    }

    async fn evaluate(&self) -> Result<Option<Timestamp>, StoreError> {
        self.tick().await?;
        self.state.store.next_wakeup().await
    }
}
