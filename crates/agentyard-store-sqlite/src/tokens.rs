//! The tokens table, and `TokenStore` on SQLite: creating and revoking a token are writer
//! commands, finding and listing go to the reader pool.

use agentyard_core::auth::{Role, TokenId, TokenInfo};
use agentyard_core::{AgentName, Timestamp};
use agentyard_store::record::{namespaces_from_names, namespaces_to_names};
use agentyard_store::{StoreError, StoredToken, TokenStore};
use async_trait::async_trait;
use rusqlite::{Connection, Row, params};

use crate::error::{corrupt_record, sql_error};
use crate::store::SqliteStore;

const FIND: &str = "SELECT id, secret_hash, role, namespaces, agent, name, created_at, revoked_at \
     FROM tokens WHERE id = ?1";

const LIST: &str = "SELECT id, secret_hash, role, namespaces, agent, name, created_at, revoked_at \
     FROM tokens ORDER BY id";

const CREATE: &str = "INSERT INTO tokens (id, secret_hash, role, namespaces, agent, name, created_at, revoked_at) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING";

/// Sets the time of a first revocation only; a token revoked before keeps its time.
const REVOKE: &str = "UPDATE tokens SET revoked_at = COALESCE(revoked_at, ?2) WHERE id = ?1 \
     RETURNING id, secret_hash, role, namespaces, agent, name, created_at, revoked_at";

/// A row as a token; anything in it that does not make one is an error naming the token.
fn decode(row: &Row<'_>) -> Result<StoredToken, StoreError> {
    let raw_id: String = row.get(0).map_err(sql_error)?;
    let record = || format!("token {raw_id:?}");
    let column = |e: rusqlite::Error| corrupt_record(record(), e);
    let hash: Vec<u8> = row.get(1).map_err(column)?;
    let role: String = row.get(2).map_err(column)?;
    let namespaces: String = row.get(3).map_err(column)?;
    let agent: Option<String> = row.get(4).map_err(column)?;
    let name: String = row.get(5).map_err(column)?;
    let created_at: i64 = row.get(6).map_err(column)?;
    let revoked_at: Option<i64> = row.get(7).map_err(column)?;
    let secret_hash = <[u8; 32]>::try_from(hash.as_slice())
        .map_err(|_| corrupt_record(record(), format!("its secret hash is {} bytes, not 32", hash.len())))?;
    let role = Role::parse(&role).ok_or_else(|| corrupt_record(record(), format!("{role:?} is not a role")))?;
    let namespaces = namespaces_from_names(namespaces.split(',')).map_err(|e| corrupt_record(record(), e))?;
    let agent = match agent {
        Some(a) => {
            Some(AgentName::parse(a.as_str()).map_err(|e| corrupt_record(record(), format!("agent {a:?} {e}")))?)
        }
        None => None,
    };
    let id = TokenId::parse(raw_id.as_str()).map_err(|e| corrupt_record(record(), e))?;
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

fn find(conn: &Connection, id: &TokenId) -> Result<Option<StoredToken>, StoreError> {
    let mut stmt = conn.prepare_cached(FIND).map_err(sql_error)?;
    let mut rows = stmt.query([id.as_str()]).map_err(sql_error)?;
    rows.next().map_err(sql_error)?.map(decode).transpose()
}

/// Every token, by id (bytewise, as `MemoryStore` orders them).
fn list(conn: &Connection) -> Result<Vec<StoredToken>, StoreError> {
    let mut stmt = conn.prepare_cached(LIST).map_err(sql_error)?;
    let mut rows = stmt.query([]).map_err(sql_error)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(sql_error)? {
        out.push(decode(row)?);
    }
    Ok(out)
}

fn create(conn: &Connection, token: &StoredToken) -> Result<(), StoreError> {
    let info = &token.info;
    let mut stmt = conn.prepare_cached(CREATE).map_err(sql_error)?;
    let inserted = stmt
        .execute(params![
            info.id.as_str(),
            &token.secret_hash[..],
            info.role.as_str(),
            namespaces_to_names(&info.namespaces).join(","),
            info.agent.as_ref().map(AgentName::as_str),
            info.name,
            info.created_at.as_millis(),
            info.revoked_at.map(Timestamp::as_millis),
        ])
        .map_err(sql_error)?;
    if inserted == 0 {
        return Err(StoreError::Invalid {
            message: format!("token id {} is taken", info.id),
        });
    }
    Ok(())
}

fn revoke(conn: &Connection, id: &TokenId, now: Timestamp) -> Result<Option<StoredToken>, StoreError> {
    let mut stmt = conn.prepare_cached(REVOKE).map_err(sql_error)?;
    let mut rows = stmt.query(params![id.as_str(), now.as_millis()]).map_err(sql_error)?;
    rows.next().map_err(sql_error)?.map(decode).transpose()
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn create_token(&self, token: StoredToken) -> Result<(), StoreError> {
        self.writer.run(move |ctx| create(ctx.conn(), &token)).await
    }

    async fn find_token(&self, id: &TokenId) -> Result<Option<StoredToken>, StoreError> {
        let id = id.clone();
        self.readers.run(move |conn| find(conn, &id)).await
    }

    async fn list_tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        self.readers.run(list).await
    }

    async fn revoke_token(&self, id: &TokenId, now: Timestamp) -> Result<Option<StoredToken>, StoreError> {
        let id = id.clone();
        self.writer.run(move |ctx| revoke(ctx.conn(), &id, now)).await
    }
}

#[cfg(test)]
mod tests {
    use agentyard_core::auth::Namespaces;

    use super::*;
    use crate::migrations::migrate;
    use crate::migrations::plans::plan_of;

    fn db() -> Connection {
        let mut conn = Connection::open_in_memory().expect("open");
        migrate(&mut conn).expect("migrate");
        conn
    }

    fn token(id: &str) -> StoredToken {
        StoredToken {
            info: TokenInfo {
                id: TokenId::parse(id).expect("valid"),
                role: Role::Reader,
                namespaces: Namespaces::All,
                agent: None,
                name: "reader".into(),
                created_at: Timestamp::from_millis(1_000),
                revoked_at: None,
            },
            secret_hash: [7; 32],
        }
    }

    /// A lookup and a revocation go straight to the token's row; the listing reads the table in
    /// id order, with no sort.
    #[test]
    fn token_queries_use_the_primary_key() {
        for sql in [FIND, REVOKE] {
            assert!(plan_of(sql).contains("PRIMARY KEY"), "{}", plan_of(sql));
        }
        assert!(!plan_of(LIST).contains("TEMP B-TREE"), "{}", plan_of(LIST));
    }

    /// The columns hold what the migration says: the role's name, `*` or names joined by commas.
    #[test]
    fn a_token_is_stored_in_plain_columns() {
        let conn = db();
        let mut agent = token("agent0000000");
        agent.info.role = Role::Agent;
        agent.info.namespaces = Namespaces::only(vec![
            agentyard_core::Namespace::parse("b").expect("valid"),
            agentyard_core::Namespace::parse("a").expect("valid"),
        ])
        .expect("two");
        agent.info.agent = Some(AgentName::parse("w-1").expect("valid"));
        create(&conn, &agent).expect("create");
        create(&conn, &token("reader000000")).expect("create");
        let columns: Vec<(String, String, Option<String>)> = conn
            .prepare("SELECT role, namespaces, agent FROM tokens ORDER BY id")
            .expect("prepare")
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .expect("query")
            .collect::<Result<_, _>>()
            .expect("rows");
        assert_eq!(
            columns,
            vec![
                ("agent".into(), "a,b".into(), Some("w-1".into())),
                ("reader".into(), "*".into(), None),
            ]
        );
        assert_eq!(list(&conn).expect("list"), vec![agent, token("reader000000")]);
    }

    /// A row that does not make a token is an error naming it, never a token made up.
    #[test]
    fn a_damaged_row_is_an_error_naming_the_token() {
        for (column, value) in [
            ("secret_hash", "x'0102'"),
            ("secret_hash", "'not a blob'"),
            ("role", "'root'"),
            ("namespaces", "''"),
            ("namespaces", "'*,a'"),
            ("namespaces", "'Tenant'"),
            ("agent", "'Bad Name'"),
            ("created_at", "'yesterday'"),
            ("id", "'not-an-id'"),
        ] {
            let conn = db();
            create(&conn, &token("damaged00000")).expect("create");
            conn.execute(&format!("UPDATE tokens SET {column} = {value}"), [])
                .expect("damage");
            let named = if column == "id" { "not-an-id" } else { "damaged00000" };
            let err = list(&conn).expect_err("refused");
            assert_eq!(err.kind(), "other", "{column}: {err}");
            assert!(
                err.to_string().contains(&format!("token \"{named}\"")),
                "{column}: {err}"
            );
            let id = TokenId::parse("damaged00000").expect("valid");
            if column != "id" {
                let err = find(&conn, &id).expect_err("refused");
                assert!(err.to_string().contains("damaged00000"), "{column}: {err}");
                let err = revoke(&conn, &id, Timestamp::from_millis(5)).expect_err("refused");
                assert!(err.to_string().contains("damaged00000"), "{column}: {err}");
            }
        }
    }

    #[test]
    fn a_taken_id_is_invalid_and_a_revocation_keeps_its_first_time() {
        let conn = db();
        create(&conn, &token("taken0000000")).expect("create");
        let err = create(&conn, &token("taken0000000")).expect_err("taken");
        assert_eq!(err.kind(), "invalid");
        let id = TokenId::parse("taken0000000").expect("valid");
        let first = revoke(&conn, &id, Timestamp::from_millis(5)).expect("revoke");
        let second = revoke(&conn, &id, Timestamp::from_millis(9)).expect("revoke again");
        assert_eq!(first.and_then(|t| t.info.revoked_at), Some(Timestamp::from_millis(5)));
        assert_eq!(second.and_then(|t| t.info.revoked_at), Some(Timestamp::from_millis(5)));
        let unknown = TokenId::parse("none00000000").expect("valid");
        assert_eq!(
            revoke(&conn, &unknown, Timestamp::from_millis(9)).expect("revoke"),
            None
        );
        assert_eq!(find(&conn, &unknown).expect("find"), None);
    }
}
