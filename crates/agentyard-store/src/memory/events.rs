//! `EventStore` on the memory store: the log is a map by seq in the state, appended under the
//! store's lock by the call whose change it records, and recorded for the sink like every other
//! change (the log store keeps it in the same frame as the change).

use agentyard_core::Namespace;
use agentyard_core::event::NewEvent;
use async_trait::async_trait;

use super::{Change, MemoryStore, State};
use crate::StoreError;
use crate::events::{EVENT_SCAN_WINDOW, EventFilter, EventPage, EventStore};

impl State {
    /// Appends an event at the next seq.
    pub(super) fn log(&mut self, event: NewEvent) {
        self.last_event += 1;
        let event = event.at(self.last_event);
        self.record(Change::Event(&event));
        self.events.insert(event.seq, event);
    }
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn read_events(
        &self,
        ns: &Namespace,
        filter: &EventFilter,
        after: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError> {
        let st = self.lock();
        let end = if filter.is_indexed() {
            st.last_event
        } else {
            st.last_event.min(after.saturating_add(EVENT_SCAN_WINDOW))
        };
        if end <= after {
            return Ok(EventPage {
                events: Vec::new(),
                next: after,
            });
        }
        let mut events = Vec::new();
        for (seq, e) in st.events.range(after + 1..=end) {
            if &e.namespace == ns && filter.matches(e) {
                events.push(e.clone());
                if events.len() == limit {
                    return Ok(EventPage { events, next: *seq });
                }
            }
        }
        Ok(EventPage { events, next: end })
    }

    async fn last_event_seq(&self) -> Result<u64, StoreError> {
        Ok(self.lock().last_event)
    }
}
