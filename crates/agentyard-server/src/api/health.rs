//! Health: `/health` (with the reasons when degraded: a queue or an inbox at 80 % of its limit
//! or more), `/health/live` (the process answers), `/health/ready` (it can serve: the store
//! answers and it is not shutting down) and `/health/detailed` (the figures behind the verdict:
//! the store's round trip, disk free where its files are, the process's memory, queue and inbox
//! pressure).

use std::sync::Mutex;

use agentyard_core::api::{Health, HealthReason};
use agentyard_core::flow::{DepthLevel, depth_level};
use agentyard_core::{AgentName, Namespace, QueueName, Timestamp};
use agentyard_store::StoreError;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, Problem};
use crate::api::json::Json;
use crate::auth::Caller;
use crate::metrics::{disk, pressure, process};
use crate::state::AppState;

/// How long a verdict of `/health` is reused: probes may come often, and the inbox check reads
/// every agent's depth.
const VERDICT_TTL_MS: u64 = 500;

/// The last verdict of `/health`.
#[derive(Default)]
pub struct HealthCache {
    last: Mutex<Option<(Timestamp, Health)>>,
}

fn reason(kind: &str, ns: &Namespace, name: String, depth: u64, limit: u64) -> Option<HealthReason> {
    let level = depth_level(depth, limit);
    if level == DepthLevel::Ok {
        return None;
    }
    let percent = depth.saturating_mul(100) / limit.max(1);
    let what = if kind == "queue" {
        format!("queue {ns}/{name} holds {depth} waiting tasks")
    } else {
        format!("inbox of agent {ns}/{name} holds {depth} unacknowledged messages")
    };
    let refusing = if level == DepthLevel::Full {
        "; new ones are refused"
    } else {
        ""
    };
    Some(HealthReason {
        kind: kind.to_owned(),
        namespace: ns.clone(),
        name,
        depth,
        limit,
        detail: format!("{what}, {percent}% of its limit of {limit}{refusing}"),
    })
}

async fn verdict(s: &AppState, now: Timestamp) -> Result<Health, StoreError> {
    let mut reasons = Vec::new();
    for ns in &pressure::known_namespaces(s) {
        if let Some(limit) = s.config.max_queue_depth {
            for q in s.store.queue_stats(ns, None, now).await? {
                reasons.extend(reason("queue", ns, q.queue.to_string(), q.depth, limit));
            }
        }
        if let Some(limit) = s.config.max_inbox_depth_in(ns) {
            for (agent, depth) in pressure::inboxes(s, ns, now).await?.depths {
                reasons.extend(reason("inbox", ns, agent.to_string(), depth, limit));
            }
        }
    }
    Ok(health_of(reasons))
}

fn health_of(reasons: Vec<HealthReason>) -> Health {
    let status = if reasons.is_empty() { "ok" } else { "degraded" };
    Health {
        status: status.to_owned(),
        reasons,
    }
}

/// Is the yard healthy: `ok`, or `degraded` with the queues and inboxes at 80 % of their limit
/// or more (still 200: it serves, but producers should slow down). With `--auth`, a token sees
/// only the reasons of its own namespaces.
#[utoipa::path(
    get, path = "/health", tag = "health",
    responses(
        (status = 200, description = "Serving: `ok` or `degraded` (see `reasons`)", body = Health),
        (status = 503, description = "The store does not answer", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn health(State(s): State<AppState>, caller: Caller) -> Result<Json<Health>, ApiError> {
    let now = s.clock.now();
    let cache = &s.fleet.health;
    let cached = cache
        .last
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .filter(|(at, _)| now.millis_since(*at) < VERDICT_TTL_MS)
        .map(|(_, h)| h.clone());
    let h = match cached {
        Some(h) => h,
        None => {
            let h = verdict(&s, now).await?;
            *cache.last.lock().unwrap_or_else(|e| e.into_inner()) = Some((now, h.clone()));
            h
        }
    };
    Ok(Json(seen_by(h, &caller)))
}

/// The verdict as a caller sees it: only the reasons of namespaces its token covers, so a
/// tenant learns nothing of another's queues or agents (and is `ok` when its own are).
fn seen_by(mut h: Health, caller: &Caller) -> Health {
    h.reasons.retain(|r| caller.may_act_in(&r.namespace).is_ok());
    if h.reasons.is_empty() && h.status == "degraded" {
        h.status = "ok".to_owned();
    }
    h
}

/// Liveness: answers as long as the process runs.
#[utoipa::path(get, path = "/health/live", tag = "health",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
        reasons: Vec::new(),
    })
}

/// Readiness: the store answers and the server is not shutting down.
#[utoipa::path(
    get, path = "/health/ready", tag = "health",
    responses(
        (status = 200, description = "Ready to serve", body = Health),
        (status = 503, description = "Not ready: shutting down, or the store does not answer", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn ready(State(s): State<AppState>) -> Result<Json<Health>, ApiError> {
    if s.dispatch.inboxes.is_closing() {
        return Err(ApiError::Unavailable);
    }
    s.store.next_wakeup().await?;
    Ok(Json(Health {
        status: "ready".to_owned(),
        reasons: Vec::new(),
    }))
}

/// `GET /health/detailed`: the verdict of `/health` with the figures behind it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DetailedHealth {
    /// `ok` or `degraded`, as `/health` answers.
    pub status: String,
    /// What is degraded, as `/health` answers.
    pub reasons: Vec<HealthReason>,
    pub store: StoreHealth,
    /// The file system holding the store's files; absent for a store without local files (memory,
    /// PostgreSQL) or where it cannot be read.
    pub disk: Option<DiskHealth>,
    /// The server process; absent off Linux.
    pub process: Option<ProcessHealth>,
    /// Every queue with waiting or running tasks.
    pub queues: Vec<QueuePressure>,
    /// The inboxes of each namespace.
    pub inboxes: Vec<InboxPressure>,
}

/// How the store answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreHealth {
    /// Time a small read took just now, in milliseconds.
    pub round_trip_ms: f64,
    /// Transactions the writer committed since it opened (SQLite).
    pub commit_groups: Option<u64>,
    /// Commands those transactions held (SQLite); divided by `commit_groups`, the mean group size.
    pub commit_commands: Option<u64>,
    /// Compactions of the log file since it opened (log store).
    pub compactions: Option<u64>,
}

/// Space on the file system holding the store's files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DiskHealth {
    /// Free for the server's user.
    pub free_bytes: u64,
    pub total_bytes: u64,
}

/// The server process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProcessHealth {
    pub resident_bytes: u64,
    /// User and system CPU time since it started.
    pub cpu_seconds: f64,
}

/// How full one queue is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct QueuePressure {
    pub namespace: Namespace,
    #[schema(value_type = String)]
    pub queue: QueueName,
    /// Tasks waiting (queued and scheduled).
    pub depth: u64,
    /// `--max-queue-depth`: creates are refused past it; absent when there is none.
    pub limit: Option<u64>,
    pub running: u64,
    /// Age of the oldest claimable task; absent when none is ready.
    pub oldest_ready_age_ms: Option<u64>,
}

/// How full the inboxes of one namespace are (its first 1,000 agents).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct InboxPressure {
    pub namespace: Namespace,
    /// Agents whose inbox was read.
    pub agents: u64,
    /// Unacknowledged messages over those inboxes.
    pub unacknowledged: u64,
    /// The agent with the deepest inbox; absent when no agent has unacknowledged messages.
    #[schema(value_type = Option<String>)]
    pub deepest_agent: Option<AgentName>,
    pub deepest_depth: u64,
    /// The inbox limit of the namespace; absent when there is none.
    pub limit: Option<u64>,
}

/// The verdict of `/health` with the figures behind it: the store's round trip, disk free where
/// its files are, the process's memory and CPU, each queue's depth and oldest ready age against
/// `--max-queue-depth`, and each namespace's inboxes. Reads every queue and every agent's inbox
/// (the first 1,000 per namespace), so it is for people and dashboards, not for probes. With
/// `--auth`, a token sees only the queues, inboxes and reasons of its own namespaces.
#[utoipa::path(
    get, path = "/health/detailed", tag = "health",
    responses(
        (status = 200, description = "Serving: `ok` or `degraded` (see `reasons`), with the figures", body = DetailedHealth),
        (status = 503, description = "The store does not answer", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn detailed(State(s): State<AppState>, caller: Caller) -> Result<Json<DetailedHealth>, ApiError> {
    let now = s.clock.now();
    let round_trip = pressure::store_round_trip(&s).await?;
    let mut reasons = Vec::new();
    let mut queues = Vec::new();
    let mut inboxes = Vec::new();
    let namespaces = pressure::known_namespaces(&s);
    for ns in namespaces.iter().filter(|ns| caller.may_act_in(ns).is_ok()) {
        let queue_limit = s.config.max_queue_depth;
        for q in s.store.queue_stats(ns, None, now).await? {
            if let Some(limit) = queue_limit {
                reasons.extend(reason("queue", ns, q.queue.to_string(), q.depth, limit));
            }
            if q.depth == 0 && q.counts.running == 0 {
                continue;
            }
            queues.push(QueuePressure {
                namespace: ns.clone(),
                queue: q.queue,
                depth: q.depth,
                limit: queue_limit,
                running: q.counts.running,
                oldest_ready_age_ms: q.oldest_ready_age_ms,
            });
        }
        let inbox_limit = s.config.max_inbox_depth_in(ns);
        let p = pressure::inboxes(&s, ns, now).await?;
        if let Some(limit) = inbox_limit {
            for (agent, depth) in &p.depths {
                reasons.extend(reason("inbox", ns, agent.to_string(), *depth, limit));
            }
        }
        let deepest = p.depths.first().filter(|(_, d)| *d > 0);
        inboxes.push(InboxPressure {
            namespace: ns.clone(),
            agents: p.agents as u64,
            unacknowledged: p.total,
            deepest_agent: deepest.map(|(a, _)| a.clone()),
            deepest_depth: deepest.map_or(0, |(_, d)| *d),
            limit: inbox_limit,
        });
    }
    let stats = s.store.storage_stats();
    let health = health_of(reasons);
    Ok(Json(DetailedHealth {
        status: health.status,
        reasons: health.reasons,
        store: StoreHealth {
            round_trip_ms: round_trip.as_secs_f64() * 1000.0,
            commit_groups: stats.commit_groups,
            commit_commands: stats.commit_commands,
            compactions: stats.compactions,
        },
        disk: stats.directory.as_deref().and_then(disk::read).map(|d| DiskHealth {
            free_bytes: d.free_bytes,
            total_bytes: d.total_bytes,
        }),
        process: process::read().map(|p| ProcessHealth {
            resident_bytes: p.resident_bytes,
            cpu_seconds: p.cpu_seconds,
        }),
        queues,
        inboxes,
    }))
}
