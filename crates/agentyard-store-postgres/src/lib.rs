//! The PostgreSQL backend of the yard ([`Store`](agentyard_store::Store),
//! [`AgentStore`](agentyard_store::AgentStore), [`MessageStore`](agentyard_store::MessageStore)):
//! the whole state in one schema of one database, shared by any number of stateless nodes.
//!
//! # How it writes
//! Every change is one transaction (READ COMMITTED) on a pooled connection. It locks the rows it
//! changes (`FOR UPDATE`, in id order), applies the pure `Task` functions every backend shares,
//! and writes the rows back in one statement. Claims, lease expiry, promotion of scheduled tasks
//! and bulk redrive lock their candidates `FOR UPDATE SKIP LOCKED`: nodes never wait for each
//! other's candidates and never take the same one, so every node can run the timer loops and each
//! task is still processed once. A concurrency key is counted under a transaction-scoped advisory
//! lock of that key, so claimers on different nodes take turns per key. A transaction PostgreSQL
//! rolls back to break a deadlock runs again.
//!
//! Per-queue counts by status are deltas added, in the same transaction, to one of 64 counter
//! rows per queue (the shard of the connection): stats and the backpressure check read at most
//! 64 small rows, and writers never queue on one counter.
//!
//! # Other nodes
//! A transaction that makes tasks ready or sends a message queues a `NOTIFY` on the schema's
//! channel; PostgreSQL delivers it only if the transaction commits. Each node listens on one
//! connection of its own and reports what it hears through `Store::watch_remote`, so a claimer
//! parked on node B wakes when node A creates a task. A change of limits or tokens is told the
//! same way, so every node drops what it cached of them.
//!
//! # The event log
//! Every change writes its events in its own transaction, without a place in the log; a
//! sequencer, one at a time across the nodes, numbers the committed ones, so a reader going on
//! from a seq never misses one that committed late (see `events.rs`).
//!
//! # What survives a crash
//! An acknowledged write is a committed transaction: with PostgreSQL's default
//! `synchronous_commit = on` it survives the node, the database process, and a power loss.

mod agents;
mod claim;
mod config;
mod error;
mod events;
mod limits;
mod messages;
mod migrations;
mod notify;
mod record;
mod retention;
mod store;
mod tasks;
pub mod testing;
mod tokens;
mod webhooks;
mod work;

pub use config::{DEFAULT_POOL_SIZE, DEFAULT_SCHEMA, PgOptions, PgUrlError};
pub use store::PgStore;
