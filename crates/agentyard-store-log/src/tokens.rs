//! `TokenStore` on the log store: the memory store's, each call answered once its frame (the
//! whole token, as `ChangeRecordV1::Token`) is written.

use agentyard_core::Timestamp;
use agentyard_core::auth::TokenId;
use agentyard_store::{StoreError, StoredToken, TokenStore};
use async_trait::async_trait;

use crate::LogStore;

#[async_trait]
impl TokenStore for LogStore {
    async fn create_token(&self, token: StoredToken) -> Result<(), StoreError> {
        let r = self.mem.create_token(token).await;
        self.durable(r).await
    }

    async fn find_token(&self, id: &TokenId) -> Result<Option<StoredToken>, StoreError> {
        let r = self.mem.find_token(id).await;
        self.durable(r).await
    }

    async fn list_tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        let r = self.mem.list_tokens().await;
        self.durable(r).await
    }

    async fn revoke_token(&self, id: &TokenId, now: Timestamp) -> Result<Option<StoredToken>, StoreError> {
        let r = self.mem.revoke_token(id, now).await;
        self.durable(r).await
    }
}
