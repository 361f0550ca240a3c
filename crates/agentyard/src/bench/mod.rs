//! `agentyard bench`: load suites run over HTTP against a server, either one given with `--url`
//! or a fresh child server per workload (`--store sqlite|log|memory`), or on PostgreSQL
//! (`--store postgres[://URL]`) fresh nodes on a fresh schema per workload (`--nodes N` for the
//! drain and latency suites). Each suite measures with the typed client through one shared
//! connection pool, prints a table, and with `--json FILE` writes the machine, the settings and
//! the results. See BENCHMARKS.md for the figures.

mod cpu;
mod drain;
mod enqueue;
mod latency;
mod messages;
mod pg_procs;
mod pg_reference;
mod postgres;
mod report;
mod seed;
mod server;
mod stats;
mod target;

use std::future::Future;
use std::time::{Duration, Instant};

use agentyard_core::QueueName;
use anyhow::{Context, bail};

use crate::cli::BenchArgs;
use report::{Machine, Report, Row, Settings, Verdict};
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

    /// Whether the suite runs on `--nodes` servers (the others run on one).
    fn spreads_over_nodes(self) -> bool {
        matches!(self, Suite::Drain | Suite::Latency)
    }
}

/// What every suite shares: the settings and the HTTP connection pool.
pub struct Bench {
    url: Option<String>,
    /// For a `--url` server run with `--auth`.
    token: Option<String>,
    store: StoreKind,
    durability: String,
    /// Servers of the drain and latency suites (PostgreSQL only).
    nodes: usize,
    /// PostgreSQL's processes on this machine, whose CPU time to read.
    db_cpu: Option<pg_procs::PgProcs>,
    n: Option<u64>,
    concurrency: usize,
    rate: u64,
    smoke: bool,
    only: Option<String>,
    http: reqwest::Client,
}

/// What a suite returns: its rows, and for the seed suite its verdicts.
#[derive(Default)]
pub struct Outcome {
    pub rows: Vec<Row>,
    pub verdicts: Vec<Verdict>,
}

impl Bench {
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

    /// A workload's name as reported: with several nodes, followed by how many.
    pub fn on_nodes(&self, name: String) -> String {
        if self.nodes > 1 {
            format!("{name} on {} nodes", self.nodes)
        } else {
            name
        }
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
    postgres::check_nodes(args.nodes, args.store.postgres().is_some(), args.url.is_some())?;
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
    let db = args.store.postgres().filter(|_| args.url.is_none()).cloned();
    let mut settings = Settings {
        server: args.url.clone().unwrap_or_else(|| "self-started".to_owned()),
        store: args.url.is_none().then(|| args.store.as_str().to_owned()),
        database: db.as_ref().map(|db| db.shown().to_owned()),
        synchronous_commit: None,
        nodes: db.as_ref().map(|_| args.nodes),
        db_cpu: None,
        durability: (args.url.is_none() && matches!(args.store, StoreKind::Sqlite | StoreKind::Log))
            .then(|| durability.to_string()),
        n: args.n,
        concurrency: args.concurrency,
        smoke: args.smoke,
        only: args.only.clone(),
        build: if cfg!(debug_assertions) { "debug" } else { "release" }.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    let db_cpu = match &db {
        Some(db) => prepare_postgres(db, &mut settings).await?,
        None => None,
    };
    if cfg!(debug_assertions) && !args.smoke {
        eprintln!("note: this is a debug build; build with --release for figures that mean something");
    }
    let bench = Bench {
        url: args.url.clone(),
        token: args.token.clone(),
        store: args.store.clone(),
        durability: durability.to_string(),
        nodes: args.nodes,
        db_cpu,
        n: args.n,
        concurrency: args.concurrency,
        rate: args.rate,
        smoke: args.smoke,
        only: args.only.clone(),
        http,
    };
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
    let loop_n = if args.smoke { 500 } else { 10_000 };
    let mut machine = Machine::detect();
    machine.reference_loop_tasks_per_s = Some(reference_loop(loop_n).await?);
    if let Some(db) = &db {
        let measured = pg_reference::reference_loop(db, loop_n, db_cpu).await?;
        machine.postgres_reference_loop_tasks_per_s = Some(measured.tasks_per_s);
        machine.postgres_reference_loop_db_cpu_us_per_task = measured.db_cpu_us_per_task;
    }
    let mut report = Report {
        suite: args.suite.name().to_owned(),
        machine,
        settings,
        results: Vec::new(),
        verdicts: Vec::new(),
    };
    let store = match (&args.url, &args.store) {
        (Some(url), _) => url.clone(),
        (None, StoreKind::Sqlite) => format!("a fresh sqlite store per workload, durability {durability}"),
        (None, StoreKind::Log) => format!("a fresh log store per workload, durability {durability}"),
        (None, StoreKind::Memory) => "a fresh memory store per workload".to_owned(),
        (None, StoreKind::Postgres(db)) => format!(
            "a fresh schema per workload on {} (synchronous_commit {}), {}",
            db.shown(),
            report.settings.synchronous_commit.as_deref().unwrap_or("unknown"),
            match args.nodes {
                1 => "1 node".to_owned(),
                2 => "2 nodes for drain and latency (producer on node 1, claimers on node 2)".to_owned(),
                n => format!("{n} nodes for drain and latency (producer on node 1, claimers on nodes 2 to {n})"),
            }
        ),
    };
    let pg_loop = match (
        report.machine.postgres_reference_loop_tasks_per_s,
        report.machine.postgres_reference_loop_db_cpu_us_per_task,
    ) {
        (Some(rate), Some(cpu)) => {
            format!(", on PostgreSQL {rate:.0} tasks/s ({cpu:.1} CPU µs of the database per task)")
        }
        (Some(rate), None) => format!(", on PostgreSQL {rate:.0} tasks/s"),
        _ => String::new(),
    };
    println!(
        "agentyard bench {} against {store}; {} cores, {} MB; reference loop {:.0} tasks/s{pg_loop}{}",
        args.suite.name(),
        report.machine.cores,
        report.machine.memory_mb,
        report.machine.reference_loop_tasks_per_s.unwrap_or_default(),
        if args.smoke { " (smoke run)" } else { "" }
    );
    if let Some(source) = &report.settings.db_cpu {
        println!("CPU µs DB, PostgreSQL's per task: {source}");
    }
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
            let where_ = if args.nodes > 1 && !suite.spreads_over_nodes() {
                format!(" (on 1 node: --nodes {} applies to drain and latency only)", args.nodes)
            } else {
                String::new()
            };
            println!(
                "\n{}{where_}:\n{}",
                suite.name(),
                report::table(&outcome.rows, db.is_some())
            );
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
             server (one the bench started; with several nodes all of them together) and of this bench process, the \
             load generator{}.",
            if db.is_some() {
                ", and of PostgreSQL's processes on this machine (DB)"
            } else {
                ""
            }
        );
        if args.nodes > 1 {
            println!("SERVER RSS MB with several nodes: the largest node's peak.");
        }
    }
    if let Some(path) = &args.json {
        report.write_json(path)?;
        println!("\nwrote {}", path.display());
    }
    Ok(())
}

/// With `--store postgres`, before the suites: the database's durability noted in the settings,
/// schemas of earlier runs that died dropped, and which PostgreSQL processes' CPU time to read
/// (the settings say which, or why none).
async fn prepare_postgres(db: &postgres::PgUrl, settings: &mut Settings) -> anyhow::Result<Option<pg_procs::PgProcs>> {
    settings.synchronous_commit = Some(db.synchronous_commit().await?);
    let dropped = db.drop_stale_schemas().await?;
    if dropped > 0 {
        eprintln!(
            "dropped {dropped} schemas that earlier bench runs left on {}",
            db.shown()
        );
    }
    let (which, source) = match pg_procs::choose(db.local(), db.postmaster().await?) {
        Ok((which, source)) => (Some(which), source),
        Err(why) => (None, format!("not reported: {why}")),
    };
    settings.db_cpu = Some(source);
    Ok(which)
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
