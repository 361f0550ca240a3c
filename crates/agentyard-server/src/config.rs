//! Server settings: where to listen, lease defaults, backpressure and body limits, loop pacing.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything the server needs to know besides its store and clock.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Where `agentyard serve` binds (the server itself takes a bound listener).
    pub listen: SocketAddr,
    /// Lease length of a claim or heartbeat that does not name one.
    pub default_lease_ms: u64,
    /// Most waiting (queued + scheduled) tasks one queue may hold; creates beyond it get 429.
    pub max_queue_depth: Option<u64>,
    /// Largest request body accepted; larger ones get 413.
    pub body_limit_bytes: usize,
    /// Longest the timer loop sleeps between checks, even when nothing is due: bounds how late
    /// it notices a change made by another node sharing the store.
    pub timer_max_sleep: Duration,
    /// How often a parked long-poll claimer re-checks the store without being woken: a safety
    /// net for wake-ups that happen on another node.
    pub claim_recheck: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            default_lease_ms: 30_000,
            max_queue_depth: Some(1_000_000),
            body_limit_bytes: 1024 * 1024,
            timer_max_sleep: Duration::from_secs(1),
            claim_recheck: Duration::from_secs(1),
        }
    }
}
