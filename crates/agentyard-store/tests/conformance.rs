//! Runs the storage conformance suite against the in-memory backend.

use std::sync::Arc;

use agentyard_store::MemoryStore;
use agentyard_store::conformance::TestStore;

async fn memory_store() -> TestStore {
    TestStore {
        store: Arc::new(MemoryStore::new()),
        _guard: Box::new(()),
    }
}

agentyard_store::conformance_tests!(memory_store);

async fn memory_agent_store() -> agentyard_store::conformance::agents::AgentTestStore {
    let store = Arc::new(MemoryStore::new());
    agentyard_store::conformance::agents::AgentTestStore {
        tasks: store.clone(),
        agents: store.clone(),
        messages: store,
        _guard: Box::new(()),
    }
}

mod agents {
    use super::memory_agent_store;
    agentyard_store::agent_conformance_tests!(memory_agent_store);
}

async fn memory_limit_store() -> agentyard_store::conformance::limits::LimitTestStore {
    agentyard_store::conformance::limits::LimitTestStore {
        limits: Arc::new(MemoryStore::new()),
        _guard: Box::new(()),
    }
}

mod limits {
    use super::memory_limit_store;
    agentyard_store::limit_conformance_tests!(memory_limit_store);
}

async fn memory_token_store() -> agentyard_store::conformance::tokens::TokenTestStore {
    agentyard_store::conformance::tokens::TokenTestStore {
        tokens: Arc::new(MemoryStore::new()),
        _guard: Box::new(()),
    }
}

mod tokens {
    use super::memory_token_store;
    agentyard_store::token_conformance_tests!(memory_token_store);
}

async fn memory_event_store() -> agentyard_store::conformance::events::EventTestStore {
    agentyard_store::conformance::events::EventTestStore {
        store: Arc::new(MemoryStore::new()),
        _guard: Box::new(()),
    }
}

mod events {
    use super::memory_event_store;
    agentyard_store::event_conformance_tests!(memory_event_store);
}

async fn memory_retention_store() -> agentyard_store::conformance::retention::RetentionTestStore {
    agentyard_store::conformance::retention::RetentionTestStore {
        store: Arc::new(MemoryStore::new()),
        _guard: Box::new(()),
    }
}

mod retention {
    use super::memory_retention_store;
    agentyard_store::retention_conformance_tests!(memory_retention_store);
}

async fn memory_webhook_store() -> agentyard_store::conformance::webhooks::WebhookTestStore {
    agentyard_store::conformance::webhooks::WebhookTestStore {
        webhooks: Arc::new(MemoryStore::new()),
        _guard: Box::new(()),
    }
}

mod webhooks {
    use super::memory_webhook_store;
    agentyard_store::webhook_conformance_tests!(memory_webhook_store);
}
