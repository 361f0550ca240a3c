//! `/v1/messages` and the inbox routes: sending (direct, topic, broadcast), reading by long poll
//! or Server-Sent Events, acknowledging by cursor, and topic subscriptions.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Mutex;
use std::time::Duration;

use agentyard_core::api::{
    AckRequest, AckResponse, DEFAULT_INBOX_PAGE, InboxResponse, MAX_INBOX_PAGE, MAX_WAIT_MS, SendMessageRequest,
    Subscriptions, TopicList,
};
use agentyard_core::message::{Message, Recipient, TopicName};
use agentyard_core::{AgentName, Namespace, Timestamp};
use agentyard_store::{SendOptions, StoreError};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use tokio::time::Instant;

use crate::api::agents::{admit, seen};
use crate::api::error::{ApiError, Problem};
use crate::api::extract::{AgentParam, GivenCorrelation, JsonBody, Ns, parse_agent};
use crate::api::json::{self, Json};
use crate::auth::Caller;
use crate::dispatch::inboxes::Listener;
use crate::metrics::Counters;
use crate::state::{AppState, ParkedAgent};

/// How long a namespace's agent count (for the broadcast fan-out counter) is reused.
const AGENT_COUNT_TTL_MS: u64 = 1_000;

/// Agents per namespace, counted at most once a second: what a broadcast fans out to.
#[derive(Default)]
pub struct AgentCounts {
    counts: Mutex<HashMap<Namespace, (Timestamp, u64)>>,
}

impl AgentCounts {
    async fn get(&self, s: &AppState, ns: &Namespace, now: Timestamp) -> Result<u64, StoreError> {
        let cached = self.counts.lock().unwrap_or_else(|e| e.into_inner()).get(ns).copied();
        if let Some((at, n)) = cached
            && now.millis_since(at) < AGENT_COUNT_TTL_MS
        {
            return Ok(n);
        }
        let n = s
            .store
            .list_agents(ns)
            .await?
            .iter()
            .filter(|a| a.status != agentyard_core::agent::AgentStatus::Gone)
            .count() as u64;
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(ns.clone(), (now, n));
        Ok(n)
    }
}

/// Send a message to one agent, a topic's subscribers, or every agent of the namespace.
///
/// Stored once whatever the fan-out: each recipient reads it through its own inbox cursor.
/// Answers 201 with the message, or 200 with the original when its `idempotency_key` was seen.
#[utoipa::path(
    post, path = "/v1/messages", tag = "messages",
    request_body = SendMessageRequest,
    responses(
        (status = 201, description = "Sent", body = Message),
        (status = 200, description = "The idempotency key was seen: the original message", body = Message),
        (status = 404, description = "The recipient agent is not registered", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The recipient's inbox is full, or the sender is over its API rate \
            (see Retry-After)", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn send_message(
    State(s): State<AppState>,
    caller: Caller,
    Ns(ns): Ns,
    GivenCorrelation(correlation): GivenCorrelation,
    JsonBody(mut req): JsonBody<SendMessageRequest>,
) -> Result<Response, ApiError> {
    if req.correlation_id.is_none() {
        req.correlation_id = correlation;
    }
    let now = s.clock.now();
    let mut message = req.into_new_message()?;
    // An agent token sends as its agent: a message without `from` is from it.
    if let Some(own) = caller.agent() {
        match &message.from {
            Some(from) => caller.acts_as(from)?,
            None => message.from = Some(own.clone()),
        }
    }
    if let Some(from) = &message.from {
        admit(&s, &ns, from, now)?;
    }
    let options = SendOptions {
        max_inbox_depth: s.config.max_inbox_depth_in(&ns),
    };
    let sent = s.store.send_message(&ns, message, options, now).await?;
    if !sent.created {
        return Ok((StatusCode::OK, Json(sent.message)).into_response());
    }
    s.dispatch.inboxes.message_sent(&sent.message);
    Counters::add(&s.counters.messages_sent, 1);
    if let Recipient::Broadcast { .. } = sent.message.to {
        match s.fleet.agent_counts.get(&s, &ns, now).await {
            Ok(n) => Counters::add(&s.counters.broadcast_fanout, n),
            Err(e) => tracing::debug!(error = %e, "cannot count the agents a broadcast reaches"),
        }
    }
    Ok((StatusCode::CREATED, Json(sent.message)).into_response())
}

/// Largest inbox cursor (`after`, `Last-Event-ID`) taken: seqs are signed 64-bit numbers in the
/// stores, so none is ever larger, and the document can state the bound as an int64.
const MAX_SEQ: u64 = i64::MAX as u64;

/// Query of the inbox routes. Everything arrives as text so each bad value gets a 422 naming it.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxParams {
    /// Read messages after this `seq` (default: after the acknowledged cursor, so messages not
    /// acknowledged come again).
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub after: Option<String>,
    /// Long poll: wait up to this long for a message when none is there (at most 60000).
    #[param(value_type = Option<u64>, maximum = 60000)]
    pub wait_ms: Option<String>,
    /// Most messages to return, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
}

pub(crate) fn number(
    field: &str,
    value: Option<String>,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, ApiError> {
    value
        .map(|v| match v.parse::<u64>() {
            Ok(n) if range.contains(&n) => Ok(n),
            _ => Err(ApiError::invalid(
                field,
                format!(
                    "{v:?}: must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        })
        .transpose()
}

/// Read the agent's inbox: its direct messages, its topics' messages since it subscribed and
/// broadcasts since it registered, in one sequence order; expired messages are skipped.
///
/// With `wait_ms`, waits for a message when none is there. Reading does not acknowledge:
/// acknowledge with `POST …/inbox/ack` once the messages are handled. An answer holds at most
/// the server's answer budget of JSON (`--answer-budget`, 8 MiB by default): a read of big
/// messages stops early, and its `cursor` leads on from there.
#[utoipa::path(
    get, path = "/v1/agents/{name}/inbox", tag = "messages", operation_id = "read_inbox",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$"), InboxParams),
    responses(
        (status = 200, description = "Messages (maybe none) and the cursor after them", body = InboxResponse),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The agent is over its API rate (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn read_inbox(
    State(s): State<AppState>,
    Ns(ns): Ns,
    AgentParam(name): AgentParam,
    params: Result<Query<InboxParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<InboxResponse>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let after = number("after", params.after, 0..=MAX_SEQ)?;
    let wait_ms = number("wait_ms", params.wait_ms, 0..=MAX_WAIT_MS)?.unwrap_or(0);
    let limit = number("limit", params.limit, 1..=MAX_INBOX_PAGE as u64)?.map_or(DEFAULT_INBOX_PAGE, |l| l as usize);
    let now = s.clock.now();
    admit(&s, &ns, &name, now)?;
    seen(&s, &ns, &name, now).await?;
    let _parked = (wait_ms > 0).then(|| s.fleet.park(&ns, &name));
    let page = s
        .dispatch
        .inboxes
        .read(
            &*s.store,
            &*s.clock,
            &ns,
            &name,
            after,
            limit,
            Duration::from_millis(wait_ms),
            s.config.claim_recheck,
        )
        .await?;
    Ok(Json(within_budget(
        page.messages,
        page.cursor,
        s.config.answer_budget_bytes,
    )))
}

/// The messages as an answer of at most `budget` bytes of messages; when some are left out, the
/// cursor is the last one kept, so reading on from it brings the rest.
fn within_budget(messages: Vec<Message>, cursor: u64, budget: usize) -> InboxResponse {
    let (messages, cut) = json::within_budget(messages, budget);
    let cursor = match messages.last() {
        Some(last) if cut => last.seq,
        _ => cursor,
    };
    InboxResponse { messages, cursor }
}

/// Acknowledge the inbox up to a cursor: those messages are not read again by default.
#[utoipa::path(
    post, path = "/v1/agents/{name}/inbox/ack", tag = "messages", operation_id = "ack_inbox",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    request_body = AckRequest,
    responses(
        (status = 200, description = "The acknowledged cursor (it never moves back)", body = AckResponse),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "The cursor is past the latest message", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "The agent is over its API rate (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn ack_inbox(
    State(s): State<AppState>,
    Ns(ns): Ns,
    AgentParam(name): AgentParam,
    JsonBody(req): JsonBody<AckRequest>,
) -> Result<Json<AckResponse>, ApiError> {
    let now = s.clock.now();
    admit(&s, &ns, &name, now)?;
    let agent = s.store.ack_inbox(&ns, &name, req.cursor).await.map_err(|e| match e {
        StoreError::Invalid { message } => ApiError::invalid("cursor", message),
        e => e.into(),
    })?;
    Ok(Json(AckResponse {
        cursor: agent.inbox_cursor,
    }))
}

/// Query of the stream.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamParams {
    /// Start after this `seq` (`Last-Event-ID` wins when both are given; default: after the
    /// acknowledged cursor).
    #[param(value_type = Option<u64>, maximum = 9_223_372_036_854_775_807_u64)]
    pub after: Option<String>,
}

/// Most messages one read of a stream takes from the store.
const STREAM_BATCH: usize = 100;

/// Follow the agent's inbox as Server-Sent Events.
///
/// Each message is an event `message` whose id is its `seq` and whose data is the message as
/// JSON. Reconnecting with `Last-Event-ID` resumes after the last event received. Idle streams
/// get keep-alive comments. Streaming does not acknowledge.
#[utoipa::path(
    get, path = "/v1/agents/{name}/inbox/stream", tag = "messages", operation_id = "stream_inbox",
    params(
        ("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$"),
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this message seq"),
        StreamParams,
    ),
    responses(
        (status = 200, description = "An event stream of messages: each event's id is the message's seq, its data \
            the message as JSON (see InboxEvent)", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameter or header", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "The agent is over its API rate (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn stream_inbox(
    State(s): State<AppState>,
    Ns(ns): Ns,
    AgentParam(name): AgentParam,
    headers: HeaderMap,
    params: Result<Query<StreamParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| v.to_str().unwrap_or("").trim().to_owned());
    // Both are checked, so a bad `after` is refused even when Last-Event-ID wins.
    let after = number("after", params.after, 0..=MAX_SEQ)?;
    let after = match last_event_id {
        Some(id) => Some(id.parse::<u64>().ok().filter(|&seq| seq <= MAX_SEQ).ok_or_else(|| {
            ApiError::invalid("Last-Event-ID", format!("{id:?} is not an event id this server sent"))
        })?),
        None => after,
    };
    let now = s.clock.now();
    admit(&s, &ns, &name, now)?;
    seen(&s, &ns, &name, now).await?;
    let tail = Tail {
        listener: s.dispatch.inboxes.listen(&ns, &name),
        _parked: s.fleet.park(&ns, &name),
        s: s.clone(),
        ns,
        name,
        cursor: after,
        pending: VecDeque::new(),
    };
    let keep_alive = KeepAlive::new().interval(s.config.sse_keep_alive);
    Ok(Sse::new(futures::stream::unfold(tail, Tail::next)).keep_alive(keep_alive))
}

/// The state of one stream.
struct Tail {
    s: AppState,
    ns: Namespace,
    name: AgentName,
    /// `None` until the first read: start after the acknowledged cursor.
    cursor: Option<u64>,
    pending: VecDeque<Message>,
    listener: Listener,
    _parked: ParkedAgent,
}

impl Tail {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(m) = self.pending.pop_front() {
                self.cursor = Some(m.seq);
                match serde_json::to_string(&m) {
                    Ok(data) => {
                        let event = Event::default().id(m.seq.to_string()).event("message").data(data);
                        return Some((Ok(event), self));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, seq = m.seq, "cannot serialize a message");
                        continue;
                    }
                }
            }
            if self.listener.is_closing() {
                return None;
            }
            let until = Instant::now() + self.s.config.claim_recheck;
            let (s, ns, name, after) = (&self.s, &self.ns, &self.name, self.cursor);
            let read = self
                .listener
                .wait_for(until, || async move {
                    let page = s.store.read_inbox(ns, name, after, STREAM_BATCH, s.clock.now()).await?;
                    let found = !page.messages.is_empty();
                    Ok((page, found))
                })
                .await;
            match read {
                Ok((page, _)) => {
                    self.cursor = Some(page.cursor);
                    self.pending.extend(page.messages);
                }
                Err(e) => {
                    // The client reconnects with Last-Event-ID and loses nothing.
                    tracing::debug!(error = %e, agent = %self.name, "inbox stream ends");
                    return None;
                }
            }
        }
    }
}

fn parse_topic(raw: String) -> Result<TopicName, ApiError> {
    TopicName::parse(raw.as_str()).map_err(|e| ApiError::invalid("topic", format!("invalid topic name {raw:?}: {e}")))
}

async fn subscription(
    s: &AppState,
    ns: &Namespace,
    name: String,
    topic: String,
    on: bool,
) -> Result<Json<Subscriptions>, ApiError> {
    let name = parse_agent("name", name)?;
    let topic = parse_topic(topic)?;
    admit(s, ns, &name, s.clock.now())?;
    let changed = if on {
        s.store.subscribe(ns, &name, &topic).await?
    } else {
        s.store.unsubscribe(ns, &name, &topic).await?
    };
    let topics = s.store.subscriptions(ns, &name).await?;
    Ok(Json(Subscriptions { topics, changed }))
}

/// The topics the agent subscribes to.
#[utoipa::path(
    get, path = "/v1/agents/{name}/subscriptions", tag = "messages", operation_id = "list_subscriptions",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The agent's topics", body = TopicList),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_subscriptions(
    State(s): State<AppState>,
    Ns(ns): Ns,
    AgentParam(name): AgentParam,
) -> Result<Json<TopicList>, ApiError> {
    let mut topics = s.store.subscriptions(&ns, &name).await?;
    topics.sort();
    Ok(Json(TopicList { topics }))
}

/// Subscribe the agent to a topic: it receives the topic's messages sent from now on.
#[utoipa::path(
    put, path = "/v1/agents/{name}/subscriptions/{topic}", tag = "messages", operation_id = "subscribe",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$"), ("topic" = String, Path, description = "Topic name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The agent's topics (`changed` is false if it already subscribed)",
            body = Subscriptions),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn subscribe(
    State(s): State<AppState>,
    Ns(ns): Ns,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Subscriptions>, ApiError> {
    let Path((name, topic)) = path.map_err(|e| ApiError::invalid("path", e.body_text()))?;
    subscription(&s, &ns, name, topic, true).await
}

/// Unsubscribe the agent from a topic.
#[utoipa::path(
    delete, path = "/v1/agents/{name}/subscriptions/{topic}", tag = "messages", operation_id = "unsubscribe",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$"), ("topic" = String, Path, description = "Topic name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The agent's topics (`changed` is false if it did not subscribe)",
            body = Subscriptions),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "Invalid name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn unsubscribe(
    State(s): State<AppState>,
    Ns(ns): Ns,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<Json<Subscriptions>, ApiError> {
    let Path((name, topic)) = path.map_err(|e| ApiError::invalid("path", e.body_text()))?;
    subscription(&s, &ns, name, topic, false).await
}
