//! `RetentionStore` on the log store: the memory store's prune, whose removals are written as one
//! frame like any call; replay and the next compaction forget what it deleted.

use agentyard_core::Timestamp;
use agentyard_store::{PruneCutoffs, Pruned, RetentionStore, StoreError};
use async_trait::async_trait;

use crate::LogStore;

#[async_trait]
impl RetentionStore for LogStore {
    async fn prune(&self, cutoffs: &PruneCutoffs, now: Timestamp, limit: usize) -> Result<Pruned, StoreError> {
        let r = self.mem.prune(cutoffs, now, limit).await;
        self.durable(r).await
    }
}
