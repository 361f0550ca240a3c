//! Storage of keyed dispatch limits set at run time: the `LimitStore` trait. Limits are kept per
//! namespace and survive restarts; with a store shared by several nodes every node sees them.

use agentyard_core::flow::KeyLimit;
use agentyard_core::{Namespace, Timestamp};
use async_trait::async_trait;

use crate::StoreError;

/// One stored limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLimit {
    pub namespace: Namespace,
    pub key: String,
    pub limit: KeyLimit,
}

/// Limits set through the API. Every method is atomic and durable once it returns `Ok`.
#[async_trait]
pub trait LimitStore: Send + Sync + 'static {
    /// Every stored limit of every namespace, by namespace then key.
    async fn list_limits(&self) -> Result<Vec<StoredLimit>, StoreError>;

    /// Sets (replaces) the limits of `key` in the namespace (a `limit.set` event).
    async fn put_limit(&self, ns: &Namespace, key: &str, limit: KeyLimit, now: Timestamp) -> Result<(), StoreError>;

    /// Removes the limits of `key` in the namespace (a `limit.removed` event). Returns false if
    /// it had none.
    async fn delete_limit(&self, ns: &Namespace, key: &str, now: Timestamp) -> Result<bool, StoreError>;
}
