//! Maintenance (`/v1/admin/…`, admin tokens only).

use agentyard_core::api::PruneResult;
use reqwest::Method;

use crate::{Client, ClientError};

impl Client {
    /// `POST /v1/admin/prune`: runs the retention pass now; returns what it deleted.
    pub async fn prune(&self) -> Result<PruneResult, ClientError> {
        self.call(self.request(Method::POST, "/v1/admin/prune")).await
    }
}
