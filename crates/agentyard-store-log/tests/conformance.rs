//! Runs the storage conformance suite against the log store, one fresh log file each.

use std::sync::Arc;

use agentyard_store::conformance::TestStore;
use agentyard_store::conformance::agents::AgentTestStore;
use agentyard_store::conformance::limits::LimitTestStore;
use agentyard_store::conformance::tokens::TokenTestStore;
use agentyard_store_log::{LogOptions, LogStore};

fn open(dir: &tempfile::TempDir) -> Arc<LogStore> {
    Arc::new(LogStore::open(dir.path().join("yard.log"), LogOptions::default()).expect("open"))
}

async fn log_store() -> TestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    TestStore {
        store: open(&dir),
        _guard: Box::new(dir),
    }
}

agentyard_store::conformance_tests!(log_store);

async fn log_agent_store() -> AgentTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&dir);
    AgentTestStore {
        tasks: store.clone(),
        agents: store.clone(),
        messages: store,
        _guard: Box::new(dir),
    }
}

mod agents {
    use super::log_agent_store;
    agentyard_store::agent_conformance_tests!(log_agent_store);
}

async fn log_limit_store() -> LimitTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    LimitTestStore {
        limits: open(&dir),
        _guard: Box::new(dir),
    }
}

mod limits {
    use super::log_limit_store;
    agentyard_store::limit_conformance_tests!(log_limit_store);
}

async fn log_token_store() -> TokenTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    TokenTestStore {
        tokens: open(&dir),
        _guard: Box::new(dir),
    }
}

mod tokens {
    use super::log_token_store;
    agentyard_store::token_conformance_tests!(log_token_store);
}

async fn log_event_store() -> agentyard_store::conformance::events::EventTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    agentyard_store::conformance::events::EventTestStore {
        store: open(&dir),
        _guard: Box::new(dir),
    }
}

mod events {
    use super::log_event_store;
    agentyard_store::event_conformance_tests!(log_event_store);
}

async fn log_retention_store() -> agentyard_store::conformance::retention::RetentionTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    agentyard_store::conformance::retention::RetentionTestStore {
        store: open(&dir),
        _guard: Box::new(dir),
    }
}

mod retention {
    use super::log_retention_store;
    agentyard_store::retention_conformance_tests!(log_retention_store);
}

async fn log_webhook_store() -> agentyard_store::conformance::webhooks::WebhookTestStore {
    let dir = tempfile::tempdir().expect("temp dir");
    agentyard_store::conformance::webhooks::WebhookTestStore {
        webhooks: open(&dir),
        _guard: Box::new(dir),
    }
}

mod webhooks {
    use super::log_webhook_store;
    agentyard_store::webhook_conformance_tests!(log_webhook_store);
}
