//! Server settings: where to listen, lease defaults, backpressure and body limits, loop pacing,
//! agent liveness, keyed dispatch limits, per-agent API rates, connection timeouts and TLS.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use agentyard_core::Namespace;
use agentyard_core::flow::RateLimit;

pub use crate::http::Tls;

/// Everything the server needs to know besides its store and clock.
/// The default of [`ServerConfig::answer_budget_bytes`]: 8 MiB.
pub const DEFAULT_ANSWER_BUDGET_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Where `agentyard serve` binds (the server itself takes a bound listener).
    pub listen: SocketAddr,
    /// Lease length of a claim or heartbeat that does not name one.
    pub default_lease_ms: u64,
    /// Most waiting (queued + scheduled) tasks one queue may hold; creates beyond it get 429.
    pub max_queue_depth: Option<u64>,
    /// Most unacknowledged messages one inbox may hold; direct sends beyond it get 429.
    pub max_inbox_depth: Option<u64>,
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Bytes of JSON a list answer may hold: a page stops at the item that passes it (keeping at
    /// least one) and gives the cursor of the rest.
    pub answer_budget_bytes: usize,
    /// Longest the timer loop sleeps between checks, even when nothing is due: bounds how late
    /// it notices a change made by another node sharing the store.
    pub timer_max_sleep: Duration,
    /// How often a parked long-poll claimer (or inbox reader) re-checks the store without being
    /// woken: a safety net for wake-ups that happen on another node.
    pub claim_recheck: Duration,
    /// An agent silent for this long is `gone` and its leases are released.
    pub agent_timeout_ms: u64,
    /// An implicit agent (registered by a claim) `gone` for this long is removed, as
    /// `DELETE /v1/agents/{name}` would; 0 keeps them all.
    pub forget_gone_agents_after_ms: u64,
    /// Most agents one namespace may hold: a claim or registration that would create one more
    /// gets 429. `None`: no cap.
    pub max_agents_per_namespace: Option<u64>,
    /// Requests per agent (a claim's `agent`, a message's `from`, an agent route's name);
    /// `None` lets agents call as often as they like.
    pub agent_rate: Option<RateLimit>,
    /// Keyed dispatch limits (a task's `rate_limit_key` / `concurrency_key`) at start-up;
    /// `PUT /v1/limits/{key}` changes them at run time.
    pub limits: BTreeMap<String, LimitConfig>,
    /// Settings that differ by namespace.
    pub namespaces: BTreeMap<Namespace, NamespaceConfig>,
    /// How long history is kept.
    pub retention: RetentionConfig,
    /// How webhooks are delivered.
    pub webhooks: WebhookConfig,
    /// How often an idle Server-Sent-Events stream sends a keep-alive comment.
    pub sse_keep_alive: Duration,
    /// How long a request's headers may take: from accepting the connection (TLS handshake
    /// included) for its first request, from the first byte for later ones. Then it is closed.
    pub header_timeout: Duration,
    /// How long a request body may take to arrive in full once the handler reads it; a slower
    /// one gets 400 and the connection is closed.
    pub body_timeout: Duration,
    /// How long a kept-alive connection may wait for its next request.
    pub idle_timeout: Duration,
    /// Most connections open at once. At the cap, the connection that has waited longest without
    /// a request in progress is closed for a new one; when every one is serving a request, new
    /// ones wait in the listen backlog. Lowered at start to what the descriptor limit allows.
    pub max_connections: usize,
    /// Serve HTTPS with this certificate and key instead of plain HTTP.
    pub tls: Option<Tls>,
    /// Every request but the health probes needs a valid API token (`Authorization: Bearer`).
    pub auth: bool,
}

/// The limits of one key, as configured (see [`KeyLimit`]).
pub type LimitConfig = agentyard_core::flow::KeyLimit;

/// What one namespace does differently.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// Replaces [`ServerConfig::agent_rate`] for its agents: `Some(None)` lifts the limit.
    pub agent_rate: Option<Option<RateLimit>>,
    /// Replaces [`ServerConfig::max_inbox_depth`] for its agents.
    pub max_inbox_depth: Option<u64>,
    /// Replaces [`ServerConfig::max_agents_per_namespace`].
    pub max_agents: Option<u64>,
}

impl ServerConfig {
    /// The API rate of agents of `ns`.
    pub fn agent_rate_in(&self, ns: &Namespace) -> Option<RateLimit> {
        match self.namespaces.get(ns).and_then(|c| c.agent_rate) {
            Some(rate) => rate,
            None => self.agent_rate,
        }
    }

    /// The inbox limit of agents of `ns`.
    pub fn max_inbox_depth_in(&self, ns: &Namespace) -> Option<u64> {
        self.namespaces
            .get(ns)
            .and_then(|c| c.max_inbox_depth)
            .or(self.max_inbox_depth)
    }

    /// The cap on agents of `ns`.
    pub fn max_agents_in(&self, ns: &Namespace) -> Option<u64> {
        self.namespaces
            .get(ns)
            .and_then(|c| c.max_agents)
            .or(self.max_agents_per_namespace)
    }
}

/// How long each kind of history is kept (0: forever), and how often the retention loop runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Succeeded, dead-lettered and cancelled tasks, from when they finished.
    pub finished_tasks_ms: u64,
    /// Events, from when they were logged.
    pub events_ms: u64,
    /// Messages that were acknowledged by everyone they are for, or expired, from when they
    /// were sent.
    pub messages_ms: u64,
    /// Idempotency keys of tasks and messages, from when they were created: after this, the
    /// same key makes a new task or message.
    pub idempotency_keys_ms: u64,
    pub interval: Duration,
}

/// Delivery of webhooks: timeouts, retries and the circuit breaker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    /// Longest a receiver may take to answer one delivery.
    pub timeout: Duration,
    /// The first retry waits this long; each further one twice as long, up to `retry_max`.
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// This many failed attempts in a row pause the webhook (the circuit opens).
    pub breaker_failures: u32,
    /// How long a paused webhook waits before it tries again (doubling while it keeps failing,
    /// up to ten times this).
    pub breaker_cooldown: Duration,
    /// How long a node's right to deliver a webhook lasts without renewal (another node takes
    /// over after it, when this one stopped).
    pub lease: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            lease: Duration::from_secs(30),
        }
    }
}

/// A week: the default age of every kind of history.
pub const WEEK_MS: u64 = 7 * 24 * 3_600_000;

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            finished_tasks_ms: WEEK_MS,
            events_ms: WEEK_MS,
            messages_ms: WEEK_MS,
            idempotency_keys_ms: WEEK_MS,
            interval: Duration::from_secs(60),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            default_lease_ms: 30_000,
            max_queue_depth: Some(1_000_000),
            max_inbox_depth: Some(100_000),
            body_limit_bytes: 1024 * 1024,
            answer_budget_bytes: DEFAULT_ANSWER_BUDGET_BYTES,
            timer_max_sleep: Duration::from_secs(1),
            claim_recheck: Duration::from_secs(1),
            agent_timeout_ms: 30_000,
            forget_gone_agents_after_ms: 86_400_000,
            max_agents_per_namespace: Some(10_000),
            agent_rate: None,
            limits: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            retention: RetentionConfig::default(),
            webhooks: WebhookConfig::default(),
            sse_keep_alive: Duration::from_secs(15),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(120),
            max_connections: 10_000,
            tls: None,
            auth: false,
        }
    }
}
