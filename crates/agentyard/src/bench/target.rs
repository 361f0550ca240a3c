//! The servers one workload measures: the `--url` one, or fresh ones the bench starts, one node
//! (every suite) or `--nodes` of them on one PostgreSQL schema (drain and latency), with a
//! client per node.

use agentyard_client::Client;
use anyhow::Context;

use crate::bench::Bench;
use crate::bench::cpu::{self, CpuMark};
use crate::bench::pg_procs::{self, PgProcs};
use crate::bench::postgres::BenchSchema;
use crate::bench::server::ServerProcess;

/// A server to measure, with its client. Self-started servers are stopped when this is dropped,
/// and then their schema is dropped.
pub struct Target {
    /// Node 1's: the producer's, and the only one of the suites that run on one node.
    pub client: Client,
    /// Every node's, node 1's first.
    nodes: Vec<Client>,
    /// Declared before the schema, so the nodes stop before it is dropped.
    servers: Vec<ServerProcess>,
    _schema: Option<BenchSchema>,
    /// PostgreSQL's processes, whose CPU time to read.
    db_cpu: Option<PgProcs>,
}

impl Target {
    /// The client claimer `index` uses: with one node node 1's, with several the nodes after
    /// node 1 in turn, so that claimers are parked on other nodes than the producer's.
    pub fn claimer_client(&self, index: usize) -> &Client {
        match self.nodes.len() {
            0 | 1 => &self.client,
            n => &self.nodes[1 + index % (n - 1)],
        }
    }

    /// The self-started servers' peak memory so far, the largest node's; `None` against `--url`.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        let peaks: Option<Vec<f64>> = self.servers.iter().map(ServerProcess::peak_rss_mb).collect();
        peaks?.into_iter().reduce(f64::max)
    }

    /// CPU times so far, of the self-started servers together (`None` against `--url`), of this
    /// process and of PostgreSQL: take one before a measured stretch and one after, then
    /// [`CpuMark::cost`].
    pub fn cpu_mark(&self) -> CpuMark {
        let servers: Option<Vec<u64>> = self.servers.iter().map(|s| cpu::ticks(&s.pid().to_string())).collect();
        CpuMark {
            server: servers.filter(|s| !s.is_empty()).map(|s| s.iter().sum()),
            bench: cpu::ticks("self"),
            db: self.db_cpu.and_then(pg_procs::ticks).map(|(ticks, _)| ticks),
        }
    }
}

impl Bench {
    /// A fresh server for one workload (or the `--url` one).
    pub async fn target(&self) -> anyhow::Result<Target> {
        self.start(1).await
    }

    /// Fresh servers for a workload of the drain or latency suite: `--nodes` of them.
    pub async fn target_nodes(&self) -> anyhow::Result<Target> {
        self.start(self.nodes).await
    }

    async fn start(&self, nodes: usize) -> anyhow::Result<Target> {
        let mut servers = Vec::with_capacity(nodes);
        let mut schema = None;
        let urls = match &self.url {
            Some(url) => vec![url.clone()],
            None => {
                if let Some(db) = self.store.postgres() {
                    schema = Some(BenchSchema::create(db).await?);
                }
                let schema_url = schema.as_ref().map(BenchSchema::url);
                // One after the other: the first runs the migrations, the others find them done.
                for _ in 0..nodes {
                    servers.push(ServerProcess::start(&self.store, &self.durability, schema_url.as_deref()).await?);
                }
                servers.iter().map(|s| s.url().to_owned()).collect()
            }
        };
        let mut clients = Vec::with_capacity(urls.len());
        for url in urls {
            let mut client = Client::with_http(url, self.http.clone());
            if let Some(token) = &self.token {
                client = client.with_token(token)?;
            }
            client
                .health()
                .await
                .with_context(|| format!("the server at {} does not answer", client.base_url()))?;
            clients.push(client);
        }
        Ok(Target {
            client: clients[0].clone(),
            nodes: clients,
            servers,
            _schema: schema,
            db_cpu: self.db_cpu,
        })
    }
}
