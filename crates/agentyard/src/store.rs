//! Opening the store a URL names: for `serve`, and for `token` commands that work in a store
//! directly.

use std::sync::Arc;

use agentyard_store::{MemoryStore, Yard};
use agentyard_store_log::{LogOptions, LogStore};
use agentyard_store_postgres::PgStore;
use agentyard_store_sqlite::{Durability, SqliteOptions, SqliteStore};
use anyhow::Context;

use crate::settings::StoreUrl;

/// Opens (and migrates) the store; a log store is read back, and says how in the log.
pub async fn open_store(url: &StoreUrl, durability: Durability, repair: bool) -> anyhow::Result<Arc<dyn Yard>> {
    let store: Arc<dyn Yard> = match url {
        StoreUrl::Memory => {
            tracing::warn!("using the memory store: nothing survives a restart");
            Arc::new(MemoryStore::new())
        }
        StoreUrl::Sqlite(path) => {
            let options = SqliteOptions {
                durability,
                ..SqliteOptions::default()
            };
            let store = SqliteStore::open(path, options)
                .with_context(|| format!("cannot open the SQLite store {}", path.display()))?;
            Arc::new(store)
        }
        StoreUrl::Log(path) => {
            let options = LogOptions {
                fsync: durability == Durability::Full,
                repair,
                ..LogOptions::default()
            };
            let store = LogStore::open(path, options)
                .with_context(|| format!("cannot open the log store {}", path.display()))?;
            let r = store.replayed();
            tracing::info!(
                path = %path.display(),
                bytes = r.bytes,
                frames = r.frames,
                changes = r.changes,
                cut_bytes = r.cut_bytes,
                cut_kept_in = r.cut_kept_in.as_ref().map(|p| p.display().to_string()),
                repaired = r.repaired,
                "read the log back"
            );
            Arc::new(store)
        }
        StoreUrl::Postgres(options) => {
            let store = PgStore::connect((**options).clone())
                .await
                .with_context(|| format!("cannot open the PostgreSQL store {}", options.shown()))?;
            Arc::new(store)
        }
    };
    Ok(store)
}
