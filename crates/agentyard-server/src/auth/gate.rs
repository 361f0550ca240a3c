//! The auth layer: reads the bearer token of every API request, puts the [`Caller`] in the
//! request, and refuses what the token's role may not do (the role table below). Namespaces and
//! agent names in bodies are checked where they are read (the `Ns` extractor, the handlers).

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use agentyard_core::auth::{Grant, Namespaces, Role};

use super::caller::Caller;
use super::secret::Secret;
use crate::api::error::ApiError;
use crate::api::openapi::OPEN_PATHS;
use crate::state::AppState;

/// Authenticates the request (when auth is on) and checks its role against the route.
pub async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if !s.config.auth {
        req.extensions_mut().insert(Caller::Open);
        return next.run(req).await;
    }
    // The route layer runs after routing, so every request here has its matched route.
    let Some(route) = req.extensions().get::<MatchedPath>().cloned() else {
        tracing::error!(path = %req.uri().path(), "the auth layer saw a request with no matched route");
        return ApiError::Internal.into_response();
    };
    let route = route.as_str();
    // Probes and the API's description answer anyone.
    if route == "/openapi.json" || OPEN_PATHS.contains(&route) {
        return next.run(req).await;
    }
    let caller = match caller_of(&s, req.headers()).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let (mut parts, body) = req.into_parts();
    if let Caller::Token { grant, .. } = &caller {
        // Only agent tokens are checked against the `{name}` of a route.
        let name = if grant.role == Role::Agent {
            RawPathParams::from_request_parts(&mut parts, &s)
                .await
                .ok()
                .and_then(|p| p.iter().find(|(k, _)| *k == "name").map(|(_, v)| v.to_owned()))
        } else {
            None
        };
        if let Err(e) = role_permits(grant, &parts.method, route, name.as_deref()) {
            return e.into_response();
        }
    }
    parts.extensions.insert(caller);
    next.run(Request::from_parts(parts, body)).await
}

async fn caller_of(s: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(ApiError::Unauthorized(
            "send a token as \"Authorization: Bearer ayt_…\" (an admin makes one with `agentyard token create`)"
                .to_owned(),
        ));
    };
    let text = value.to_str().unwrap_or("");
    let Some(bearer) = text
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, rest)| rest.trim())
    else {
        return Err(ApiError::Unauthorized(
            "the Authorization header must be \"Bearer <token>\"".to_owned(),
        ));
    };
    let secret = Secret::parse(bearer)
        .map_err(|e| ApiError::Unauthorized(format!("the bearer token is not an agentyard token: {e}")))?;
    let grant = s.tokens.verify(&*s.store, &secret).await?;
    Ok(Caller::Token { id: secret.id, grant })
}

/// The role table. `name` is the `{name}` path parameter of agent routes.
fn role_permits(grant: &Grant, method: &Method, route: &str, name: Option<&str>) -> Result<(), ApiError> {
    let reads = method == Method::GET || method == Method::HEAD;
    // The metrics count every namespace's queues and agents, so they need a token that may see
    // every namespace; its role does not matter (a reader's is enough).
    if route == "/metrics" {
        return match &grant.namespaces {
            Namespaces::All => Ok(()),
            Namespaces::Only(_) => Err(ApiError::Forbidden(format!(
                "/metrics covers every namespace; this token is limited to {}",
                grant.namespaces.describe()
            ))),
        };
    }
    if route.starts_with("/v1/tokens") {
        return match grant.role {
            Role::Admin => Ok(()),
            role => Err(ApiError::Forbidden(format!(
                "only an admin token manages tokens; this one is {role}"
            ))),
        };
    }
    if route.starts_with("/v1/admin/") {
        return match grant.role {
            Role::Admin => Ok(()),
            role => Err(ApiError::Forbidden(format!(
                "{route} works across every namespace: only an admin token may; this one is {role}"
            ))),
        };
    }
    match grant.role {
        Role::Admin | Role::Operator => Ok(()),
        Role::Reader if reads => Ok(()),
        Role::Reader => Err(ApiError::Forbidden(format!(
            "a reader token only reads; {method} {route} changes the yard"
        ))),
        Role::Agent => agent_permits(grant, method, route, name, reads),
    }
}

/// What an `agent` token may do: read, create tasks, send messages, claim, and finish or extend
/// tasks (the handlers check the lease is its own); on `/v1/agents/{name}…`, only as itself
/// (anyone's registration may be read).
fn agent_permits(grant: &Grant, method: &Method, route: &str, name: Option<&str>, reads: bool) -> Result<(), ApiError> {
    let own = grant.agent.as_ref().map_or("", |a| a.as_str());
    if route.starts_with("/v1/agents/{name}") {
        let anyones = reads && route == "/v1/agents/{name}";
        return match name {
            Some(name) if name != own && !anyones => Err(ApiError::Forbidden(format!(
                "this token acts as agent {own}; it may not {method} {route} for agent {name}"
            ))),
            _ => Ok(()),
        };
    }
    let allowed = reads
        || (method == Method::POST
            && matches!(
                route,
                "/v1/tasks"
                    | "/v1/tasks/batch"
                    | "/v1/tasks/complete"
                    | "/v1/tasks/{id}/heartbeat"
                    | "/v1/tasks/{id}/complete"
                    | "/v1/tasks/{id}/fail"
                    | "/v1/tasks/{id}/release"
                    | "/v1/queues/{queue}/claim"
                    | "/v1/messages"
            ));
    if allowed {
        Ok(())
    } else {
        Err(ApiError::Forbidden(format!(
            "an agent token may create tasks, claim, finish and extend its own tasks, send messages and use its \
             own agent routes; {method} {route} needs an operator token"
        )))
    }
}

#[cfg(test)]
mod tests {
    use agentyard_core::auth::Namespaces;
    use agentyard_core::{AgentName, Namespace};

    use super::*;

    fn grant(role: Role) -> Grant {
        let ns = Namespaces::Only(vec![Namespace::parse("a").expect("valid")]);
        match role {
            Role::Admin => Grant::new(role, Namespaces::All, None),
            Role::Agent => Grant::new(role, ns, Some(AgentName::parse("bot").expect("valid"))),
            _ => Grant::new(role, ns, None),
        }
        .expect("valid grant")
    }

    fn permits(role: Role, method: Method, route: &str, name: Option<&str>) -> bool {
        role_permits(&grant(role), &method, route, name).is_ok()
    }

    #[test]
    fn only_admins_manage_tokens() {
        for role in [Role::Operator, Role::Agent, Role::Reader] {
            assert!(!permits(role, Method::GET, "/v1/tokens", None), "{role}");
            assert!(!permits(role, Method::POST, "/v1/tokens", None), "{role}");
        }
        assert!(permits(Role::Admin, Method::DELETE, "/v1/tokens/{id}", None));
    }

    #[test]
    fn only_admins_prune() {
        for role in [Role::Operator, Role::Agent, Role::Reader] {
            assert!(!permits(role, Method::POST, "/v1/admin/prune", None), "{role}");
        }
        assert!(permits(Role::Admin, Method::POST, "/v1/admin/prune", None));
    }

    #[test]
    fn every_role_reads_the_event_log() {
        for role in [Role::Operator, Role::Agent, Role::Reader] {
            assert!(permits(role, Method::GET, "/v1/events", None), "{role}");
            assert!(permits(role, Method::GET, "/v1/events/stream", None), "{role}");
            assert!(
                permits(role, Method::GET, "/v1/traces/{correlation_id}", None),
                "{role}"
            );
        }
    }

    #[test]
    fn readers_only_read() {
        assert!(permits(Role::Reader, Method::GET, "/v1/tasks", None));
        assert!(permits(Role::Reader, Method::GET, "/v1/agents/{name}/inbox", Some("x")));
        assert!(!permits(Role::Reader, Method::POST, "/v1/tasks", None));
        assert!(!permits(Role::Reader, Method::DELETE, "/v1/limits/{key}", None));
    }

    #[test]
    fn agents_act_as_themselves() {
        assert!(permits(Role::Agent, Method::POST, "/v1/queues/{queue}/claim", None));
        assert!(permits(
            Role::Agent,
            Method::POST,
            "/v1/agents/{name}/heartbeat",
            Some("bot")
        ));
        assert!(!permits(
            Role::Agent,
            Method::POST,
            "/v1/agents/{name}/heartbeat",
            Some("other")
        ));
        assert!(!permits(
            Role::Agent,
            Method::GET,
            "/v1/agents/{name}/inbox",
            Some("other")
        ));
        assert!(permits(Role::Agent, Method::GET, "/v1/agents/{name}", Some("other")));
        assert!(!permits(Role::Agent, Method::PATCH, "/v1/tasks/{id}", None));
        assert!(!permits(Role::Agent, Method::POST, "/v1/tasks/{id}/cancel", None));
        assert!(!permits(Role::Agent, Method::PUT, "/v1/limits/{key}", None));
        assert!(!permits(Role::Agent, Method::POST, "/v1/queues/{queue}/redrive", None));
    }

    /// The health routes are reads any token may make, even one limited to some namespaces: the
    /// handlers show it only its own namespaces' queues, inboxes and reasons. The metrics need a
    /// token of every namespace.
    #[test]
    fn any_token_reads_health_but_metrics_need_every_namespace() {
        for role in [Role::Admin, Role::Operator, Role::Agent, Role::Reader] {
            for route in ["/health", "/health/detailed"] {
                assert!(permits(role, Method::GET, route, None), "{role} {route}");
            }
            assert_eq!(
                permits(role, Method::GET, "/metrics", None),
                role == Role::Admin,
                "{role}"
            );
        }
    }
}
