//! `serve` settings: flags and `AGENTYARD_*` variables first, then the TOML file, then defaults.
//! Keyed limits (`[limits.KEY]`) and per-namespace settings (`[namespaces.NS]`) come from the
//! file only.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use agentyard_core::Namespace;
use agentyard_core::api::LimitRequest;
use agentyard_core::flow::RateLimit;
use agentyard_server::config::{LimitConfig, NamespaceConfig};
use anyhow::{Context, bail};
use serde::Deserialize;

use crate::cli::ServeArgs;

/// Where the tasks live, parsed from `--store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    /// The log store: the state in memory, every change appended to this file.
    Log(PathBuf),
    Memory,
    /// PostgreSQL, shared by any number of nodes.
    Postgres(Box<agentyard_store_postgres::PgOptions>),
}

impl StoreUrl {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                bail!("--store {url:?} names no file: use sqlite://PATH, e.g. sqlite://agentyard.db");
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if let Some(path) = url.strip_prefix("log://") {
            if path.is_empty() {
                bail!("--store {url:?} names no file: use log://PATH, e.g. log://agentyard.log");
            }
            return Ok(StoreUrl::Log(PathBuf::from(path)));
        }
        if url == "memory://" || url == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options =
                agentyard_store_postgres::PgOptions::parse(url).map_err(|e| anyhow::anyhow!("--store: {e}"))?;
            return Ok(StoreUrl::Postgres(Box::new(options)));
        }
        bail!(
            "--store {url:?} is not a store URL: use sqlite://PATH (e.g. sqlite://agentyard.db), log://PATH (e.g. log://agentyard.log), \
             postgres://USER@HOST:5432/DB[?schema=NAME] or memory://"
        )
    }
}

/// As a user writes it: `sqlite://PATH`, `log://PATH`, `postgres://…` (password hidden) or
/// `memory://`.
impl std::fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            StoreUrl::Log(path) => write!(f, "log://{}", path.display()),
            StoreUrl::Memory => f.write_str("memory://"),
            StoreUrl::Postgres(options) => f.write_str(options.shown()),
        }
    }
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub store: StoreUrl,
    pub durability: agentyard_store_sqlite::Durability,
    /// `--repair`: open a damaged log store by cutting it at the damage (log store only).
    pub repair: bool,
    pub max_queue_depth: u64,
    pub lease_ms: u64,
    pub body_limit: usize,
    pub answer_budget: usize,
    pub log_format: LogFormat,
    pub max_inbox_depth: u64,
    pub agent_timeout_ms: u64,
    /// 0: implicit agents are never removed.
    pub forget_gone_agents_after_ms: u64,
    pub max_agents_per_namespace: u64,
    /// `None`: agents may call as often as they like.
    pub agent_rate: Option<RateLimit>,
    pub limits: BTreeMap<String, LimitConfig>,
    pub namespaces: BTreeMap<Namespace, NamespaceConfig>,
    pub header_timeout_ms: u64,
    pub body_timeout_ms: u64,
    pub idle_timeout_ms: u64,
    pub max_connections: usize,
    /// HTTPS when set.
    pub tls: Option<TlsFiles>,
    /// Every request needs an API token.
    pub auth: bool,
    /// `--insecure-no-auth`: serve a non-loopback address without tokens, knowingly.
    pub insecure_no_auth: bool,
    pub retention: agentyard_server::config::RetentionConfig,
}

/// `--tls-cert` and `--tls-key`: PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Burst of the per-agent API rate when only the rate is given.
const DEFAULT_AGENT_BURST: u32 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
    Auto,
}

/// The optional TOML file. Keys are the long flags with underscores.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSettings {
    listen: Option<SocketAddr>,
    store: Option<String>,
    durability: Option<String>,
    max_queue_depth: Option<u64>,
    lease_ms: Option<u64>,
    body_limit: Option<usize>,
    answer_budget: Option<usize>,
    log_format: Option<String>,
    max_inbox_depth: Option<u64>,
    agent_timeout_ms: Option<u64>,
    forget_gone_agents_after_ms: Option<u64>,
    max_agents_per_namespace: Option<u64>,
    agent_rate_per_minute: Option<u32>,
    agent_burst: Option<u32>,
    header_timeout_ms: Option<u64>,
    body_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<usize>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    auth: Option<bool>,
    /// `[limits.openai]`: `rate_per_minute`, `burst`, `max_concurrent`.
    #[serde(default)]
    limits: BTreeMap<String, LimitRequest>,
    /// `[namespaces.team-a]`: what that namespace does differently.
    #[serde(default)]
    namespaces: BTreeMap<String, FileNamespace>,
    /// `[retention]`: how long history is kept.
    retention: Option<crate::retention_settings::RetentionFile>,
}

/// A `[namespaces.NS]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNamespace {
    /// 0 lifts the limit for this namespace.
    agent_rate_per_minute: Option<u32>,
    agent_burst: Option<u32>,
    max_inbox_depth: Option<u64>,
    /// Replaces `max_agents_per_namespace` for this namespace.
    max_agents: Option<u64>,
}

/// The per-agent rate from a rate and a burst; a rate of 0 means no limit.
fn parse_agent_rate(what: &str, rate: u32, burst: Option<u32>) -> anyhow::Result<Option<RateLimit>> {
    if rate == 0 {
        return Ok(None);
    }
    let limit = RateLimit {
        rate_per_minute: rate,
        burst: burst.unwrap_or(DEFAULT_AGENT_BURST),
    };
    limit
        .check()
        .map_err(|(field, message)| anyhow::anyhow!("{what}: {field} {message}"))?;
    Ok(Some(limit))
}

fn read_file(path: &Path) -> anyhow::Result<FileSettings> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read the config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("the config file {} is not valid", path.display()))
}

impl Settings {
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Self> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileSettings::default(),
        };
        let store = args
            .store
            .clone()
            .or(file.store)
            .unwrap_or_else(|| "sqlite://agentyard.db".to_owned());
        let store = StoreUrl::parse(&store)?;
        if args.repair && !matches!(store, StoreUrl::Log(_)) {
            bail!(
                "--repair applies to the log store (log://PATH) only, and the store is {store}; a SQLite or \
                 PostgreSQL database is repaired with its own tools"
            );
        }
        let durability = args
            .durability
            .clone()
            .or(file.durability)
            .unwrap_or_else(|| "normal".to_owned());
        let durability = durability
            .parse()
            .map_err(|e| anyhow::anyhow!("--durability {durability:?}: {e}"))?;
        let lease_ms = args.lease_ms.or(file.lease_ms).unwrap_or(30_000);
        if !(agentyard_core::api::MIN_LEASE_MS..=agentyard_core::api::MAX_LEASE_MS).contains(&lease_ms) {
            bail!(
                "--lease-ms {lease_ms} is out of range: use {} to {}",
                agentyard_core::api::MIN_LEASE_MS,
                agentyard_core::api::MAX_LEASE_MS
            );
        }
        let max_queue_depth = args.max_queue_depth.or(file.max_queue_depth).unwrap_or(1_000_000);
        if max_queue_depth == 0 {
            bail!("--max-queue-depth must be at least 1");
        }
        let body_limit = args.body_limit.or(file.body_limit).unwrap_or(1024 * 1024);
        if body_limit < 1024 {
            bail!("--body-limit must be at least 1024 bytes");
        }
        let answer_budget = args
            .answer_budget
            .or(file.answer_budget)
            .unwrap_or(agentyard_server::config::DEFAULT_ANSWER_BUDGET_BYTES);
        if answer_budget < 64 * 1024 {
            bail!("--answer-budget must be at least 65536 bytes");
        }
        let log_format = match args.log_format.clone().or(file.log_format).as_deref() {
            None | Some("auto") => LogFormat::Auto,
            Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("--log-format {other:?}: use pretty, json or auto"),
        };
        let max_inbox_depth = args.max_inbox_depth.or(file.max_inbox_depth).unwrap_or(100_000);
        if max_inbox_depth == 0 {
            bail!("--max-inbox-depth must be at least 1");
        }
        let agent_timeout_ms = args.agent_timeout_ms.or(file.agent_timeout_ms).unwrap_or(30_000);
        if agent_timeout_ms < 100 {
            bail!("--agent-timeout-ms must be at least 100");
        }
        let forget_gone_agents_after_ms = args
            .forget_gone_agents_after_ms
            .or(file.forget_gone_agents_after_ms)
            .unwrap_or(86_400_000);
        let max_agents_per_namespace = args
            .max_agents_per_namespace
            .or(file.max_agents_per_namespace)
            .unwrap_or(10_000);
        if max_agents_per_namespace == 0 {
            bail!("--max-agents-per-namespace must be at least 1");
        }
        let agent_rate = parse_agent_rate(
            "--agent-rate-per-minute",
            args.agent_rate_per_minute.or(file.agent_rate_per_minute).unwrap_or(0),
            args.agent_burst.or(file.agent_burst),
        )?;
        let timeout = |flag: &str, value: Option<u64>, default: u64| -> anyhow::Result<u64> {
            let ms = value.unwrap_or(default);
            if ms < 100 {
                bail!("--{flag} must be at least 100");
            }
            Ok(ms)
        };
        let header_timeout_ms = timeout(
            "header-timeout-ms",
            args.header_timeout_ms.or(file.header_timeout_ms),
            10_000,
        )?;
        let body_timeout_ms = timeout("body-timeout-ms", args.body_timeout_ms.or(file.body_timeout_ms), 30_000)?;
        let idle_timeout_ms = timeout(
            "idle-timeout-ms",
            args.idle_timeout_ms.or(file.idle_timeout_ms),
            120_000,
        )?;
        let max_connections = args.max_connections.or(file.max_connections).unwrap_or(10_000);
        if max_connections == 0 {
            bail!("--max-connections must be at least 1");
        }
        let tls = match (
            args.tls_cert.clone().or(file.tls_cert),
            args.tls_key.clone().or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070)));
        let auth = args.auth || file.auth.unwrap_or(false);
        if auth && args.insecure_no_auth {
            bail!("--auth and --insecure-no-auth contradict each other: give one");
        }
        if !auth && !args.insecure_no_auth && !listen.ip().is_loopback() {
            bail!(
                "--listen {listen} can be reached from other machines, and without --auth anyone who reaches it \
                 can do anything: add --auth (and make a token first with `agentyard token create --role admin \
                 --store URL`), or --insecure-no-auth to serve it open anyway"
            );
        }
        let mut limits = BTreeMap::new();
        for (key, req) in file.limits {
            let l = req
                .into_limit(key.clone())
                .map_err(|e| anyhow::anyhow!("[limits.{key}] {}: {}", e.field, e.message))?;
            let config = LimitConfig {
                rate: l.rate(),
                max_concurrent: l.max_concurrent,
            };
            limits.insert(key, config);
        }
        let mut namespaces = BTreeMap::new();
        for (name, ns) in file.namespaces {
            let what = format!("[namespaces.{name}]");
            let parsed = Namespace::parse(name.as_str()).with_context(|| what.clone())?;
            let rate = match ns.agent_rate_per_minute {
                Some(r) => Some(parse_agent_rate(
                    &what,
                    r,
                    ns.agent_burst.or(args.agent_burst).or(file.agent_burst),
                )?),
                None if ns.agent_burst.is_some() => bail!("{what}: agent_burst needs agent_rate_per_minute"),
                None => None,
            };
            if ns.max_inbox_depth == Some(0) {
                bail!("{what}: max_inbox_depth must be at least 1");
            }
            if ns.max_agents == Some(0) {
                bail!("{what}: max_agents must be at least 1");
            }
            let config = NamespaceConfig {
                agent_rate: rate,
                max_inbox_depth: ns.max_inbox_depth,
                max_agents: ns.max_agents,
            };
            namespaces.insert(parsed, config);
        }
        Ok(Settings {
            header_timeout_ms,
            body_timeout_ms,
            idle_timeout_ms,
            max_connections,
            tls,
            max_inbox_depth,
            agent_timeout_ms,
            forget_gone_agents_after_ms,
            max_agents_per_namespace,
            agent_rate,
            limits,
            namespaces,
            listen,
            auth,
            insecure_no_auth: args.insecure_no_auth,
            retention: crate::retention_settings::resolve(&args.retention, file.retention.as_ref())?,
            store,
            durability,
            repair: args.repair,
            max_queue_depth,
            lease_ms,
            body_limit,
            answer_budget,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected: Option<StoreUrl>) {
        assert_eq!(StoreUrl::parse(url).ok(), expected, "{url}");
    }

    #[test]
    fn store_urls() {
        check("sqlite://agentyard.db", Some(StoreUrl::Sqlite("agentyard.db".into())));
        check(
            "sqlite:///var/lib/yard.db",
            Some(StoreUrl::Sqlite("/var/lib/yard.db".into())),
        );
        check("memory://", Some(StoreUrl::Memory));
        check("log://yard.log", Some(StoreUrl::Log("yard.log".into())));
        check(
            "log:///var/lib/yard.log",
            Some(StoreUrl::Log("/var/lib/yard.log".into())),
        );
        check("log://", None);
        check("sqlite://", None);
        let pg = |url: &str| StoreUrl::Postgres(Box::new(agentyard_store_postgres::PgOptions::parse(url).expect(url)));
        check("postgres://localhost/yard", Some(pg("postgres://localhost/yard")));
        check(
            "postgresql://u@h:5433/db?schema=team_a&sslmode=disable",
            Some(pg("postgresql://u@h:5433/db?schema=team_a&sslmode=disable")),
        );
        check("postgres://h/db?schema=Not-Valid", None);
        check("agentyard.db", None);
    }

    #[test]
    fn store_urls_print_as_written() {
        for url in ["sqlite://agentyard.db", "log:///var/lib/yard.log", "memory://"] {
            assert_eq!(StoreUrl::parse(url).expect(url).to_string(), url);
        }
    }

    fn args() -> ServeArgs {
        ServeArgs {
            config: None,
            listen: None,
            store: None,
            durability: None,
            repair: false,
            auth: false,
            insecure_no_auth: false,
            max_queue_depth: None,
            lease_ms: None,
            body_limit: None,
            answer_budget: None,
            log_format: None,
            max_inbox_depth: None,
            agent_timeout_ms: None,
            forget_gone_agents_after_ms: None,
            max_agents_per_namespace: None,
            agent_rate_per_minute: None,
            agent_burst: None,
            header_timeout_ms: None,
            body_timeout_ms: None,
            idle_timeout_ms: None,
            max_connections: None,
            tls_cert: None,
            tls_key: None,
            retention: Default::default(),
        }
    }

    #[test]
    fn limits_and_namespaces_come_from_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("yard.toml");
        std::fs::write(
            &path,
            "agent_rate_per_minute = 600\n\
             [limits.openai]\nrate_per_minute = 60\nburst = 5\n\
             [limits.\"repo:acme/web\"]\nmax_concurrent = 2\n\
             [namespaces.batch]\nagent_rate_per_minute = 0\nmax_inbox_depth = 50\n",
        )
        .expect("write");
        let mut a = args();
        a.config = Some(path);
        a.agent_burst = Some(20);
        let s = Settings::resolve(&a).expect("resolve");
        assert_eq!(
            s.agent_rate,
            Some(RateLimit {
                rate_per_minute: 600,
                burst: 20
            })
        );
        assert_eq!(
            s.limits["openai"].rate,
            Some(RateLimit {
                rate_per_minute: 60,
                burst: 5
            })
        );
        assert_eq!(s.limits["repo:acme/web"].max_concurrent, Some(2));
        let batch = s.namespaces[&Namespace::parse("batch").unwrap()];
        assert_eq!((batch.agent_rate, batch.max_inbox_depth), (Some(None), Some(50)));
        assert_eq!(s.max_inbox_depth, 100_000);
        assert_eq!(s.agent_timeout_ms, 30_000);
    }

    #[test]
    fn the_agent_rate_is_off_unless_asked_for() {
        assert_eq!(Settings::resolve(&args()).expect("resolve").agent_rate, None);
        let mut a = args();
        a.agent_rate_per_minute = Some(120);
        let s = Settings::resolve(&a).expect("resolve");
        assert_eq!(s.agent_rate.map(|r| r.burst), Some(DEFAULT_AGENT_BURST));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("yard.toml");
        std::fs::write(&path, "[limits.openai]\nburst = 5\n").expect("write");
        let mut a = args();
        a.config = Some(path);
        let err = format!("{:#}", Settings::resolve(&a).unwrap_err());
        assert!(err.contains("[limits.openai] rate_per_minute"), "{err}");
    }

    #[test]
    fn flags_beat_the_file_and_the_file_beats_defaults() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("yard.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\nlease_ms = 5000\ndurability = \"full\"\n",
        )
        .expect("write");
        let mut a = args();
        a.config = Some(path);
        a.lease_ms = Some(7000);
        let s = Settings::resolve(&a).expect("resolve");
        assert_eq!(s.listen.port(), 9000);
        assert_eq!(s.lease_ms, 7000);
        assert_eq!(s.durability, agentyard_store_sqlite::Durability::Full);
        assert_eq!(s.store, StoreUrl::Sqlite("agentyard.db".into()));
        assert_eq!(s.max_queue_depth, 1_000_000);
    }

    #[test]
    fn connection_settings_come_from_flags_the_file_or_defaults() {
        let s = Settings::resolve(&args()).expect("resolve");
        assert_eq!(
            (
                s.header_timeout_ms,
                s.body_timeout_ms,
                s.idle_timeout_ms,
                s.max_connections
            ),
            (10_000, 30_000, 120_000, 10_000)
        );
        assert_eq!(s.tls, None);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("yard.toml");
        std::fs::write(
            &path,
            "idle_timeout_ms = 5000\nmax_connections = 64\ntls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n",
        )
        .expect("write");
        let mut a = args();
        a.config = Some(path.clone());
        a.header_timeout_ms = Some(2_000);
        let s = Settings::resolve(&a).expect("resolve");
        assert_eq!(
            (s.header_timeout_ms, s.idle_timeout_ms, s.max_connections),
            (2_000, 5_000, 64)
        );
        assert_eq!(
            s.tls,
            Some(TlsFiles {
                cert: "c.pem".into(),
                key: "k.pem".into()
            })
        );
        std::fs::write(&path, "tls_cert = \"c.pem\"\n").expect("write");
        let err = Settings::resolve(&a).unwrap_err().to_string();
        assert!(err.contains("--tls-key"), "{err}");
        let mut a = args();
        a.header_timeout_ms = Some(5);
        let err = Settings::resolve(&a).unwrap_err().to_string();
        assert!(err.contains("--header-timeout-ms"), "{err}");
    }

    #[test]
    fn agent_removal_and_the_agent_cap_come_from_flags_the_file_or_defaults() {
        let s = Settings::resolve(&args()).expect("resolve");
        assert_eq!(
            (s.forget_gone_agents_after_ms, s.max_agents_per_namespace),
            (86_400_000, 10_000)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("yard.toml");
        std::fs::write(
            &path,
            "forget_gone_agents_after_ms = 0
max_agents_per_namespace = 500
             [namespaces.fuzz]
max_agents = 20
",
        )
        .expect("write");
        let mut a = args();
        a.config = Some(path.clone());
        let s = Settings::resolve(&a).expect("resolve");
        assert_eq!((s.forget_gone_agents_after_ms, s.max_agents_per_namespace), (0, 500));
        assert_eq!(s.namespaces[&Namespace::parse("fuzz").unwrap()].max_agents, Some(20));
        a.forget_gone_agents_after_ms = Some(60_000);
        a.max_agents_per_namespace = Some(50);
        let s = Settings::resolve(&a).expect("resolve");
        assert_eq!(
            (s.forget_gone_agents_after_ms, s.max_agents_per_namespace),
            (60_000, 50)
        );
        a.max_agents_per_namespace = Some(0);
        let err = Settings::resolve(&a).unwrap_err().to_string();
        assert!(err.contains("--max-agents-per-namespace"), "{err}");
        std::fs::write(
            &path,
            "[namespaces.fuzz]
max_agents = 0
",
        )
        .expect("write");
        let mut a = args();
        a.config = Some(path);
        let err = Settings::resolve(&a).unwrap_err().to_string();
        assert!(err.contains("max_agents must be at least 1"), "{err}");
    }

    #[test]
    fn repair_is_for_the_log_store_only() {
        let mut a = args();
        a.repair = true;
        a.store = Some("log://yard.log".into());
        assert!(Settings::resolve(&a).expect("resolve").repair);
        for store in ["sqlite://yard.db", "memory://"] {
            a.store = Some(store.into());
            let err = Settings::resolve(&a).unwrap_err().to_string();
            assert!(
                err.contains("--repair applies to the log store") && err.contains(store),
                "{err}"
            );
        }
        assert!(!Settings::resolve(&args()).expect("resolve").repair);
    }

    #[test]
    fn bad_settings_are_refused_with_a_reason() {
        let mut a = args();
        a.durability = Some("sometimes".into());
        assert!(Settings::resolve(&a).unwrap_err().to_string().contains("--durability"));
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("yard.toml");
        std::fs::write(&path, "lease_msec = 5\n").expect("write");
        let mut a = args();
        a.config = Some(path);
        let err = format!("{:#}", Settings::resolve(&a).unwrap_err());
        assert!(err.contains("lease_msec"), "{err}");
    }

    #[test]
    fn a_reachable_address_needs_auth_or_an_explicit_no() {
        let public = |auth, insecure| {
            Settings::resolve(&ServeArgs {
                listen: Some(SocketAddr::from(([0, 0, 0, 0], 7070))),
                auth,
                insecure_no_auth: insecure,
                ..args()
            })
        };
        let err = public(false, false).expect_err("refused").to_string();
        assert!(err.contains("--auth") && err.contains("--insecure-no-auth"), "{err}");
        assert!(public(true, false).expect("with auth").auth);
        let open = public(false, true).expect("knowingly open");
        assert!(!open.auth && open.insecure_no_auth);
        assert!(public(true, true).is_err(), "both at once contradict");
        assert!(
            !Settings::resolve(&args()).expect("loopback").auth,
            "loopback needs neither"
        );
    }
}
