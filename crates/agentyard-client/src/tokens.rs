//! API tokens (`/v1/tokens…`, admin tokens only).

use agentyard_core::auth::{IssuedToken, NewToken, TokenId, TokenInfo, TokenList};
use reqwest::Method;

use crate::{Client, ClientError};

impl Client {
    /// `POST /v1/tokens`: makes a token; its text is in the answer and nowhere else.
    pub async fn create_token(&self, new: &NewToken) -> Result<IssuedToken, ClientError> {
        self.call(self.request(Method::POST, "/v1/tokens").json(new)).await
    }

    /// `GET /v1/tokens`: every token, never their secrets.
    pub async fn tokens(&self) -> Result<Vec<TokenInfo>, ClientError> {
        let list: TokenList = self.call(self.request(Method::GET, "/v1/tokens")).await?;
        Ok(list.tokens)
    }

    /// `DELETE /v1/tokens/{id}`: revokes a token.
    pub async fn revoke_token(&self, id: &TokenId) -> Result<TokenInfo, ClientError> {
        self.call(self.request(Method::DELETE, &format!("/v1/tokens/{id}")))
            .await
    }
}
