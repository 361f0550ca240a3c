//! Making a token: checks what it is asked to allow, draws a fresh secret and stores its hash.
//! Used by `POST /v1/tokens` and by `agentyard token create --store` (the first admin token).

use agentyard_core::Timestamp;
use agentyard_core::api::FieldError;
use agentyard_core::auth::{Grant, IssuedToken, MAX_TOKEN_NAME_LEN, Namespaces, NewToken, Role, TokenInfo};
use agentyard_store::{StoreError, StoredToken, TokenStore};

use super::secret::Secret;

/// Why a token was not made.
#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("{}: {}", .0.field, .0.message)]
    Invalid(FieldError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &str, message: impl Into<String>) -> IssueError {
    IssueError::Invalid(FieldError {
        field: field.to_owned(),
        message: message.into(),
    })
}

/// The grant a request asks for, checked.
pub fn grant_of(new: &NewToken) -> Result<Grant, IssueError> {
    let namespaces = match (&new.namespaces, new.role) {
        (Some(ns), _) => ns.clone(),
        (None, Role::Admin) => Namespaces::All,
        (None, role) => {
            return Err(invalid(
                "namespaces",
                format!("a {role} token names its namespaces, or [\"*\"] for every one"),
            ));
        }
    };
    let field = if new.role == Role::Agent || new.agent.is_some() {
        "agent"
    } else {
        "namespaces"
    };
    Grant::new(new.role, namespaces, new.agent.clone()).map_err(|e| invalid(field, e.to_string()))
}

/// Makes and stores a token; the answer holds its text, which is nowhere else.
pub async fn issue<T: TokenStore + ?Sized>(
    store: &T,
    new: NewToken,
    now: Timestamp,
) -> Result<IssuedToken, IssueError> {
    if new.name.len() > MAX_TOKEN_NAME_LEN {
        return Err(invalid(
            "name",
            format!("is {} bytes long; the limit is {MAX_TOKEN_NAME_LEN}", new.name.len()),
        ));
    }
    if new.name.chars().any(char::is_control) {
        return Err(invalid("name", "must not contain control characters"));
    }
    let grant = grant_of(&new)?;
    // Ids are 60 random bits: a clash is next to impossible, but one is not an error to show.
    let mut attempts = 0;
    loop {
        let secret = Secret::generate();
        let info = TokenInfo {
            id: secret.id.clone(),
            role: grant.role,
            namespaces: grant.namespaces.clone(),
            agent: grant.agent.clone(),
            name: new.name.clone(),
            created_at: now,
            revoked_at: None,
        };
        let stored = StoredToken {
            info: info.clone(),
            secret_hash: secret.hash(),
        };
        match store.create_token(stored).await {
            Ok(()) => {
                return Ok(IssuedToken {
                    token: secret.reveal(),
                    info,
                });
            }
            Err(StoreError::Invalid { .. }) if attempts < 3 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}
