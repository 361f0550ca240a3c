//! `EventStore` on the log store: the memory store's log, whose events are written in the same
//! frame as the change they record; a read is answered once everything it may show is written.

use agentyard_core::Namespace;
use agentyard_store::{EventFilter, EventPage, EventStore, StoreError};
use async_trait::async_trait;

use crate::LogStore;

#[async_trait]
impl EventStore for LogStore {
    async fn read_events(
        &self,
        ns: &Namespace,
        filter: &EventFilter,
        after: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let r = self.mem.read_events(ns, filter, after, limit).await;
        self.durable(r).await
    }

    async fn last_event_seq(&self) -> Result<u64, StoreError> {
        let r = self.mem.last_event_seq().await;
        self.durable(r).await
    }
}
