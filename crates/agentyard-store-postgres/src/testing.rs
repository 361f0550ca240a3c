//! Test support: a fresh schema per test on the database named by `AGENTYARD_TEST_POSTGRES_URL`,
//! dropped when the guard goes. Unset, tests skip (and say so); set together with
//! `AGENTYARD_REQUIRE_SERVICES=1` (as CI does), an unreachable database fails the test.

use std::sync::atomic::{AtomicU32, Ordering};

use tokio_postgres::NoTls;

use crate::PgOptions;

/// The variable naming the test database.
pub const URL_VAR: &str = "AGENTYARD_TEST_POSTGRES_URL";

/// A schema made for one test; dropped (with everything in it) when this goes.
pub struct TestSchema {
    /// The store URL with `?schema=` set to the fresh schema.
    pub url: String,
    base: String,
    schema: String,
}

impl TestSchema {
    /// A fresh schema name on the test database, or `None` (printed) when no database is set.
    /// Panics when the database is set but cannot be reached.
    pub async fn create(test: &str) -> Option<Self> {
        let Ok(base) = std::env::var(URL_VAR) else {
            if std::env::var("AGENTYARD_REQUIRE_SERVICES").is_ok_and(|v| v == "1") {
                panic!("{URL_VAR} is unset but AGENTYARD_REQUIRE_SERVICES=1");
            }
            eprintln!("skipping {test}: {URL_VAR} is unset");
            return None;
        };
        static N: AtomicU32 = AtomicU32::new(0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        // Seconds first, so schemas left by runs that died can be told by age.
        let schema = format!(
            "t{}_{}_{}_{}",
            now.as_secs(),
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            now.subsec_nanos()
        );
        let options = PgOptions::parse(&base).unwrap_or_else(|e| panic!("{URL_VAR}: {e}"));
        let (client, conn) = options
            .config
            .connect(NoTls)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test database {}: {e}", options.shown()));
        let driver = tokio::spawn(conn);
        // Schemas of earlier runs that died before dropping theirs: an hour is long past any test.
        let stale = client
            .query(
                "SELECT nspname FROM pg_namespace WHERE nspname ~ '^t[0-9]+_[0-9]+_[0-9]+_[0-9]+$' \
                 AND split_part(substr(nspname, 2), '_', 1)::bigint < $1",
                &[&(i64::try_from(now.as_secs()).unwrap_or(i64::MAX) - 3_600)],
            )
            .await
            .unwrap_or_default();
        for row in stale {
            let name: String = row.get(0);
            let _ = client
                .batch_execute(&format!(
                    "SET lock_timeout = '2s'; DROP SCHEMA IF EXISTS {name} CASCADE"
                ))
                .await;
        }
        drop(client);
        let _ = driver.await;
        let sep = if base.contains('?') { '&' } else { '?' };
        Some(Self {
            url: format!("{base}{sep}schema={schema}"),
            base,
            schema,
        })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Drop for TestSchema {
    fn drop(&mut self) {
        let (base, schema) = (self.base.clone(), self.schema.clone());
        // Drop runs outside async code (or inside a runtime that cannot block): a thread of its
        // own with a small runtime does the work.
        let done = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                let Ok(options) = PgOptions::parse(&base) else { return };
                let Ok((client, conn)) = options.config.connect(NoTls).await else {
                    return;
                };
                let driver = tokio::spawn(conn);
                // A node of the test may still hold a lock (a transaction cut off mid-way): then
                // the schema stays, and a later run drops it once it is an hour old.
                if let Err(e) = client
                    .batch_execute(&format!(
                        "SET lock_timeout = '5s'; DROP SCHEMA IF EXISTS {schema} CASCADE"
                    ))
                    .await
                {
                    eprintln!("could not drop the test schema {schema}: {e}");
                }
                drop(client);
                let _ = driver.await;
            });
        });
        let _ = done.join();
    }
}
