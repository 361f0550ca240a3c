//! `GET /v1/events` and `GET /v1/traces/{correlation_id}`: the event log read back.

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// A page of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventList {
    /// In `seq` order.
    pub events: Vec<Event>,
    /// Pass as `after` to go on: every matching event up to this `seq` was returned. Equal to the
    /// `after` asked for when nothing newer matches yet.
    pub next_after: u64,
    /// The latest `seq` of the yard's log when the page was read: a follower that starts after it
    /// gets only what happens from then on.
    pub last_seq: u64,
}

/// Everything that happened under one correlation id, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Trace {
    pub correlation_id: String,
    pub events: Vec<Event>,
    /// The trace holds more events than one answer gives (see `events`' last `seq`, and
    /// `GET /v1/events?correlation_id=…&after=…` for the rest).
    pub truncated: bool,
}
