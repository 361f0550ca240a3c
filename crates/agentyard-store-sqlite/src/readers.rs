//! The reader pool: read-only connections lent to blocking threads, so reads never stall the
//! async runtime and never wait for the writer (WAL lets readers see the last commit while a
//! write is under way).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use agentyard_store::StoreError;
use rusqlite::Connection;
use tokio::sync::Semaphore;

use crate::connection::open_reader;
use crate::error::sql_error;

pub(crate) struct Readers {
    pool: Arc<Pool>,
    /// One permit per connection: a read waits here (asynchronously) for a free connection
    /// rather than occupying a blocking thread while it waits.
    permits: Arc<Semaphore>,
}

struct Pool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Pool {
    fn take(&self) -> Result<Connection, StoreError> {
        let conn = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match conn {
            Some(conn) => Ok(conn),
            // Only after a connection was lost to a panic: replace it.
            None => open_reader(&self.path),
        }
    }

    fn give_back(&self, conn: Connection) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
    }
}

/// Returns the connection to the pool however the read ends, panics included.
struct Lent<'a> {
    pool: &'a Pool,
    conn: Option<Connection>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

impl Readers {
    /// Opens `size` connections (at least one) now, so a bad path fails at startup.
    pub(crate) fn open(path: PathBuf, size: usize) -> Result<Self, StoreError> {
        let size = size.max(1);
        let idle = (0..size).map(|_| open_reader(&path)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            pool: Arc::new(Pool {
                path,
                idle: Mutex::new(idle),
            }),
            permits: Arc::new(Semaphore::new(size)),
        })
    }

    /// Runs `read` on a pooled connection on a blocking thread.
    pub(crate) async fn run<R, F>(&self, read: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Unavailable("the SQLite reader pool is closed".into()))?;
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let lent = Lent {
                pool: &pool,
                conn: Some(pool.take()?),
            };
            match &lent.conn {
                Some(conn) => read(conn),
                None => Err(StoreError::Other("a pooled SQLite connection went missing".into())),
            }
        })
        .await
        .map_err(|e| StoreError::Other(format!("a SQLite read did not finish: {e}")))?
    }

    /// Like [`Readers::run`], inside one read transaction: every statement of `read` sees the
    /// same commit. Needed when a read takes several statements whose answers must agree (an
    /// inbox merged from several sources must not see a message of one source and miss an older
    /// one of another that committed in between).
    pub(crate) async fn snapshot<R, F>(&self, read: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&Connection) -> Result<R, StoreError> + Send + 'static,
    {
        self.run(move |conn| {
            // Deferred: the snapshot is taken by the first statement. Dropping it ends it.
            let tx = conn.unchecked_transaction().map_err(sql_error)?;
            read(&tx)
        })
        .await
    }
}
