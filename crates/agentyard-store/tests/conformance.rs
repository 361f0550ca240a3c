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
