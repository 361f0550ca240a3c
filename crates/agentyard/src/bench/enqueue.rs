//! The enqueue suite: N no-op tasks created over HTTP one by one by one producer waiting for
//! each answer, then one by one with `--concurrency` requests in flight, then through the batch
//! endpoint in batches of 100. Each workload runs on a fresh server; latency is per request.

use std::time::Instant;

use agentyard_client::Client;
use agentyard_core::QueueName;
use agentyard_core::api::CreateTaskRequest;
use anyhow::{Context, bail};
use serde_json::Value;

use crate::bench::report::Row;
use crate::bench::stats::Samples;
use crate::bench::{Bench, Outcome, fresh_queue, timed};

/// Tasks per request of the batch workload.
const BATCH: usize = 100;

/// The workloads, by name, with their requests in flight and tasks per request.
pub fn workloads(c: usize) -> Vec<(String, usize, usize)> {
    vec![
        ("enqueue one-by-one x1".to_owned(), 1, 1),
        (format!("enqueue one-by-one x{c}"), c, 1),
        (format!("enqueue batch{BATCH} x1"), 1, BATCH),
    ]
}

pub async fn run(bench: &Bench) -> anyhow::Result<Outcome> {
    let n = bench.n(20_000, 500);
    let c = bench.concurrency();
    let mut outcome = Outcome::default();
    for (name, in_flight, batch) in workloads(c) {
        if !bench.wants(&name) {
            continue;
        }
        let target = bench.target().await?;
        let queue = fresh_queue("enqueue")?;
        let cpu = target.cpu_mark();
        let start = Instant::now();
        let mut producers = Vec::with_capacity(in_flight);
        for p in 0..in_flight {
            // Producer p creates its share: n / in_flight, the first ones one more.
            let share = n / in_flight as u64 + u64::from((p as u64) < n % in_flight as u64);
            let (client, queue) = (target.client.clone(), queue.clone());
            producers.push(tokio::spawn(async move { produce(client, queue, share, batch).await }));
        }
        let mut samples = Samples::with_capacity(n as usize);
        for p in producers {
            samples.extend(p.await.context("a producer panicked")??);
        }
        let elapsed = start.elapsed();
        let cost = cpu.cost(target.cpu_mark(), n);
        let stats = target.client.queue_stats(&queue).await?;
        if stats.counts.queued != n {
            bail!(
                "{name}: {n} tasks were created but the queue holds {}",
                stats.counts.queued
            );
        }
        outcome.rows.push(
            Row::new(name, n)
                .rate(n, elapsed)
                .latency(&samples)
                .rss(target.peak_rss_mb())
                .cpu(cost),
        );
    }
    Ok(outcome)
}

/// Creates `count` tasks, `batch` per request, one request at a time.
async fn produce(client: Client, queue: QueueName, count: u64, batch: usize) -> anyhow::Result<Samples> {
    let mut samples = Samples::with_capacity(count as usize);
    let task = CreateTaskRequest::new(queue, Value::Null);
    let mut left = count as usize;
    if batch == 1 {
        for _ in 0..left {
            let (took, created) = timed(client.create_task(&task)).await;
            samples.push(took);
            created?;
        }
        return Ok(samples);
    }
    let full = vec![task; batch];
    while left > 0 {
        let size = left.min(batch);
        let (took, created) = timed(client.create_tasks(&full[..size])).await;
        samples.push(took);
        let created = created?;
        if created.created != size {
            bail!("a batch of {size} created {}", created.created);
        }
        left -= size;
    }
    Ok(samples)
}
