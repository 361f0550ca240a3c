//! `/v1/queues…`: claiming (with long-poll), bulk redrive of the dead-letter view, queue stats.

use std::time::Duration;

use agentyard_core::agent::AgentStatus;
use agentyard_core::api::{ClaimRequest, ClaimResponse, QueueList, QueueStats, StatusCounts};
use agentyard_store::Claim;
use axum::extract::State;
use serde::{Deserialize, Serialize};

use crate::api::error::{ApiError, Problem};
use crate::api::extract::{JsonBody, Ns, QueueParam};
use crate::api::json::{self, Json};
use crate::api::{agents, release, tasks};
use crate::auth::Caller;
use crate::dispatch::ClaimHooks;
use crate::state::AppState;

/// Failed tasks one store call re-queues during a bulk redrive.
const REDRIVE_BATCH: usize = 1_000;

/// Claim ready tasks of a queue under a lease.
///
/// With `wait_ms`, waits up to that long for a task when none is ready (long-poll) and answers
/// with an empty list when none came. The claim registers its agent if unknown and counts as
/// its heartbeat; a draining agent gets no tasks. Tasks whose `rate_limit_key` has no token
/// left or whose `concurrency_key` is at its limit are held back (see `/v1/limits`).
///
/// With `complete`, the listed running tasks are finished first, each on its own as
/// `POST /v1/tasks/complete` would (outcomes in `completed`), and the claim sees what they
/// freed: a worker's "done, next" in one round trip (and, on SQLite, one transaction). A
/// draining agent's completions are applied too; it just gets no task. Should the request fail
/// after the completions were stored (a store error during the long-poll), sending them again is
/// harmless: completing again under the same lease changes nothing.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/claim", tag = "leases", operation_id = "claim_tasks",
    params(("queue" = String, Path, description = "Queue name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "The claimed tasks, each with its lease (maybe none)", body = ClaimResponse),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The agent is over its API rate (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn claim(
    State(s): State<AppState>,
    caller: Caller,
    Ns(ns): Ns,
    QueueParam(queue): QueueParam,
    JsonBody(mut req): JsonBody<ClaimRequest>,
) -> Result<Json<ClaimResponse>, ApiError> {
    caller.acts_as(&req.agent)?;
    let (max, wait_ms, lease_ms) = req.limits(s.config.default_lease_ms)?;
    let completions = req.take_completions()?;
    let leases: Vec<_> = completions.iter().map(|(id, token, _)| (*id, token)).collect();
    tasks::check_leases(&s, &caller, &ns, &leases).await?;
    let (ids, commands) = tasks::complete_commands(completions);
    let now = s.clock.now();
    agents::admit(&s, &ns, &req.agent, now)?;
    let capabilities = req.capabilities.unwrap_or_default();
    let asked_to_complete = !commands.is_empty();
    // The claim is the agent's sign of life; a draining agent gets nothing new, but still
    // finishes what it asked to.
    if agents::touch(&s, &ns, &req.agent, &capabilities, now).await? == AgentStatus::Draining {
        let completed = if asked_to_complete {
            let outcomes = s.store.apply_many(&ns, commands, now).await?;
            Some(tasks::complete_outcomes(&s, ids, outcomes, now))
        } else {
            None
        };
        return Ok(Json(ClaimResponse {
            tasks: Vec::new(),
            completed,
        }));
    }
    let (gate, hint) = s.fleet.limits.gate(&ns);
    let claim = Claim {
        queue,
        agent: req.agent,
        capabilities,
        max,
        lease_ms,
        gate: Some(gate),
    };
    let _parked = (wait_ms > 0).then(|| s.fleet.park(&ns, &claim.agent));
    // Drained while it waits: the wait ends with nothing.
    let eligible = || s.fleet.presence.status(&ns, &claim.agent) != Some(AgentStatus::Draining);
    let hooks = ClaimHooks {
        gate: hint.as_deref(),
        eligible: Some(&eligible),
    };
    let mut completed = None;
    let mut claimed = Vec::new();
    if asked_to_complete {
        // One store call for both; the long-poll below only if nothing was ready then.
        let (outcomes, now_claimed) = s.store.apply_then_claim(&ns, commands, &claim, now).await?;
        completed = Some(tasks::complete_outcomes(&s, ids, outcomes, now));
        claimed = now_claimed;
    }
    if claimed.is_empty() && (!asked_to_complete || wait_ms > 0) {
        claimed = s
            .dispatch
            .waiters
            .claim_with(
                &*s.store,
                &*s.clock,
                &ns,
                &claim,
                Duration::from_millis(wait_ms),
                s.config.claim_recheck,
                hooks,
            )
            .await?;
    }
    s.dispatch.tasks_changed(&claimed);
    // An answer stops at the answer budget (at least one task); the rest go back untried.
    let (claimed, surplus) = json::split_at_budget(claimed, s.config.answer_budget_bytes);
    if !surplus.is_empty() {
        release::give_back(&s, &ns, surplus).await;
    }
    s.counters.tasks.claimed(&claimed);
    Ok(Json(ClaimResponse {
        tasks: claimed,
        completed,
    }))
}

/// What a bulk redrive did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RedriveResponse {
    /// How many failed tasks went back to the queue.
    pub redriven: u64,
}

/// Send every failed task of the queue back to it, with fresh attempts.
#[utoipa::path(
    post, path = "/v1/queues/{queue}/redrive", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "How many tasks were re-queued", body = RedriveResponse),
        (status = 422, description = "Invalid queue name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn redrive_queue(
    State(s): State<AppState>,
    Ns(ns): Ns,
    QueueParam(queue): QueueParam,
) -> Result<Json<RedriveResponse>, ApiError> {
    let mut redriven = 0u64;
    loop {
        let tasks = s
            .store
            .redrive_failed(&ns, &queue, REDRIVE_BATCH, s.clock.now())
            .await?;
        redriven += tasks.len() as u64;
        s.dispatch.tasks_changed(&tasks);
        if tasks.len() < REDRIVE_BATCH {
            break;
        }
    }
    Ok(Json(RedriveResponse { redriven }))
}

/// Every queue of the namespace with its counts.
#[utoipa::path(
    get, path = "/v1/queues", tag = "queues",
    responses((status = 200, description = "The queues", body = QueueList))
)]
pub async fn list_queues(State(s): State<AppState>, Ns(ns): Ns) -> Result<Json<QueueList>, ApiError> {
    let queues = s.store.queue_stats(&ns, None, s.clock.now()).await?;
    Ok(Json(QueueList { queues }))
}

/// Counts of one queue; all zero for a queue that never held a task.
#[utoipa::path(
    get, path = "/v1/queues/{queue}", tag = "queues",
    params(("queue" = String, Path, description = "Queue name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The queue's counts", body = QueueStats),
        (status = 422, description = "Invalid queue name", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn queue_stats(
    State(s): State<AppState>,
    Ns(ns): Ns,
    QueueParam(queue): QueueParam,
) -> Result<Json<QueueStats>, ApiError> {
    let stats = s.store.queue_stats(&ns, Some(&queue), s.clock.now()).await?;
    let stats = stats.into_iter().find(|q| q.queue == queue).unwrap_or(QueueStats {
        queue,
        counts: StatusCounts::default(),
        depth: 0,
        oldest_ready_at: None,
        oldest_ready_age_ms: None,
    });
    Ok(Json(stats))
}
