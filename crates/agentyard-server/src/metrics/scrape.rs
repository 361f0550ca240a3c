//! The text of `GET /metrics` (Prometheus text format 0.0.4): the counters, the request and task
//! metrics, and gauges computed at scrape time from the store (queue depth, oldest ready age,
//! tasks per status, agents per status, inbox depth, the store's round trip and upkeep, disk
//! free where its files are) and from `/proc` (memory, CPU).
//!
//! The store gauges cover the namespaces the server knows of, as `/health` does: `default`,
//! the configured ones and those of agents it has seen. Their labels are bounded: namespace,
//! queue and status, never a task id or an agent name. Inbox depth costs a read per agent, so
//! it covers the first 1,000 agents of each namespace, as `/health` does.

use agentyard_core::agent::AgentStatus;
use agentyard_core::flow::{DepthLevel, depth_level};
use agentyard_core::{TaskStatus, Timestamp};
use agentyard_store::StoreError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::{
    AGENTS, COUNTER_HELP, HEALTH_DEGRADED_REASONS, HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, INBOX_DEPTH_MAX,
    INBOX_MESSAGES, PROCESS_CPU_SECONDS_TOTAL, PROCESS_RESIDENT_MEMORY_BYTES, QUEUE_DEPTH,
    QUEUE_OLDEST_READY_AGE_SECONDS, STORE_COMMIT_COMMANDS_TOTAL, STORE_COMMIT_GROUPS_TOTAL, STORE_COMPACTIONS_TOTAL,
    STORE_DISK_FREE_BYTES, STORE_ROUND_TRIP_SECONDS, STORE_UP, TASKS, TASKS_RUNNING, counter_base, disk, pressure,
    process,
};
use crate::state::AppState;

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueueLabels {
    namespace: String,
    queue: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    namespace: String,
    queue: String,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NamespaceLabels {
    namespace: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    namespace: String,
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgentLabels {
    namespace: String,
    status: &'static str,
}

/// The gauges read from the store.
#[derive(Default)]
struct StoreGauges {
    depth: Family<QueueLabels, Gauge>,
    oldest_age: Family<QueueLabels, Gauge<f64, AtomicU64>>,
    tasks: Family<TaskLabels, Gauge>,
    running: Family<QueueLabels, Gauge>,
    agents: Family<AgentLabels, Gauge>,
    inbox_messages: Family<NamespaceLabels, Gauge>,
    inbox_depth_max: Family<NamespaceLabels, Gauge>,
    degraded: Family<ReasonLabels, Gauge>,
    round_trip_seconds: f64,
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn read_store(s: &AppState, now: Timestamp) -> Result<StoreGauges, StoreError> {
    let g = StoreGauges {
        round_trip_seconds: pressure::store_round_trip(s).await?.as_secs_f64(),
        ..StoreGauges::default()
    };
    // At 80 % of its limit or more: a reason of `/health`.
    let pressed = |depth: u64, limit: Option<u64>| limit.is_some_and(|l| depth_level(depth, l) != DepthLevel::Ok);
    for ns in &pressure::known_namespaces(s) {
        let reasons = |kind| ReasonLabels {
            namespace: ns.to_string(),
            kind,
        };
        let full_queues = g.degraded.get_or_create(&reasons("queue")).clone();
        for q in s.store.queue_stats(ns, None, now).await? {
            if pressed(q.depth, s.config.max_queue_depth) {
                full_queues.inc();
            }
            let at = QueueLabels {
                namespace: ns.to_string(),
                queue: q.queue.to_string(),
            };
            g.depth.get_or_create(&at).set(gauge_value(q.depth));
            let age_ms = q.oldest_ready_age_ms.unwrap_or(0);
            g.oldest_age.get_or_create(&at).set(age_ms as f64 / 1000.0);
            g.running.get_or_create(&at).set(gauge_value(q.counts.running));
            for status in TaskStatus::ALL {
                let labels = TaskLabels {
                    namespace: at.namespace.clone(),
                    queue: at.queue.clone(),
                    status: status.as_str(),
                };
                g.tasks.get_or_create(&labels).set(gauge_value(q.counts.get(status)));
            }
        }
        let agents = s.store.list_agents(ns).await?;
        for status in [AgentStatus::Active, AgentStatus::Draining, AgentStatus::Gone] {
            let n = agents.iter().filter(|a| a.status == status).count();
            let labels = AgentLabels {
                namespace: ns.to_string(),
                status: status.as_str(),
            };
            g.agents
                .get_or_create(&labels)
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        let inboxes = pressure::inboxes(s, ns, now).await?;
        let labels = NamespaceLabels {
            namespace: ns.to_string(),
        };
        g.inbox_messages.get_or_create(&labels).set(gauge_value(inboxes.total));
        g.inbox_depth_max
            .get_or_create(&labels)
            .set(gauge_value(inboxes.deepest()));
        let limit = s.config.max_inbox_depth_in(ns);
        let full_inboxes = inboxes.depths.iter().filter(|(_, d)| pressed(*d, limit)).count();
        g.degraded
            .get_or_create(&reasons("inbox"))
            .set(gauge_value(full_inboxes as u64));
    }
    Ok(g)
}

/// Renders every metric. A store that does not answer is not an error here: its gauges are
/// left out and `agentyard_store_up` says 0, so the process metrics still arrive in an outage.
pub async fn render(s: &AppState) -> String {
    let now = s.clock.now();
    let mut registry = Registry::default();
    for (name, value) in s.counters.snapshot() {
        let help = COUNTER_HELP.iter().find(|(n, _)| *n == name).map_or("", |(_, h)| *h);
        registry.register(counter_base(name), help, ConstCounter::new(value));
    }
    let http = &s.counters.http;
    registry.register(
        counter_base(HTTP_REQUESTS_TOTAL),
        "Requests answered, by method, route template and status code",
        http.requests.clone(),
    );
    registry.register(
        HTTP_REQUEST_DURATION_SECONDS,
        "Time from a request's arrival to its response's head, by method, route template and status code",
        http.durations.clone(),
    );
    match read_store(s, now).await {
        Ok(g) => {
            registry.register(STORE_UP, "1 when the store answered this scrape", ConstGauge::new(1i64));
            registry.register(QUEUE_DEPTH, "Tasks waiting to run (queued and scheduled)", g.depth);
            registry.register(
                QUEUE_OLDEST_READY_AGE_SECONDS,
                "Age of the oldest claimable task (0 when none is ready)",
                g.oldest_age,
            );
            registry.register(TASKS, "Tasks by status", g.tasks);
            registry.register(TASKS_RUNNING, "Tasks running under a lease", g.running);
            registry.register(AGENTS, "Registered agents by status", g.agents);
            registry.register(
                INBOX_MESSAGES,
                "Unacknowledged messages over the inboxes of the namespace (its first 1000 agents)",
                g.inbox_messages,
            );
            registry.register(
                INBOX_DEPTH_MAX,
                "Unacknowledged messages in the deepest inbox of the namespace (its first 1000 agents)",
                g.inbox_depth_max,
            );
            registry.register(
                HEALTH_DEGRADED_REASONS,
                "Queues and inboxes at 80% of their limit or more: the reasons /health gives for degraded",
                g.degraded,
            );
            registry.register(
                STORE_ROUND_TRIP_SECONDS,
                "Time the store took to answer a small read at this scrape",
                ConstGauge::new(g.round_trip_seconds),
            );
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the store did not answer; its gauges are left out of this scrape");
            registry.register(STORE_UP, "1 when the store answered this scrape", ConstGauge::new(0i64));
        }
    }
    register_storage(s, &mut registry);
    s.counters.tasks.register(&mut registry);
    if let Some(p) = process::read() {
        registry.register(
            PROCESS_RESIDENT_MEMORY_BYTES,
            "Resident memory size in bytes",
            ConstGauge::new(gauge_value(p.resident_bytes)),
        );
        registry.register(
            counter_base(PROCESS_CPU_SECONDS_TOTAL),
            "Total user and system CPU time spent in seconds",
            ConstCounter::new(p.cpu_seconds),
        );
    }
    let mut out = String::with_capacity(16 * 1024);
    if let Err(e) = prometheus_text::encode(&mut out, &registry) {
        // Writing to a String cannot fail; a label encoder could, and then the text is cut short.
        tracing::error!(error = %e, "metrics: cannot encode the metrics");
    }
    out
}

/// What the backend keeps about its own upkeep (each left out where it keeps none), and the disk
/// free where its files are.
fn register_storage(s: &AppState, registry: &mut Registry) {
    let stats = s.store.storage_stats();
    let counters = [
        (
            STORE_COMMIT_GROUPS_TOTAL,
            "Transactions the store's writer committed (SQLite group commit)",
            stats.commit_groups,
        ),
        (
            STORE_COMMIT_COMMANDS_TOTAL,
            "Commands those transactions held; divided by the groups, the mean group size",
            stats.commit_commands,
        ),
        (
            STORE_COMPACTIONS_TOTAL,
            "Compactions of the log store's file",
            stats.compactions,
        ),
    ];
    for (name, help, value) in counters {
        if let Some(v) = value {
            registry.register(counter_base(name), help, ConstCounter::new(v));
        }
    }
    if let Some(space) = stats.directory.as_deref().and_then(disk::read) {
        registry.register(
            STORE_DISK_FREE_BYTES,
            "Free space on the file system holding the store's files",
            ConstGauge::new(gauge_value(space.free_bytes)),
        );
    }
}
