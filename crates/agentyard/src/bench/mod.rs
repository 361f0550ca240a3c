//! `agentyard bench`: load suites run over HTTP against a server, either one given with `--url`
//! or a fresh child server per workload (`--store sqlite|memory`). Each suite measures with the
//! typed client through one shared connection pool, prints a table, and with `--json FILE` writes
//! the machine, the settings and the results. See BENCHMARKS.md for the figures.

mod cpu;
mod drain;
mod enqueue;
mod latency;
mod messages;
mod report;
mod seed;
mod server;
mod stats;

use std::future::Future;
use std::time::{Duration, Instant};

use agentyard_client::Client;
use agentyard_core::QueueName;
use anyhow::{Context, bail};

use crate::cli::BenchArgs;
use cpu::CpuMark;
use report::{Machine, Report, Row, Settings, Verdict};
use server::ServerProcess;
pub use server::StoreKind;

/// The workloads `agentyard bench` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Suite {
    /// Every suite below, one after the other.
    All,
    /// Seed 000 §5: agents × (create → running → artifact → complete).
    Seed,
    /// Tasks created one by one, then in batches of 100.
    Enqueue,
    /// Claim-and-complete N waiting tasks with concurrent claimers.
    Drain,
    /// Pick-up latency of tasks created at a steady rate while claimers long-poll.
    Latency,
    /// Direct and broadcast message rates: sends and deliveries to 10 agents.
    Messages,
}

impl Suite {
    fn name(self) -> &'static str {
        match self {
            Suite::All => "all",
            Suite::Seed => "seed",
            Suite::Enqueue => "enqueue",
            Suite::Drain => "drain",
            Suite::Latency => "latency",
            Suite::Messages => "messages",
        }
    }
}

/// What every suite shares: the settings and the HTTP connection pool.
pub struct Bench {
    url: Option<String>,
    store: StoreKind,
    durability: String,
    n: Option<u64>,
    concurrency: usize,
    rate: u64,
    smoke: bool,
    only: Option<String>,
    http: reqwest::Client,
}

/// A server to measure, with its client. A self-started one is stopped when this is dropped.
pub struct Target {
    pub client: Client,
    server: Option<ServerProcess>,
}

impl Target {
    /// The self-started server's peak memory so far; `None` against `--url`.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        self.server.as_ref().and_then(ServerProcess::peak_rss_mb)
    }

    /// CPU times so far, of the self-started server (`None` against `--url`) and of this
    /// process: take one before a measured stretch and one after, then [`CpuMark::cost`].
    pub fn cpu_mark(&self) -> CpuMark {
        CpuMark {
            server: self.server.as_ref().and_then(|s| cpu::ticks(&s.pid().to_string())),
            bench: cpu::ticks("self"),
        }
    }
}

/// What a suite returns: its rows, and for the seed suite its verdicts.
#[derive(Default)]
pub struct Outcome {
    pub rows: Vec<Row>,
    pub verdicts: Vec<Verdict>,
}

impl Bench {
    /// A fresh server for one workload (or the `--url` one).
    pub async fn target(&self) -> anyhow::Result<Target> {
        let (url, server) = match &self.url {
            Some(url) => (url.clone(), None),
            None => {
                let server = ServerProcess::start(self.store, &self.durability).await?;
                (server.url().to_owned(), Some(server))
            }
        };
        let client = Client::with_http(url, self.http.clone());
        client
            .health()
            .await
            .with_context(|| format!("the server at {} does not answer", client.base_url()))?;
        Ok(Target { client, server })
    }

    /// `--n` if given, else the suite's default (its smoke default with `--smoke`).
    pub fn n(&self, default: u64, smoke: u64) -> u64 {
        self.n.unwrap_or(if self.smoke { smoke } else { default })
    }

    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub fn smoke(&self) -> bool {
        self.smoke
    }

    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Whether the workload called `name` is to run (`--only`).
    pub fn wants(&self, name: &str) -> bool {
        self.only.as_deref().is_none_or(|only| name.contains(only))
    }
}

/// A queue name no earlier run used, so runs against one `--url` server do not mix.
pub fn fresh_queue(prefix: &str) -> anyhow::Result<QueueName> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let seq = NEXT.fetch_add(1, Ordering::Relaxed);
    let name = format!("bench-{prefix}-{nanos:x}-{seq}");
    QueueName::parse(name.clone()).with_context(|| format!("queue name {name:?}"))
}

/// Runs `call` and returns how long it took with its outcome.
pub async fn timed<T>(call: impl Future<Output = T>) -> (Duration, T) {
    let start = Instant::now();
    let out = call.await;
    (start.elapsed(), out)
}

pub async fn bench(args: BenchArgs) -> anyhow::Result<()> {
    let durability: agentyard_store_sqlite::Durability = args
        .durability
        .parse()
        .map_err(|e| anyhow::anyhow!("--durability: {e}"))?;
    if args.concurrency == 0 || args.concurrency > 1_000 {
        bail!("--concurrency must be between 1 and 1000");
    }
    if args.rate == 0 || args.rate > 100_000 {
        bail!("--rate must be between 1 and 100000 tasks per second");
    }
    if args.n == Some(0) {
        bail!("--n must be at least 1");
    }
    if let Some(only) = &args.only {
        check_only(only, args.suite, args.concurrency)?;
    }
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .pool_max_idle_per_host(4 * args.concurrency + 128)
        // A hung server must fail the run (and CI), not stall it.
        .timeout(Duration::from_secs(120))
        .build()
        .context("cannot build the HTTP client")?;
    let bench = Bench {
        url: args.url.clone(),
        store: args.store,
        durability: durability.to_string(),
        n: args.n,
        concurrency: args.concurrency,
        rate: args.rate,
        smoke: args.smoke,
        only: args.only.clone(),
        http,
    };
    let settings = Settings {
        server: args.url.clone().unwrap_or_else(|| "self-started".to_owned()),
        store: args.url.is_none().then(|| args.store.as_str().to_owned()),
        durability: (args.url.is_none() && args.store != StoreKind::Memory).then(|| durability.to_string()),
        n: args.n,
        concurrency: args.concurrency,
        smoke: args.smoke,
        only: args.only.clone(),
        build: if cfg!(debug_assertions) { "debug" } else { "release" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    if cfg!(debug_assertions) && !args.smoke {
        eprintln!("note: this is a debug build; build with --release for figures that mean something");
    }
    let suites = match args.suite {
        Suite::All => vec![
            Suite::Seed,
            Suite::Enqueue,
            Suite::Drain,
            Suite::Latency,
            Suite::Messages,
        ],
        one => vec![one],
    };
    let mut machine = Machine::detect();
    machine.reference_loop_tasks_per_s = Some(reference_loop(if args.smoke { 500 } else { 10_000 }).await?);
    let mut report = Report {
        suite: args.suite.name().to_owned(),
        machine,
        settings,
        results: Vec::new(),
        verdicts: Vec::new(),
    };
    let store = match (&args.url, args.store) {
        (Some(url), _) => url.clone(),
        (None, StoreKind::Sqlite) => format!("a fresh sqlite store per workload, durability {durability}"),
        (None, StoreKind::Log) => format!("a fresh log store per workload, durability {durability}"),
        (None, StoreKind::Memory) => "a fresh memory store per workload".to_owned(),
    };
    println!(
        "agentyard bench {} against {store}; {} cores, {} MB; reference loop {:.0} tasks/s{}",
        args.suite.name(),
        report.machine.cores,
        report.machine.memory_mb,
        report.machine.reference_loop_tasks_per_s.unwrap_or_default(),
        if args.smoke { " (smoke run)" } else { "" }
    );
    for suite in suites {
        let outcome = match suite {
            Suite::Seed => seed::run(&bench).await,
            Suite::Enqueue => enqueue::run(&bench).await,
            Suite::Drain => drain::run(&bench).await,
            Suite::Latency => latency::run(&bench).await,
            Suite::Messages => messages::run(&bench).await,
            Suite::All => unreachable!("expanded above"),
        }
        .with_context(|| format!("the {} suite failed", suite.name()))?;
        if !outcome.rows.is_empty() {
            println!("\n{}:\n{}", suite.name(), report::table(&outcome.rows));
        }
        for v in &outcome.verdicts {
            if v.passed {
                println!("{}: PASSED", v.criteria);
            } else {
                println!("{}: FAILED", v.criteria);
                for f in &v.failures {
                    println!("  - {f}");
                }
            }
        }
        report.results.extend(outcome.rows);
        report.verdicts.extend(outcome.verdicts);
    }
    if report.results.iter().any(|r| r.bench_cpu_us_per_task.is_some()) {
        println!(
            "\nCPU µs: CPU time (user + system) per task, or per item of N, while the workload was measured; of the \
             server (one the bench started) and of this bench process, the load generator."
        );
    }
    if let Some(path) = &args.json {
        report.write_json(path)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

/// `--only` must pick at least one workload of a suite that has several to pick from.
fn check_only(only: &str, suite: Suite, concurrency: usize) -> anyhow::Result<()> {
    let names: Vec<String> = match suite {
        Suite::Drain => drain::workloads(concurrency).into_iter().map(|w| w.0).collect(),
        Suite::Enqueue => enqueue::workloads(concurrency).into_iter().map(|w| w.0).collect(),
        other => bail!(
            "--only picks workloads of the drain or enqueue suite; the {} suite runs whole",
            other.name()
        ),
    };
    if !names.iter().any(|name| name.contains(only)) {
        bail!(
            "--only {only:?} matches no workload of the {} suite; its workloads are: {}",
            suite.name(),
            names.join(", ")
        );
    }
    Ok(())
}

/// The bar's reference loop over `n` tasks in a temporary directory (see
/// `agentyard_store_sqlite::reference_loop`), off the async runtime.
async fn reference_loop(n: u32) -> anyhow::Result<f64> {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().context("cannot create a temporary directory for the reference loop")?;
        agentyard_store_sqlite::reference_loop(dir.path(), n).context("the reference loop failed")
    })
    .await
    .context("the reference loop panicked")?
}
