//! Storage of API tokens: the `TokenStore` trait. A token is kept as its public facts and the
//! SHA-256 of its secret, never the secret; with a store shared by several nodes every node sees
//! the same tokens.

use agentyard_core::Timestamp;
use agentyard_core::auth::{TokenId, TokenInfo};
use async_trait::async_trait;

use crate::StoreError;

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub info: TokenInfo,
    /// SHA-256 of the secret part of the token.
    pub secret_hash: [u8; 32],
}

/// API tokens. Every method is atomic and durable once it returns `Ok`.
#[async_trait]
pub trait TokenStore: Send + Sync + 'static {
    /// Stores a new token. `StoreError::Invalid` when its id is taken (ids are random, so the
    /// caller makes another).
    async fn create_token(&self, token: StoredToken) -> Result<(), StoreError>;

    /// The token with this id, revoked or not.
    async fn find_token(&self, id: &TokenId) -> Result<Option<StoredToken>, StoreError>;

    /// Every token, revoked ones included, in id order.
    async fn list_tokens(&self) -> Result<Vec<StoredToken>, StoreError>;

    /// Marks the token revoked at `now` (a token revoked before keeps its first time) and returns
    /// it as stored; `None` for an unknown id.
    async fn revoke_token(&self, id: &TokenId, now: Timestamp) -> Result<Option<StoredToken>, StoreError>;
}
