//! The backends every case runs on, each test on a fresh store, and `backend_tests!`, which
//! expands a case written once into one test per backend (`lifecycle::a_task_goes_…::sqlite`).
//!
//! A case is an `async fn name(backend: Backend)` that hands the store to
//! [`TestApp::spawn`](crate::TestApp::spawn) (or builds an `AppState` on `backend.store`). To add a
//! backend, write its `async fn x_store() -> Option<Backend>` below and one `@backend` line in the
//! macro's `@case` arm; see the top of `main.rs`.

use std::any::Any;
use std::sync::Arc;

use agentyard_store::{MemoryStore, Yard};
use agentyard_store_log::{LogOptions, LogStore};
use agentyard_store_sqlite::{SqliteOptions, SqliteStore};

/// A fresh, empty store of one backend, and what must outlive it.
pub struct Backend {
    /// As in the test's name: `memory`, `sqlite`, `log`.
    pub name: &'static str,
    pub store: Arc<dyn Yard>,
    /// Whatever must live as long as the store (its temp dir; a database schema to drop); the
    /// `TestApp` keeps it until it is dropped.
    pub guard: Box<dyn Any + Send>,
}

pub async fn memory_store() -> Option<Backend> {
    Some(Backend {
        name: "memory",
        store: Arc::new(MemoryStore::new()),
        guard: Box::new(()),
    })
}

/// A new database file in a temp dir, with the options the server starts with.
pub async fn sqlite_store() -> Option<Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("yard.db"), SqliteOptions::default()).expect("open sqlite");
    Some(Backend {
        name: "sqlite",
        store: Arc::new(store),
        guard: Box::new(dir),
    })
}

/// A new log file in a temp dir, with the options the server starts with.
pub async fn log_store() -> Option<Backend> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LogStore::open(dir.path().join("yard.log"), LogOptions::default()).expect("open log");
    Some(Backend {
        name: "log",
        store: Arc::new(store),
        guard: Box::new(dir),
    })
}

/// Expands each case into a module of the same name with one `#[tokio::test]` per backend, so
/// nextest lists `case::memory`, `case::sqlite`, `case::log`; a backend whose store function
/// answers `None` (a service that is not configured) passes without running the case.
///
/// ```ignore
/// backend_tests!(
///     a_task_goes_from_create_to_complete,
///     #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///     two_hundred_agents_each_receive_exactly_their_messages_in_order_once,
/// );
/// ```
macro_rules! backend_tests {
    (@case [$test:meta] $case:ident) => {
        mod $case {
            backend_tests!(@backend [$test] $case memory crate::backends::memory_store);
            backend_tests!(@backend [$test] $case sqlite crate::backends::sqlite_store);
            backend_tests!(@backend [$test] $case log crate::backends::log_store);
            // A fourth backend is one more line here, e.g.:
            // backend_tests!(@backend [$test] $case postgres crate::backends::postgres_store);
        }
    };
    (@backend [$test:meta] $case:ident $name:ident $open:path) => {
        #[$test]
        async fn $name() {
            if let Some(backend) = $open().await {
                super::$case(backend).await;
            }
        }
    };
    (@default [] $case:ident) => {
        backend_tests!(@case [tokio::test] $case);
    };
    (@default [$test:meta] $case:ident) => {
        backend_tests!(@case [$test] $case);
    };
    ($($(#[$test:meta])? $case:ident),* $(,)?) => {
        $(backend_tests!(@default [$($test)?] $case);)*
    };
}
