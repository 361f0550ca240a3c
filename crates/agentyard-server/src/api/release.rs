//! Giving tasks back untried: `POST /v1/tasks/{id}/release` for a lease holder that will not run
//! a task after all (shutting down, wrong machine), and a claim answer over the answer budget,
//! whose surplus goes back the same way.

use agentyard_core::api::ReleaseRequest;
use agentyard_core::{Namespace, Task, TaskCommand};
use axum::extract::State;
use axum::response::Response;

use crate::api::error::{ApiError, Problem};
use crate::api::extract::{JsonBody, Ns, TaskIdParam};
use crate::api::tasks::{apply, check_leases};
use crate::auth::Caller;
use crate::state::AppState;

/// Give a running task back untried: it is claimable again (after `delay_ms`), and the attempt
/// its claim counted is not spent.
#[utoipa::path(
    post, path = "/v1/tasks/{id}/release", tag = "leases", operation_id = "release_task",
    params(("id" = String, Path, description = "Task id (a ULID)", pattern = "^[0-9A-HJKMNP-TV-Za-hjkmnp-tv-z]{26}$")),
    request_body = ReleaseRequest,
    responses(
        (status = 200, description = "The task, queued (or scheduled) again", body = Task),
        (status = 404, description = "No such task", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The lease token is not the task's current lease", body = Problem,
            content_type = "application/problem+json"),
        (status = 422, description = "Invalid field", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn release_task(
    State(s): State<AppState>,
    caller: Caller,
    Ns(ns): Ns,
    TaskIdParam(id): TaskIdParam,
    JsonBody(req): JsonBody<ReleaseRequest>,
) -> Result<Response, ApiError> {
    req.check()?;
    check_leases(&s, &caller, &ns, &[(id, &req.lease_token)]).await?;
    let command = TaskCommand::Release {
        token: req.lease_token,
        delay_ms: req.delay_ms.unwrap_or(0),
    };
    apply(&s, &ns, id, command).await
}

/// Gives claimed tasks back untried, for others to claim. A task that cannot be given back keeps
/// its lease until it expires (its attempt then counts), which the log says.
pub(crate) async fn give_back(s: &AppState, ns: &Namespace, tasks: Vec<Task>) {
    let commands: Vec<_> = tasks
        .iter()
        .filter_map(|t| {
            let token = t.lease.as_ref()?.token.clone();
            Some((t.id, TaskCommand::Release { token, delay_ms: 0 }))
        })
        .collect();
    let n = commands.len();
    match s.store.apply_many(ns, commands, s.clock.now()).await {
        Ok(outcomes) => {
            for outcome in outcomes {
                match outcome {
                    Ok(task) => s.dispatch.task_changed(&task),
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot give back a task a claim answer had no room for; its lease will expire")
                    }
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, tasks = n, "cannot give back the tasks a claim answer had no room for; their leases will expire");
        }
    }
}
