//! The command line: every subcommand and flag of `agentyard`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "agentyard", version, about = "The coordination yard for fleets of AI agents")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Create, inspect and work on tasks of a running server.
    #[command(subcommand)]
    Task(TaskCommand),
    /// Inspect queues of a running server.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Register, list, drain and remove agents.
    #[command(subcommand)]
    Agent(AgentCommand),
    /// Send, receive, follow and answer messages between agents.
    #[command(subcommand)]
    Msg(MsgCommand),
    /// Keyed dispatch limits (rate_limit_key, concurrency_key) of a running server.
    #[command(subcommand)]
    Limit(LimitCommand),
    /// Make, list and revoke API tokens (through a server, or straight in its store).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The event log of a running server: list, follow (tail) and trace by correlation id.
    #[command(subcommand)]
    Events(crate::event_commands::EventsCommand),
    /// Maintenance of a running server: prune history now.
    #[command(subcommand)]
    Admin(crate::admin_commands::AdminCommand),
    /// Measure a server: throughput and latency suites (see BENCHMARKS.md).
    Bench(BenchArgs),
}

/// Flags of `serve`. Each is also an `AGENTYARD_*` environment variable; a TOML file given with
/// `--config` fills in whatever neither sets.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// A TOML file with any of the settings below (keys as the long flags, with underscores).
    #[arg(long, env = "AGENTYARD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:7070]
    #[arg(long, env = "AGENTYARD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Where tasks live: sqlite://PATH, log://PATH (state in memory, every change appended to
    /// PATH), postgres://USER@HOST:5432/DB[?schema=NAME] (any number of nodes on one database) or
    /// memory:// (nothing kept) [default: sqlite://agentyard.db]
    #[arg(long, env = "AGENTYARD_STORE")]
    pub store: Option<String>,
    /// Durability of the sqlite and log stores: normal (survives a process crash) or full (fsync
    /// per commit group, survives power loss) [default: normal]
    #[arg(long, env = "AGENTYARD_DURABILITY")]
    pub durability: Option<String>,
    /// Open a log store (log://PATH) damaged before its last frame by cutting it at the damage:
    /// every change from there on is lost, and the cut bytes are kept in PATH.cut-MILLIS. Without
    /// it such a log stops the start (a torn last write is cut either way). Only a flag, never an
    /// environment variable or a file setting: it is a decision for one start
    #[arg(long)]
    pub repair: bool,
    /// Most waiting (queued + scheduled) tasks per queue; creates beyond it get 429
    /// [default: 1000000]
    #[arg(long, env = "AGENTYARD_MAX_QUEUE_DEPTH")]
    pub max_queue_depth: Option<u64>,
    /// Lease length when a claim does not say, in milliseconds [default: 30000]
    #[arg(long, env = "AGENTYARD_LEASE_MS")]
    pub lease_ms: Option<u64>,
    /// Largest request body, in bytes [default: 1048576]
    #[arg(long, env = "AGENTYARD_BODY_LIMIT")]
    pub body_limit: Option<usize>,
    /// Most bytes of JSON in one task list or inbox read: a page stops early and gives a cursor [default: 8388608]
    #[arg(long, env = "AGENTYARD_ANSWER_BUDGET")]
    pub answer_budget: Option<usize>,
    /// Log format: pretty, json, or auto (pretty on a terminal) [default: auto]
    #[arg(long, env = "AGENTYARD_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Most unacknowledged messages per inbox; direct sends beyond it get 429 [default: 100000]
    #[arg(long, env = "AGENTYARD_MAX_INBOX_DEPTH")]
    pub max_inbox_depth: Option<u64>,
    /// An agent silent for this long is gone and its tasks go to others, in milliseconds
    /// [default: 30000]
    #[arg(long, env = "AGENTYARD_AGENT_TIMEOUT_MS")]
    pub agent_timeout_ms: Option<u64>,
    /// An agent registered by a claim (not by `agent register`) that has been gone this long is
    /// removed, as `agent remove` would; 0 keeps them, in milliseconds [default: 86400000]
    #[arg(long, env = "AGENTYARD_FORGET_GONE_AGENTS_AFTER_MS")]
    pub forget_gone_agents_after_ms: Option<u64>,
    /// Most agents per namespace: a claim or registration that would create one more gets 429;
    /// agents already known go on working [default: 10000]
    #[arg(long, env = "AGENTYARD_MAX_AGENTS_PER_NAMESPACE")]
    pub max_agents_per_namespace: Option<u64>,
    /// Requests per minute each agent may make (claims, sends, agent routes); 0 for no limit
    /// [default: 0]
    #[arg(long, env = "AGENTYARD_AGENT_RATE_PER_MINUTE")]
    pub agent_rate_per_minute: Option<u32>,
    /// How many requests an agent may make at once above its rate [default: 60]
    #[arg(long, env = "AGENTYARD_AGENT_BURST")]
    pub agent_burst: Option<u32>,
    /// How long a request's headers may take (a new connection's from its accept, TLS handshake
    /// included; a kept-alive one's from their first byte), in milliseconds [default: 10000]
    #[arg(long, env = "AGENTYARD_HEADER_TIMEOUT_MS")]
    pub header_timeout_ms: Option<u64>,
    /// How long a request body may take to arrive in full, in milliseconds; slower ones get 408
    /// [default: 30000]
    #[arg(long, env = "AGENTYARD_BODY_TIMEOUT_MS")]
    pub body_timeout_ms: Option<u64>,
    /// How long a kept-alive connection may wait for its next request, in milliseconds
    /// [default: 120000]
    #[arg(long, env = "AGENTYARD_IDLE_TIMEOUT_MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Most connections open at once (never more than the descriptor limit allows); at the cap
    /// the longest-waiting idle connection is closed for a new one, and when all are serving
    /// requests new ones wait [default: 10000]
    #[arg(long, env = "AGENTYARD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Serve HTTPS with this PEM certificate chain (with --tls-key)
    #[arg(long, env = "AGENTYARD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert
    #[arg(long, env = "AGENTYARD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Every request but the health probes needs an API token (`agentyard token create`)
    #[arg(long, env = "AGENTYARD_AUTH")]
    pub auth: bool,
    /// Serve a non-loopback --listen address without tokens: anyone who reaches it can do
    /// anything. Only a flag, never an environment variable or a file setting
    #[arg(long)]
    pub insecure_no_auth: bool,
    #[command(flatten)]
    pub retention: crate::retention_settings::RetentionArgs,
}

/// Where the server is and how to print.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Server URL.
    #[arg(long, env = "AGENTYARD_URL", default_value = "http://127.0.0.1:7070", global = true)]
    pub url: String,
    /// Namespace to work in.
    #[arg(
        long,
        short = 'n',
        env = "AGENTYARD_NAMESPACE",
        default_value = "default",
        global = true
    )]
    pub namespace: String,
    /// Print JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// API token (`ayt_…`), for a server run with --auth.
    #[arg(long, env = "AGENTYARD_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TaskCommand {
    /// Create a task.
    Create {
        #[command(flatten)]
        client: ClientArgs,
        /// Queue to put it on.
        #[arg(long, short)]
        queue: String,
        /// Input as JSON, e.g. '{"url": "https://…"}'.
        #[arg(long, short, default_value = "null")]
        input: String,
        #[arg(long)]
        title: Option<String>,
        #[arg(long)]
        kind: Option<String>,
        /// Higher runs first.
        #[arg(long, allow_negative_numbers = true)]
        priority: Option<i32>,
        /// Run no earlier than this many milliseconds from now.
        #[arg(long)]
        delay_ms: Option<u64>,
        #[arg(long)]
        max_attempts: Option<u32>,
        /// Creating again with the same key returns the original task.
        #[arg(long)]
        idempotency_key: Option<String>,
        /// Capabilities an agent needs to get it (repeat or comma-separate).
        #[arg(long = "require", value_delimiter = ',')]
        required_capabilities: Vec<String>,
    },
    /// Show one task.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        /// The task id (as `task create` or `task list` print it).
        id: String,
    },
    /// Everything that happened to one task, in order (its events).
    History {
        #[command(flatten)]
        client: ClientArgs,
        /// The task id.
        id: String,
    },
    /// List tasks, newest last.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Only this queue.
        #[arg(long, short)]
        queue: Option<String>,
        /// queued, scheduled, running, succeeded, failed (the dead-letter view) or cancelled.
        #[arg(long, short)]
        status: Option<String>,
        /// Tasks per page.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Continue after a previous page.
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Claim tasks from a queue as an agent (prints their lease tokens).
    Claim {
        #[command(flatten)]
        client: ClientArgs,
        /// The queue.
        #[arg(long, short)]
        queue: String,
        /// The agent acting (created when the server first hears of it).
        #[arg(long, short)]
        agent: String,
        /// Most tasks to take at once.
        #[arg(long, default_value_t = 1)]
        max: u32,
        /// Wait up to this long for a task to arrive.
        #[arg(long, default_value_t = 0)]
        wait_ms: u64,
        /// Lease length in milliseconds (default: the server's --lease-ms).
        #[arg(long)]
        lease_ms: Option<u64>,
        /// Capabilities this agent offers (repeat or comma-separate).
        #[arg(long = "capability", value_delimiter = ',')]
        capabilities: Vec<String>,
    },
    /// Mark a claimed task succeeded.
    Complete {
        #[command(flatten)]
        client: ClientArgs,
        /// The task id (as `task create` or `task list` print it).
        id: String,
        /// The lease token the claim returned (`--token` is the API token).
        #[arg(long, short = 't')]
        lease_token: String,
        /// Result as JSON.
        #[arg(long, short)]
        result: Option<String>,
    },
    /// Report that a claimed task's attempt failed (it retries unless --final).
    Fail {
        #[command(flatten)]
        client: ClientArgs,
        /// The task id (as `task create` or `task list` print it).
        id: String,
        /// The lease token the claim returned (`--token` is the API token).
        #[arg(long, short = 't')]
        lease_token: String,
        /// What went wrong, for whoever reads the dead-letter view.
        #[arg(long, short)]
        message: String,
        /// A short error kind, e.g. timeout or rate_limited.
        #[arg(long, default_value = "error")]
        kind: String,
        /// Do not retry: send the task to the dead-letter view now.
        #[arg(long = "final")]
        no_retry: bool,
    },
    /// Cancel a task that has not finished.
    Cancel {
        #[command(flatten)]
        client: ClientArgs,
        /// The task id (as `task create` or `task list` print it).
        id: String,
    },
    /// Put a failed task back on its queue with fresh attempts.
    Redrive {
        #[command(flatten)]
        client: ClientArgs,
        /// The task id (as `task create` or `task list` print it).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Every queue with its counts per status.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Flags of `bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which suite to run.
    #[arg(value_enum)]
    pub suite: crate::bench::Suite,
    /// Measure this running server instead of starting a fresh one per workload.
    #[arg(long)]
    pub url: Option<String>,
    /// API token for a --url server run with --auth (servers the bench starts run without).
    #[arg(long, env = "AGENTYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Store of the servers the bench starts itself: sqlite, log, memory, or postgres[://URL] (a
    /// fresh schema per workload, dropped after it, on the database at URL; without one at
    /// $AGENTYARD_BENCH_POSTGRES_URL, else postgres://postgres@127.0.0.1:5432/postgres). On
    /// PostgreSQL every run also measures a reference loop on the database and reports the CPU
    /// time of the PostgreSQL processes per task when they run on this machine.
    #[arg(long, default_value = "sqlite", value_parser = crate::bench::StoreKind::parse)]
    pub store: crate::bench::StoreKind,
    /// Servers (nodes) sharing the PostgreSQL schema in the drain and latency suites: tasks are
    /// created through node 1, claimers spread over the other nodes (all on node 1 when 1). The
    /// other suites run on one node. Only with --store postgres.
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Durability of the servers the bench starts itself (sqlite and log stores): normal or full.
    /// PostgreSQL's is the database's own (synchronous_commit), reported in the header.
    #[arg(long, default_value = "normal")]
    pub durability: String,
    /// Tasks per workload (each suite has its own default).
    #[arg(long)]
    pub n: Option<u64>,
    /// Concurrent claimers (drain, latency) or requests in flight (enqueue).
    #[arg(long, default_value_t = 10)]
    pub concurrency: usize,
    /// Tasks per second the latency suite's producer creates.
    #[arg(long, default_value_t = 500)]
    pub rate: u64,
    /// A seconds-long run with small sizes, to check that every suite works.
    #[arg(long)]
    pub smoke: bool,
    /// With the drain or enqueue suite: run only the workloads whose name contains this text
    /// (plain text, so "claim1" also matches "claim10"), e.g. `--only "claim1 complete-in-claim"`
    /// to profile one workload.
    #[arg(long)]
    pub only: Option<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum AgentCommand {
    /// Every agent with its status, capabilities, running tasks and last heartbeat.
    List {
        #[command(flatten)]
        client: ClientArgs,
        /// Only agents with this status: active, draining or gone.
        #[arg(long, short)]
        status: Option<String>,
    },
    /// Show one agent.
    Get {
        #[command(flatten)]
        client: ClientArgs,
        /// The agent name.
        name: String,
    },
    /// Register an agent (or replace its registration); it becomes active.
    Register {
        #[command(flatten)]
        client: ClientArgs,
        /// The agent name.
        name: String,
        /// Capabilities it offers (repeat or comma-separate).
        #[arg(long = "capability", value_delimiter = ',')]
        capabilities: Vec<String>,
        /// Most tasks it runs at once.
        #[arg(long)]
        slots: Option<u32>,
        /// Anything to show next to it, as JSON.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// Say an agent is alive.
    Heartbeat {
        #[command(flatten)]
        client: ClientArgs,
        /// The agent name.
        name: String,
    },
    /// Let an agent finish what it holds and give it nothing new.
    Drain {
        #[command(flatten)]
        client: ClientArgs,
        /// The agent name.
        name: String,
    },
    /// Remove an agent; the tasks it held go back to their queues.
    Remove {
        #[command(flatten)]
        client: ClientArgs,
        /// The agent name.
        name: String,
    },
}

/// Who a message goes to: exactly one of these.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Recipient {
    /// One agent.
    #[arg(long)]
    pub to: Option<String>,
    /// The subscribers of a topic.
    #[arg(long)]
    pub topic: Option<String>,
    /// Every agent of the namespace.
    #[arg(long)]
    pub broadcast: bool,
}

#[derive(Debug, Subcommand)]
pub enum MsgCommand {
    /// Send a message to an agent, a topic or everyone.
    Send {
        #[command(flatten)]
        client: ClientArgs,
        #[command(flatten)]
        recipient: Recipient,
        /// The body: JSON, or else sent as a string.
        body: String,
        /// The sending agent (replies go to it).
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        correlation_id: Option<String>,
        /// The id of the message this one answers.
        #[arg(long)]
        reply_to: Option<String>,
        /// Never delivered after this many milliseconds.
        #[arg(long)]
        ttl_ms: Option<u64>,
        /// Sending again with the same key sends nothing new.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Wait once for an agent's messages and print them.
    Recv {
        #[command(flatten)]
        client: ClientArgs,
        /// Whose inbox.
        #[arg(long, short)]
        agent: String,
        /// Wait up to this long for a message.
        #[arg(long, default_value_t = 30_000)]
        wait_ms: u64,
        /// Most messages to take.
        #[arg(long)]
        limit: Option<u32>,
        /// Read after this seq instead of after the acknowledged cursor.
        #[arg(long)]
        after: Option<u64>,
        /// Acknowledge what was printed.
        #[arg(long)]
        ack: bool,
    },
    /// Follow an agent's inbox, printing messages as they come (Ctrl-C to stop).
    Tail {
        #[command(flatten)]
        client: ClientArgs,
        /// The agent whose inbox to follow.
        #[arg(long, short)]
        agent: String,
        /// Start after this seq instead of after the acknowledged cursor.
        #[arg(long)]
        after: Option<u64>,
        /// Acknowledge each message once printed.
        #[arg(long)]
        ack: bool,
        /// Long-poll in a loop instead of following the event stream.
        #[arg(long)]
        poll: bool,
    },
    /// Answer a message of an agent's inbox: to its sender, with its correlation id.
    Reply {
        #[command(flatten)]
        client: ClientArgs,
        /// The agent answering (whose inbox holds the message).
        #[arg(long, short)]
        agent: String,
        /// The seq of the message to answer.
        #[arg(long)]
        seq: u64,
        /// The body: JSON, or else sent as a string.
        body: String,
    },
    /// Subscribe an agent to a topic.
    Subscribe {
        #[command(flatten)]
        client: ClientArgs,
        /// The agent to subscribe.
        #[arg(long, short)]
        agent: String,
        /// The topic name.
        topic: String,
    },
    /// Unsubscribe an agent from a topic.
    Unsubscribe {
        #[command(flatten)]
        client: ClientArgs,
        /// The agent to unsubscribe.
        #[arg(long, short)]
        agent: String,
        /// The topic name.
        topic: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum LimitCommand {
    /// Every configured key with its limits.
    List {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Set the limits of a key in this namespace, replacing what it had (stored: they outlive
    /// restarts and hold for every node).
    Set {
        #[command(flatten)]
        client: ClientArgs,
        /// The key: a rate_limit_key or concurrency_key of tasks.
        key: String,
        /// Tasks with this rate_limit_key handed out per minute.
        #[arg(long)]
        rate_per_minute: Option<u32>,
        /// How many may go at once (with --rate-per-minute).
        #[arg(long)]
        burst: Option<u32>,
        /// Tasks with this concurrency_key running at once.
        #[arg(long)]
        max_concurrent: Option<u64>,
    },
    /// Remove the limits of a key: it goes back to the configuration file's, or to the defaults.
    Delete {
        #[command(flatten)]
        client: ClientArgs,
        /// The key: a rate_limit_key or concurrency_key of tasks.
        key: String,
    },
}

/// Where token commands work: through a running server (with an admin token), or straight in
/// the store, which is how the first admin token is made.
#[derive(Debug, Args)]
pub struct TokenTarget {
    /// Work in this store directly instead of through a server: sqlite://PATH, log://PATH or
    /// postgres://… (a SQLite or log store must not be open in a running server).
    #[arg(long)]
    pub store: Option<String>,
    /// Server URL (without --store).
    #[arg(long, env = "AGENTYARD_URL", default_value = "http://127.0.0.1:7070")]
    pub url: String,
    /// An admin token of that server.
    #[arg(long, env = "AGENTYARD_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token and print it (it is shown this once).
    Create {
        /// admin (everything), operator (everything but tokens, in its namespaces), agent (acts as
        /// one agent: claims, finishes its tasks, its inbox) or reader (reads only).
        #[arg(long)]
        role: String,
        /// A namespace it may act in (repeat or comma-separate), or * for every one. Admin tokens
        /// cover every namespace.
        #[arg(long = "namespace", short = 'n', value_delimiter = ',')]
        namespaces: Vec<String>,
        /// The agent name an agent token acts as.
        #[arg(long)]
        agent: Option<String>,
        /// What it is for, shown by `token list`.
        #[arg(long, default_value = "")]
        name: String,
        #[command(flatten)]
        target: TokenTarget,
    },
    /// Every token (never their secrets), revoked ones included.
    List {
        #[command(flatten)]
        target: TokenTarget,
    },
    /// Revoke a token: it authenticates nothing from then on.
    Revoke {
        /// The token's id, as `token list` shows it.
        id: String,
        #[command(flatten)]
        target: TokenTarget,
    },
}
