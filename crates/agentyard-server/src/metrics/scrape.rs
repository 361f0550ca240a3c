//! The text of `GET /metrics` (Prometheus text format 0.0.4): the counters, the request metrics,
//! and gauges computed at scrape time from the store (queue depth, oldest ready age, tasks per
//! status, agents per status) and from `/proc` (memory, CPU).
//!
//! The store gauges cover the namespaces the server knows of, as `/health` does: `default`,
//! the configured ones and those of agents it has seen. Their labels are bounded: namespace,
//! queue and status, never a task id or an agent name.

use agentyard_core::agent::AgentStatus;
use agentyard_core::{Namespace, TaskStatus, Timestamp};
use agentyard_store::StoreError;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::{
    AGENTS, COUNTER_HELP, HTTP_REQUEST_DURATION_SECONDS, HTTP_REQUESTS_TOTAL, PROCESS_CPU_SECONDS_TOTAL,
    PROCESS_RESIDENT_MEMORY_BYTES, QUEUE_DEPTH, QUEUE_OLDEST_READY_AGE_SECONDS, STORE_UP, TASKS, TASKS_RUNNING,
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
}

fn gauge_value(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

async fn read_store(s: &AppState, now: Timestamp) -> Result<StoreGauges, StoreError> {
    let mut namespaces = vec![Namespace::default()];
    namespaces.extend(s.config.namespaces.keys().cloned());
    namespaces.extend(s.fleet.presence.namespaces());
    namespaces.sort();
    namespaces.dedup();
    let g = StoreGauges::default();
    for ns in &namespaces {
        for q in s.store.queue_stats(ns, None, now).await? {
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
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the store did not answer; its gauges are left out of this scrape");
            registry.register(STORE_UP, "1 when the store answered this scrape", ConstGauge::new(0i64));
        }
    }
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

/// The encoder adds `_total` to a counter's name, so it is registered without it.
fn counter_base(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}
