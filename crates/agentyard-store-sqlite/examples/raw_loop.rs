//! The reference point the first performance bar quotes: a raw in-process SQLite loop, one
//! transaction per claim and one per completion, no HTTP and no agentyard code. It says what the
//! machine does at the hour it runs, so HTTP figures taken that hour can be read against it.
//!
//! `cargo run --release -p agentyard-store-sqlite --example raw_loop -- [N]` (default 20,000
//! tasks). WAL, `synchronous=NORMAL`, a table shaped like the store's (the task as JSON, the
//! ready index), tasks claimed in priority order.

use std::time::Instant;

use rusqlite::{Connection, params};

fn main() -> rusqlite::Result<()> {
    let n: i64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let conn = Connection::open(dir.path().join("raw.db"))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE tasks (id INTEGER PRIMARY KEY, status TEXT NOT NULL, priority INTEGER NOT NULL, \
         run_at INTEGER NOT NULL, doc TEXT NOT NULL);
         CREATE INDEX tasks_ready ON tasks (priority DESC, run_at, id) WHERE status = 'queued';",
    )?;
    // About the size of a stored task.
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
    let took = start.elapsed();
    println!(
        "raw SQLite loop: {n} tasks claimed and completed in {:.2} s: {:.0} tasks/s",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );
    Ok(())
}
