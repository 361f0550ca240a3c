//! Token lookups: a presented token's id is looked up in the store (and kept for a few seconds),
//! then its secret's hash is compared in constant time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentyard_core::auth::{Grant, TokenId};
use agentyard_store::{StoredToken, TokenStore};
use subtle::ConstantTimeEq;

use super::secret::Secret;
use crate::api::error::ApiError;

/// How long a looked-up token is reused before the store is asked again: the longest a
/// revocation made on another node can take to apply here when its notice is lost.
pub const TOKEN_TTL: Duration = Duration::from_secs(5);

/// Tokens looked up recently, by id. Only tokens that exist are kept, so it holds at most as
/// many entries as the store has tokens.
#[derive(Default)]
pub struct TokenCache {
    entries: Mutex<HashMap<TokenId, Entry>>,
}

/// A token as looked up, with its grant made once for every request that presents it.
#[derive(Clone)]
struct Entry {
    token: Arc<StoredToken>,
    grant: Arc<Grant>,
    at: Instant,
}

impl TokenCache {
    /// The grant of a presented token; 401 when it is unknown, revoked or its secret is wrong.
    pub async fn verify<T: TokenStore + ?Sized>(&self, store: &T, secret: &Secret) -> Result<Arc<Grant>, ApiError> {
        let Entry { token, grant, .. } = match self.cached(&secret.id) {
            Some(entry) => entry,
            None => {
                let found = store.find_token(&secret.id).await?;
                let Some(token) = found else {
                    return Err(ApiError::Unauthorized(format!("token {} does not exist", secret.id)));
                };
                let entry = Entry {
                    grant: Arc::new(token.info.grant()),
                    token: Arc::new(token),
                    at: Instant::now(),
                };
                self.lock().insert(secret.id.clone(), entry.clone());
                entry
            }
        };
        if !bool::from(token.secret_hash.ct_eq(&secret.hash())) {
            return Err(ApiError::Unauthorized(format!(
                "the secret of token {} is wrong",
                secret.id
            )));
        }
        if let Some(at) = token.info.revoked_at {
            return Err(ApiError::Unauthorized(format!(
                "token {} was revoked at {at}",
                secret.id
            )));
        }
        Ok(grant)
    }

    fn cached(&self, id: &TokenId) -> Option<Entry> {
        let entries = self.lock();
        entries.get(id).filter(|e| e.at.elapsed() < TOKEN_TTL).cloned()
    }

    /// Forgets one token (revoked here).
    pub fn forget(&self, id: &TokenId) {
        self.lock().remove(id);
    }

    /// Forgets every token (another node made or revoked one, or its notices may have been lost).
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<TokenId, Entry>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
