//! API tokens on PostgreSQL: `TokenStore`. Every node reads the same rows; a creation or a
//! revocation tells the other nodes (`Notice::TokensChanged`), so they forget what they cached.

use agentyard_core::auth::{Role, TokenId, TokenInfo};
use agentyard_core::{AgentName, Timestamp};
use agentyard_store::record::{namespaces_from_names, namespaces_to_names};
use agentyard_store::{StoreError, StoredToken, TokenStore};
use async_trait::async_trait;
use tokio_postgres::Row;

use crate::error::{corrupt, pg_error};
use crate::notify::Notice;
use crate::store::{PgStore, write_tx};
use crate::work::{TxResult, Work};

/// Every column of a token, in the order [`decode`] reads them.
const COLUMNS: &str = "id, secret_hash, role, namespaces, agent, name, created_at, revoked_at";

/// A row whose columns are [`COLUMNS`] as a token; anything in it that does not make one is an
/// error naming the token.
fn decode(row: &Row) -> Result<StoredToken, StoreError> {
    let raw_id: String = row.try_get(0).map_err(pg_error)?;
    let record = || format!("token {raw_id:?}");
    let column = |e: tokio_postgres::Error| corrupt(record(), e);
    let hash: Vec<u8> = row.try_get(1).map_err(column)?;
    let role: String = row.try_get(2).map_err(column)?;
    let namespaces: Vec<String> = row.try_get(3).map_err(column)?;
    let agent: Option<String> = row.try_get(4).map_err(column)?;
    let name: String = row.try_get(5).map_err(column)?;
    let created_at: i64 = row.try_get(6).map_err(column)?;
    let revoked_at: Option<i64> = row.try_get(7).map_err(column)?;
    let secret_hash = <[u8; 32]>::try_from(hash.as_slice())
        .map_err(|_| corrupt(record(), format!("its secret hash is {} bytes, not 32", hash.len())))?;
    let role = Role::parse(&role).ok_or_else(|| corrupt(record(), format!("{role:?} is not a role")))?;
    let namespaces = namespaces_from_names(namespaces.iter().map(String::as_str)).map_err(|e| corrupt(record(), e))?;
    let agent = match agent {
        Some(a) => Some(AgentName::parse(a.as_str()).map_err(|e| corrupt(record(), format!("agent {a:?} {e}")))?),
        None => None,
    };
    let id = TokenId::parse(raw_id.as_str()).map_err(|e| corrupt(record(), e))?;
    Ok(StoredToken {
        info: TokenInfo {
            id,
            role,
            namespaces,
            agent,
            name,
            created_at: Timestamp::from_millis(created_at),
            revoked_at: revoked_at.map(Timestamp::from_millis),
        },
        secret_hash,
    })
}

async fn create(w: &mut Work<'_>, token: &StoredToken) -> TxResult<()> {
    let info = &token.info;
    let stmt =
        w.tx.prepare_cached(&format!(
            "INSERT INTO tokens ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING"
        ))
        .await?;
    let inserted =
        w.tx.execute(
            &stmt,
            &[
                &info.id.as_str(),
                &&token.secret_hash[..],
                &info.role.as_str(),
                &namespaces_to_names(&info.namespaces),
                &info.agent.as_ref().map(AgentName::as_str),
                &info.name,
                &info.created_at.as_millis(),
                &info.revoked_at.map(Timestamp::as_millis),
            ],
        )
        .await?;
    if inserted == 0 {
        return Err(StoreError::Invalid {
            message: format!("token id {} is taken", info.id),
        }
        .into());
    }
    w.notify(Notice::TokensChanged);
    Ok(())
}

async fn revoke(w: &mut Work<'_>, id: &TokenId, now: Timestamp) -> TxResult<Option<StoredToken>> {
    // Only a first revocation writes (and tells the other nodes); a later one reads the token.
    let stmt =
        w.tx.prepare_cached(&format!(
            "UPDATE tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING {COLUMNS}"
        ))
        .await?;
    if let Some(row) = w.tx.query_opt(&stmt, &[&id.as_str(), &now.as_millis()]).await? {
        w.notify(Notice::TokensChanged);
        return Ok(Some(decode(&row)?));
    }
    let stmt =
        w.tx.prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
            .await?;
    match w.tx.query_opt(&stmt, &[&id.as_str()]).await? {
        Some(row) => Ok(Some(decode(&row)?)),
        None => Ok(None),
    }
}

#[async_trait]
impl TokenStore for PgStore {
    async fn create_token(&self, token: StoredToken) -> Result<(), StoreError> {
        write_tx!(self, |w| create(&mut w, &token).await)
    }

    async fn find_token(&self, id: &TokenId) -> Result<Option<StoredToken>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens WHERE id = $1"))
            .await
            .map_err(pg_error)?;
        let row = client.query_opt(&stmt, &[&id.as_str()]).await.map_err(pg_error)?;
        row.as_ref().map(decode).transpose()
    }

    async fn list_tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        let client = self.client().await?;
        let stmt = client
            .prepare_cached(&format!("SELECT {COLUMNS} FROM tokens ORDER BY id"))
            .await
            .map_err(pg_error)?;
        let rows = client.query(&stmt, &[]).await.map_err(pg_error)?;
        rows.iter().map(decode).collect()
    }

    async fn revoke_token(&self, id: &TokenId, now: Timestamp) -> Result<Option<StoredToken>, StoreError> {
        write_tx!(self, |w| revoke(&mut w, id, now).await)
    }
}
