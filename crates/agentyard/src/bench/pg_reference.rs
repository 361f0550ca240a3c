//! The reference loop on PostgreSQL, measured in the same run as the SQLite one when the store
//! is PostgreSQL: what the database alone does with the smallest job-queue transaction, to read
//! the yard's drain figures against. `n` rows wait in a table of a fresh schema; 10 connections
//! each loop on
//!
//! ```sql
//! BEGIN;
//! DELETE FROM ref_jobs WHERE id = (SELECT id FROM ref_jobs ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1)
//!     RETURNING id;
//! COMMIT;
//! ```
//!
//! until the table is empty. The rate counts from the first transaction to the last.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use tokio::sync::Barrier;

use crate::bench::cpu;
use crate::bench::pg_procs::{self, PgProcs};
use crate::bench::postgres::{BenchSchema, PgUrl};

/// Connections looping at once, as many as the bar's claimers.
pub const CONNECTIONS: usize = 10;

/// What the loop measured.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    pub tasks_per_s: f64,
    /// PostgreSQL's CPU time per row, when its processes can be read from `/proc`.
    pub db_cpu_us_per_task: Option<f64>,
}

/// Runs the loop over `n` rows on a schema of its own (dropped afterwards); `db_cpu`: the
/// database's processes on this machine, whose CPU time to read.
pub async fn reference_loop(db: &PgUrl, n: u32, db_cpu: Option<PgProcs>) -> anyhow::Result<Measured> {
    let schema = BenchSchema::create(db).await?;
    let table = format!("{}.ref_jobs", schema.name());
    let admin = db.connect().await?;
    admin
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY); \
             INSERT INTO {table} SELECT generate_series(1, {n}); \
             ANALYZE {table}"
        ))
        .await
        .context("cannot fill the reference loop's table")?;
    drop(admin);
    let sql = format!(
        "DELETE FROM {table} WHERE id = (SELECT id FROM {table} ORDER BY id FOR UPDATE SKIP LOCKED LIMIT 1) \
         RETURNING id"
    );
    let start_line = Arc::new(Barrier::new(CONNECTIONS + 1));
    let mut loops = Vec::with_capacity(CONNECTIONS);
    for _ in 0..CONNECTIONS {
        let mut client = db.connect().await?;
        let statement = client
            .prepare(&sql)
            .await
            .context("cannot prepare the reference loop")?;
        let start_line = start_line.clone();
        loops.push(tokio::spawn(async move {
            start_line.wait().await;
            let mut deleted = 0u64;
            loop {
                let tx = client.transaction().await?;
                let row = tx.query_opt(&statement, &[]).await?;
                tx.commit().await?;
                if row.is_none() {
                    return anyhow::Ok(deleted);
                }
                deleted += 1;
            }
        }));
    }
    let before = db_cpu.and_then(pg_procs::ticks);
    let start = Instant::now();
    start_line.wait().await;
    let mut deleted = 0;
    for l in loops {
        deleted += l
            .await
            .context("a reference loop connection panicked")?
            .context("the PostgreSQL reference loop failed")?;
    }
    let elapsed = start.elapsed();
    let after = db_cpu.and_then(pg_procs::ticks);
    drop(schema);
    if deleted != u64::from(n) {
        bail!("the PostgreSQL reference loop deleted {deleted} of {n} rows");
    }
    let cost = cpu::CpuMark {
        server: None,
        bench: None,
        db: before.map(|(ticks, _)| ticks),
    }
    .cost(
        cpu::CpuMark {
            server: None,
            bench: None,
            db: after.map(|(ticks, _)| ticks),
        },
        deleted,
    );
    Ok(Measured {
        tasks_per_s: (f64::from(n) / elapsed.as_secs_f64()).round(),
        db_cpu_us_per_task: cost.db_us,
    })
}
