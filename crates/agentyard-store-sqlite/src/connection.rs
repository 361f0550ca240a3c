//! Opening connections with the pragmas the store relies on: the writer's (WAL, durability) and
//! the readers' (read-only).

use std::path::Path;
use std::time::Duration;

use agentyard_store::StoreError;
use rusqlite::{Connection, OpenFlags};

use crate::Durability;
use crate::checkpoint::watch_wal;
use crate::error::sql_error;

/// How long a connection waits for a lock before giving up. The writer is the only writer, so
/// it waits only on checkpoints and WAL recovery; 30 s turns a slow disk into latency, not errors.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Page size of new databases. Every commit writes each page it changed whole into the log, and a
/// task's claim or completion changes a handful (its row, an entry in each of a few indexes):
/// with 2 KiB pages instead of SQLite's 4 KiB the log takes half the bytes, and `drain` ran 15 %
/// faster (BENCHMARKS.md). Smaller still did not help: rows (a task's JSON) then overflow.
const PAGE_SIZE: i64 = 2_048;

/// Statements kept prepared per connection: more than the store ever uses, so none is evicted.
const STATEMENT_CACHE: usize = 64;

fn tune(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
    // 8 MB of page cache (negative means KiB) and temporary tables in memory. Not more for the
    // writer: at the end of every write transaction SQLite walks the cache's whole hash table,
    // so a 64 MB cache cost it 12 % of its time and drained 10-15 % fewer tasks (BENCHMARKS.md).
    // A reader's cache is emptied whenever it starts reading after a commit, so a larger one
    // would not stay warm either; the operating system's page cache holds the rest of the file.
    conn.pragma_update(None, "cache_size", -8_000).map_err(sql_error)?;
    conn.pragma_update(None, "temp_store", "MEMORY").map_err(sql_error)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // Plans must not depend on bound values. Without this, a parameter compared against a
    // partial index's WHERE (e.g. `queue = ?2` beside `status = 'queued'`) marks the statement
    // as value-dependent, and SQLite re-prepares it on every new binding: ~100k instructions
    // per claim, measured (BENCHMARKS.md). Every hot query names its partial index's condition
    // as a literal, so the stable plan is the right one.
    conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
        .map_err(sql_error)?;
    Ok(())
}

fn synchronous(durability: Durability) -> &'static str {
    match durability {
        // In WAL mode NORMAL syncs at checkpoints only: a commit survives the process dying,
        // not necessarily the machine losing power.
        Durability::Normal => "NORMAL",
        // FULL syncs the WAL at every commit, i.e. once per commit group.
        Durability::Full => "FULL",
    }
}

/// The read-write connection, the writer's.
pub(crate) fn open_writer(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| opening(path, e))?;
    // Only a new, empty file takes it; an existing database keeps the page size it was made with.
    conn.pragma_update(None, "page_size", PAGE_SIZE).map_err(sql_error)?;
    tune(&conn)?;
    let mode: String = conn
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sql_error)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Other(format!(
            "{} cannot use write-ahead logging (journal mode stays {mode:?}); the SQLite store needs a \
             database file on a local file system",
            path.display()
        )));
    }
    conn.pragma_update(None, "synchronous", synchronous(durability))
        .map_err(sql_error)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(sql_error)?;
    // No checkpoint inside a commit: the checkpoint thread does them (checkpoint.rs).
    watch_wal(&conn);
    Ok(conn)
}

/// The checkpoint thread's connection. It writes nothing but the database file's pages copied
/// back from the log, synced as the writer's durability asks.
pub(crate) fn open_checkpointer(path: &Path, durability: Durability) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|e| opening(path, e))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sql_error)?;
    conn.pragma_update(None, "synchronous", synchronous(durability))
        .map_err(sql_error)?;
    // Its own commits (there are none) must not checkpoint either.
    conn.pragma_update(None, "wal_autocheckpoint", 0).map_err(sql_error)?;
    Ok(conn)
}

/// A read-only connection for the reader pool. It opens after the writer, which created the
/// file and switched it to WAL (a persistent setting), so readers never wait on the writer.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(|e| opening(path, e))?;
    tune(&conn)?;
    Ok(conn)
}

fn opening(path: &Path, e: rusqlite::Error) -> StoreError {
    match sql_error(e) {
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("cannot open {}: {m}", path.display())),
        StoreError::Other(m) => StoreError::Other(format!("cannot open {}: {m}", path.display())),
        other => other,
    }
}
