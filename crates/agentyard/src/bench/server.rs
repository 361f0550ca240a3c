//! The server a bench measures when no `--url` is given: this same binary run as a child
//! process (`serve --listen 127.0.0.1:0`) on a fresh store, so each workload starts clean and the
//! server's peak memory can be read from `/proc`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::bench::report::proc_field_kb;
use crate::settings::StoreUrl;

/// How long a child server may take to say where it listens.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The store a self-started server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreKind {
    Sqlite,
    Log,
    Memory,
}

impl StoreKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Log => "log",
            StoreKind::Memory => "memory",
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
    /// Starts `agentyard serve` on a free port with a fresh store and waits until it listens.
    pub async fn start(store: StoreKind, durability: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the agentyard binary to start a server")?;
        let dir = tempfile::Builder::new()
            .prefix("agentyard-bench-")
            .tempdir()
            .context("cannot make a directory for the bench store")?;
        let store_url = match store {
            StoreKind::Sqlite => StoreUrl::Sqlite(dir.path().join("bench.db")),
            StoreKind::Log => StoreUrl::Log(dir.path().join("bench.log")),
            StoreKind::Memory => StoreUrl::Memory,
        }
        .to_string();
        let log_path = dir.path().join("server.log");
        let log = std::fs::File::create(&log_path).context("cannot create the server log")?;
        let mut child = Command::new(&exe)
            .args(["serve", "--listen", "127.0.0.1:0", "--store", &store_url])
            .args(["--durability", durability, "--log-format", "json"])
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
