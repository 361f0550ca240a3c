//! API tokens on SQLite beyond the conformance cases: they survive closing and reopening the
//! file, and a database from before tokens gains their table when it is opened.

use agentyard_core::auth::{Namespaces, Role, TokenId, TokenInfo};
use agentyard_core::{AgentName, Namespace};
use agentyard_store::{StoredToken, TokenStore};

use super::{at, db, ns, open};

fn id(s: &str) -> TokenId {
    TokenId::parse(s).expect("valid token id")
}

fn agent_token(token_id: &str) -> StoredToken {
    let tenant = Namespace::parse("tenant-b").expect("valid namespace");
    StoredToken {
        info: TokenInfo {
            id: id(token_id),
            role: Role::Agent,
            namespaces: Namespaces::only(vec![tenant, ns()]).expect("two"),
            agent: Some(AgentName::parse("worker-1").expect("valid agent")),
            name: "worker ✓".into(),
            created_at: at(1),
            revoked_at: None,
        },
        secret_hash: std::array::from_fn(|b| 255 - b as u8),
    }
}

fn admin_token(token_id: &str) -> StoredToken {
    StoredToken {
        info: TokenInfo {
            id: id(token_id),
            role: Role::Admin,
            namespaces: Namespaces::All,
            agent: None,
            name: String::new(),
            created_at: at(2),
            revoked_at: None,
        },
        secret_hash: [0; 32],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_closing_and_reopening_the_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    {
        let store = open(&path);
        store.create_token(agent_token("agent0000000")).await.expect("create");
        store.create_token(admin_token("admin0000000")).await.expect("create");
        store
            .revoke_token(&id("agent0000000"), at(5))
            .await
            .expect("revoke")
            .expect("known");
    }
    let store = open(&path);
    let mut revoked = agent_token("agent0000000");
    revoked.info.revoked_at = Some(at(5));
    assert_eq!(
        store.list_tokens().await.expect("list"),
        vec![admin_token("admin0000000"), revoked.clone()]
    );
    assert_eq!(
        store.revoke_token(&id("agent0000000"), at(9)).await.expect("revoke"),
        Some(revoked),
        "the revocation survived, with its first time"
    );
}

/// A database at schema version 4 (before tokens) is brought up to date at open, keeps what it
/// held, and stores tokens from then on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_before_tokens_gains_them_at_open() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    drop(open(&path));
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute_batch(
            "DROP TABLE webhooks; DROP TABLE events; DROP TABLE events_floor; DROP TABLE tokens; DROP INDEX agents_forgettable; ALTER TABLE agents DROP COLUMN implicit; \
             PRAGMA user_version = 4; \
             INSERT INTO limits (namespace, key, max_concurrent) VALUES ('default', 'openai', 2);",
        )
        .expect("back to version 4");
    }
    {
        let store = open(&path);
        store.create_token(admin_token("admin0000000")).await.expect("create");
    }
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, 8);
    let store = open(&path);
    assert_eq!(
        store.list_tokens().await.expect("list"),
        vec![admin_token("admin0000000")]
    );
    let limits = agentyard_store::LimitStore::list_limits(&*store).await.expect("limits");
    assert_eq!(limits.len(), 1, "what it held is kept");
}
