//! Runs the storage conformance suite against the SQLite backend, one fresh database file each.

use std::sync::Arc;

use agentyard_store::conformance::TestStore;
use agentyard_store::conformance::agents::AgentTestStore;
use agentyard_store::conformance::events::EventTestStore;
use agentyard_store::conformance::limits::LimitTestStore;
use agentyard_store::conformance::tokens::TokenTestStore;
use agentyard_store_sqlite::{SqliteOptions, SqliteStore};

async fn sqlite_store() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("yard.db"), SqliteOptions::default()).expect("open");
    TestStore {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

agentyard_store::conformance_tests!(sqlite_store);

/// Tasks, agents and messages all in the same store, as the server holds it.
async fn sqlite_agent_store() -> AgentTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(dir.path().join("yard.db"), SqliteOptions::default()).expect("open"));
    AgentTestStore {
        tasks: store.clone(),
        agents: store.clone(),
        messages: store,
        _guard: Box::new(dir),
    }
}

mod agents {
    use super::sqlite_agent_store;
    agentyard_store::agent_conformance_tests!(sqlite_agent_store);
}

async fn sqlite_limit_store() -> LimitTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("yard.db"), SqliteOptions::default()).expect("open");
    LimitTestStore {
        limits: Arc::new(store),
        _guard: Box::new(dir),
    }
}

mod limits {
    use super::sqlite_limit_store;
    agentyard_store::limit_conformance_tests!(sqlite_limit_store);
}

async fn sqlite_token_store() -> TokenTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("yard.db"), SqliteOptions::default()).expect("open");
    TokenTestStore {
        tokens: Arc::new(store),
        _guard: Box::new(dir),
    }
}

mod tokens {
    use super::sqlite_token_store;
    agentyard_store::token_conformance_tests!(sqlite_token_store);
}

/// Tasks, agents, messages and limits in one store, seen with its event log.
async fn sqlite_event_store() -> EventTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("yard.db"), SqliteOptions::default()).expect("open");
    EventTestStore {
        store: Arc::new(store),
        _guard: Box::new(dir),
    }
}

mod events {
    use super::sqlite_event_store;
    agentyard_store::event_conformance_tests!(sqlite_event_store);
}
