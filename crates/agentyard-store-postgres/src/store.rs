//! [`PgStore`]: the connection pool, the write-transaction discipline every change follows, and
//! the listener that brings other nodes' changes to this one.

use std::sync::Arc;
use std::time::Duration;

use agentyard_store::{RemoteSink, StoreError};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::config::PgOptions;
use crate::error::{pg_error, pool_error};
use crate::migrations::migrate;
use crate::notify::{Listener, listen};

/// How long a caller waits for a pooled connection, and a new connection for PostgreSQL, before
/// the store answers `Unavailable`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A yard's state in one PostgreSQL schema, shared by every node pointed at it. Every method is
/// one transaction; see the crate docs for how claims, counts and wake-ups work.
pub struct PgStore {
    pub(crate) pool: Pool,
    options: PgOptions,
    /// The LISTEN/NOTIFY channel of this schema.
    pub(crate) channel: String,
    /// This process among the nodes: its own notifications are not news to it.
    pub(crate) node: String,
    listener: Listener,
    /// Gives seqs to the events this node's changes wrote, soon after they commit.
    pub(crate) sequencer: crate::events::Sequencer,
    schema_version: u32,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("url", &self.options.shown())
            .field("schema", &self.options.schema)
            .field("schema_version", &self.schema_version)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects, brings the schema up to date (taking turns with nodes starting at the same
    /// moment) and opens the pool. Fails when PostgreSQL cannot be reached or holds a schema
    /// newer than this build knows.
    pub async fn connect(options: PgOptions) -> Result<Self, StoreError> {
        let mut config = options.config.clone();
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        let (mut client, connection) = config.connect(NoTls).await.map_err(pg_error)?;
        let driver = tokio::spawn(connection);
        let schema_version = migrate(&mut client, &options.schema).await;
        drop(client);
        let _ = driver.await;
        let schema_version = schema_version?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                // A connection whose socket closed (PostgreSQL restarted) is dropped, not lent.
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECT_TIMEOUT))
            .create_timeout(Some(CONNECT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Other(format!("cannot build the PostgreSQL pool: {e}")))?;
        let node = format!("{:016x}", rand_u64());
        tracing::info!(url = options.shown(), schema = %options.schema, schema_version, pool_size = options.pool_size, %node, "opened the PostgreSQL store");
        Ok(Self {
            sequencer: crate::events::Sequencer::start(pool.clone()),
            pool,
            channel: format!("{}_yard", options.schema),
            node,
            listener: Listener(Arc::default()),
            options,
            schema_version,
        })
    }

    /// The schema holding the yard's tables.
    pub fn schema(&self) -> &str {
        &self.options.schema
    }

    /// The URL the store was opened with, its password hidden.
    pub fn url(&self) -> &str {
        self.options.shown()
    }

    pub(crate) async fn client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Starts listening for other nodes' changes (once; later calls replace the sink's task).
    pub(crate) fn start_listening(&self, sink: RemoteSink) {
        let task = tokio::spawn(listen(
            self.options.config.clone(),
            self.channel.clone(),
            self.node.clone(),
            sink,
        ));
        let mut slot = self.listener.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = slot.replace(task) {
            old.abort();
        }
    }
}

/// A random number from the standard library's hasher seeds (no RNG crate needed for a node id).
fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Runs `$body` (an expression using `$w: &mut Work`, evaluating to `TxResult<T>`) in a write
/// transaction of `$store`, then writes the counts and notifications it owes and commits. A
/// transaction PostgreSQL rolled back to break a deadlock is run again (a few times).
///
/// The transaction costs no round trip of its own: `BEGIN` goes out with the body's first
/// statement, and `COMMIT` with the counts and notifications (see [`Work::settle_and_commit`]).
/// A call dropped half-way (its request was cancelled) closes the connection rather than lending
/// it out inside the open transaction; PostgreSQL then rolls it back.
///
/// [`Work::settle_and_commit`]: crate::work::Work::settle_and_commit
macro_rules! write_tx {
    ($store:expr, |$w:ident| $body:expr) => {{
        let store: &$crate::store::PgStore = $store;
        let mut attempt: u32 = 0;
        loop {
            let mut open = $crate::work::OpenTx::new(store.client().await?);
            let mut $w = $crate::work::Work::new(open.client());
            let begin = $w.tx.batch_execute("BEGIN");
            let body = async {
                let value = $body?;
                $w.settle_and_commit(&store.channel, &store.node).await?;
                Ok(value)
            };
            let (begun, result): (_, $crate::work::TxResult<_>) = tokio::join!(begin, body);
            match (begun, result) {
                (Ok(()), Ok(value)) => {
                    let logged = $w.logged();
                    open.finished();
                    if logged > 0 {
                        store.sequencer.nudge();
                    }
                    break Ok(value);
                }
                // A pooled connection PostgreSQL closed (it restarted) fails at the first thing
                // sent, before anything of this call ran: try again on a fresh one.
                (Err(e), _) if e.code().is_none() && attempt < 2 => {
                    attempt += 1;
                }
                (Err(e), _) => break Err($crate::error::pg_error(e)),
                (Ok(()), Err($crate::work::TxError::Pg(e))) if $crate::error::is_retryable(&e) && attempt < 8 => {
                    attempt += 1;
                    open.roll_back().await;
                    tokio::time::sleep(std::time::Duration::from_millis(u64::from(attempt) * 2)).await;
                }
                (Ok(()), Err(e)) => {
                    // Rolled back here, so the connection goes back to the pool idle and holds
                    // no lock meanwhile (a refused command is common).
                    open.roll_back().await;
                    break Err(e.into_store());
                }
            }
        }
    }};
}

pub(crate) use write_tx;
