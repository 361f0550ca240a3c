//! Integration tests: the real server on 127.0.0.1:0 with a fresh store, driven through the
//! typed client (and raw HTTP where the client would not send the bad request).
//!
//! Every case runs on every backend, each test on a fresh store: a case is an
//! `async fn case(backend: Backend)` that starts its server with `TestApp::spawn(backend)` (or
//! `spawn_with`, `spawn_with_clock`), and `backend_tests!(case, …)` in its file expands it into
//! `case::memory`, `case::sqlite`, `case::log` and `case::postgres` (see `backends.rs`).
//!
//! `case::postgres` runs on a fresh schema of the database named by `AGENTYARD_TEST_POSTGRES_URL`
//! and skips (saying so) when it is unset.

#[macro_use]
mod backends;

mod agents;
mod auth;
mod backpressure;
mod conflicts;
mod connections;
mod dispatch;
mod errors;
mod events;
mod fleet;
mod health;
mod lifecycle;
mod limits;
mod messages;
mod metrics;
mod openapi;
mod pagination;
mod release;
mod tls;
mod webhooks;
mod worker;

use std::net::SocketAddr;
use std::sync::Arc;

use agentyard_client::{Client, ClientError};
use agentyard_core::api::{ClaimRequest, CreateTaskRequest};
use agentyard_core::{AgentName, Clock, QueueName, SystemClock, Task};
use agentyard_server::{AppState, ServerConfig, startup};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::backends::Backend;

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    /// For requests the typed client would never send.
    pub http: reqwest::Client,
    pub state: AppState,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// The server on `backend`'s fresh store.
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, ServerConfig::default()).await
    }

    pub async fn spawn_with(backend: Backend, config: ServerConfig) -> Self {
        Self::spawn_with_clock(backend, config, Arc::new(SystemClock)).await
    }

    /// A server whose time is `clock` (a `ManualClock` makes heartbeats and TTLs deterministic).
    pub async fn spawn_with_clock(backend: Backend, config: ServerConfig, clock: Arc<dyn Clock>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let state = AppState::new(backend.store, clock, config);
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(startup::run(listener, state.clone(), async move {
            let _ = rx.await;
        }));
        Self {
            addr,
            client: Client::new(format!("http://{addr}")),
            http: reqwest::Client::new(),
            state,
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts the server down gracefully and waits for it.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server result");
        }
    }

    pub async fn create(&self, queue: &str, input: Value) -> Task {
        self.client
            .create_task(&CreateTaskRequest::new(q(queue), input))
            .await
            .expect("create")
    }

    pub async fn claim_one(&self, queue: &str, agent_name: &str) -> Option<Task> {
        let res = self
            .client
            .claim(&q(queue), &ClaimRequest::new(agent(agent_name)))
            .await
            .expect("claim");
        res.tasks.into_iter().next()
    }

    /// Raw request with a JSON body (as text, so it can be broken).
    pub async fn send_raw(&self, method: reqwest::Method, path: &str, body: &str) -> (u16, Value) {
        let r = self
            .http
            .request(method, self.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("send");
        let status = r.status().as_u16();
        let bytes = r.bytes().await.expect("body");
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

pub fn q(name: &str) -> QueueName {
    QueueName::parse(name).expect("queue name")
}

pub fn agent(name: &str) -> AgentName {
    AgentName::parse(name).expect("agent name")
}

/// The problem of an error, panicking on anything else.
pub fn problem(e: &ClientError) -> &agentyard_client::Problem {
    e.problem()
        .unwrap_or_else(|| panic!("expected a problem response, got {e}"))
}

/// Replaces what changes between runs (ids, times, tokens) so a body can be snapshotted.
pub fn redact(mut v: Value) -> Value {
    fn walk(v: &mut Value, key: Option<&str>) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    walk(child, Some(k));
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|c| walk(c, key)),
            Value::String(s) => {
                let redacted = match key {
                    Some("id") => Some("[id]"),
                    Some("token") => Some("[token]"),
                    Some(k) if k.ends_with("_at") => Some("[time]"),
                    _ => None,
                };
                if let Some(r) = redacted {
                    *s = r.to_owned();
                } else if s.contains("01") && s.len() >= 26 {
                    // Task ids inside messages.
                    *s = redact_ids(s);
                }
            }
            _ => {}
        }
    }
    walk(&mut v, None);
    v
}

fn redact_ids(s: &str) -> String {
    s.split(' ')
        .map(|w| {
            let core = w.trim_matches(|c: char| !c.is_ascii_alphanumeric());
            if core.len() == 26 && agentyard_core::TaskId::parse(core).is_ok() {
                w.replace(core, "[id]")
            } else {
                w.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Registers an agent with default settings.
pub async fn register(app: &TestApp, name: &str) -> agentyard_core::agent::Agent {
    app.client
        .register_agent(&agent(name), &Default::default())
        .await
        .expect("register")
}

/// Waits (polling) until `check` holds, failing after `secs` seconds.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("{what}: not within {secs} s");
}

async fn health_answers_ok(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    assert_eq!(app.client.health().await.unwrap().status, "ok");
    assert_eq!(app.client.live().await.unwrap().status, "ok");
    assert_eq!(app.client.ready().await.unwrap().status, "ready");
    app.stop().await;
}

backend_tests!(health_answers_ok);
