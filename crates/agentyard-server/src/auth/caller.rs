//! Who is calling: the grant of the request's token (or nobody in particular when auth is off),
//! and the checks handlers make with it beyond the role table of [`super::gate`].

use std::sync::Arc;

use agentyard_core::auth::{Grant, Role, TokenId};
use agentyard_core::{AgentName, LeaseToken, Namespace, Task};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api::error::ApiError;

/// The caller of a request, put in its extensions by [`super::gate::authenticate`].
#[derive(Debug, Clone)]
pub enum Caller {
    /// Authentication is off: every request may do everything.
    Open,
    /// A valid token's holder.
    Token { id: TokenId, grant: Arc<Grant> },
}

impl Caller {
    fn grant(&self) -> Option<&Grant> {
        match self {
            Caller::Open => None,
            Caller::Token { grant, .. } => Some(grant),
        }
    }

    /// The agent name an `agent` token acts as.
    pub fn agent(&self) -> Option<&AgentName> {
        self.grant().and_then(|g| g.agent.as_ref())
    }

    /// 403 unless the token covers the namespace.
    pub fn may_act_in(&self, ns: &Namespace) -> Result<(), ApiError> {
        match self.grant() {
            Some(g) if !g.namespaces.contains(ns) => Err(ApiError::Forbidden(format!(
                "this token covers the namespaces {}, not {ns:?}",
                g.namespaces.describe()
            ))),
            _ => Ok(()),
        }
    }

    /// 403 when an `agent` token acts for another agent name.
    pub fn acts_as(&self, agent: &AgentName) -> Result<(), ApiError> {
        match self.agent() {
            Some(own) if own != agent => Err(ApiError::Forbidden(format!(
                "this token acts as agent {own}, not as {agent}"
            ))),
            _ => Ok(()),
        }
    }

    /// 403 when an `agent` token presents the current lease of a task leased to another agent
    /// (a lease token it should never have had). A lease token that is not the task's current
    /// one is left to the store, which answers the usual lease conflict.
    pub fn may_use_lease(&self, task: &Task, token: &LeaseToken) -> Result<(), ApiError> {
        match (&task.lease, self.agent()) {
            (Some(lease), Some(own)) if &lease.token == token && &lease.agent != own => {
                Err(ApiError::Forbidden(format!(
                    "task {} is leased to agent {}; this token acts as {own}",
                    task.id, lease.agent
                )))
            }
            _ => Ok(()),
        }
    }

    /// True when the caller may see the lease token of a lease held by `holder`: everyone
    /// but readers, and agents other than the holder.
    pub fn sees_lease_of(&self, holder: &AgentName) -> bool {
        match self.grant() {
            None => true,
            Some(g) => match g.role {
                Role::Admin | Role::Operator => true,
                Role::Agent => g.agent.as_ref() == Some(holder),
                Role::Reader => false,
            },
        }
    }

    /// Blanks the lease token of a task the caller may not see it of.
    pub fn redact(&self, task: &mut Task) {
        if let Some(lease) = &mut task.lease
            && !self.sees_lease_of(&lease.agent)
        {
            lease.token = LeaseToken::new("");
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            tracing::error!(path = %parts.uri.path(), "a handler asked for the caller of a route the auth layer does not cover");
            ApiError::Internal
        })
    }
}
