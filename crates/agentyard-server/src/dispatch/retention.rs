//! The retention loop: every `retention.interval`, deletes what is older than the configured
//! ages (finished tasks, events, acknowledged or expired messages, idempotency keys) in batches,
//! so no call holds the store long. `POST /v1/admin/prune` runs the same pass on demand.

use std::pin::pin;
use std::time::Duration;

use agentyard_core::Timestamp;
use agentyard_store::{PruneCutoffs, Pruned, StoreError};

use crate::config::RetentionConfig;
use crate::state::AppState;

/// What one prune call deletes at most of each kind.
const BATCH: usize = 1_000;
/// Most batches one pass runs; what is left waits for the next pass.
const MAX_BATCHES: usize = 1_000;
/// Longest pause after a failed pass.
const MAX_ERROR_BACKOFF: Duration = Duration::from_secs(60);

impl RetentionConfig {
    /// The cutoffs at `now`: each kind older than its age; a kind whose age is 0 is kept.
    pub fn cutoffs(&self, now: Timestamp) -> PruneCutoffs {
        let before = |age_ms: u64| {
            (age_ms > 0).then(|| {
                Timestamp::from_millis(
                    now.as_millis()
                        .saturating_sub(i64::try_from(age_ms).unwrap_or(i64::MAX)),
                )
            })
        };
        PruneCutoffs {
            finished_tasks: before(self.finished_tasks_ms),
            events: before(self.events_ms),
            messages: before(self.messages_ms),
            idempotency_keys: before(self.idempotency_keys_ms),
        }
    }
}

pub struct Retention {
    state: AppState,
}

impl Retention {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// One pass: prunes batch after batch until nothing older than the ages is left (or
    /// [`MAX_BATCHES`] ran). Returns what it deleted.
    pub async fn tick(&self) -> Result<Pruned, StoreError> {
        let s = &self.state;
        let now = s.clock.now();
        let cutoffs = s.config.retention.cutoffs(now);
        let mut total = Pruned::default();
        if cutoffs == PruneCutoffs::default() {
            return Ok(total);
        }
        for _ in 0..MAX_BATCHES {
            let got = s.store.prune(&cutoffs, now, BATCH).await?;
            total.add(got);
            if got.total() == 0 {
                break;
            }
        }
        if total.total() > 0 {
            tracing::info!(
                tasks = total.tasks,
                events = total.events,
                messages = total.messages,
                idempotency_keys = total.idempotency_keys,
                "retention: pruned history"
            );
        }
        s.counters.pruned(&total);
        Ok(total)
    }

    /// Passes until `shutdown` completes; store errors are logged and retried with backoff.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        let mut shutdown = pin!(shutdown);
        let interval = self.state.config.retention.interval;
        let mut failures: u32 = 0;
        loop {
            let pause = match self.tick().await {
                Ok(_) => {
                    failures = 0;
                    interval
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(error = %e, failures, "retention loop: store call failed");
                    Duration::from_secs(1u64 << failures.min(6))
                        .min(MAX_ERROR_BACKOFF)
                        .min(interval)
                }
            };
            tokio::select! {
                () = &mut shutdown => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        tracing::debug!("retention loop stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_age_of_zero_keeps_that_kind() {
        let config = RetentionConfig {
            finished_tasks_ms: 1_000,
            events_ms: 0,
            messages_ms: 2_000,
            idempotency_keys_ms: 0,
            interval: Duration::from_secs(60),
        };
        let c = config.cutoffs(Timestamp::from_millis(10_000));
        assert_eq!(c.finished_tasks, Some(Timestamp::from_millis(9_000)));
        assert_eq!(c.events, None);
        assert_eq!(c.messages, Some(Timestamp::from_millis(8_000)));
        assert_eq!(c.idempotency_keys, None);
    }
}
