//! The seed suite, seed 000 §5 as written: for each of (1×100, 10×50, 50×20, 100×10) agents ×
//! operations, every agent runs its operations one after the other, each being four calls —
//! create a task, transition it to running (a claim), add an artifact (an update based on the
//! version it read) and complete it. Reported per call kind, with the total throughput in
//! operations per second (four per task), and judged against the seed's criteria (p99 < 200 ms,
//! more than 100 ops/s at 100 agents) and ours (p99 ≤ 20 ms).

use std::time::Instant;

use agentyard_client::Client;
use agentyard_core::api::{ClaimRequest, CompleteRequest, CreateTaskRequest, UpdateTaskRequest};
use agentyard_core::{AgentName, NewArtifact};
use anyhow::{Context, bail};
use serde_json::json;

use crate::bench::report::{Row, Verdict};
use crate::bench::stats::Samples;
use crate::bench::{Bench, Outcome, fresh_queue, timed};

/// The seed's (agents, operations per agent) configurations.
const CONFIGS: [(usize, usize); 4] = [(1, 100), (10, 50), (50, 20), (100, 10)];
/// The call kinds of one operation, in the seed's names.
const KINDS: [&str; 4] = ["create", "update", "artifact", "complete"];

/// Latencies of one agent's calls, by kind.
type AgentSamples = [Samples; 4];

pub async fn run(bench: &Bench) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let mut seed_failures = Vec::new();
    let mut our_failures = Vec::new();
    for (agents, ops) in CONFIGS {
        // A smoke run keeps the shape (the same agent counts) with a tenth of the operations.
        let ops = if bench.smoke() { ops.div_ceil(10) } else { ops };
        let target = bench.target().await?;
        let cpu = target.cpu_mark();
        let start = Instant::now();
        let mut workers = Vec::with_capacity(agents);
        for a in 0..agents {
            let client = target.client.clone();
            workers.push(tokio::spawn(async move { agent(client, a, ops).await }));
        }
        let mut by_kind: AgentSamples = Default::default();
        for w in workers {
            let samples = w.await.context("a seed agent panicked")??;
            for (all, mine) in by_kind.iter_mut().zip(samples) {
                all.extend(mine);
            }
        }
        let elapsed = start.elapsed();
        let cpu_end = target.cpu_mark();
        let rss = target.peak_rss_mb();
        drop(target);
        let label = format!("seed {agents}x{ops}");
        let total_ops = (agents * ops * KINDS.len()) as u64;
        let cost = cpu.cost(cpu_end, total_ops);
        let mut all = Samples::with_capacity(total_ops as usize);
        for (kind, samples) in KINDS.iter().zip(&by_kind) {
            let row = Row::new(format!("{label} {kind}"), samples.len() as u64).latency(samples);
            if agents == 100 {
                check_p99(&row, 200.0, &mut seed_failures);
            }
            check_p99(&row, 20.0, &mut our_failures);
            outcome.rows.push(row);
            all.extend(samples.clone());
        }
        let ops_per_s = total_ops as f64 / elapsed.as_secs_f64();
        if agents == 100 && ops_per_s <= 100.0 {
            seed_failures.push(format!("throughput too low at {label}: {ops_per_s:.1} ops/s"));
        }
        // `tasks_per_s` of this row counts operations (calls), as the seed's throughput does.
        outcome.rows.push(
            Row::new(format!("{label} all ops"), total_ops)
                .rate(total_ops, elapsed)
                .latency(&all)
                .rss(rss)
                .cpu(cost),
        );
    }
    outcome.verdicts.push(Verdict {
        criteria: "seed 000 criteria (p99 < 200 ms for every operation and > 100 ops/s at 100 agents)".into(),
        passed: seed_failures.is_empty(),
        failures: seed_failures,
    });
    outcome.verdicts.push(Verdict {
        criteria: "agentyard's bar (p99 <= 20 ms for every operation, every configuration)".into(),
        passed: our_failures.is_empty(),
        failures: our_failures,
    });
    Ok(outcome)
}

fn check_p99(row: &Row, limit_ms: f64, failures: &mut Vec<String>) {
    if let Some(p99) = row.p99_ms
        && p99 > limit_ms
    {
        failures.push(format!("p99 latency too high: {} = {p99:.2} ms", row.name));
    }
}

/// One agent: `ops` times create → claim → add an artifact → complete, on a queue of its own so
/// that the claim picks the task it just created.
async fn agent(client: Client, index: usize, ops: usize) -> anyhow::Result<AgentSamples> {
    let name = AgentName::parse(format!("agent-{index}"))?;
    let queue = fresh_queue(&format!("seed-{index}"))?;
    let mut samples: AgentSamples = Default::default();
    for i in 0..ops {
        let mut create = CreateTaskRequest::new(queue.clone(), json!({"op": i}));
        create.title = Some(format!("Agent {index} Task {i}"));
        let (took, created) = timed(client.create_task(&create)).await;
        samples[0].push(took);
        let created = created?;

        let mut claim = ClaimRequest::new(name.clone());
        claim.wait_ms = Some(1_000);
        let (took, claimed) = timed(client.claim(&queue, &claim)).await;
        samples[1].push(took);
        let Some(running) = claimed?.tasks.pop() else {
            bail!("agent {index} could not claim the task it created ({})", created.id);
        };
        if running.id != created.id {
            bail!("agent {index} claimed {} instead of its own {}", running.id, created.id);
        }

        let artifact = UpdateTaskRequest {
            artifacts: Some(vec![NewArtifact {
                name: format!("output-{i}.md"),
                uri: Some(format!("file:///work/agent-{index}/output-{i}.md")),
                content: None,
                media_type: Some("text/markdown".into()),
            }]),
            ..UpdateTaskRequest::default()
        };
        let (took, updated) = timed(client.update_task(running.id, running.version, &artifact, false)).await;
        samples[2].push(took);
        let updated = updated?;

        let token = updated
            .lease
            .as_ref()
            .map(|l| l.token.clone())
            .context("a running task without a lease")?;
        let done = CompleteRequest {
            lease_token: token,
            result: None,
            artifacts: None,
        };
        let (took, completed) = timed(client.complete(updated.id, &done)).await;
        samples[3].push(took);
        completed?;
    }
    Ok(samples)
}
