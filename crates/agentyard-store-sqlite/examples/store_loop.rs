//! The bar's reference loop done through the store instead of raw SQL: one caller claims and
//! completes N waiting tasks, each call its own commit, in process (no HTTP). Set beside
//! `raw_loop`, it says what the store's schema and bookkeeping cost over the bare minimum, and
//! it is the loop to profile for that:
//! `cargo run --release -p agentyard-store-sqlite --example store_loop -- [N]` (default 20,000).

use std::time::Instant;

use agentyard_core::task::Completion;
use agentyard_core::{AgentName, Clock, Namespace, NewTask, QueueName, SystemClock, TaskCommand};
use agentyard_store::{Claim, CreateOptions, Store};
use agentyard_store_sqlite::{SqliteOptions, SqliteStore};
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: usize = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (rate, commits, pages) = rt.block_on(async {
        let store = SqliteStore::open(dir.path().join("loop.db"), SqliteOptions::default())?;
        let ns = Namespace::default();
        let queue = QueueName::parse("loop")?;
        let agent = AgentName::parse("worker")?;
        for start in (0..n).step_by(1_000) {
            let tasks = (start..n.min(start + 1_000))
                .map(|i| NewTask::on(queue.clone(), json!({ "i": i })))
                .collect();
            store
                .create_tasks(&ns, tasks, CreateOptions::default(), SystemClock.now())
                .await?;
        }
        let before = store.commit_stats();
        let started = Instant::now();
        for _ in 0..n {
            let claim = Claim::new(queue.clone(), agent.clone(), 1, 30_000);
            let task = store
                .claim_tasks(&ns, &claim, SystemClock.now())
                .await?
                .pop()
                .ok_or("the queue ran dry before n tasks")?;
            let token = task.lease.ok_or("a claimed task without a lease")?.token;
            let done = TaskCommand::Complete {
                token,
                completion: Completion::default(),
            };
            store.apply(&ns, task.id, done, SystemClock.now()).await?;
        }
        let rate = n as f64 / started.elapsed().as_secs_f64();
        let after = store.commit_stats();
        let commits = after.groups - before.groups;
        let pages = (after.wal_pages - before.wal_pages) as f64 / commits.max(1) as f64;
        Ok::<_, Box<dyn std::error::Error>>((rate, commits, pages))
    })?;
    println!(
        "store loop (SQLite store, in process): {n} tasks claimed and completed, {rate:.0} tasks/s \
         ({commits} commits, {pages:.1} log pages of 2 KiB each)"
    );
    Ok(())
}
