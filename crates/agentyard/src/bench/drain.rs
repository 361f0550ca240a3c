//! The drain suite: with N tasks waiting, one worker process (this one) runs `--concurrency`
//! claimers, each claiming and then completing until the queue is empty. The rate counts from
//! the first claim to the last completion; latency is per HTTP request (claims and completions).
//! Run with single-task claims, with claims of up to 10 (each task then completed on its own),
//! with claims of up to 10 completed together through `POST /v1/tasks/complete`, and with the
//! completions sent inside the next claim (`complete` of `POST /v1/queues/{q}/claim`: one
//! request per claim), for claims of 1 and of up to 10.
//!
//! With `--nodes N` (PostgreSQL) the tasks are created through node 1 and the claimers spread
//! over nodes 2 to N.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use agentyard_client::Client;
use agentyard_core::api::{ClaimRequest, CompleteItem, CompleteRequest, CreateTaskRequest, MAX_BATCH};
use agentyard_core::{AgentName, QueueName};
use anyhow::{Context, bail};
use serde_json::json;

use crate::bench::report::Row;
use crate::bench::stats::Samples;
use crate::bench::{Bench, Outcome, fresh_queue, timed};

/// Create requests in flight while filling the queue (not measured).
const FILL_IN_FLIGHT: usize = 4;

/// How a claimer finishes the tasks it claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// `POST /v1/tasks/{id}/complete` for each.
    EachAlone,
    /// `POST /v1/tasks/complete` for all of one claim.
    Batch,
    /// In the next claim's `complete`.
    InNextClaim,
}

pub async fn run(bench: &Bench) -> anyhow::Result<Outcome> {
    let n = bench.n(50_000, 1_000);
    let c = bench.concurrency();
    let mut outcome = Outcome::default();
    for (name, max, finish) in workloads(c) {
        if !bench.wants(&name) {
            continue;
        }
        let target = bench.target_nodes().await?;
        let queue = fresh_queue("drain")?;
        fill(&target.client, &queue, n).await?;
        let done = Arc::new(AtomicU64::new(0));
        let cpu = target.cpu_mark();
        let start = Instant::now();
        let mut claimers = Vec::with_capacity(c);
        for i in 0..c {
            let (client, queue, done) = (target.claimer_client(i).clone(), queue.clone(), done.clone());
            claimers.push(tokio::spawn(async move {
                claimer(client, queue, i, max, finish, done).await
            }));
        }
        let mut samples = Samples::with_capacity(2 * n as usize);
        for cl in claimers {
            samples.extend(cl.await.context("a claimer panicked")??);
        }
        let elapsed = start.elapsed();
        let cost = cpu.cost(target.cpu_mark(), n);
        let processed = done.load(Ordering::Relaxed);
        let stats = target.client.queue_stats(&queue).await?;
        if processed != n || stats.counts.succeeded != n {
            bail!(
                "drained {processed} of {n} tasks; the queue says {} succeeded",
                stats.counts.succeeded
            );
        }
        outcome.rows.push(
            Row::new(bench.on_nodes(name), n)
                .rate(n, elapsed)
                .latency(&samples)
                .rss(target.peak_rss_mb())
                .cpu(cost),
        );
    }
    Ok(outcome)
}

/// The workloads, by name, with their claim size and how their claimers finish tasks.
pub fn workloads(c: usize) -> Vec<(String, u32, Finish)> {
    [
        (1u32, Finish::EachAlone),
        (10, Finish::EachAlone),
        (10, Finish::Batch),
        (1, Finish::InNextClaim),
        (10, Finish::InNextClaim),
    ]
    .into_iter()
    .map(|(max, finish)| {
        let name = match finish {
            Finish::EachAlone => format!("drain claim{max} x{c}"),
            Finish::Batch => format!("drain claim{max} complete{max} x{c}"),
            Finish::InNextClaim => format!("drain claim{max} complete-in-claim x{c}"),
        };
        (name, max, finish)
    })
    .collect()
}

/// Puts `n` tasks on the queue through the batch endpoint.
async fn fill(client: &Client, queue: &QueueName, n: u64) -> anyhow::Result<()> {
    let batches: Vec<u64> = (0..n.div_ceil(MAX_BATCH as u64)).collect();
    for chunk in batches.chunks(FILL_IN_FLIGHT) {
        let mut calls = Vec::with_capacity(chunk.len());
        for &b in chunk {
            let first = b * MAX_BATCH as u64;
            let tasks: Vec<CreateTaskRequest> = (first..n.min(first + MAX_BATCH as u64))
                .map(|i| CreateTaskRequest::new(queue.clone(), json!({"i": i})))
                .collect();
            let client = client.clone();
            calls.push(tokio::spawn(async move { client.create_tasks(&tasks).await }));
        }
        for call in calls {
            call.await.context("a create panicked")??;
        }
    }
    Ok(())
}

/// Claims up to `max` at a time and completes each claimed task as `finish` says, until a claim
/// comes back empty (every task was created before, so an empty claim means none is left; one
/// that completed tasks inside it was the last of this claimer's).
async fn claimer(
    client: Client,
    queue: QueueName,
    index: usize,
    max: u32,
    finish: Finish,
    done: Arc<AtomicU64>,
) -> anyhow::Result<Samples> {
    let mut claim = ClaimRequest::new(AgentName::parse(format!("worker-{index}"))?);
    claim.max = Some(max);
    let mut samples = Samples::default();
    loop {
        let (took, claimed) = timed(client.claim(&queue, &claim)).await;
        samples.push(took);
        let claimed = claimed?;
        if let Some(outcomes) = &claimed.completed {
            if let Some(failed) = outcomes.iter().find_map(|o| o.error.as_ref()) {
                bail!("a completion inside a claim failed: {}", failed.detail);
            }
            done.fetch_add(outcomes.len() as u64, Ordering::Relaxed);
        }
        let tasks = claimed.tasks;
        if tasks.is_empty() {
            return Ok(samples);
        }
        if finish != Finish::EachAlone {
            let mut items = Vec::with_capacity(tasks.len());
            for task in tasks {
                let lease = task.lease.context("a claimed task without a lease")?;
                items.push(CompleteItem {
                    id: task.id,
                    lease_token: lease.token,
                    result: None,
                    artifacts: None,
                });
            }
            if finish == Finish::InNextClaim {
                claim.complete = Some(items);
                continue;
            }
            let (took, completed) = timed(client.complete_many(&items)).await;
            samples.push(took);
            let completed = completed?;
            if let Some(failed) = completed.items.iter().find_map(|o| o.error.as_ref()) {
                bail!("a batch completion failed: {}", failed.detail);
            }
            done.fetch_add(completed.completed as u64, Ordering::Relaxed);
            continue;
        }
        for task in tasks {
            let lease = task.lease.context("a claimed task without a lease")?;
            let req = CompleteRequest {
                lease_token: lease.token,
                result: None,
                artifacts: None,
            };
            let (took, completed) = timed(client.complete(task.id, &req)).await;
            samples.push(took);
            completed?;
            done.fetch_add(1, Ordering::Relaxed);
        }
    }
}
