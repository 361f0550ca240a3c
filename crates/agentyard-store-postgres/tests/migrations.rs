//! Start-up against the schema: nodes starting at the same moment take turns migrating it, a
//! schema written by a newer agentyard is refused with an error that says so, an older one is
//! brought up to date; and a token row the store did not write is refused, named.

use agentyard_store_postgres::testing::TestSchema;
use agentyard_store_postgres::{PgOptions, PgStore};
use tokio_postgres::NoTls;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_migrate_once_and_all_start() {
    let Some(schema) = TestSchema::create("concurrent start").await else {
        return;
    };
    let mut starts = Vec::new();
    for _ in 0..6 {
        let url = schema.url.clone();
        starts.push(tokio::spawn(async move {
            PgStore::connect(PgOptions::parse(&url).expect("url")).await
        }));
    }
    for s in starts {
        s.await.expect("task").expect("every node starts");
    }
}

#[tokio::test]
async fn a_newer_schema_is_refused_with_a_clear_error() {
    let Some(schema) = TestSchema::create("newer schema").await else {
        return;
    };
    let options = PgOptions::parse(&schema.url).expect("url");
    drop(PgStore::connect(options.clone()).await.expect("first start migrates"));
    let base = std::env::var(agentyard_store_postgres::testing::URL_VAR).expect("set when a schema was made");
    let (client, conn) = tokio_postgres::connect(&base, NoTls).await.expect("connect");
    let driver = tokio::spawn(conn);
    client
        .batch_execute(&format!("UPDATE {}.schema_version SET version = 999", schema.schema()))
        .await
        .expect("pretend a newer agentyard wrote it");
    drop(client);
    let _ = driver.await;
    let err = PgStore::connect(options).await.expect_err("refused").to_string();
    assert!(
        err.contains("999") && err.contains("newer agentyard") && err.contains(schema.schema()),
        "{err}"
    );
}

/// Runs `sql` on the test database itself, beside the store.
async fn raw(sql: &str) {
    let base = std::env::var(agentyard_store_postgres::testing::URL_VAR).expect("set when a schema was made");
    let (client, conn) = tokio_postgres::connect(&base, NoTls).await.expect("connect");
    let driver = tokio::spawn(conn);
    client.batch_execute(sql).await.expect("raw SQL");
    drop(client);
    let _ = driver.await;
}

fn admin_token(id: &str) -> agentyard_store::StoredToken {
    use agentyard_core::auth::{Namespaces, Role, TokenId, TokenInfo};
    agentyard_store::StoredToken {
        info: TokenInfo {
            id: TokenId::parse(id).expect("valid"),
            role: Role::Admin,
            namespaces: Namespaces::All,
            agent: None,
            name: "admin".into(),
            created_at: agentyard_core::Timestamp::from_millis(1_000),
            revoked_at: None,
        },
        secret_hash: [1; 32],
    }
}

/// A schema at version 1 (before tokens) gains their table at start, keeping what it held.
#[tokio::test]
async fn a_schema_from_before_tokens_gains_them_at_start() {
    use agentyard_store::{LimitStore, TokenStore};

    let Some(schema) = TestSchema::create("schema before tokens").await else {
        return;
    };
    let options = PgOptions::parse(&schema.url).expect("url");
    drop(PgStore::connect(options.clone()).await.expect("first start migrates"));
    let s = schema.schema();
    raw(&format!(
        "DROP TABLE {s}.tokens; ALTER TABLE {s}.agents DROP COLUMN implicit; \
         UPDATE {s}.schema_version SET version = 1; \
         INSERT INTO {s}.limits (namespace, key, max_concurrent) VALUES ('default', 'openai', 2)"
    ))
    .await;
    let store = PgStore::connect(options).await.expect("starts and migrates");
    store.create_token(admin_token("admin0000000")).await.expect("create");
    assert_eq!(
        store.list_tokens().await.expect("list"),
        vec![admin_token("admin0000000")]
    );
    assert_eq!(
        store.list_limits().await.expect("limits").len(),
        1,
        "what it held is kept"
    );
}

/// Agents stored before version 3 read as explicit after it: none is removed automatically.
#[tokio::test]
async fn agents_from_before_implicit_agents_are_explicit() {
    use agentyard_core::{AgentName, Namespace, Timestamp};
    use agentyard_store::{AgentOptions, AgentStore};

    let Some(schema) = TestSchema::create("schema before implicit agents").await else {
        return;
    };
    let options = PgOptions::parse(&schema.url).expect("url");
    let (ns, name) = (Namespace::default(), AgentName::parse("old-timer").expect("valid"));
    let store = PgStore::connect(options.clone()).await.expect("first start migrates");
    store
        .touch_agent(&ns, &name, None, AgentOptions::default(), Timestamp::from_millis(0))
        .await
        .expect("touch");
    drop(store);
    let s = schema.schema();
    raw(&format!(
        "ALTER TABLE {s}.agents DROP COLUMN implicit; UPDATE {s}.schema_version SET version = 2"
    ))
    .await;
    let store = PgStore::connect(options).await.expect("starts and migrates");
    assert!(!store.get_agent(&ns, &name).await.expect("kept").implicit);
    store
        .expire_agents(Timestamp::from_millis(60_000), 1_000)
        .await
        .expect("expire");
    assert!(
        store
            .forget_agents(Timestamp::from_millis(60_000), Timestamp::from_millis(60_000), 10)
            .await
            .expect("forget")
            .is_empty()
    );
}

/// A row that does not make a token is an error naming it, never a token made up.
#[tokio::test]
async fn a_damaged_token_row_is_an_error_naming_it() {
    use agentyard_store::TokenStore;

    let Some(schema) = TestSchema::create("damaged token").await else {
        return;
    };
    let store = PgStore::connect(PgOptions::parse(&schema.url).expect("url"))
        .await
        .expect("start");
    let s = schema.schema();
    let id = agentyard_core::auth::TokenId::parse("damaged00000").expect("valid");
    for (column, value) in [
        ("secret_hash", "'\\x0102'::bytea"),
        ("role", "'root'"),
        ("namespaces", "'{}'"),
        ("namespaces", "'{*,a}'"),
        ("agent", "'Bad Name'"),
    ] {
        raw(&format!("DELETE FROM {s}.tokens")).await;
        store.create_token(admin_token("damaged00000")).await.expect("create");
        raw(&format!("UPDATE {s}.tokens SET {column} = {value}")).await;
        let err = store.find_token(&id).await.expect_err("refused");
        assert!(err.to_string().contains("token \"damaged00000\""), "{column}: {err}");
        assert_eq!(err.kind(), "other", "{column}: {err}");
        let err = store.list_tokens().await.expect_err("refused");
        assert!(err.to_string().contains("damaged00000"), "{column}: {err}");
    }
}
