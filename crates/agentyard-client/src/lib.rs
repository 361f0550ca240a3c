//! The Rust SDK of agentyard: a typed HTTP [`Client`] with one async method per route (the wire
//! types are `agentyard_core::api`'s), errors that carry the server's problem body so callers can
//! match on conflicts, and a [`worker::Worker`] that runs an agent's claim loop for you. Cloning a
//! [`Client`] is cheap and shares its connection pool.
//!
//! A task's life by hand:
//!
//! ```no_run
//! use agentyard_client::{Client, ClientError, kinds};
//! use agentyard_core::api::{ClaimRequest, CompleteRequest, CreateTaskRequest};
//! use agentyard_core::{AgentName, QueueName};
//! use serde_json::json;
//!
//! # async fn tour() -> Result<(), ClientError> {
//! let yard = Client::new("http://127.0.0.1:7070"); // .with_token(…) for a server run with --auth
//! let emails = QueueName::parse("emails").expect("a valid name");
//! yard.create_task(&CreateTaskRequest::new(emails.clone(), json!({"to": "ops@example.com"}))).await?;
//!
//! let mut claim = ClaimRequest::new(AgentName::parse("mailer-1").expect("a valid name"));
//! claim.wait_ms = Some(5_000); // long-poll while the queue is empty
//! for task in yard.claim(&emails, &claim).await?.tasks {
//!     let lease_token = task.lease.expect("a claimed task holds a lease").token;
//!     let done = CompleteRequest { lease_token, result: Some(json!({"sent": 1})), artifacts: None };
//!     match yard.complete(task.id, &done).await {
//!         Ok(_) => {}
//!         // The lease expired and the task moved on: another agent finishes it.
//!         Err(e) if e.problem().is_some_and(|p| p.kind == kinds::LEASE_CONFLICT) => {}
//!         Err(e) => return Err(e),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! For a long-running agent, use [`worker::Worker`]: it heartbeats leases, completes inside the
//! next claim and shuts down gracefully. `examples/rust/worker.rs` is one.

mod admin;
mod error;
mod events;
mod sse;
mod tokens;
mod webhooks;
pub mod worker;

use std::sync::Arc;

use agentyard_core::agent::{Agent, AgentStatus};
use agentyard_core::api::{
    AckRequest, AckResponse, AgentList, BatchCreateResponse, ClaimRequest, ClaimResponse, CompleteItem,
    CompleteManyResponse, CompleteRequest, CreateTaskRequest, FailRequest, HeartbeatRequest, InboxResponse, Limit,
    LimitList, LimitRequest, QueueList, QueueStats, RegisterAgentRequest, ReleaseRequest, RemovedAgent,
    SendMessageRequest, Subscriptions, TaskPage, TopicList, UpdateTaskRequest,
};
use agentyard_core::message::{Message, TopicName};
use agentyard_core::{AgentName, Namespace, QueueName, Task, TaskId, TaskStatus};
use reqwest::header::{HeaderValue, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use agentyard_core::api::Health;
pub use error::{ClientError, Problem, kinds};
pub use events::{EventQuery, EventStream};
pub use sse::InboxStream;

/// The header naming the namespace of a request.
pub const NAMESPACE_HEADER: &str = "agentyard-namespace";

/// The outcome of sending one message.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    pub message: Message,
    /// False when the `idempotency_key` was seen before: `message` is the original.
    pub created: bool,
}

/// The outcome of creating one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    pub task: Task,
    /// False when the `idempotency_key` was seen before: `task` is the original.
    pub created: bool,
}

#[derive(Deserialize)]
struct RedriveResponse {
    redriven: u64,
}

#[derive(Serialize)]
struct CompleteManyRef<'a> {
    items: &'a [CompleteItem],
}

#[derive(Serialize)]
struct BatchRef<'a> {
    tasks: &'a [CreateTaskRequest],
}

/// `base` with `path` (which may end in `?query`) appended to its own path.
fn join(base: &reqwest::Url, path: &str) -> reqwest::Url {
    let (path, query) = match path.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (path, None),
    };
    let mut url = base.clone();
    let prefix = base.path().trim_end_matches('/');
    if prefix.is_empty() {
        url.set_path(path);
    } else {
        url.set_path(&format!("{prefix}{path}"));
    }
    url.set_query(query);
    url
}

/// A connection to one agentyard server, in one namespace.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Arc<str>,
    /// `base` parsed once: a request only swaps in its path and query, so no request parses
    /// (and IDNA-normalizes) the host again, ~6 % of a busy client's CPU. `None` when `base`
    /// does not parse; then every request fails as reqwest reports it.
    parsed: Option<Arc<reqwest::Url>>,
    namespace: Option<HeaderValue>,
    /// `Bearer <token>`, marked sensitive so it never shows in debug output.
    authorization: Option<HeaderValue>,
}

impl Client {
    /// A client of the server at `base_url` (e.g. `http://127.0.0.1:7070`), in the `default`
    /// namespace.
    pub fn new(base_url: impl Into<String>) -> Self {
        Self::with_http(base_url, reqwest::Client::new())
    }

    /// Like [`Client::new`] with a configured `reqwest::Client` (timeouts, pool sizes).
    pub fn with_http(base_url: impl Into<String>, http: reqwest::Client) -> Self {
        let base: String = base_url.into();
        let base = base.trim_end_matches('/');
        Self {
            http,
            base: base.into(),
            parsed: reqwest::Url::parse(base).ok().filter(|u| u.has_host()).map(Arc::new),
            namespace: None,
            authorization: None,
        }
    }

    /// The same server and connection pool, in namespace `ns`.
    pub fn with_namespace(mut self, ns: Namespace) -> Self {
        // Namespace names are visible ASCII by construction.
        self.namespace = HeaderValue::from_str(ns.as_str()).ok();
        self
    }

    /// The same client, sending `token` (`ayt_…`) as `Authorization: Bearer` on every request:
    /// what a server run with `--auth` needs. A token that cannot be a header value (a control
    /// character in it) is an error.
    pub fn with_token(mut self, token: &str) -> Result<Self, ClientError> {
        let mut value =
            HeaderValue::from_str(&format!("Bearer {}", token.trim())).map_err(|_| ClientError::InvalidToken)?;
        value.set_sensitive(true);
        self.authorization = Some(value);
        Ok(self)
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = match &self.parsed {
            Some(base) => self.http.request(method, join(base, path)),
            None => self.http.request(method, format!("{}{path}", self.base)),
        };
        let rb = match &self.authorization {
            Some(auth) => rb.header(reqwest::header::AUTHORIZATION, auth.clone()),
            None => rb,
        };
        match &self.namespace {
            Some(ns) => rb.header(NAMESPACE_HEADER, ns.clone()),
            None => rb,
        }
    }

    async fn call<T: DeserializeOwned>(&self, rb: RequestBuilder) -> Result<T, ClientError> {
        let response = rb.send().await.map_err(ClientError::Transport)?;
        decode(response).await.map(|(_, body)| body)
    }

    /// `GET /health`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.call(self.request(Method::GET, "/health")).await
    }

    /// `GET /health/live`: the process answers.
    pub async fn live(&self) -> Result<Health, ClientError> {
        self.call(self.request(Method::GET, "/health/live")).await
    }

    /// `GET /health/ready`: the server can serve (a 503 error when it cannot).
    pub async fn ready(&self) -> Result<Health, ClientError> {
        self.call(self.request(Method::GET, "/health/ready")).await
    }

    /// `GET /openapi.json`: the server's API description (to learn which routes it has).
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.call(self.request(Method::GET, "/openapi.json")).await
    }

    /// `POST /v1/tasks`: the new task, or the original when its idempotency key was seen.
    pub async fn create_task(&self, req: &CreateTaskRequest) -> Result<Task, ClientError> {
        self.create_task_outcome(req).await.map(|c| c.task)
    }

    /// `POST /v1/tasks`, telling a new task from the original of a repeated idempotency key.
    pub async fn create_task_outcome(&self, req: &CreateTaskRequest) -> Result<Created, ClientError> {
        let rb = self.request(Method::POST, "/v1/tasks").json(req);
        let response = rb.send().await.map_err(ClientError::Transport)?;
        let (status, task) = decode(response).await?;
        Ok(Created {
            task,
            created: status == StatusCode::CREATED,
        })
    }

    /// `POST /v1/tasks/batch`: creates all of `tasks` or none.
    pub async fn create_tasks(&self, tasks: &[CreateTaskRequest]) -> Result<BatchCreateResponse, ClientError> {
        self.call(self.request(Method::POST, "/v1/tasks/batch").json(&BatchRef { tasks }))
            .await
    }

    /// `GET /v1/tasks/{id}`.
    pub async fn get_task(&self, id: TaskId) -> Result<Task, ClientError> {
        self.call(self.request(Method::GET, &format!("/v1/tasks/{id}"))).await
    }

    /// `GET /v1/tasks`: one page; pass its `next_cursor` as `cursor` for the next.
    pub async fn list_tasks(
        &self,
        queue: Option<&QueueName>,
        status: Option<TaskStatus>,
        limit: Option<u32>,
        cursor: Option<&str>,
    ) -> Result<TaskPage, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::with_capacity(4);
        if let Some(q) = queue {
            query.push(("queue", q.to_string()));
        }
        if let Some(s) = status {
            query.push(("status", s.as_str().to_owned()));
        }
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        if let Some(c) = cursor {
            query.push(("cursor", c.to_owned()));
        }
        self.call(self.request(Method::GET, "/v1/tasks").query(&query)).await
    }

    /// `PATCH /v1/tasks/{id}` based on `expected_version` (it overrides `req.expected_version`).
    /// A stale version fails with a 409 [`ClientError::is_version_conflict`]; with `merge`, the
    /// server merges with changes made since instead, where they do not touch the same keys.
    pub async fn update_task(
        &self,
        id: TaskId,
        expected_version: u64,
        req: &UpdateTaskRequest,
        merge: bool,
    ) -> Result<Task, ClientError> {
        let mut path = format!("/v1/tasks/{id}");
        if merge {
            path.push_str("?merge=true");
        }
        let body = UpdateTaskRequest {
            expected_version: Some(expected_version),
            ..req.clone()
        };
        self.call(self.request(Method::PATCH, &path).json(&body)).await
    }

    /// `POST /v1/tasks/{id}/cancel`.
    pub async fn cancel(&self, id: TaskId) -> Result<Task, ClientError> {
        self.call(self.request(Method::POST, &format!("/v1/tasks/{id}/cancel")))
            .await
    }

    /// `POST /v1/tasks/{id}/redrive`: a failed task back to its queue.
    pub async fn redrive(&self, id: TaskId) -> Result<Task, ClientError> {
        self.call(self.request(Method::POST, &format!("/v1/tasks/{id}/redrive")))
            .await
    }

    /// `POST /v1/queues/{queue}/redrive`: every failed task of the queue back to it. Returns how
    /// many went back.
    pub async fn redrive_queue(&self, queue: &QueueName) -> Result<u64, ClientError> {
        let r: RedriveResponse = self
            .call(self.request(Method::POST, &format!("/v1/queues/{queue}/redrive")))
            .await?;
        Ok(r.redriven)
    }

    /// `POST /v1/queues/{queue}/claim`. With `wait_ms`, a long poll: the call returns when a task
    /// was claimed or the wait ran out (then with no tasks).
    pub async fn claim(&self, queue: &QueueName, req: &ClaimRequest) -> Result<ClaimResponse, ClientError> {
        self.call(
            self.request(Method::POST, &format!("/v1/queues/{queue}/claim"))
                .json(req),
        )
        .await
    }

    /// `POST /v1/tasks/{id}/heartbeat`: extends the lease.
    pub async fn heartbeat(&self, id: TaskId, req: &HeartbeatRequest) -> Result<Task, ClientError> {
        self.call(
            self.request(Method::POST, &format!("/v1/tasks/{id}/heartbeat"))
                .json(req),
        )
        .await
    }

    /// `POST /v1/tasks/{id}/complete`.
    pub async fn complete(&self, id: TaskId, req: &CompleteRequest) -> Result<Task, ClientError> {
        self.call(
            self.request(Method::POST, &format!("/v1/tasks/{id}/complete"))
                .json(req),
        )
        .await
    }

    /// `POST /v1/tasks/complete`: finishes many running tasks; each item succeeds or fails alone
    /// (see each outcome's `error`).
    pub async fn complete_many(&self, items: &[CompleteItem]) -> Result<CompleteManyResponse, ClientError> {
        self.call(
            self.request(Method::POST, "/v1/tasks/complete")
                .json(&CompleteManyRef { items }),
        )
        .await
    }

    /// `POST /v1/tasks/{id}/fail`.
    pub async fn fail(&self, id: TaskId, req: &FailRequest) -> Result<Task, ClientError> {
        self.call(self.request(Method::POST, &format!("/v1/tasks/{id}/fail")).json(req))
            .await
    }

    /// `POST /v1/tasks/{id}/release`: gives a running task back untried (its attempt is not
    /// spent), for another agent, or this one later.
    pub async fn release(&self, id: TaskId, req: &ReleaseRequest) -> Result<Task, ClientError> {
        self.call(self.request(Method::POST, &format!("/v1/tasks/{id}/release")).json(req))
            .await
    }

    /// `GET /v1/queues/{queue}`.
    pub async fn queue_stats(&self, queue: &QueueName) -> Result<QueueStats, ClientError> {
        self.call(self.request(Method::GET, &format!("/v1/queues/{queue}")))
            .await
    }

    /// `GET /v1/queues`.
    pub async fn queues(&self) -> Result<QueueList, ClientError> {
        self.call(self.request(Method::GET, "/v1/queues")).await
    }

    /// `PUT /v1/agents/{name}`: registers the agent (or replaces its registration).
    pub async fn register_agent(&self, name: &AgentName, req: &RegisterAgentRequest) -> Result<Agent, ClientError> {
        self.call(self.request(Method::PUT, &format!("/v1/agents/{name}")).json(req))
            .await
    }

    /// `POST /v1/agents/{name}/heartbeat`.
    pub async fn heartbeat_agent(&self, name: &AgentName) -> Result<Agent, ClientError> {
        self.call(self.request(Method::POST, &format!("/v1/agents/{name}/heartbeat")))
            .await
    }

    /// `GET /v1/agents`: every agent of the namespace (or those with `status`), by name, following
    /// the pages to the last.
    pub async fn agents(&self, status: Option<AgentStatus>) -> Result<Vec<Agent>, ClientError> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut rb = self.request(Method::GET, "/v1/agents");
            if let Some(s) = status {
                rb = rb.query(&[("status", s.as_str())]);
            }
            if let Some(c) = &cursor {
                rb = rb.query(&[("cursor", c.as_str()), ("limit", "1000")]);
            } else {
                rb = rb.query(&[("limit", "1000")]);
            }
            let page: AgentList = self.call(rb).await?;
            all.extend(page.agents);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// `GET /v1/agents/{name}`.
    pub async fn agent(&self, name: &AgentName) -> Result<Agent, ClientError> {
        self.call(self.request(Method::GET, &format!("/v1/agents/{name}")))
            .await
    }

    /// `POST /v1/agents/{name}/drain`: it gets no new tasks.
    pub async fn drain_agent(&self, name: &AgentName) -> Result<Agent, ClientError> {
        self.call(self.request(Method::POST, &format!("/v1/agents/{name}/drain")))
            .await
    }

    /// `DELETE /v1/agents/{name}`: removes it; its tasks go back to their queues.
    pub async fn delete_agent(&self, name: &AgentName) -> Result<RemovedAgent, ClientError> {
        self.call(self.request(Method::DELETE, &format!("/v1/agents/{name}")))
            .await
    }

    /// `POST /v1/messages`: the stored message, or the original when its idempotency key was
    /// seen.
    pub async fn send_message(&self, req: &SendMessageRequest) -> Result<Message, ClientError> {
        self.send_message_outcome(req).await.map(|s| s.message)
    }

    /// `POST /v1/messages`, telling a new message from the original of a repeated idempotency
    /// key.
    pub async fn send_message_outcome(&self, req: &SendMessageRequest) -> Result<Sent, ClientError> {
        let response = self
            .request(Method::POST, "/v1/messages")
            .json(req)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        let (status, message) = decode(response).await?;
        Ok(Sent {
            message,
            created: status == StatusCode::CREATED,
        })
    }

    /// `GET /v1/agents/{name}/inbox`: messages after `after` (default: after the acknowledged
    /// cursor), waiting up to `wait_ms` for one when none is there.
    pub async fn inbox(
        &self,
        name: &AgentName,
        after: Option<u64>,
        wait_ms: Option<u64>,
        limit: Option<u32>,
    ) -> Result<InboxResponse, ClientError> {
        let mut query: Vec<(&str, String)> = Vec::with_capacity(3);
        if let Some(a) = after {
            query.push(("after", a.to_string()));
        }
        if let Some(w) = wait_ms {
            query.push(("wait_ms", w.to_string()));
        }
        if let Some(l) = limit {
            query.push(("limit", l.to_string()));
        }
        self.call(
            self.request(Method::GET, &format!("/v1/agents/{name}/inbox"))
                .query(&query),
        )
        .await
    }

    /// `POST /v1/agents/{name}/inbox/ack`: everything up to `cursor` is handled. Returns the
    /// acknowledged cursor (it never moves back).
    pub async fn ack(&self, name: &AgentName, cursor: u64) -> Result<u64, ClientError> {
        let r: AckResponse = self
            .call(
                self.request(Method::POST, &format!("/v1/agents/{name}/inbox/ack"))
                    .json(&AckRequest { cursor }),
            )
            .await?;
        Ok(r.cursor)
    }

    /// `GET /v1/agents/{name}/inbox/stream`: the inbox as Server-Sent Events, after
    /// `last_event_id` (default: after the acknowledged cursor).
    pub async fn inbox_stream(&self, name: &AgentName, last_event_id: Option<u64>) -> Result<InboxStream, ClientError> {
        let mut rb = self
            .request(Method::GET, &format!("/v1/agents/{name}/inbox/stream"))
            .header(reqwest::header::ACCEPT, "text/event-stream");
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id.to_string());
        }
        let response = rb.send().await.map_err(ClientError::Transport)?;
        if !response.status().is_success() {
            return Err(decode::<serde_json::Value>(response)
                .await
                .err()
                .unwrap_or_else(|| ClientError::Decode("an error status with a success body".to_owned())));
        }
        Ok(InboxStream::new(response))
    }

    /// `PUT /v1/agents/{name}/subscriptions/{topic}`: the agent's topics after subscribing.
    pub async fn subscribe(&self, name: &AgentName, topic: &TopicName) -> Result<Subscriptions, ClientError> {
        self.call(self.request(Method::PUT, &format!("/v1/agents/{name}/subscriptions/{topic}")))
            .await
    }

    /// `GET /v1/agents/{name}/subscriptions`: the agent's topics, in name order.
    pub async fn subscriptions(&self, name: &AgentName) -> Result<Vec<TopicName>, ClientError> {
        let list: TopicList = self
            .call(self.request(Method::GET, &format!("/v1/agents/{name}/subscriptions")))
            .await?;
        Ok(list.topics)
    }

    /// `DELETE /v1/agents/{name}/subscriptions/{topic}`.
    pub async fn unsubscribe(&self, name: &AgentName, topic: &TopicName) -> Result<Subscriptions, ClientError> {
        self.call(self.request(Method::DELETE, &format!("/v1/agents/{name}/subscriptions/{topic}")))
            .await
    }

    /// `GET /v1/limits`.
    pub async fn limits(&self) -> Result<Vec<Limit>, ClientError> {
        let list: LimitList = self.call(self.request(Method::GET, "/v1/limits")).await?;
        Ok(list.limits)
    }

    /// `PUT /v1/limits/{key}`: replaces the key's limits.
    pub async fn set_limit(&self, key: &str, req: &LimitRequest) -> Result<Limit, ClientError> {
        let path = format!("/v1/limits/{}", encode_segment(key));
        self.call(self.request(Method::PUT, &path).json(req)).await
    }

    /// `DELETE /v1/limits/{key}`: the key goes back to the defaults (a `not-found` problem when
    /// the namespace set none for it).
    pub async fn delete_limit(&self, key: &str) -> Result<(), ClientError> {
        let path = format!("/v1/limits/{}", encode_segment(key));
        let response = self
            .request(Method::DELETE, &path)
            .send()
            .await
            .map_err(ClientError::Transport)?;
        if response.status().is_success() {
            return Ok(());
        }
        decode::<serde_json::Value>(response).await.map(drop)
    }
}

/// Percent-encodes a free-text path segment (limit keys may hold `/`, spaces, …).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Most of an unexpected error body kept in an error message.
const MAX_ECHO: usize = 512;

async fn decode<T: DeserializeOwned>(response: Response) -> Result<(StatusCode, T), ClientError> {
    let status = response.status();
    let retry_after_secs = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    let bytes = response.bytes().await.map_err(ClientError::Transport)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes)
            .map(|body| (status, body))
            .map_err(|e| ClientError::Decode(format!("{status}: {e}: {}", echo(&bytes))));
    }
    let problem = serde_json::from_slice::<Problem>(&bytes).unwrap_or_else(|_| Problem {
        title: status.canonical_reason().unwrap_or("error").to_owned(),
        status: status.as_u16(),
        detail: echo(&bytes),
        ..Problem::default()
    });
    Err(ClientError::Api {
        status,
        problem: Box::new(problem),
        retry_after_secs,
    })
}

fn echo(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(MAX_ECHO) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problem_bodies_keep_their_known_and_extra_fields() {
        let body = r#"{"type": "/problems/backpressure", "title": "Queue is full", "status": 429,
            "detail": "queue q is full", "queue": "q", "depth": 3, "limit": 3}"#;
        let p: Problem = serde_json::from_str(body).unwrap();
        assert_eq!(p.kind, kinds::BACKPRESSURE);
        assert_eq!(p.extra["depth"], 3);
        let e = ClientError::Api {
            status: StatusCode::TOO_MANY_REQUESTS,
            problem: Box::new(p),
            retry_after_secs: Some(1),
        };
        assert!(e.is_retryable());
        assert_eq!(e.to_string(), "429 Too Many Requests: queue q is full");
    }

    #[test]
    fn long_unexpected_bodies_are_cut() {
        let long = "é".repeat(2 * MAX_ECHO);
        assert_eq!(echo(long.as_bytes()).chars().count(), MAX_ECHO + 1);
        assert_eq!(echo(b"short"), "short");
    }

    #[test]
    fn free_text_segments_are_encoded() {
        assert_eq!(encode_segment("openai"), "openai");
        assert_eq!(encode_segment("repo:acme/web app"), "repo:acme%2Fweb%20app");
    }

    /// The URL a request goes to: the base's scheme, host and path, then the request's path
    /// and query, with encoded segments kept as they are.
    #[test]
    fn requests_go_to_the_base_url_with_their_path() {
        let url = |base: &str, path: &str| {
            let c = Client::new(base);
            c.request(Method::GET, path)
                .build()
                .expect("a request")
                .url()
                .to_string()
        };
        assert_eq!(
            url("http://127.0.0.1:7070", "/v1/tasks"),
            "http://127.0.0.1:7070/v1/tasks"
        );
        assert_eq!(
            url("http://127.0.0.1:7070/", "/v1/tasks?status=queued&limit=5"),
            "http://127.0.0.1:7070/v1/tasks?status=queued&limit=5"
        );
        assert_eq!(
            url("https://yard.example/api/", "/v1/limits/repo:acme%2Fweb%20app"),
            "https://yard.example/api/v1/limits/repo:acme%2Fweb%20app"
        );
        let bad = Client::new("not a url");
        assert!(
            bad.request(Method::GET, "/v1/tasks").build().is_err(),
            "fails as before"
        );
    }

    #[test]
    fn the_base_url_loses_its_trailing_slash() {
        let c = Client::new("http://127.0.0.1:7070/").with_namespace(Namespace::parse("team").unwrap());
        assert_eq!(c.base_url(), "http://127.0.0.1:7070");
    }
}
