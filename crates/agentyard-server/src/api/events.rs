//! The event log: `GET /v1/events` (pages from an offset), `GET /v1/events/stream` (followed by
//! Server-Sent Events, resumed with `Last-Event-ID`) and `GET /v1/traces/{correlation_id}`
//! (everything under one correlation id). The log is namespaced like everything else: a request
//! reads its namespace's events.

use std::collections::VecDeque;
use std::convert::Infallible;

use agentyard_core::Namespace;
use agentyard_core::api::{EventList, MAX_TEXT_LEN, Trace};
use agentyard_core::event::{Event, EventType};
use agentyard_store::EventFilter;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{self, KeepAlive, Sse};
use futures::Stream;
use serde::Deserialize;
use tokio::time::Instant;

use crate::api::error::{ApiError, Problem};
use crate::api::extract::Ns;
use crate::api::json::Json;
use crate::api::messages::number;
use crate::state::AppState;

/// Largest `after` (or `Last-Event-ID`) taken: seqs are signed 64-bit numbers in the SQL stores.
const MAX_SEQ: u64 = i64::MAX as u64;
const DEFAULT_PAGE: u64 = 100;
const MAX_PAGE: u64 = 1_000;
/// Most events one trace answer holds.
const MAX_TRACE: usize = 10_000;
/// Most events one read of a stream takes from the store.
const STREAM_BATCH: usize = 200;

/// Filters of the event routes. Everything arrives as text so each bad value gets a 422 naming it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventFilterParams {
    /// Only these types, comma-separated: exact (`task.completed`) or every type of a kind
    /// (`task.*`, `agent.*`, `message.*`, `limit.*`).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    pub types: Option<String>,
    /// Only events of this subject: `task:<id>`, `agent:<name>`, `message:<seq>`, `limit:<key>`.
    #[param(min_length = 1, max_length = 1024)]
    pub subject: Option<String>,
    /// Only events under this correlation id.
    #[param(min_length = 1, max_length = 1024)]
    pub correlation_id: Option<String>,
}

impl EventFilterParams {
    fn into_filter(self) -> Result<EventFilter, ApiError> {
        let mut types = Vec::new();
        if let Some(list) = &self.types {
            for pattern in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let found = EventType::matching(pattern).ok_or_else(|| {
                    ApiError::invalid(
                        "type",
                        format!(
                            "{pattern:?} is not an event type; use one of {} or a kind such as task.*",
                            EventType::ALL.map(EventType::as_str).join(", ")
                        ),
                    )
                })?;
                for t in found {
                    if !types.contains(&t) {
                        types.push(t);
                    }
                }
            }
        }
        for (field, value) in [("subject", &self.subject), ("correlation_id", &self.correlation_id)] {
            if let Some(v) = value
                && (v.is_empty() || v.len() > MAX_TEXT_LEN)
            {
                return Err(ApiError::invalid(field, format!("must be 1 to {MAX_TEXT_LEN} bytes")));
            }
        }
        Ok(EventFilter {
            types,
            subject: self.subject,
            correlation_id: self.correlation_id,
        })
    }
}

/// Offset and size of a page.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventPageParams {
    /// Events after this `seq` (default 0: from the oldest kept).
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub after: Option<String>,
    /// Most events to return, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

/// Read the event log of the namespace.
///
/// Every change of a task, agent, message or limit is an event, written in the same transaction
/// as the change. Pages go on from `next_after`; a page may be short (or empty) while more
/// matching events lie further on only when a filter without `subject` or `correlation_id` had
/// a long stretch to look through: keep reading until `next_after` stops moving.
#[utoipa::path(
    get, path = "/v1/events", tag = "events", operation_id = "list_events",
    params(EventPageParams, EventFilterParams),
    responses(
        (status = 200, description = "A page of events", body = EventList),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_events(
    State(s): State<AppState>,
    Ns(ns): Ns,
    page: Result<Query<EventPageParams>, QueryRejection>,
    filter: Result<Query<EventFilterParams>, QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    let Query(page) = page.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let Query(filter) = filter.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let filter = filter.into_filter()?;
    let after = number("after", page.after, 0..=MAX_SEQ)?.unwrap_or(0);
    let limit = number("limit", page.limit, 1..=MAX_PAGE)?.unwrap_or(DEFAULT_PAGE);
    // Read first, so no event of the page (or between) lies past it.
    let last_seq = s.store.last_event_seq().await?;
    let got = s.store.read_events(&ns, &filter, after, limit as usize).await?;
    Ok(Json(EventList {
        events: got.events,
        next_after: got.next,
        last_seq,
    }))
}

/// Everything that happened under one correlation id, in order.
///
/// The events of every task, message and agent change made under the id (the id a client gave
/// as `X-Correlation-Id` or `traceparent`, or a task's or message's `correlation_id`). At most
/// 10,000 events; `truncated` says when there are more.
#[utoipa::path(
    get, path = "/v1/traces/{correlation_id}", tag = "events", operation_id = "get_trace",
    params(("correlation_id" = String, Path, description = "The correlation id", max_length = 1024)),
    responses(
        (status = 200, description = "The trace (empty when nothing happened under the id)", body = Trace),
        (status = 422, description = "Invalid correlation id", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn get_trace(
    State(s): State<AppState>,
    Ns(ns): Ns,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Trace>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::invalid("correlation_id", e.body_text()))?;
    let filter = EventFilterParams {
        correlation_id: Some(id.clone()),
        ..EventFilterParams::default()
    }
    .into_filter()?;
    let (events, truncated) = read_up_to(&s, &ns, &filter, MAX_TRACE).await?;
    Ok(Json(Trace {
        correlation_id: id,
        events,
        truncated,
    }))
}

/// Up to `max` events of the filter from the start of the log, and whether more are there.
pub(crate) async fn read_up_to(
    s: &AppState,
    ns: &Namespace,
    filter: &EventFilter,
    max: usize,
) -> Result<(Vec<Event>, bool), ApiError> {
    let mut events = Vec::new();
    let mut after = 0;
    loop {
        let want = (max + 1 - events.len()).min(MAX_PAGE as usize);
        let page = s.store.read_events(ns, filter, after, want).await?;
        let done = page.next == after;
        events.extend(page.events);
        if events.len() > max {
            events.truncate(max);
            return Ok((events, true));
        }
        if done {
            return Ok((events, false));
        }
        after = page.next;
    }
}

/// Where a stream starts.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventStreamParams {
    /// Start after this `seq` (`Last-Event-ID` wins when both are given; default: only what
    /// happens from now on).
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub after: Option<String>,
}

/// Follow the event log as Server-Sent Events.
///
/// Each event's SSE id is its `seq`, its SSE event name its type, its data the event as JSON.
/// Reconnecting with `Last-Event-ID` resumes right after the last event received, with no gap
/// and no repeat. Without `after` or `Last-Event-ID` the stream starts with what happens from
/// now on. Idle streams get keep-alive comments.
#[utoipa::path(
    get, path = "/v1/events/stream", tag = "events", operation_id = "stream_events",
    params(
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this seq"),
        EventStreamParams,
        EventFilterParams,
    ),
    responses(
        (status = 200, description = "An event stream: each SSE event's id is the event's seq, its name the \
            event's type, its data the event as JSON (see LogEvent)", content_type = "text/event-stream", body = String),
        (status = 422, description = "Invalid parameter or header", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn stream_events(
    State(s): State<AppState>,
    Ns(ns): Ns,
    headers: HeaderMap,
    start: Result<Query<EventStreamParams>, QueryRejection>,
    filter: Result<Query<EventFilterParams>, QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<sse::Event, Infallible>>>, ApiError> {
    let Query(start) = start.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let Query(filter) = filter.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let filter = filter.into_filter()?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("").trim().to_owned());
    // Both are checked, so a bad `after` is refused even when Last-Event-ID wins.
    let after = number("after", start.after, 0..=MAX_SEQ)?;
    let after = match last_event_id {
        Some(id) => Some(id.parse::<u64>().ok().filter(|&seq| seq <= MAX_SEQ).ok_or_else(|| {
            ApiError::invalid("Last-Event-ID", format!("{id:?} is not an event id this server sent"))
        })?),
        None => after,
    };
    let cursor = match after {
        Some(after) => after,
        None => s.store.last_event_seq().await?,
    };
    let follower = Follower {
        s: s.clone(),
        ns,
        filter,
        cursor,
        pending: VecDeque::new(),
    };
    let keep_alive = KeepAlive::new().interval(s.config.sse_keep_alive);
    Ok(Sse::new(futures::stream::unfold(follower, Follower::next)).keep_alive(keep_alive))
}

/// The state of one stream.
struct Follower {
    s: AppState,
    ns: Namespace,
    filter: EventFilter,
    /// Everything up to here was sent (or did not match).
    cursor: u64,
    pending: VecDeque<Event>,
}

impl Follower {
    async fn next(mut self) -> Option<(Result<sse::Event, Infallible>, Self)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                match serde_json::to_string(&e) {
                    Ok(data) => {
                        let event = sse::Event::default()
                            .id(e.seq.to_string())
                            .event(e.kind.as_str())
                            .data(data);
                        return Some((Ok(event), self));
                    }
                    Err(err) => {
                        tracing::error!(error = %err, seq = e.seq, "cannot serialize an event");
                        continue;
                    }
                }
            }
            let feed = &self.s.dispatch.events;
            if feed.is_closing() {
                return None;
            }
            let until = Instant::now() + self.s.config.claim_recheck;
            let (s, ns, filter, after) = (&self.s, &self.ns, &self.filter, self.cursor);
            let read = feed
                .wait_for(until, || async move {
                    let page = s.store.read_events(ns, filter, after, STREAM_BATCH).await?;
                    let moved = page.next != after;
                    Ok((page, moved))
                })
                .await;
            match read {
                Ok(page) => {
                    self.cursor = page.next;
                    self.pending.extend(page.events);
                }
                Err(e) => {
                    // The client reconnects with Last-Event-ID and loses nothing.
                    tracing::debug!(error = %e, "event stream ends");
                    return None;
                }
            }
        }
    }
}
