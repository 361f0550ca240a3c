//! The server a bench measures when no `--url` is given: this same binary run as a child
//! process (`serve --listen 127.0.0.1:0`) on a fresh store (or, on PostgreSQL, one node of
//! several on a fresh schema), so each workload starts clean and the server's peak memory can be
//! read from `/proc`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::bench::postgres::{PgUrl, URL_VAR};
use crate::bench::report::proc_field_kb;
use crate::settings::StoreUrl;

/// How long a child server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The store a self-started server uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    Sqlite,
    Log,
    Memory,
    /// A fresh schema per workload on this database, shared by the workload's nodes.
    Postgres(PgUrl),
}

impl StoreKind {
    /// `--store`: `sqlite`, `log`, `memory`, `postgres` (the database named by
    /// `AGENTYARD_BENCH_POSTGRES_URL`, else the machine's own) or a `postgres://` URL.
    pub fn parse(value: &str) -> Result<Self, String> {
        Self::parse_with(value, std::env::var(URL_VAR).ok().as_deref())
    }

    /// [`StoreKind::parse`] with the variable's value given.
    fn parse_with(value: &str, env: Option<&str>) -> Result<Self, String> {
        match value {
            "sqlite" => Ok(StoreKind::Sqlite),
            "log" => Ok(StoreKind::Log),
            "memory" => Ok(StoreKind::Memory),
            v if v == "postgres"
                || v == "postgresql"
                || v.starts_with("postgres://")
                || v.starts_with("postgresql://") =>
            {
                PgUrl::parse(v, env).map(StoreKind::Postgres)
            }
            other => Err(format!(
                "{other:?} is not a bench store: use sqlite, log, memory, postgres or postgres://USER@HOST:PORT/DB"
            )),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Log => "log",
            StoreKind::Memory => "memory",
            StoreKind::Postgres(_) => "postgres",
        }
    }

    /// The database, with `--store postgres`.
    pub fn postgres(&self) -> Option<&PgUrl> {
        match self {
            StoreKind::Postgres(db) => Some(db),
            _ => None,
        }
    }
}

/// A running child server. Dropping it kills the process and removes its store.
pub struct ServerProcess {
    child: Child,
    url: String,
    /// Holds the store; removed when the server is dropped, after the child was killed.
    _dir: TempDir,
}

impl ServerProcess {
    /// Starts `agentyard serve` on a free port with a fresh store and waits until it listens. A
    /// PostgreSQL node is given the URL of the workload's schema, `schema_url`.
    pub async fn start(store: &StoreKind, durability: &str, schema_url: Option<&str>) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the agentyard binary to start a server")?;
        let dir = tempfile::Builder::new()
            .prefix("agentyard-bench-")
            .tempdir()
            .context("cannot make a directory for the bench store")?;
        // Through the environment rather than the command line, where a password would show in
        // the process list.
        let store_url = match store {
            StoreKind::Sqlite => StoreUrl::Sqlite(dir.path().join("bench.db")).to_string(),
            StoreKind::Log => StoreUrl::Log(dir.path().join("bench.log")).to_string(),
            StoreKind::Memory => StoreUrl::Memory.to_string(),
            StoreKind::Postgres(_) => schema_url
                .context("a PostgreSQL node needs the URL of its workload's schema")?
                .to_owned(),
        };
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).context("cannot create the server log")?;
        let mut child = Command::new(&exe)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(["--durability", durability, "--log-format", "json"])
            .env("AGENTYARD_STORE", &store_url)
            .env("AGENTYARD_LOG", "warn")
            .env_remove("AGENTYARD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", exe.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        // The server prints `listening on http://ADDR` once; the thread then keeps draining
        // stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("listening on ")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let mut server = Self {
            child,
            url: String::new(),
            _dir: dir,
        };
        match tokio::time::timeout(START_TIMEOUT, rx).await {
            Ok(Ok(url)) => server.url = url,
            _ => {
                let status = server.child.try_wait().ok().flatten();
                let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = lines[lines.len().saturating_sub(20)..].join("\n");
                bail!(
                    "the bench server did not start (exit status: {}); its log:\n{tail}",
                    status.map_or_else(|| "still running".to_owned(), |s| s.to_string())
                );
            }
        }
        Ok(server)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The most memory the server held so far (`VmHWM`), in MiB.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        proc_field_kb(&status, "VmHWM:").map(|kb| kb as f64 / 1024.0)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // The store is throwaway: no need for a graceful stop.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_parse() {
        assert_eq!(StoreKind::parse_with("sqlite", None), Ok(StoreKind::Sqlite));
        assert_eq!(
            StoreKind::parse_with("memory", Some("postgres://x/y")),
            Ok(StoreKind::Memory)
        );
        let pg = StoreKind::parse_with("postgres", Some("postgres://u@h:5433/db")).unwrap();
        assert_eq!(pg.as_str(), "postgres");
        assert_eq!(pg.postgres().map(PgUrl::shown), Some("postgres://u@h:5433/db"));
        let pg = StoreKind::parse_with("postgresql://u@h/db", Some("postgres://other/x")).unwrap();
        assert_eq!(pg.postgres().map(PgUrl::shown), Some("postgresql://u@h/db"));
        let err = StoreKind::parse_with("mysql", None).unwrap_err();
        assert!(err.contains("sqlite, log, memory, postgres"), "{err}");
        assert!(StoreKind::parse_with("postgres://h/db?schema=x", None).is_err());
    }
}
