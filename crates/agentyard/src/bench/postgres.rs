//! The database of `--store postgres[://URL]`: which URL, how the bench connects to it itself
//! (to make and drop schemas, for the reference loop), and a fresh schema per workload that
//! every node of the workload shares and that goes when the workload is done.

use std::str::FromStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio_postgres::NoTls;
use tokio_postgres::config::Host;

/// The variable naming the database when `--store postgres` gives no URL.
pub const URL_VAR: &str = "AGENTYARD_BENCH_POSTGRES_URL";
/// The database when neither `--store` nor [`URL_VAR`] names one: the machine's own.
pub const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Schemas of bench runs that died before dropping theirs are dropped once they are this old.
const STALE_AFTER: Duration = Duration::from_secs(6 * 3_600);

/// A PostgreSQL URL for the bench: valid for `agentyard serve`, without `schema=` (the bench
/// makes one per workload). Its `Debug` and [`PgUrl::shown`] hide the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PgUrl {
    url: String,
    shown: String,
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgUrl {
    /// `postgres` alone (the URL from `env`, the value of [`URL_VAR`], else [`DEFAULT_URL`]) or a
    /// `postgres://` / `postgresql://` URL.
    pub fn parse(value: &str, env: Option<&str>) -> Result<Self, String> {
        let (url, from) = match value {
            "postgres" | "postgresql" => match env.map(str::trim).filter(|v| !v.is_empty()) {
                Some(url) => (url, format!(" (from {URL_VAR})")),
                None => (DEFAULT_URL, String::new()),
            },
            url => (url, String::new()),
        };
        let options = agentyard_store_postgres::PgOptions::parse(url).map_err(|e| format!("{e}{from}"))?;
        let shown = options.shown().to_owned();
        if query_pairs(url).any(|(key, _)| key == "schema") {
            return Err(format!(
                "{shown}{from}: leave schema= out; the bench makes a fresh schema for every workload"
            ));
        }
        Ok(Self {
            url: url.to_owned(),
            shown,
        })
    }

    /// The URL without its password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The URL a node of a workload is given: this one on `schema`.
    pub fn with_schema(&self, schema: &str) -> String {
        let sep = if self.url.contains('?') { '&' } else { '?' };
        format!("{}{sep}schema={schema}", self.url)
    }

    /// The driver's settings: the URL without the options that are `agentyard serve`'s own.
    pub fn driver_config(&self) -> anyhow::Result<tokio_postgres::Config> {
        let (base, _) = self.url.split_once('?').unwrap_or((&self.url, ""));
        let kept: Vec<String> = query_pairs(&self.url)
            .filter(|(key, _)| !matches!(*key, "schema" | "pool_size"))
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        let url = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        let mut config =
            tokio_postgres::Config::from_str(&url).with_context(|| format!("the bench database {}", self.shown))?;
        if config.get_application_name().is_none() {
            config.application_name("agentyard-bench");
        }
        Ok(config)
    }

    /// Whether the database runs on this machine (a Unix socket or a loopback address), so that
    /// its processes are the ones `/proc` shows; the reason when it is not.
    pub fn local(&self) -> Result<(), String> {
        let config = self.driver_config().map_err(|e| format!("{e:#}"))?;
        for host in config.get_hosts() {
            match host {
                Host::Unix(_) => {}
                Host::Tcp(name) if is_loopback(name) => {}
                Host::Tcp(name) => return Err(format!("the database is on {name}, not this machine")),
            }
        }
        Ok(())
    }

    /// One connection of the bench's own, its driver running on the runtime.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = self
            .driver_config()?
            .connect(NoTls)
            .await
            .with_context(|| format!("cannot reach the bench database {}", self.shown))?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// `synchronous_commit` as the database has it (what the figures' durability is).
    pub async fn synchronous_commit(&self) -> anyhow::Result<String> {
        let client = self.connect().await?;
        let row = client.query_one("SHOW synchronous_commit", &[]).await?;
        Ok(row.get(0))
    }

    /// The pid of the postmaster serving this database, when it runs on this machine and
    /// `/proc` shows it: the parent of a connection's backend, read while the connection is open.
    pub async fn postmaster(&self) -> anyhow::Result<Option<u32>> {
        let client = self.connect().await?;
        let backend: i32 = client.query_one("SELECT pg_backend_pid()", &[]).await?.get(0);
        let postmaster = u32::try_from(backend)
            .ok()
            .and_then(crate::bench::pg_procs::postmaster_of);
        drop(client);
        Ok(postmaster)
    }

    /// Drops the schemas that bench runs which died (killed, interrupted) left behind, once they
    /// are old enough that no run can still be using them; answers how many went.
    pub async fn drop_stale_schemas(&self) -> anyhow::Result<usize> {
        let client = self.connect().await?;
        let now = unix_secs();
        let rows = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname ~ '^bench_[0-9]+_[0-9]+_[0-9]+$' \
                 AND split_part(nspname, '_', 2)::bigint < $1",
                &[&(now - STALE_AFTER.as_secs() as i64)],
            )
            .await
            .context("cannot list the bench schemas")?;
        let mut dropped = 0;
        for row in rows {
            let name: String = row.get(0);
            let sql = format!("SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {name} CASCADE");
            if client.batch_execute(&sql).await.is_ok() {
                dropped += 1;
            }
        }
        Ok(dropped)
    }
}

/// The `key=value` pairs of a URL's query.
fn query_pairs(url: &str) -> impl Iterator<Item = (&str, &str)> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn unix_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// `bench_<seconds>_<pid>_<n>`: unique on the database, and its age readable.
fn fresh_schema_name() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "bench_{}_{}_{}",
        unix_secs(),
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// A schema made for one workload (or the reference loop), dropped with everything in it when
/// this goes. Drop it after the nodes using it were stopped.
pub struct BenchSchema {
    db: PgUrl,
    name: String,
}

impl BenchSchema {
    pub async fn create(db: &PgUrl) -> anyhow::Result<Self> {
        let name = fresh_schema_name();
        let client = db.connect().await?;
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .with_context(|| format!("cannot create the schema {name} on {}", db.shown()))?;
        Ok(Self { db: db.clone(), name })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store URL of the nodes working in this schema.
    pub fn url(&self) -> String {
        self.db.with_schema(&self.name)
    }
}

impl Drop for BenchSchema {
    fn drop(&mut self) {
        let (db, name) = (self.db.clone(), self.name.clone());
        // Drop runs inside the bench's runtime, which cannot block on a future: a thread with a
        // small runtime of its own does the work.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                let dropped = async {
                    let client = db.connect().await?;
                    // A killed node's transaction may hold a lock until PostgreSQL notices.
                    let sql = format!("SET lock_timeout = '10s'; DROP SCHEMA IF EXISTS {name} CASCADE");
                    client.batch_execute(&sql).await?;
                    anyhow::Ok(())
                };
                if let Err(e) = dropped.await {
                    eprintln!("could not drop the bench schema {name} (a later run drops it once it is old): {e:#}");
                }
            });
        });
        let _ = done.join();
    }
}

/// Refuses what `agentyard bench` cannot do with these flags: `--nodes` needs a database the
/// nodes share, and with `--url` the bench starts no server at all.
pub fn check_nodes(nodes: usize, postgres: bool, url_given: bool) -> anyhow::Result<()> {
    if nodes == 0 || nodes > 16 {
        bail!("--nodes must be between 1 and 16");
    }
    if url_given && (nodes > 1 || postgres) {
        bail!(
            "--store postgres and --nodes start servers of the bench's own; with --url the bench measures the \
             server given (leave them out)"
        );
    }
    if nodes > 1 && !postgres {
        bail!(
            "--nodes {nodes} needs --store postgres: the sqlite, log and memory stores belong to one server \
             process, so only a PostgreSQL database can be shared by several nodes"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_alone_takes_the_variable_then_the_default() {
        let url = PgUrl::parse("postgres", None).unwrap();
        assert_eq!(url.shown(), DEFAULT_URL);
        let url = PgUrl::parse("postgres", Some("postgres://u@db:5433/x")).unwrap();
        assert_eq!(url.shown(), "postgres://u@db:5433/x");
        let url = PgUrl::parse("postgresql", Some("  ")).unwrap();
        assert_eq!(url.shown(), DEFAULT_URL);
        let err = PgUrl::parse("postgres", Some("mysql://db/x")).unwrap_err();
        assert!(err.contains(URL_VAR), "{err}");
    }

    #[test]
    fn urls_are_checked_and_their_passwords_hidden() {
        let url = PgUrl::parse("postgres://u:secret@127.0.0.1/db?pool_size=4&sslmode=disable", None).unwrap();
        assert!(!format!("{url:?}").contains("secret"));
        assert_eq!(
            url.with_schema("bench_1_2_3"),
            "postgres://u:secret@127.0.0.1/db?pool_size=4&sslmode=disable&schema=bench_1_2_3"
        );
        assert_eq!(
            PgUrl::parse("postgres://h/db", None).unwrap().with_schema("s"),
            "postgres://h/db?schema=s"
        );
        let config = url.driver_config().unwrap();
        assert_eq!(config.get_dbname(), Some("db"));
        assert_eq!(config.get_application_name(), Some("agentyard-bench"));
        let err = PgUrl::parse("postgres://u:secret@h/db?schema=mine", None).unwrap_err();
        assert!(err.contains("fresh schema") && !err.contains("secret"), "{err}");
        assert!(PgUrl::parse("postgres://h/db?pool_size=0", None).is_err());
    }

    #[test]
    fn only_loopback_and_sockets_are_this_machine() {
        for url in [
            "postgres://u@127.0.0.1/db",
            "postgres://u@localhost:5433/db",
            "postgres://u@[::1]/db",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/db",
        ] {
            assert_eq!(PgUrl::parse(url, None).unwrap().local(), Ok(()), "{url}");
        }
        let err = PgUrl::parse("postgres://u@db.internal/db", None)
            .unwrap()
            .local()
            .unwrap_err();
        assert!(err.contains("db.internal"), "{err}");
    }

    #[test]
    fn nodes_need_a_shared_database_and_a_server_of_the_bench() {
        assert!(check_nodes(1, false, false).is_ok());
        assert!(check_nodes(3, true, false).is_ok());
        assert!(check_nodes(1, false, true).is_ok());
        let err = check_nodes(2, false, false).unwrap_err().to_string();
        assert!(err.contains("--store postgres"), "{err}");
        assert!(check_nodes(0, true, false).is_err());
        assert!(check_nodes(17, true, false).is_err());
        assert!(check_nodes(2, true, true).is_err());
        assert!(check_nodes(1, true, true).is_err());
    }

    #[test]
    fn schema_names_are_unique_and_dated() {
        let (a, b) = (fresh_schema_name(), fresh_schema_name());
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('_').collect();
        assert_eq!(parts.len(), 4);
        assert!(parts[1].parse::<i64>().unwrap() > 1_700_000_000);
    }
}
