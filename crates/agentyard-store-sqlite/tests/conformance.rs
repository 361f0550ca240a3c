//! Runs the storage conformance suite against the SQLite backend, one fresh database file each.

use std::sync::Arc;

use agentyard_store::conformance::TestStore;
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
