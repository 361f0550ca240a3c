//! Metrics: the counters handlers and loops keep (plain atomics, named by the constants below,
//! `agentyard_<what>_total`), the request metrics ([`requests`]), what happened to tasks per
//! queue ([`tasks`]), and `GET /metrics`'s text ([`scrape`]: gauges such as queue depth are
//! computed when scraped, [`process`] reads the process's memory and CPU).

pub mod disk;
pub mod pressure;
pub mod process;
pub mod requests;
pub mod scrape;
pub mod tasks;

use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::response::Response;

use crate::api::error::ProblemKind;
use crate::state::AppState;

/// Requests refused because their agent was over its API rate (429 `/problems/rate-limited`).
pub const RATE_LIMIT_HITS_TOTAL: &str = "agentyard_rate_limit_hits_total";
/// Tasks passed over by a claim because their `rate_limit_key` had no token left.
pub const DISPATCH_RATE_LIMITED_TOTAL: &str = "agentyard_dispatch_rate_limited_total";
/// Creates or sends refused because a queue or inbox was full (429).
pub const BACKPRESSURE_EVENTS_TOTAL: &str = "agentyard_backpressure_events_total";
/// Messages sent, one per stored message.
pub const MESSAGES_SENT_TOTAL: &str = "agentyard_messages_sent_total";
/// Broadcast deliveries: each broadcast counts the agents of its namespace when it was sent.
pub const BROADCAST_FANOUT_TOTAL: &str = "agentyard_broadcast_fanout_total";
/// Agents marked `gone` for missing their heartbeats.
pub const AGENTS_EXPIRED_TOTAL: &str = "agentyard_agents_expired_total";
/// Implicit agents removed after being `gone` for `--forget-gone-agents-after-ms`.
pub const AGENTS_FORGOTTEN_TOTAL: &str = "agentyard_agents_forgotten_total";
/// Updates refused because the task changed since the version they named (409 version or merge
/// conflict, 412 on `If-Match`).
pub const VERSION_CONFLICTS_TOTAL: &str = "agentyard_version_conflicts_total";
/// History deleted by retention, by kind.
pub const PRUNED_TASKS_TOTAL: &str = "agentyard_pruned_tasks_total";
pub const PRUNED_EVENTS_TOTAL: &str = "agentyard_pruned_events_total";
pub const PRUNED_MESSAGES_TOTAL: &str = "agentyard_pruned_messages_total";
pub const PRUNED_IDEMPOTENCY_KEYS_TOTAL: &str = "agentyard_pruned_idempotency_keys_total";
/// Webhook deliveries a receiver took, attempts that failed, and times a webhook was paused.
pub const WEBHOOK_DELIVERIES_TOTAL: &str = "agentyard_webhook_deliveries_total";
pub const WEBHOOK_FAILURES_TOTAL: &str = "agentyard_webhook_failures_total";
pub const WEBHOOK_PAUSES_TOTAL: &str = "agentyard_webhook_pauses_total";

/// Help text of each counter of [`Counters`], for the metrics endpoint.
pub const COUNTER_HELP: &[(&str, &str)] = &[
    (
        RATE_LIMIT_HITS_TOTAL,
        "Requests refused because their agent was over its API rate",
    ),
    (
        DISPATCH_RATE_LIMITED_TOTAL,
        "Tasks passed over by a claim because their rate_limit_key had no token left",
    ),
    (
        BACKPRESSURE_EVENTS_TOTAL,
        "Creates or sends refused because a queue or an inbox was full",
    ),
    (MESSAGES_SENT_TOTAL, "Messages sent, one per stored message"),
    (
        BROADCAST_FANOUT_TOTAL,
        "Broadcast deliveries: the agents of the namespace of each broadcast",
    ),
    (AGENTS_EXPIRED_TOTAL, "Agents marked gone for missing their heartbeats"),
    (
        AGENTS_FORGOTTEN_TOTAL,
        "Implicit agents removed after being gone for too long",
    ),
    (
        VERSION_CONFLICTS_TOTAL,
        "Updates refused because the task changed since the version they named",
    ),
    (PRUNED_TASKS_TOTAL, "Finished tasks deleted by retention"),
    (PRUNED_EVENTS_TOTAL, "Events deleted by retention"),
    (
        PRUNED_MESSAGES_TOTAL,
        "Acknowledged or expired messages deleted by retention",
    ),
    (PRUNED_IDEMPOTENCY_KEYS_TOTAL, "Idempotency keys freed by retention"),
    (
        WEBHOOK_DELIVERIES_TOTAL,
        "Events a webhook receiver took (answered 2xx), by this node",
    ),
    (
        WEBHOOK_FAILURES_TOTAL,
        "Webhook delivery attempts that failed (no answer in time, or not 2xx)",
    ),
    (
        WEBHOOK_PAUSES_TOTAL,
        "Times a webhook was paused by its circuit breaker after failing again and again",
    ),
];

/// Requests answered, by method, route template and status code.
pub const HTTP_REQUESTS_TOTAL: &str = "agentyard_http_requests_total";
/// Time from a request's arrival to its response's head, by method, route template and status.
pub const HTTP_REQUEST_DURATION_SECONDS: &str = "agentyard_http_request_duration_seconds";
/// Tasks waiting to run (queued + scheduled), per namespace and queue.
pub const QUEUE_DEPTH: &str = "agentyard_queue_depth";
/// Age of the oldest claimable task, per namespace and queue (0 when none is ready).
pub const QUEUE_OLDEST_READY_AGE_SECONDS: &str = "agentyard_queue_oldest_ready_age_seconds";
/// Tasks per namespace, queue and status.
pub const TASKS: &str = "agentyard_tasks";
/// Tasks running (leased), per namespace and queue.
pub const TASKS_RUNNING: &str = "agentyard_tasks_running";
/// Agents per namespace and status.
pub const AGENTS: &str = "agentyard_agents";
/// 1 when the store answered the scrape's queries, 0 when it did not (the store gauges are then
/// left out of that scrape).
pub const STORE_UP: &str = "agentyard_store_up";
/// Per namespace and queue, counted as they happen ([`tasks`]).
pub const TASKS_CREATED_TOTAL: &str = "agentyard_tasks_created_total";
pub const TASKS_CLAIMED_TOTAL: &str = "agentyard_tasks_claimed_total";
pub const TASKS_COMPLETED_TOTAL: &str = "agentyard_tasks_completed_total";
/// Failed attempts agents reported, whether a retry or the dead-letter view followed.
pub const TASKS_FAILED_TOTAL: &str = "agentyard_tasks_failed_total";
/// Attempts that failed (reported, or the lease expired) after which the task waits again.
pub const TASKS_RETRIED_TOTAL: &str = "agentyard_tasks_retried_total";
/// Tasks that ended `failed`: the dead-letter view.
pub const TASKS_DEAD_LETTERED_TOTAL: &str = "agentyard_tasks_dead_lettered_total";
pub const TASKS_LEASE_EXPIRED_TOTAL: &str = "agentyard_tasks_lease_expired_total";
/// Leases released because their agent went `gone` or was removed.
pub const TASKS_LEASE_REVOKED_TOTAL: &str = "agentyard_tasks_lease_revoked_total";
/// Ready (`run_at`) to claimed, per namespace and queue.
pub const TASK_PICKUP_LATENCY_SECONDS: &str = "agentyard_task_pickup_latency_seconds";
/// Claimed to completed or failed, per namespace, queue and outcome.
pub const TASK_RUN_DURATION_SECONDS: &str = "agentyard_task_run_duration_seconds";
/// Unacknowledged messages over the inboxes of a namespace (the first 1,000 agents, as `/health`).
pub const INBOX_MESSAGES: &str = "agentyard_inbox_messages";
/// The deepest inbox of a namespace (same agents).
pub const INBOX_DEPTH_MAX: &str = "agentyard_inbox_depth_max";
/// Queues and inboxes at 80 % of their limit or more, per namespace and kind: each is a reason
/// `/health` gives for `degraded`.
pub const HEALTH_DEGRADED_REASONS: &str = "agentyard_health_degraded_reasons";
/// Seconds the store took to answer a small read at this scrape.
pub const STORE_ROUND_TRIP_SECONDS: &str = "agentyard_store_round_trip_seconds";
/// Transactions the SQLite writer committed, and the commands they held (mean group size is
/// their ratio).
pub const STORE_COMMIT_GROUPS_TOTAL: &str = "agentyard_store_commit_groups_total";
pub const STORE_COMMIT_COMMANDS_TOTAL: &str = "agentyard_store_commit_commands_total";
/// Compactions of the log store's file.
pub const STORE_COMPACTIONS_TOTAL: &str = "agentyard_store_compactions_total";
/// Free space for the server's user on the file system holding the store's files.
pub const STORE_DISK_FREE_BYTES: &str = "agentyard_store_disk_free_bytes";
/// The process's resident memory (Linux only), the conventional name of Prometheus clients.
pub const PROCESS_RESIDENT_MEMORY_BYTES: &str = "process_resident_memory_bytes";
/// CPU time the process used, user and system (Linux only), the conventional name.
pub const PROCESS_CPU_SECONDS_TOTAL: &str = "process_cpu_seconds_total";

/// The counters, shared by handlers and loops.
#[derive(Debug, Default)]
pub struct Counters {
    pub rate_limit_hits: AtomicU64,
    pub dispatch_rate_limited: AtomicU64,
    pub backpressure_events: AtomicU64,
    pub messages_sent: AtomicU64,
    pub broadcast_fanout: AtomicU64,
    pub agents_expired: AtomicU64,
    pub agents_forgotten: AtomicU64,
    pub version_conflicts: AtomicU64,
    pub pruned_tasks: AtomicU64,
    pub pruned_events: AtomicU64,
    pub pruned_messages: AtomicU64,
    pub pruned_idempotency_keys: AtomicU64,
    pub webhook_deliveries: AtomicU64,
    pub webhook_failures: AtomicU64,
    pub webhook_pauses: AtomicU64,
    /// Requests by route and status, with their durations.
    pub http: requests::RequestMetrics,
    /// What happened to tasks, per namespace and queue.
    pub tasks: tasks::TaskMetrics,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Every counter with its metric name.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (RATE_LIMIT_HITS_TOTAL, get(&self.rate_limit_hits)),
            (DISPATCH_RATE_LIMITED_TOTAL, get(&self.dispatch_rate_limited)),
            (BACKPRESSURE_EVENTS_TOTAL, get(&self.backpressure_events)),
            (MESSAGES_SENT_TOTAL, get(&self.messages_sent)),
            (BROADCAST_FANOUT_TOTAL, get(&self.broadcast_fanout)),
            (AGENTS_EXPIRED_TOTAL, get(&self.agents_expired)),
            (AGENTS_FORGOTTEN_TOTAL, get(&self.agents_forgotten)),
            (VERSION_CONFLICTS_TOTAL, get(&self.version_conflicts)),
            (PRUNED_TASKS_TOTAL, get(&self.pruned_tasks)),
            (PRUNED_EVENTS_TOTAL, get(&self.pruned_events)),
            (PRUNED_MESSAGES_TOTAL, get(&self.pruned_messages)),
            (PRUNED_IDEMPOTENCY_KEYS_TOTAL, get(&self.pruned_idempotency_keys)),
            (WEBHOOK_DELIVERIES_TOTAL, get(&self.webhook_deliveries)),
            (WEBHOOK_FAILURES_TOTAL, get(&self.webhook_failures)),
            (WEBHOOK_PAUSES_TOTAL, get(&self.webhook_pauses)),
        ]
    }

    /// Counts what a retention pass deleted.
    pub fn pruned(&self, p: &agentyard_store::Pruned) {
        Self::add(&self.pruned_tasks, p.tasks);
        Self::add(&self.pruned_events, p.events);
        Self::add(&self.pruned_messages, p.messages);
        Self::add(&self.pruned_idempotency_keys, p.idempotency_keys);
    }

    /// The value of one counter by its metric name.
    pub fn get(&self, name: &str) -> Option<u64> {
        self.snapshot().into_iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// Counts refused requests by the problem they were refused with, whichever handler refused
/// them: [`crate::api::ApiError`] marks its responses with their [`ProblemKind`].
pub async fn count_problems(State(s): State<AppState>, response: Response) -> Response {
    if let Some(ProblemKind(kind)) = response.extensions().get::<ProblemKind>() {
        match *kind {
            "/problems/rate-limited" => Counters::add(&s.counters.rate_limit_hits, 1),
            "/problems/backpressure" | "/problems/inbox-full" => {
                Counters::add(&s.counters.backpressure_events, 1);
            }
            "/problems/version-conflict" | "/problems/merge-conflict" | "/problems/precondition-failed" => {
                Counters::add(&s.counters.version_conflicts, 1);
            }
            _ => {}
        }
    }
    response
}

/// The encoder adds `_total` to a counter's name, so it is registered without it.
pub(crate) fn counter_base(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}
