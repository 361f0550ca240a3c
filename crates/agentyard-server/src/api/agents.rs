//! `/v1/agents…`: registering agents, heartbeats, listing, draining and removing them; and the
//! liveness and rate checks every request in an agent's name goes through.

use agentyard_core::agent::{Agent, AgentStatus};
use agentyard_core::api::{AgentList, RegisterAgentRequest, RemovedAgent};
use agentyard_core::{AgentName, Capability, Namespace, Timestamp};
use agentyard_store::AgentOptions;
use axum::extract::{Query, State};
use serde::Deserialize;

use crate::api::error::{ApiError, Problem};
use crate::api::extract::{AgentParam, JsonBody, Ns};
use crate::api::json::{self, Json};
use crate::api::tasks::{DEFAULT_PAGE, MAX_PAGE};
use crate::state::AppState;

/// Takes a token of the agent's API rate bucket (429 when it has none).
pub fn admit(s: &AppState, ns: &Namespace, agent: &AgentName, now: Timestamp) -> Result<(), ApiError> {
    s.fleet.agent_rates.check(&s.config, ns, agent, now)
}

/// What creating an agent in `ns` must respect: its cap (`--max-agents-per-namespace`).
fn options(s: &AppState, ns: &Namespace) -> AgentOptions {
    AgentOptions {
        max_agents: s.config.max_agents_in(ns),
    }
}

/// A claim's sign of life: registers an unknown agent (with the claim's capabilities), brings a
/// gone one back, and moves the heartbeat — through the store only when the one it has is stale.
/// Returns the agent's status.
pub async fn touch(
    s: &AppState,
    ns: &Namespace,
    name: &AgentName,
    capabilities: &[Capability],
    now: Timestamp,
) -> Result<AgentStatus, ApiError> {
    if let Some(status) = s.fleet.presence.fresh_status(ns, name, now) {
        return Ok(status);
    }
    let caps = (!capabilities.is_empty()).then(|| capabilities.to_vec());
    let agent = s.store.touch_agent(ns, name, caps, options(s, ns), now).await?;
    s.fleet.presence.record(&agent, now);
    Ok(agent.status)
}

/// A registered agent's sign of life (reading its inbox): like [`touch`], but 404 for an agent
/// that never registered.
pub async fn seen(s: &AppState, ns: &Namespace, name: &AgentName, now: Timestamp) -> Result<(), ApiError> {
    if s.fleet.presence.fresh_status(ns, name, now).is_some() {
        return Ok(());
    }
    let agent = s.store.heartbeat_agent(ns, name, now).await?;
    s.fleet.presence.record(&agent, now);
    Ok(())
}

/// Register an agent, or replace its registration.
///
/// The agent becomes `active` (a drained or gone one too) and explicit (`implicit: false`): it is
/// never removed but by `DELETE`. A new agent's inbox starts now: it does not receive broadcasts
/// sent before it registered. A namespace holding its maximum of agents refuses new ones (429).
#[utoipa::path(
    put, path = "/v1/agents/{name}", tag = "agents", operation_id = "register_agent",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    request_body = RegisterAgentRequest,
    responses(
        (status = 200, description = "The agent as registered", body = Agent),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The agent is over its API rate (see Retry-After), or it is new and its \
            namespace holds its maximum of agents (`/problems/too-many-agents`)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn register_agent(
    State(s): State<AppState>,
    Ns(ns): Ns,
    AgentParam(name): AgentParam,
    JsonBody(req): JsonBody<RegisterAgentRequest>,
) -> Result<Json<Agent>, ApiError> {
    let now = s.clock.now();
    admit(&s, &ns, &name, now)?;
    let registration = req.into_registration()?;
    let agent = s
        .store
        .register_agent(&ns, &name, registration, options(&s, &ns), now)
        .await?;
    s.fleet.presence.record(&agent, now);
    Ok(Json(agent))
}

/// Say the agent is alive. One that was `gone` becomes `active` again.
#[utoipa::path(
    post, path = "/v1/agents/{name}/heartbeat", tag = "agents", operation_id = "heartbeat_agent",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The agent", body = Agent),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The agent is over its API rate (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn heartbeat_agent(
    State(s): State<AppState>,
    Ns(ns): Ns,
    AgentParam(name): AgentParam,
) -> Result<Json<Agent>, ApiError> {
    let now = s.clock.now();
    admit(&s, &ns, &name, now)?;
    let agent = s.store.heartbeat_agent(&ns, &name, now).await?;
    s.fleet.presence.record(&agent, now);
    Ok(Json(agent))
}

/// Query of `GET /v1/agents`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListAgentsParams {
    /// Only agents with this status.
    #[param(inline, value_type = Option<AgentStatus>)]
    pub status: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (the last agent name it held).
    #[param(pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")]
    pub cursor: Option<String>,
}

/// The agents of the namespace, by name, with their status and running tasks, a page at a time
/// (at most `limit`, and at most the server's answer budget in bytes).
#[utoipa::path(
    get, path = "/v1/agents", tag = "agents",
    params(ListAgentsParams),
    responses(
        (status = 200, description = "The agents", body = AgentList),
        (status = 422, description = "Invalid parameter", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list_agents(
    State(s): State<AppState>,
    Ns(ns): Ns,
    params: Result<Query<ListAgentsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AgentList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::invalid("query", e.body_text()))?;
    let status = params
        .status
        .map(|st| {
            AgentStatus::parse(&st)
                .ok_or_else(|| ApiError::invalid("status", format!("{st:?}: use active, draining or gone")))
        })
        .transpose()?;
    let limit = match params.limit {
        None => DEFAULT_PAGE,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::invalid("limit", format!("{l:?}: must be a whole number from 1 to {MAX_PAGE}")))?,
    };
    let after = params
        .cursor
        .map(|c| {
            AgentName::parse(c.as_str())
                .map_err(|e| ApiError::invalid("cursor", format!("{c:?} is not a cursor of this list: {e}")))
        })
        .transpose()?;
    let mut agents = s.store.list_agents(&ns).await?;
    agents.retain(|a| status.is_none_or(|st| a.status == st) && after.as_ref().is_none_or(|after| &a.name > after));
    let more = agents.len() > limit;
    agents.truncate(limit);
    let (agents, cut) = json::within_budget(agents, s.config.answer_budget_bytes);
    let next_cursor = if more || cut {
        agents.last().map(|a| a.name.to_string())
    } else {
        None
    };
    Ok(Json(AgentList { agents, next_cursor }))
}

/// One agent.
#[utoipa::path(
    get, path = "/v1/agents/{name}", tag = "agents",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The agent", body = Agent),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The agent is over its API rate (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn get_agent(
    State(s): State<AppState>,
    Ns(ns): Ns,
    AgentParam(name): AgentParam,
) -> Result<Json<Agent>, ApiError> {
    admit(&s, &ns, &name, s.clock.now())?;
    Ok(Json(s.store.get_agent(&ns, &name).await?))
}

/// Drain an agent: it finishes what it holds, and its claims get nothing new until it
/// registers again.
#[utoipa::path(
    post, path = "/v1/agents/{name}/drain", tag = "agents",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The draining agent", body = Agent),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The agent is over its API rate (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn drain_agent(
    State(s): State<AppState>,
    Ns(ns): Ns,
    AgentParam(name): AgentParam,
) -> Result<Json<Agent>, ApiError> {
    let now = s.clock.now();
    admit(&s, &ns, &name, now)?;
    let agent = s.store.drain_agent(&ns, &name, now).await?;
    s.fleet.presence.set_status(&ns, &name, agent.status);
    Ok(Json(agent))
}

/// Remove an agent. The tasks it held go back to their queues at once, to other claimers.
#[utoipa::path(
    delete, path = "/v1/agents/{name}", tag = "agents", operation_id = "remove_agent",
    params(("name" = String, Path, description = "Agent name", pattern = "^[a-z0-9][a-z0-9._-]{0,127}$")),
    responses(
        (status = 200, description = "The removed agent and the tasks it released", body = RemovedAgent),
        (status = 404, description = "No such agent", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "The agent is over its API rate (see Retry-After)", body = Problem,
            content_type = "application/problem+json"),
    )
)]
pub async fn remove_agent(
    State(s): State<AppState>,
    Ns(ns): Ns,
    AgentParam(name): AgentParam,
) -> Result<Json<RemovedAgent>, ApiError> {
    let now = s.clock.now();
    admit(&s, &ns, &name, now)?;
    let released = s.store.delete_agent(&ns, &name, now).await?;
    s.fleet.presence.forget(&ns, &name);
    s.dispatch.tasks_changed(&released);
    s.counters.tasks.lease_revoked(&released);
    Ok(Json(RemovedAgent {
        agent: name,
        released: released.iter().map(|t| t.id).collect(),
    }))
}
