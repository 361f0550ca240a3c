//! The latency suite: a producer creates tasks at a steady rate (`--rate`, default 500/s; for
//! 10 s, 1 s with `--smoke`) while `--concurrency` claimers long-poll the queue. Pick-up latency
//! is the time from the moment the producer sent a task's create request to the moment a
//! claimer holds the task (its claim answer arrived), both read from this process's monotonic
//! clock: the sent time travels in the task's input.
//!
//! With `--nodes N` (PostgreSQL) the producer creates through node 1 and the claimers are parked
//! on nodes 2 to N: each pick-up crosses from one node to another through the database.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentyard_client::Client;
use agentyard_core::api::{ClaimRequest, CompleteRequest, CreateTaskRequest};
use agentyard_core::{AgentName, QueueName};
use anyhow::{Context, bail};
use serde_json::json;

use crate::bench::report::Row;
use crate::bench::stats::Samples;
use crate::bench::{Bench, Outcome, fresh_queue, timed};

/// How long a parked claimer waits before asking again.
const WAIT_MS: u64 = 1_000;

pub async fn run(bench: &Bench) -> anyhow::Result<Outcome> {
    let rate = bench.rate();
    let n = bench.n(rate * 10, rate);
    let c = bench.concurrency();
    let target = bench.target_nodes().await?;
    let queue = fresh_queue("latency")?;
    let epoch = Instant::now();
    let claimed = Arc::new(AtomicU64::new(0));
    let mut claimers = Vec::with_capacity(c);
    for i in 0..c {
        let (client, queue, claimed) = (target.claimer_client(i).clone(), queue.clone(), claimed.clone());
        claimers.push(tokio::spawn(async move {
            claimer(client, queue, i, epoch, n, claimed).await
        }));
    }
    // Let the claimers park before the first task, as they would in a running fleet.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let period = Duration::from_secs_f64(1.0 / rate as f64);
    let cpu = target.cpu_mark();
    let start = Instant::now();
    let mut creates = Vec::with_capacity(n as usize);
    for i in 0..n {
        // Open loop: each create is sent at its time whether or not earlier ones were answered.
        tokio::time::sleep_until((start + period.mul_f64(i as f64)).into()).await;
        let client = target.client.clone();
        let queue = queue.clone();
        creates.push(tokio::spawn(async move {
            let sent_us = epoch.elapsed().as_micros() as u64;
            let task = CreateTaskRequest::new(queue, json!({ "sent_us": sent_us }));
            timed(client.create_task(&task)).await
        }));
    }
    let sent_for = start.elapsed();
    let mut create_samples = Samples::with_capacity(n as usize);
    for call in creates {
        let (took, created) = call.await.context("a create panicked")?;
        created?;
        create_samples.push(took);
    }
    let mut pickup = Samples::with_capacity(n as usize);
    for cl in claimers {
        pickup.extend(cl.await.context("a claimer panicked")??);
    }
    let cost = cpu.cost(target.cpu_mark(), n);
    if pickup.len() as u64 != n {
        bail!("{n} tasks were created but {} were picked up", pickup.len());
    }
    let rss = target.peak_rss_mb();
    Ok(Outcome {
        rows: vec![
            Row::new(bench.on_nodes(format!("latency pick-up at {rate}/s x{c}")), n)
                .rate(n, sent_for)
                .latency(&pickup)
                .rss(rss)
                .cpu(cost),
            Row::new(bench.on_nodes(format!("latency create at {rate}/s")), n)
                .latency(&create_samples)
                .rss(rss),
        ],
        verdicts: Vec::new(),
    })
}

/// Long-polls for tasks one at a time, records each one's pick-up latency and completes it;
/// stops once `n` were picked up by all claimers together.
async fn claimer(
    client: Client,
    queue: QueueName,
    index: usize,
    epoch: Instant,
    n: u64,
    claimed: Arc<AtomicU64>,
) -> anyhow::Result<Samples> {
    let mut claim = ClaimRequest::new(AgentName::parse(format!("worker-{index}"))?);
    claim.wait_ms = Some(WAIT_MS);
    let mut samples = Samples::default();
    while claimed.load(Ordering::Relaxed) < n {
        let tasks = client.claim(&queue, &claim).await?.tasks;
        let now_us = epoch.elapsed().as_micros() as u64;
        for task in tasks {
            let sent_us = task.input["sent_us"].as_u64().context("a task without its sent time")?;
            samples.push(Duration::from_micros(now_us.saturating_sub(sent_us)));
            claimed.fetch_add(1, Ordering::Relaxed);
            let lease = task.lease.context("a claimed task without a lease")?;
            let req = CompleteRequest {
                lease_token: lease.token,
                result: None,
                artifacts: None,
            };
            client.complete(task.id, &req).await?;
        }
    }
    Ok(samples)
}
