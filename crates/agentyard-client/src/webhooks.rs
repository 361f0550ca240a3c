//! Webhooks (`/v1/webhooks…`): register, list, inspect and remove them, and read their latest
//! delivery attempts.

use agentyard_core::api::{CreateWebhookRequest, Delivery, DeliveryList, WebhookList, WebhookView};
use reqwest::Method;

use crate::{Client, ClientError};

impl Client {
    /// `POST /v1/webhooks`.
    pub async fn create_webhook(&self, req: &CreateWebhookRequest) -> Result<WebhookView, ClientError> {
        self.call(self.request(Method::POST, "/v1/webhooks").json(req)).await
    }

    /// `GET /v1/webhooks`: the namespace's webhooks with their delivery state.
    pub async fn webhooks(&self) -> Result<Vec<WebhookView>, ClientError> {
        let list: WebhookList = self.call(self.request(Method::GET, "/v1/webhooks")).await?;
        Ok(list.webhooks)
    }

    /// `GET /v1/webhooks/{id}`.
    pub async fn webhook(&self, id: &str) -> Result<WebhookView, ClientError> {
        self.call(self.request(Method::GET, &format!("/v1/webhooks/{id}")))
            .await
    }

    /// `DELETE /v1/webhooks/{id}`.
    pub async fn delete_webhook(&self, id: &str) -> Result<(), ClientError> {
        let response = self
            .request(Method::DELETE, &format!("/v1/webhooks/{id}"))
            .send()
            .await
            .map_err(ClientError::Transport)?;
        if response.status().is_success() {
            return Ok(());
        }
        crate::decode::<serde_json::Value>(response).await.map(drop)
    }

    /// `GET /v1/webhooks/{id}/deliveries`: the latest attempts, newest first.
    pub async fn deliveries(&self, id: &str) -> Result<Vec<Delivery>, ClientError> {
        let list: DeliveryList = self
            .call(self.request(Method::GET, &format!("/v1/webhooks/{id}/deliveries")))
            .await?;
        Ok(list.deliveries)
    }
}
