//! `RetentionStore` on the log store: the memory store's prune, whose removals are written as one
//! frame like any call; replay and the next compaction forget what it deleted.

use std::sync::atomic::{AtomicBool, Ordering};

use agentyard_core::Timestamp;
use agentyard_store::{PruneCutoffs, Pruned, RetentionStore, StoreError};
use async_trait::async_trait;

use crate::LogStore;

/// Something was pruned since memory was last given back (by any log store of the process).
static PRUNED_SINCE_TRIM: AtomicBool = AtomicBool::new(false);

#[async_trait]
impl RetentionStore for LogStore {
    async fn prune(&self, cutoffs: &PruneCutoffs, now: Timestamp, limit: usize) -> Result<Pruned, StoreError> {
        let r = self.mem.prune(cutoffs, now, limit).await;
        let pruned = self.durable(r).await?;
        // A pass prunes batch after batch until one finds nothing (or less than it could take):
        // then the memory freed goes back, once per pass rather than per batch.
        let last_batch = [pruned.tasks, pruned.events, pruned.messages, pruned.idempotency_keys]
            .iter()
            .all(|&n| n < limit as u64);
        let freed = PRUNED_SINCE_TRIM.fetch_or(pruned.total() > 0, Ordering::Relaxed) || pruned.total() > 0;
        if last_batch && freed {
            PRUNED_SINCE_TRIM.store(false, Ordering::Relaxed);
            let _ = tokio::task::spawn_blocking(crate::trim::release_free_memory).await;
        }
        Ok(pruned)
    }
}
