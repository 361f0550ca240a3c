//! The messages suite: direct and broadcast send and receive rates, in a namespace of its own.
//!
//! - Direct: `--concurrency` receivers (registered agents) long-poll their inboxes and
//!   acknowledge what they read, while as many senders send N messages round-robin to them.
//! - Broadcast: N / 10 broadcasts sent one at a time, each read by every one of the receivers
//!   (stored once, fanned out on read).
//!
//! Send rows time each `POST /v1/messages`; delivery rows count messages received per second,
//! from the first send to the last receipt, and their latency is from the moment a message was
//! sent to the moment a receiver's inbox answer held it (the sent time travels in the body).

use std::time::{Duration, Instant};

use agentyard_client::Client;
use agentyard_core::api::{RegisterAgentRequest, SendMessageRequest};
use agentyard_core::message::Recipient;
use agentyard_core::{AgentName, Namespace};
use anyhow::{Context, bail};
use serde_json::json;

use crate::bench::report::Row;
use crate::bench::stats::Samples;
use crate::bench::{Bench, Outcome, fresh_queue, timed};

/// The routes the suite drives, as the OpenAPI document names them.
const ROUTES: [&str; 2] = ["/v1/messages", "/v1/agents/{name}/inbox"];
/// How long a receiver's inbox read waits for a message.
const WAIT_MS: u64 = 1_000;
/// Most messages one inbox read returns.
const READ_LIMIT: u32 = 500;

pub async fn run(bench: &Bench) -> anyhow::Result<Outcome> {
    let n = bench.n(20_000, 500);
    let c = bench.concurrency();
    let mut outcome = Outcome::default();

    let target = bench.target().await?;
    let doc = target.client.openapi().await?;
    let missing: Vec<&str> = ROUTES
        .iter()
        .copied()
        .filter(|r| doc["paths"].get(*r).is_none())
        .collect();
    if !missing.is_empty() {
        println!(
            "\nmessages: skipped: the suite needs the messaging API, and this server lacks {}",
            missing.join(" and ")
        );
        return Ok(outcome);
    }

    // Direct messages.
    let (client, receivers) = setup(&target.client, c).await?;
    let epoch = Instant::now();
    let per_receiver: Vec<u64> = (0..c as u64)
        .map(|r| n / c as u64 + u64::from(r < n % c as u64))
        .collect();
    let readers = spawn_readers(&client, &receivers, &per_receiver, epoch);
    let cpu = target.cpu_mark();
    let start = Instant::now();
    let mut senders = Vec::with_capacity(c);
    for s in 0..c {
        let (client, receivers) = (client.clone(), receivers.clone());
        senders.push(tokio::spawn(async move {
            let mut samples = Samples::default();
            // Sender s sends messages s, s + c, s + 2c, …: message i goes to receiver i mod c.
            for i in (s as u64..n).step_by(receivers.len()) {
                let to = receivers[(i % receivers.len() as u64) as usize].clone();
                let (took, sent) = timed(send(&client, Recipient::Agent { agent: to }, epoch)).await;
                samples.push(took);
                sent?;
            }
            anyhow::Ok(samples)
        }));
    }
    let mut send_samples = Samples::with_capacity(n as usize);
    for s in senders {
        send_samples.extend(s.await.context("a sender panicked")??);
    }
    let sent_for = start.elapsed();
    let delivered = collect(readers, n).await?;
    let delivered_for = start.elapsed();
    let cost = cpu.cost(target.cpu_mark(), n);
    outcome.rows.push(
        Row::new(format!("messages direct send x{c}"), n)
            .rate(n, sent_for)
            .latency(&send_samples)
            .rss(target.peak_rss_mb()),
    );
    outcome.rows.push(
        Row::new(format!("messages direct delivery to {c} agents"), n)
            .rate(n, delivered_for)
            .latency(&delivered)
            .rss(target.peak_rss_mb())
            .cpu(cost),
    );

    // Broadcasts, on a fresh server.
    drop(target);
    let target = bench.target().await?;
    let broadcasts = (n / 10).max(1);
    let (client, receivers) = setup(&target.client, c).await?;
    let epoch = Instant::now();
    let readers = spawn_readers(&client, &receivers, &vec![broadcasts; c], epoch);
    let cpu = target.cpu_mark();
    let start = Instant::now();
    let mut send_samples = Samples::with_capacity(broadcasts as usize);
    for _ in 0..broadcasts {
        let (took, sent) = timed(send(&client, Recipient::Broadcast { broadcast: true }, epoch)).await;
        send_samples.push(took);
        sent?;
    }
    let sent_for = start.elapsed();
    let deliveries = broadcasts * c as u64;
    let delivered = collect(readers, deliveries).await?;
    let delivered_for = start.elapsed();
    let cost = cpu.cost(target.cpu_mark(), deliveries);
    outcome.rows.push(
        Row::new("messages broadcast send x1", broadcasts)
            .rate(broadcasts, sent_for)
            .latency(&send_samples)
            .rss(target.peak_rss_mb()),
    );
    outcome.rows.push(
        Row::new(format!("messages broadcast delivery to {c} agents"), deliveries)
            .rate(deliveries, delivered_for)
            .latency(&delivered)
            .rss(target.peak_rss_mb())
            .cpu(cost),
    );
    Ok(outcome)
}

/// A namespace of its own with `count` registered receivers.
async fn setup(client: &Client, count: usize) -> anyhow::Result<(Client, Vec<AgentName>)> {
    let ns = Namespace::parse(fresh_queue("messages")?.as_str())?;
    let client = client.clone().with_namespace(ns);
    let mut receivers = Vec::with_capacity(count);
    for r in 0..count {
        let name = AgentName::parse(format!("receiver-{r}"))?;
        let registration = RegisterAgentRequest {
            capabilities: None,
            slots: None,
            metadata: None,
        };
        client.register_agent(&name, &registration).await?;
        receivers.push(name);
    }
    Ok((client, receivers))
}

async fn send(client: &Client, to: Recipient, epoch: Instant) -> anyhow::Result<()> {
    let sent_us = epoch.elapsed().as_micros() as u64;
    client
        .send_message(&SendMessageRequest::new(to, json!({ "sent_us": sent_us })))
        .await?;
    Ok(())
}

type Reader = tokio::task::JoinHandle<anyhow::Result<Samples>>;

fn spawn_readers(client: &Client, receivers: &[AgentName], expected: &[u64], epoch: Instant) -> Vec<Reader> {
    receivers
        .iter()
        .zip(expected)
        .map(|(name, &expected)| {
            let (client, name) = (client.clone(), name.clone());
            tokio::spawn(async move { read(client, name, expected, epoch).await })
        })
        .collect()
}

/// Reads the inbox until `expected` messages came, acknowledging each page.
async fn read(client: Client, name: AgentName, expected: u64, epoch: Instant) -> anyhow::Result<Samples> {
    let mut samples = Samples::with_capacity(expected as usize);
    let mut after = None;
    let mut idle = 0;
    while (samples.len() as u64) < expected {
        let page = client.inbox(&name, after, Some(WAIT_MS), Some(READ_LIMIT)).await?;
        let now_us = epoch.elapsed().as_micros() as u64;
        if page.messages.is_empty() {
            idle += 1;
            // Every message was sent before the readers could wait this long for nothing.
            if idle > 30 {
                bail!("{name} received {} of {expected} messages", samples.len());
            }
            continue;
        }
        idle = 0;
        for m in &page.messages {
            let sent_us = m.body["sent_us"].as_u64().context("a message without its sent time")?;
            samples.push(Duration::from_micros(now_us.saturating_sub(sent_us)));
        }
        after = Some(page.cursor);
        client.ack(&name, page.cursor).await?;
    }
    Ok(samples)
}

async fn collect(readers: Vec<Reader>, expected: u64) -> anyhow::Result<Samples> {
    let mut all = Samples::with_capacity(expected as usize);
    for r in readers {
        all.extend(r.await.context("a receiver panicked")??);
    }
    if all.len() as u64 != expected {
        bail!("{expected} messages were sent but {} were received", all.len());
    }
    Ok(all)
}
