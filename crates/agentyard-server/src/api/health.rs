//! Health: `/health` (with the reasons when degraded: a queue or an inbox at 80 % of its limit
//! or more), `/health/live` (the process answers) and `/health/ready` (it can serve: the store
//! answers and it is not shutting down).

use std::sync::Mutex;

use agentyard_core::api::{Health, HealthReason};
use agentyard_core::flow::{DepthLevel, depth_level};
use agentyard_core::{Namespace, Timestamp};
use agentyard_store::StoreError;
use axum::extract::State;

use crate::api::error::{ApiError, Problem};
use crate::api::json::Json;
use crate::auth::Caller;
use crate::state::AppState;

/// How long a verdict of `/health` is reused: probes may come often, and the inbox check reads
/// every agent's depth.
const VERDICT_TTL_MS: u64 = 500;
/// Most agents per namespace whose inbox depth one verdict checks.
const MAX_INBOXES_CHECKED: usize = 1_000;

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
    let mut namespaces = vec![Namespace::default()];
    namespaces.extend(s.config.namespaces.keys().cloned());
    namespaces.extend(s.fleet.presence.namespaces());
    namespaces.sort();
    namespaces.dedup();
    let mut reasons = Vec::new();
    for ns in &namespaces {
        if let Some(limit) = s.config.max_queue_depth {
            for q in s.store.queue_stats(ns, None, now).await? {
                reasons.extend(reason("queue", ns, q.queue.to_string(), q.depth, limit));
            }
        }
        if let Some(limit) = s.config.max_inbox_depth_in(ns) {
            for agent in s.store.list_agents(ns).await?.into_iter().take(MAX_INBOXES_CHECKED) {
                let depth = s.store.inbox_depth(ns, &agent.name, now).await?;
                reasons.extend(reason("inbox", ns, agent.name.to_string(), depth, limit));
            }
        }
    }
    let status = if reasons.is_empty() { "ok" } else { "degraded" };
    Ok(Health {
        status: status.to_owned(),
        reasons,
    })
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
