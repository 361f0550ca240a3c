//! `serve` settings: flags and `AGENTYARD_*` variables first, then the TOML file, then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::cli::ServeArgs;

/// Where the tasks live, parsed from `--store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Sqlite(PathBuf),
    Memory,
}

impl StoreUrl {
    pub fn parse(url: &str) -> anyhow::Result<Self> {
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                bail!("--store {url:?} names no file: use sqlite://PATH, e.g. sqlite://agentyard.db");
            }
            return Ok(StoreUrl::Sqlite(PathBuf::from(path)));
        }
        if url == "memory://" || url == "memory" {
            return Ok(StoreUrl::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            bail!(
                "--store {url:?}: the PostgreSQL backend is not part of this build yet; use sqlite://PATH or memory://"
            );
        }
        bail!("--store {url:?} is not a store URL: use sqlite://PATH (e.g. sqlite://agentyard.db) or memory://")
    }
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub listen: SocketAddr,
    pub store: StoreUrl,
    pub durability: agentyard_store_sqlite::Durability,
    pub max_queue_depth: u64,
    pub lease_ms: u64,
    pub body_limit: usize,
    pub log_format: LogFormat,
}

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
    log_format: Option<String>,
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
        let log_format = match args.log_format.clone().or(file.log_format).as_deref() {
            None | Some("auto") => LogFormat::Auto,
            Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("--log-format {other:?}: use pretty, json or auto"),
        };
        Ok(Settings {
            listen: args
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7070))),
            store: StoreUrl::parse(&store)?,
            durability,
            max_queue_depth,
            lease_ms,
            body_limit,
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
        check("sqlite://", None);
        check("postgres://localhost/yard", None);
        check("agentyard.db", None);
    }

    fn args() -> ServeArgs {
        ServeArgs {
            config: None,
            listen: None,
            store: None,
            durability: None,
            max_queue_depth: None,
            lease_ms: None,
            body_limit: None,
            log_format: None,
        }
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
}
