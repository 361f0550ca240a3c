//! The SQLite backend of the yard ([`Store`](agentyard_store::Store),
//! [`AgentStore`](agentyard_store::AgentStore), [`MessageStore`](agentyard_store::MessageStore),
//! [`LimitStore`](agentyard_store::LimitStore), [`TokenStore`](agentyard_store::TokenStore),
//! [`EventStore`](agentyard_store::EventStore)):
//! one database file in WAL mode, one writer connection that commits commands in groups, and a pool
//! of read-only connections.
//!
//! # How it writes
//! Every change, claims included, is a command for the single read-write connection (see
//! `writer.rs`). A caller queues its command and, if nobody holds the connection, commits the
//! commands waiting at that moment in one `BEGIN IMMEDIATE … COMMIT`; commands left waiting after
//! that are committed by a relay on the blocking pool, group after group. If somebody holds the
//! connection, that one commits this command with a following group. Callers are answered only
//! once the `COMMIT` returned. There is one writer, so no write ever meets
//! `SQLITE_BUSY`; under load a commit (and its fsync) serves a whole group, and at low load a
//! command is committed on its caller's thread with no hand-off to another.
//!
//! A command that fails leaves nothing behind: agent and message commands run inside a savepoint
//! rolled back on error; task commands find every reason to fail before they write, and should
//! one fail after writing all the same (an I/O error, a bug), its whole group is rolled back and
//! fails. WAL checkpoints run on a thread of their own with its own connection, never inside a
//! commit.
//!
//! Reads (`get_task`, `list_tasks`, `queue_stats`, `next_wakeup`, `get_agent`, `read_inbox`, …)
//! run on a pool of read-only connections on blocking threads; WAL lets them read the last commit
//! while a write goes on. A read of several statements (an inbox merged from its sources) runs
//! in one read transaction, so it sees one commit. Per-queue counts live in memory (rebuilt from
//! the table at open) so stats and the backpressure check cost no query.
//!
//! # Agents and messages
//! Agents are rows of `agents` (`agents.rs`); how many tasks one runs is counted from the tasks
//! on read, never stored. A message is one row of `messages` whoever reads it (`messages.rs`):
//! a broadcast to a thousand agents is one row, and an inbox is a view merged from index range
//! scans (the agent's direct messages, the broadcasts since it registered, each topic since it
//! subscribed) after its cursor.
//!
//! Dispatch limits set through the API are rows of `limits` (`limits.rs`), one per namespace and
//! key. API tokens are rows of `tokens` (`tokens.rs`), one per token, revoked ones kept.
//!
//! The event log ([`EventStore`](agentyard_store::EventStore)) is the table `events`
//! (`events.rs`): every change appends its event through the writer, in the same transaction
//! (and savepoint) as the change, so a change rolled back leaves no event.
//!
//! # What survives a crash
//! A write is acknowledged only after its transaction committed to the write-ahead log.
//! - [`Durability::Normal`] (WAL, `synchronous=NORMAL`): an acknowledged write survives the
//!   process dying (a panic, `kill -9`, an OOM kill), because the WAL is in the operating
//!   system's hands at commit. A power loss or kernel crash may lose the last commits before a
//!   checkpoint; the database is never corrupted by it.
//! - [`Durability::Full`] (WAL, `synchronous=FULL`): the WAL is fsynced at every commit, i.e. once
//!   per commit group, so an acknowledged write also survives a power loss.
//!
//! The path must be a file on a local file system (WAL needs shared memory; not `:memory:`).
//! One store at a time has a database open, in any process: it holds an exclusive lock on
//! `PATH.lock` beside it while open, and a second open fails naming the file (`lock.rs`).

mod agents;
mod checkpoint;
mod connection;
mod counts;
mod error;
mod events;
mod limits;
mod lock;
mod messages;
mod migrations;
mod readers;
mod reference;
mod running;
mod stats;
mod store;
mod tasks;
mod tokens;
mod writer;

use std::fmt;
use std::str::FromStr;

pub use reference::reference_loop;
pub use store::SqliteStore;
pub use writer::CommitStats;

/// How hard a commit works to survive a crash. See the crate docs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// WAL with `synchronous=NORMAL`: survives a process crash; a power loss may lose the last
    /// commits.
    #[default]
    Normal,
    /// WAL with `synchronous=FULL`: an fsync per commit group; survives a power loss.
    Full,
}

impl Durability {
    pub fn as_str(self) -> &'static str {
        match self {
            Durability::Normal => "normal",
            Durability::Full => "full",
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A durability setting that is neither `normal` nor `full`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseDurabilityError(String);

impl fmt::Display for ParseDurabilityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown durability {:?}: expected \"normal\" (survives a process crash) or \"full\" \
             (fsync per commit, survives a power loss)",
            self.0
        )
    }
}

impl std::error::Error for ParseDurabilityError {}

impl FromStr for Durability {
    type Err = ParseDurabilityError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [Durability::Normal, Durability::Full]
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ParseDurabilityError(s.chars().take(64).collect()))
    }
}

/// How to open a [`SqliteStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqliteOptions {
    pub durability: Durability,
    /// Read-only connections in the pool (at least one is opened).
    pub readers: usize,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            durability: Durability::Normal,
            readers: 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_parses_its_two_names_only() {
        for (input, expected) in [
            ("normal", Ok(Durability::Normal)),
            ("full", Ok(Durability::Full)),
            ("FULL", Ok(Durability::Full)),
            (" normal ", Ok(Durability::Normal)),
            ("extra", Err(())),
            ("", Err(())),
        ] {
            assert_eq!(input.parse::<Durability>().map_err(|_| ()), expected, "{input:?}");
        }
        let err = "fsync".parse::<Durability>().expect_err("invalid").to_string();
        assert!(
            err.contains("\"fsync\"") && err.contains("\"normal\"") && err.contains("\"full\""),
            "{err}"
        );
        assert_eq!(Durability::Full.to_string().parse::<Durability>(), Ok(Durability::Full));
    }
}
