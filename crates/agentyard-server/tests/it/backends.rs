//! The backends every case runs on, each test on a fresh store, and `backend_tests!`, which
//! expands a case written once into one test per backend (`lifecycle::a_task_goes_…::sqlite`).
//!
//! A case is an `async fn name(backend: Backend)` that hands the store to
//! [`TestApp::spawn`](crate::TestApp::spawn) (or builds an `AppState` on `backend.store`). To add a
//! backend, write its `async fn x_store() -> Option<(Backend, Guard)>` below and one `@backend`
//! line in the macro's `@case` arm; see the top of `main.rs`.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::sync::Arc;

use agentyard_store::{MemoryStore, Yard};
use agentyard_store_log::{LogOptions, LogStore};
use agentyard_store_postgres::testing::TestSchema;
use agentyard_store_postgres::{PgOptions, PgStore};
use agentyard_store_sqlite::{SqliteOptions, SqliteStore};

/// A fresh, empty store of one backend.
pub struct Backend {
    /// As in the test's name: `memory`, `sqlite`, `log`, `postgres`.
    pub name: &'static str,
    pub store: Arc<dyn Yard>,
}

/// Whatever must outlive a store (its temp dir; a database schema, dropped with it). [`run`]
/// keeps it until the case's runtime, and with it every task holding the store, is gone.
pub type Guard = Box<dyn Any + Send>;

pub async fn memory_store() -> Option<(Backend, Guard)> {
    let backend = Backend {
        name: "memory",
        store: Arc::new(MemoryStore::new()),
    };
    Some((backend, Box::new(())))
}

/// A new database file in a temp dir, with the options the server starts with.
pub async fn sqlite_store() -> Option<(Backend, Guard)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = SqliteStore::open(dir.path().join("yard.db"), SqliteOptions::default()).expect("open sqlite");
    let backend = Backend {
        name: "sqlite",
        store: Arc::new(store),
    };
    Some((backend, Box::new(dir)))
}

/// A new log file in a temp dir, with the options the server starts with.
pub async fn log_store() -> Option<(Backend, Guard)> {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = LogStore::open(dir.path().join("yard.log"), LogOptions::default()).expect("open log");
    let backend = Backend {
        name: "log",
        store: Arc::new(store),
    };
    Some((backend, Box::new(dir)))
}

/// A fresh schema on the database of `AGENTYARD_TEST_POSTGRES_URL` (skipped when unset).
pub async fn postgres_store() -> Option<(Backend, Guard)> {
    let schema = TestSchema::create("an HTTP case on postgres").await?;
    let options = PgOptions::parse(&schema.url).expect("test URL");
    let store = PgStore::connect(options).await.expect("connect to the test database");
    let backend = Backend {
        name: "postgres",
        store: Arc::new(store),
    };
    Some((backend, Box::new(schema)))
}

/// Runs `case` on a fresh store from `open`, on a runtime of its own as `#[tokio::test]` would
/// (on the current thread, or on `workers` threads). Nothing when `open` answers `None`.
///
/// The store's guard goes last, after the runtime: a server the case did not stop, its loops and
/// the store's connections still run until then (and a guard that waits for them, such as a
/// schema that is dropped, would wait forever on a runtime it blocks). The same holds when the
/// case panics, so a failure is reported as one, never as a hang.
pub fn run<O, C, F>(open: impl FnOnce() -> O, case: C, workers: Option<usize>)
where
    O: Future<Output = Option<(Backend, Guard)>>,
    C: FnOnce(Backend) -> F,
    F: Future<Output = ()>,
{
    let mut builder = match workers {
        None => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    };
    let runtime = builder.enable_all().build().expect("test runtime");
    let Some((backend, guard)) = runtime.block_on(open()) else {
        return;
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| runtime.block_on(case(backend))));
    drop(runtime);
    drop(guard);
    if let Err(panic) = outcome {
        resume_unwind(panic);
    }
}

/// Expands each case into a module of the same name with one test per backend, so nextest
/// lists `case::memory`, `case::sqlite`, `case::log`, `case::postgres`; a backend whose store function answers
/// `None` (a service that is not configured) passes without running the case. A case runs on
/// the current thread, or, marked as below (the one form of `tokio::test` arguments it takes),
/// on that many worker threads.
///
/// ```ignore
/// backend_tests!(
///     a_task_goes_from_create_to_complete,
///     #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
///     two_hundred_agents_each_receive_exactly_their_messages_in_order_once,
/// );
/// ```
///
/// A case left out of the list is an unused function, which the lints refuse.
macro_rules! backend_tests {
    (@case $workers:expr, $case:ident) => {
        mod $case {
            backend_tests!(@backend $workers, $case, memory, crate::backends::memory_store);
            backend_tests!(@backend $workers, $case, sqlite, crate::backends::sqlite_store);
            backend_tests!(@backend $workers, $case, log, crate::backends::log_store);
            backend_tests!(@backend $workers, $case, postgres, crate::backends::postgres_store);
        }
    };
    (@backend $workers:expr, $case:ident, $name:ident, $open:path) => {
        #[test]
        fn $name() {
            crate::backends::run($open, super::$case, $workers);
        }
    };
    (@workers) => {
        None
    };
    (@workers $n:literal) => {
        Some($n)
    };
    ($($(#[tokio::test(flavor = "multi_thread", worker_threads = $n:literal)])? $case:ident),* $(,)?) => {
        $(backend_tests!(@case backend_tests!(@workers $($n)?), $case);)*
    };
}
