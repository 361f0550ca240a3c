//! Runs the storage conformance suite against the PostgreSQL backend, one fresh schema each, on
//! the database named by `AGENTYARD_TEST_POSTGRES_URL` (skipped when unset).

use std::sync::Arc;

use agentyard_store::conformance::TestStore;
use agentyard_store::conformance::agents::AgentTestStore;
use agentyard_store_postgres::testing::TestSchema;
use agentyard_store_postgres::{PgOptions, PgStore};

async fn open(test: &str) -> Option<(Arc<PgStore>, TestSchema)> {
    let schema = TestSchema::create(test).await?;
    let options = PgOptions::parse(&schema.url).expect("test URL");
    let store = PgStore::connect(options).await.expect("connect to the test database");
    Some((Arc::new(store), schema))
}

async fn pg_store() -> Option<TestStore> {
    let (store, schema) = open("conformance").await?;
    Some(TestStore {
        store,
        _guard: Box::new(schema),
    })
}

agentyard_store::conformance_tests!(optional pg_store);

async fn pg_agent_store() -> Option<AgentTestStore> {
    let (store, schema) = open("agent conformance").await?;
    Some(AgentTestStore {
        tasks: store.clone(),
        agents: store.clone(),
        messages: store,
        _guard: Box::new(schema),
    })
}

mod agents {
    use super::pg_agent_store;
    agentyard_store::agent_conformance_tests!(optional pg_agent_store);
}

async fn pg_limit_store() -> Option<agentyard_store::conformance::limits::LimitTestStore> {
    let (store, schema) = open("limit conformance").await?;
    Some(agentyard_store::conformance::limits::LimitTestStore {
        limits: store,
        _guard: Box::new(schema),
    })
}

mod limits {
    use super::pg_limit_store;
    agentyard_store::limit_conformance_tests!(optional pg_limit_store);
}

async fn pg_token_store() -> Option<agentyard_store::conformance::tokens::TokenTestStore> {
    let (store, schema) = open("token conformance").await?;
    Some(agentyard_store::conformance::tokens::TokenTestStore {
        tokens: store,
        _guard: Box::new(schema),
    })
}

mod tokens {
    use super::pg_token_store;
    agentyard_store::token_conformance_tests!(optional pg_token_store);
}

async fn pg_webhook_store() -> Option<agentyard_store::conformance::webhooks::WebhookTestStore> {
    let (store, schema) = open("webhook conformance").await?;
    Some(agentyard_store::conformance::webhooks::WebhookTestStore {
        webhooks: store,
        _guard: Box::new(schema),
    })
}

mod webhooks {
    use super::pg_webhook_store;
    agentyard_store::webhook_conformance_tests!(optional pg_webhook_store);
}

async fn pg_event_store() -> Option<agentyard_store::conformance::events::EventTestStore> {
    let (store, schema) = open("event conformance").await?;
    Some(agentyard_store::conformance::events::EventTestStore {
        store,
        _guard: Box::new(schema),
    })
}

mod events {
    use super::pg_event_store;
    agentyard_store::event_conformance_tests!(optional pg_event_store);
}

async fn pg_retention_store() -> Option<agentyard_store::conformance::retention::RetentionTestStore> {
    let (store, schema) = open("retention conformance").await?;
    Some(agentyard_store::conformance::retention::RetentionTestStore {
        store,
        _guard: Box::new(schema),
    })
}

mod retention {
    use super::pg_retention_store;
    agentyard_store::retention_conformance_tests!(optional pg_retention_store);
}
