//! What a bench run reports: the machine, the settings, one row per measured workload; printed
//! as a table and written as JSON with `--json`.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use comfy_table::{CellAlignment, Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;

use crate::bench::cpu::CpuCost;
use crate::bench::stats::Samples;

/// The machine the load generator runs on (with a self-started server, the server's too).
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_mb: u64,
    pub cpu: String,
    pub os: String,
    /// The bar's reference loop (raw in-process SQLite, one transaction per claim and per
    /// completion) run just before the suites: how fast this machine was at that moment, so
    /// figures from different hours can be compared (see BENCHMARKS.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_loop_tasks_per_s: Option<f64>,
    /// With `--store postgres`: the same kind of loop on the database (10 connections, each
    /// deleting one row it locked `FOR UPDATE SKIP LOCKED` per transaction), in the same run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_reference_loop_tasks_per_s: Option<f64>,
    /// PostgreSQL's CPU time per row of that loop, in µs, when its processes can be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres_reference_loop_db_cpu_us_per_task: Option<f64>,
}

impl Machine {
    /// Read from `/proc` and `/etc/os-release`; what cannot be read is reported as unknown.
    pub fn detect() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let memory_mb = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| proc_field_kb(&m, "MemTotal:"))
            .map_or(0, |kb| kb / 1024);
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let distro = std::fs::read_to_string("/etc/os-release").ok().and_then(|r| {
            r.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_owned())
        });
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .ok()
            .map(|k| k.trim().to_owned());
        let os = match (distro, kernel) {
            (Some(d), Some(k)) => format!("{d}, Linux {k}"),
            (Some(d), None) => d,
            (None, Some(k)) => format!("Linux {k}"),
            (None, None) => std::env::consts::OS.to_owned(),
        };
        Self {
            cores,
            memory_mb,
            cpu,
            os,
            reference_loop_tasks_per_s: None,
            postgres_reference_loop_tasks_per_s: None,
            postgres_reference_loop_db_cpu_us_per_task: None,
        }
    }
}

/// A `Name:   123 kB` line of a `/proc` file, in kB.
pub fn proc_field_kb(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// How the run was set up.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    /// `self-started` (a fresh server per workload, child of the bench) or the `--url` given.
    pub server: String,
    /// `sqlite`, `log`, `memory` or `postgres` for a self-started server; absent against `--url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    /// With `--store postgres`: the database (password hidden), a fresh schema per workload.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// With `--store postgres`: the database's `synchronous_commit`, its durability.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub synchronous_commit: Option<String>,
    /// With `--store postgres`: `--nodes`, the servers the drain and latency suites run on (the
    /// other suites run on one).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nodes: Option<usize>,
    /// With `--store postgres`: where the rows' `db_cpu_us_per_task` comes from, or why the rows
    /// have none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_cpu: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub durability: Option<String>,
    /// `--n` when given (each suite has its own default otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    pub concurrency: usize,
    pub smoke: bool,
    /// `--only` when given (drain or enqueue): the workloads run were those whose name contains it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<String>,
    /// `release` or `debug`: a debug build's figures mean little.
    pub build: String,
    pub version: String,
}

/// One measured workload.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    /// Tasks (or operations, or messages) measured.
    pub n: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tasks_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_peak_rss_mb: Option<f64>,
    /// CPU time (user + system) of the self-started server (every node of the workload
    /// together) per item of `n` while this was measured, in µs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_cpu_us_per_task: Option<f64>,
    /// The same for this bench process, the load generator.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bench_cpu_us_per_task: Option<f64>,
    /// The same for PostgreSQL's processes on this machine, with `--store postgres`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db_cpu_us_per_task: Option<f64>,
}

impl Row {
    pub fn new(name: impl Into<String>, n: u64) -> Self {
        Self {
            name: name.into(),
            n,
            tasks_per_s: None,
            p50_ms: None,
            p95_ms: None,
            p99_ms: None,
            max_ms: None,
            server_peak_rss_mb: None,
            server_cpu_us_per_task: None,
            bench_cpu_us_per_task: None,
            db_cpu_us_per_task: None,
        }
    }

    /// `count` things done in `elapsed`.
    pub fn rate(mut self, count: u64, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64();
        if secs > 0.0 {
            self.tasks_per_s = Some((count as f64 / secs * 10.0).round() / 10.0);
        }
        self
    }

    pub fn latency(mut self, samples: &Samples) -> Self {
        if let Some(s) = samples.summary() {
            // Microseconds are as fine as these measurements go.
            let us = |ms: f64| Some((ms * 1_000.0).round() / 1_000.0);
            self.p50_ms = us(s.p50_ms);
            self.p95_ms = us(s.p95_ms);
            self.p99_ms = us(s.p99_ms);
            self.max_ms = us(s.max_ms);
        }
        self
    }

    pub fn rss(mut self, mb: Option<f64>) -> Self {
        self.server_peak_rss_mb = mb;
        self
    }

    pub fn cpu(mut self, cost: CpuCost) -> Self {
        self.server_cpu_us_per_task = cost.server_us;
        self.bench_cpu_us_per_task = cost.bench_us;
        self.db_cpu_us_per_task = cost.db_us;
        self
    }
}

/// Everything one `agentyard bench` invocation measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub suite: String,
    pub machine: Machine,
    pub settings: Settings,
    pub results: Vec<Row>,
    /// The seed suite's verdicts against seed 000's criteria and ours; absent for other suites.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub verdicts: Vec<Verdict>,
}

/// Whether a run met a set of criteria.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub criteria: String,
    pub passed: bool,
    pub failures: Vec<String>,
}

impl Report {
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
    }
}

fn cell(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// The rows as a readable table; with `db`, a column for the database's CPU time.
pub fn table(rows: &[Row], db: bool) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY);
    let mut header = vec![
        "WORKLOAD",
        "N",
        "PER S",
        "P50 MS",
        "P95 MS",
        "P99 MS",
        "MAX MS",
        "SERVER RSS MB",
        "CPU µs SERVER",
        "CPU µs BENCH",
    ];
    if db {
        header.push("CPU µs DB");
    }
    let columns = header.len();
    t.set_header(header);
    for r in rows {
        let mut cells = vec![
            r.name.clone(),
            r.n.to_string(),
            cell(r.tasks_per_s, 0),
            cell(r.p50_ms, 2),
            cell(r.p95_ms, 2),
            cell(r.p99_ms, 2),
            cell(r.max_ms, 2),
            cell(r.server_peak_rss_mb, 1),
            cell(r.server_cpu_us_per_task, 1),
            cell(r.bench_cpu_us_per_task, 1),
        ];
        if db {
            cells.push(cell(r.db_cpu_us_per_task, 1));
        }
        t.add_row(cells);
    }
    // Every column but the workload's name holds a number.
    for i in 1..columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_leave_out_what_does_not_apply() {
        let row = Row::new("enqueue", 10).rate(10, Duration::from_secs(2));
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "enqueue", "n": 10, "tasks_per_s": 5.0})
        );
    }

    #[test]
    fn the_database_column_shows_only_when_asked_for() {
        let mut row = Row::new("drain", 10);
        row.db_cpu_us_per_task = Some(12.5);
        let with = table(std::slice::from_ref(&row), true).to_string();
        assert!(with.contains("CPU µs DB") && with.contains("12.5"), "{with}");
        let without = table(&[row], false).to_string();
        assert!(!without.contains("CPU µs DB"), "{without}");
    }

    #[test]
    fn proc_fields_parse() {
        let status = "Name:\tagentyard\nVmHWM:\t   20480 kB\nVmRSS:\t 1024 kB\n";
        assert_eq!(proc_field_kb(status, "VmHWM:"), Some(20480));
        assert_eq!(proc_field_kb(status, "VmSwap:"), None);
    }
}
