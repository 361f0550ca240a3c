//! The event log (`/v1/events…`, `/v1/traces/{id}`): pages from an offset, a live stream that
//! resumes where it stopped, and traces by correlation id.

use agentyard_core::TaskId;
use agentyard_core::api::{EventList, Trace};
use agentyard_core::event::Event;
use reqwest::{Method, Response};

use crate::sse::Parser;
use crate::{Client, ClientError, decode};

/// Which events to read: every field set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventQuery {
    /// Comma-separated types (`task.completed`) or kinds (`task.*`).
    pub types: Option<String>,
    /// `task:<id>`, `agent:<name>`, `message:<seq>` or `limit:<key>`.
    pub subject: Option<String>,
    pub correlation_id: Option<String>,
}

impl EventQuery {
    /// The events of one task: its history.
    pub fn task(id: TaskId) -> Self {
        Self {
            subject: Some(agentyard_core::event::task_subject(id)),
            ..Self::default()
        }
    }

    fn pairs(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(3);
        if let Some(t) = &self.types {
            out.push(("type", t.clone()));
        }
        if let Some(s) = &self.subject {
            out.push(("subject", s.clone()));
        }
        if let Some(c) = &self.correlation_id {
            out.push(("correlation_id", c.clone()));
        }
        out
    }
}

impl Client {
    /// `GET /v1/events`: up to `limit` matching events after `after`; go on from `next_after`.
    pub async fn events(&self, query: &EventQuery, after: u64, limit: Option<u32>) -> Result<EventList, ClientError> {
        let mut pairs = query.pairs();
        pairs.push(("after", after.to_string()));
        if let Some(l) = limit {
            pairs.push(("limit", l.to_string()));
        }
        self.call(self.request(Method::GET, "/v1/events").query(&pairs)).await
    }

    /// Every matching event from the start of the log, page after page.
    pub async fn all_events(&self, query: &EventQuery) -> Result<Vec<Event>, ClientError> {
        let mut out = Vec::new();
        let mut after = 0;
        loop {
            let page = self.events(query, after, Some(1_000)).await?;
            out.extend(page.events);
            if page.next_after == after {
                return Ok(out);
            }
            after = page.next_after;
        }
    }

    /// `GET /v1/traces/{correlation_id}`: everything under one correlation id, in order.
    pub async fn trace(&self, correlation_id: &str) -> Result<Trace, ClientError> {
        let path = format!("/v1/traces/{}", crate::encode_segment(correlation_id));
        self.call(self.request(Method::GET, &path)).await
    }

    /// `GET /v1/events/stream`: the log followed as Server-Sent Events, after `after` (default:
    /// what happens from now on).
    pub async fn event_stream(&self, query: &EventQuery, after: Option<u64>) -> Result<EventStream, ClientError> {
        let mut rb = self
            .request(Method::GET, "/v1/events/stream")
            .query(&query.pairs())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = after {
            rb = rb.header("last-event-id", id.to_string());
        }
        let response = rb.send().await.map_err(ClientError::Transport)?;
        if !response.status().is_success() {
            return Err(decode::<serde_json::Value>(response)
                .await
                .err()
                .unwrap_or_else(|| ClientError::Decode("an error status with a success body".to_owned())));
        }
        Ok(EventStream {
            response,
            parser: Parser::default(),
            ready: std::collections::VecDeque::new(),
            last_event_id: after,
        })
    }
}

/// The event log followed as Server-Sent Events (see `Client::event_stream`).
pub struct EventStream {
    response: Response,
    parser: Parser,
    ready: std::collections::VecDeque<crate::sse::Event>,
    last_event_id: Option<u64>,
}

impl EventStream {
    /// The seq of the last event received: open a new stream after it to resume.
    pub fn last_event_id(&self) -> Option<u64> {
        self.last_event_id
    }

    /// The next event; `None` when the server ended the stream (e.g. it shuts down).
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        loop {
            if let Some(raw) = self.ready.pop_front() {
                let event: Event = serde_json::from_str(&raw.data)
                    .map_err(|e| ClientError::Decode(format!("a stream event is not an event: {e}")))?;
                self.last_event_id = Some(event.seq);
                return Ok(Some(event));
            }
            match self.response.chunk().await.map_err(ClientError::Transport)? {
                Some(bytes) => self.ready.extend(self.parser.feed(&bytes)),
                None => return Ok(None),
            }
        }
    }
}
