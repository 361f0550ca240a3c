//! The event log: `EventStore`. Every backend appends a change's event (built by
//! `agentyard_core::event`) in the same transaction as the change, so an event is never lost
//! and never invented; this trait reads the log back.

use agentyard_core::Namespace;
use agentyard_core::event::{Event, EventType};
use async_trait::async_trait;

use crate::StoreError;

/// How far past `after` a read without a subject or correlation id looks at most: a filter
/// that matches little still answers in bounded time, and the reader goes on from
/// [`EventPage::next`].
pub const EVENT_SCAN_WINDOW: u64 = 10_000;

/// Which events to read. Every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Any of these types; any type when empty.
    pub types: Vec<EventType>,
    /// `task:<id>`, `agent:<name>`, `message:<seq>`, `limit:<key>`.
    pub subject: Option<String>,
    pub correlation_id: Option<String>,
}

impl EventFilter {
    pub fn matches(&self, e: &Event) -> bool {
        (self.types.is_empty() || self.types.contains(&e.kind))
            && self.subject.as_ref().is_none_or(|s| s == &e.subject)
            && self
                .correlation_id
                .as_ref()
                .is_none_or(|c| e.correlation_id.as_ref() == Some(c))
    }

    /// A subject or a correlation id: the backends look these up by index, over the whole log.
    pub fn is_indexed(&self) -> bool {
        self.subject.is_some() || self.correlation_id.is_some()
    }
}

/// A page of the log.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// In `seq` order.
    pub events: Vec<Event>,
    /// Where the next read goes on from (`after`): every matching event with a `seq` up to it
    /// was returned. Equal to the `after` read from when there is nothing more yet.
    pub next: u64,
}

/// The event log of the yard.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Events of the namespace with `seq > after` that match `filter`, in `seq` order, at most
    /// `limit`. An indexed filter ([`EventFilter::is_indexed`]) looks through the whole log; any
    /// other through at most [`EVENT_SCAN_WINDOW`] sequence numbers past `after`.
    async fn read_events(
        &self,
        ns: &Namespace,
        filter: &EventFilter,
        after: u64,
        limit: usize,
    ) -> Result<EventPage, StoreError>;

    /// The highest `seq` the log has given (0 when it is empty): where a reader that wants only
    /// what happens from now on starts.
    async fn last_event_seq(&self) -> Result<u64, StoreError>;
}
