//! Checkpoints off the writer's path.
//!
//! A WAL checkpoint copies the pages of the write-ahead log back into the database file. SQLite's
//! automatic checkpoint runs it inside the `COMMIT` that crossed the threshold, on the writer:
//! every few hundred commit groups, one group (and every caller waiting on it) waited the
//! several milliseconds it takes to copy a thousand pages, which was the whole p99 of a claim
//! (BENCHMARKS.md). Here the writer's automatic checkpoint is off; a thread of its own, with its
//! own connection, runs a `PASSIVE` checkpoint whenever the writer reports that the log grew by
//! another [`CHECKPOINT_PAGES`] pages. A passive checkpoint neither blocks the writer's commits
//! nor waits for them; SQLite starts the log over at the writer's next transaction once
//! everything in it was copied back.
//!
//! Under a write load that never pauses, a passive checkpoint may never catch the log's end, so
//! the log could grow without bound. When it passes [`WAL_LIMIT_PAGES`] the writer's connection
//! runs a `RESTART` checkpoint after answering a group (waiting for a passive pass that holds the
//! checkpoint lock, if one does): the next group waits, and the log starts over. That checkpoint
//! copies up to 256 MB and syncs, so it never runs on a caller's thread (an async runtime worker):
//! a caller whose commit passed the limit leaves it to the writer's relay, on the blocking pool
//! (`writer.rs`).

use std::cell::Cell;
use std::ffi::c_int;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use agentyard_store::StoreError;
use rusqlite::Connection;
use rusqlite::hooks::Wal;

use crate::Durability;
use crate::connection::open_checkpointer;
use crate::error::sql_error;

/// The log grows by this many pages (2 KiB each in a database this store created, see
/// `connection.rs`) between two checkpoint requests: 4 MB, as SQLite's own default of 1,000
/// pages of 4 KiB.
pub(crate) const CHECKPOINT_PAGES: u32 = 2_000;

/// Beyond this many pages in the log (256 MB of 2 KiB pages), the writer checkpoints by itself.
pub(crate) const WAL_LIMIT_PAGES: u32 = 64 * CHECKPOINT_PAGES;

thread_local! {
    /// Pages in the log after the last commit on this thread that wrote any (SQLite calls the
    /// hook only then). The writer resets it before a commit and takes it after, on the same
    /// thread, so it never reads another commit's figure.
    static WAL_PAGES: Cell<Option<u32>> = const { Cell::new(None) };
}

fn record_wal_pages(_: &Wal, pages: c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(Some(u32::try_from(pages).unwrap_or(0)));
    Ok(())
}

/// Turns off the automatic checkpoint of `conn` and starts counting the pages of its log
/// instead (read with [`wal_pages`] on the same thread, after a commit).
pub(crate) fn watch_wal(conn: &Connection) {
    // Replaces the hook `wal_autocheckpoint` installs: no checkpoint runs inside a commit.
    conn.wal_hook(Some(record_wal_pages));
}

/// Forgets what the last commit on this thread reported; call before a commit.
pub(crate) fn reset_wal_pages() {
    WAL_PAGES.set(None);
}

/// Pages in the log after the commit since [`reset_wal_pages`], if it wrote any.
pub(crate) fn take_wal_pages() -> Option<u32> {
    WAL_PAGES.take()
}

/// What one `PRAGMA wal_checkpoint` reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checkpointed {
    /// Another checkpoint held the lock, or a reader kept the log's start.
    pub busy: bool,
    /// Frames in the log.
    pub log: i64,
    /// Frames copied back into the database so far.
    pub copied: i64,
}

/// Runs a checkpoint: `mode` is `PASSIVE`, `FULL`, `RESTART` or `TRUNCATE`.
pub(crate) fn checkpoint(conn: &Connection, mode: &str) -> Result<Checkpointed, StoreError> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |row| {
        Ok(Checkpointed {
            busy: row.get::<_, i64>(0)? != 0,
            log: row.get(1)?,
            copied: row.get(2)?,
        })
    })
    .map_err(sql_error)
}

/// What [`Checkpointer::after_commit`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AfterCommit {
    /// Pages the commit appended to the log.
    pub appended: u32,
    /// The log is past its limit: the writer must run [`Checkpointer::checkpoint_at_limit`].
    pub at_limit: bool,
}

/// The writer's side: asks the checkpoint thread for a pass as the log grows.
pub(crate) struct Checkpointer {
    /// `None` only while dropping: closing the channel is what stops the thread.
    requests: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    /// Ask again once the log reaches this many pages.
    next_request_at: u32,
    /// The log's size at the last commit; a smaller one means the log started over.
    last_pages: u32,
    /// [`WAL_LIMIT_PAGES`], lower in tests.
    limit_pages: u32,
    /// The threads the checkpoints at the limit ran on, for tests.
    #[cfg(test)]
    pub(crate) ran_on: std::sync::Arc<std::sync::Mutex<Vec<std::thread::ThreadId>>>,
}

impl Checkpointer {
    /// Opens the checkpoint thread's connection and starts it. The database must exist and be
    /// in WAL mode already (the writer opened it).
    pub(crate) fn start(path: &Path, durability: Durability) -> Result<Self, StoreError> {
        let conn = open_checkpointer(path, durability)?;
        // One request waiting is enough: a pass copies everything committed before it starts.
        let (requests, waiting) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("agentyard-sqlite-checkpoint".into())
            .spawn(move || checkpoint_loop(&conn, &waiting))
            .map_err(|e| StoreError::Unavailable(format!("cannot start the SQLite checkpoint thread: {e}")))?;
        Ok(Self {
            requests: Some(requests),
            thread: Some(thread),
            next_request_at: CHECKPOINT_PAGES,
            last_pages: 0,
            limit_pages: WAL_LIMIT_PAGES,
            #[cfg(test)]
            ran_on: Default::default(),
        })
    }

    #[cfg(test)]
    pub(crate) fn set_limit(&mut self, pages: u32) {
        self.limit_pages = pages;
    }

    /// Called by the writer after each commit with the log's size: requests a pass each time the
    /// log grew by [`CHECKPOINT_PAGES`], and says when the log is past [`WAL_LIMIT_PAGES`].
    pub(crate) fn after_commit(&mut self, pages: u32) -> AfterCommit {
        let appended = if pages < self.last_pages {
            // The log started over with this commit.
            self.next_request_at = CHECKPOINT_PAGES;
            pages
        } else {
            pages - self.last_pages
        };
        self.last_pages = pages;
        if pages >= self.limit_pages {
            return AfterCommit {
                appended,
                at_limit: true,
            };
        }
        if pages >= self.next_request_at {
            self.next_request_at = pages.saturating_add(CHECKPOINT_PAGES);
            if let Some(requests) = &self.requests
                && let Err(TrySendError::Disconnected(())) = requests.try_send(())
            {
                tracing::error!(
                    "the SQLite checkpoint thread has stopped; the write-ahead log is checkpointed only at its limit"
                );
            }
        }
        AfterCommit {
            appended,
            at_limit: false,
        }
    }

    /// Checkpoints the whole log on the writer's connection and starts it over: the writer runs
    /// this, off the async runtime's threads, once [`Checkpointer::after_commit`] found the log
    /// past its limit.
    pub(crate) fn checkpoint_at_limit(&mut self, writer: &Connection) {
        #[cfg(test)]
        self.ran_on
            .lock()
            .expect("test record")
            .push(std::thread::current().id());
        let started = std::time::Instant::now();
        match checkpoint(writer, "RESTART") {
            Ok(done) => tracing::info!(
                frames = done.log,
                copied = done.copied,
                busy = done.busy,
                // How long the writer, and every command waiting for it, stood still.
                took_ms = started.elapsed().as_millis() as u64,
                "the write-ahead log passed its limit; the writer checkpointed it"
            ),
            Err(e) => tracing::warn!(error = %e, "checkpointing the write-ahead log on the writer failed"),
        }
        self.next_request_at = CHECKPOINT_PAGES;
    }
}

impl Drop for Checkpointer {
    /// Stops the thread and closes its connection, so the writer's connection, closing last,
    /// checkpoints the whole log and removes it.
    fn drop(&mut self) {
        self.requests.take();
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the SQLite checkpoint thread panicked");
        }
    }
}

fn checkpoint_loop(conn: &Connection, requests: &Receiver<()>) {
    // A request that comes in while a pass runs waits in the channel (room for one): the next
    // pass serves it and every request after it.
    while requests.recv().is_ok() {
        match checkpoint(conn, "PASSIVE") {
            Ok(done) => tracing::debug!(
                frames = done.log,
                copied = done.copied,
                busy = done.busy,
                "checkpointed"
            ),
            Err(e) => tracing::warn!(error = %e, "a write-ahead log checkpoint failed; the next one retries"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::open_writer;

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).expect("metadata").len()
    }

    /// Writes ~6 MB in 1,500 commits; returns the largest log size seen after a commit.
    fn write_a_lot(writer: &Connection, mut checkpointer: Option<&mut Checkpointer>) -> u32 {
        let mut largest = 0;
        for _ in 0..1_500 {
            reset_wal_pages();
            writer
                .execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .expect("insert");
            let pages = take_wal_pages().expect("the commit wrote pages");
            largest = largest.max(pages);
            if let Some(c) = checkpointer.as_deref_mut()
                && c.after_commit(pages).at_limit
            {
                c.checkpoint_at_limit(writer);
            }
        }
        largest
    }

    fn open(path: &Path) -> Connection {
        let writer = open_writer(path, Durability::Normal).expect("open");
        watch_wal(&writer);
        writer
            .execute_batch("CREATE TABLE IF NOT EXISTS t (x BLOB)")
            .expect("create");
        writer
    }

    /// The writer's commits never checkpoint by themselves: the database file stays as it was
    /// created while the log grows.
    #[test]
    fn commits_do_not_checkpoint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let writer = open(&path);
        let largest = write_a_lot(&writer, None);
        assert!(largest > 1_500, "the log holds every commit ({largest} pages)");
        assert!(
            file_len(&path) < 100_000,
            "nothing was copied into the database file ({} bytes)",
            file_len(&path)
        );
    }

    /// The thread checkpoints when asked, and the log starts over at the next write once
    /// everything was copied back.
    #[test]
    fn the_thread_checkpoints_as_the_log_grows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let writer = open(&path);
        let mut checkpointer = Checkpointer::start(&path, Durability::Normal).expect("start");
        write_a_lot(&writer, Some(&mut checkpointer));
        // Waits for the passes asked for so far.
        drop(checkpointer);
        assert!(
            file_len(&path) > 2_000_000,
            "the thread copied the log into the database file ({} bytes)",
            file_len(&path)
        );
        let rows: i64 = writer
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .expect("count");
        assert_eq!(rows, 1_500);
    }

    /// Past the limit the writer checkpoints by itself and the log starts over.
    #[test]
    fn past_the_limit_the_writer_checkpoints() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.db");
        let writer = open(&path);
        let mut checkpointer = Checkpointer::start(&path, Durability::Normal).expect("start");
        write_a_lot(&writer, None);
        // Pretend the log is at its limit: the writer must checkpoint everything.
        assert!(checkpointer.after_commit(WAL_LIMIT_PAGES).at_limit);
        checkpointer.checkpoint_at_limit(&writer);
        reset_wal_pages();
        writer.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        let pages = take_wal_pages().expect("the commit wrote pages");
        assert!(pages <= 5, "the log started over ({pages} pages)");
    }

    /// SQLite reports only commits that wrote pages: one that wrote nothing must not be taken
    /// for one with the figure of the commit before.
    #[test]
    fn a_commit_that_writes_nothing_reports_no_pages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = open(&dir.path().join("c.db"));
        reset_wal_pages();
        writer.execute("INSERT INTO t VALUES (1)", []).expect("insert");
        assert!(take_wal_pages().is_some());
        reset_wal_pages();
        writer
            .execute_batch("BEGIN IMMEDIATE; SELECT COUNT(*) FROM t; COMMIT")
            .expect("empty transaction");
        assert_eq!(take_wal_pages(), None);
    }
}
