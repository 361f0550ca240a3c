//! The reference point the first performance bar quotes: a raw in-process SQLite loop, one
//! transaction per claim and one per completion, with no HTTP and no agentyard code. It measures
//! the machine at the moment it runs, so figures taken at different hours can be read against
//! it (this 2-core virtual machine's speed drifts by several times within a day). `agentyard
//! bench` runs it before its suites; `cargo run --release -p agentyard-store-sqlite --example
//! raw_loop` runs it alone.

use std::path::Path;
use std::time::Instant;

use agentyard_store::StoreError;
use rusqlite::{Connection, params};

use crate::error::sql_error;

/// Claims and completes `n` tasks in a fresh database in `dir` (WAL, `synchronous=NORMAL`, a
/// table shaped like the store's: ~500 bytes of JSON per task and a ready index) and returns
/// tasks per second, from the first claim to the last completion.
pub fn reference_loop(dir: &Path, n: u32) -> Result<f64, StoreError> {
    let conn = Connection::open(dir.join("reference-loop.db")).map_err(sql_error)?;
    run(&conn, i64::from(n.max(1))).map_err(sql_error)
}

fn run(conn: &Connection, n: i64) -> rusqlite::Result<f64> {
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE tasks (id INTEGER PRIMARY KEY, status TEXT NOT NULL, priority INTEGER NOT NULL, \
         run_at INTEGER NOT NULL, doc TEXT NOT NULL);
         CREATE INDEX tasks_ready ON tasks (priority DESC, run_at, id) WHERE status = 'queued';",
    )?;
    let doc = format!("{{\"input\":{{\"i\":0}},\"pad\":\"{}\"}}", "x".repeat(500));
    conn.execute_batch("BEGIN")?;
    for i in 0..n {
        conn.prepare_cached("INSERT INTO tasks (status, priority, run_at, doc) VALUES ('queued', 0, ?1, ?2)")?
            .execute(params![i, doc])?;
    }
    conn.execute_batch("COMMIT")?;
    let start = Instant::now();
    for _ in 0..n {
        conn.execute_batch("BEGIN IMMEDIATE")?;
        let (id, doc): (i64, String) = conn
            .prepare_cached(
                "SELECT id, doc FROM tasks WHERE status = 'queued' ORDER BY priority DESC, run_at, id LIMIT 1",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        conn.prepare_cached("UPDATE tasks SET status = 'running', doc = ?2 WHERE id = ?1")?
            .execute(params![id, doc])?;
        conn.execute_batch("COMMIT")?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.prepare_cached("UPDATE tasks SET status = 'succeeded', doc = ?2 WHERE id = ?1")?
            .execute(params![id, doc])?;
        conn.execute_batch("COMMIT")?;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_claims_and_completes_every_task() {
        let dir = tempfile::tempdir().expect("tempdir");
        let rate = reference_loop(dir.path(), 200).expect("runs");
        assert!(rate.is_finite() && rate > 0.0, "{rate}");
        let conn = Connection::open(dir.path().join("reference-loop.db")).expect("open");
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM tasks WHERE status != 'succeeded'", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(left, 0, "every task went through claim and completion");
    }
}
