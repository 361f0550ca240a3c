//! Webhook deliveries. Each webhook gets a worker on the node that holds its delivery lease (one
//! node at a time): it reads the namespace's events after the webhook's cursor, POSTs them one
//! at a time, in order, signed, and moves the stored cursor past each one delivered, so a
//! restart (or another node taking over) resumes after the last event delivered: at least once,
//! in order, none lost. A failed delivery is retried with exponential backoff; after
//! `breaker_failures` failures in a row the webhook is paused for a cooldown (the circuit
//! breaker), then tried again on its own.
//!
//! A delivery is `POST url` with the JSON body `{"delivery_id", "webhook_id", "event"}` and the
//! headers `Agentyard-Delivery-Id` (`<webhook id>:<seq>`, the same on every attempt at one
//! event), `Agentyard-Event-Type`, `Agentyard-Timestamp` (Unix seconds) and
//! `Agentyard-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>" keyed by the secret>`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use agentyard_core::api::{Delivery, WebhookState, WebhookView};
use agentyard_core::event::Event;
use agentyard_core::{Namespace, Timestamp};
use agentyard_store::{EventFilter, StoredWebhook};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use tokio::sync::watch;

use crate::state::AppState;

/// Attempts kept per webhook for `GET /v1/webhooks/{id}/deliveries`.
const KEPT_DELIVERIES: usize = 100;
/// Events one read takes.
const BATCH: usize = 100;
/// How often the loop looks for webhooks made or removed (also through other nodes).
const SCAN_EVERY: Duration = Duration::from_secs(1);

type Key = (Namespace, String);

/// What this node knows about the deliveries of each webhook.
pub struct Webhooks {
    /// Names this process as a lease holder.
    node: String,
    http: reqwest::Client,
    states: Mutex<HashMap<Key, Status>>,
    /// Webhooks removed through this node: their workers stop before their next delivery (one
    /// removed through another node stops at its next cursor move).
    removed: Mutex<std::collections::HashSet<Key>>,
}

#[derive(Debug, Clone)]
struct Status {
    state: WebhookState,
    failures: u32,
    last_error: Option<String>,
    paused_until: Option<Timestamp>,
    last_delivered_at: Option<Timestamp>,
    deliveries: VecDeque<Delivery>,
}

impl Default for Status {
    fn default() -> Self {
        Self {
            state: WebhookState::Active,
            failures: 0,
            last_error: None,
            paused_until: None,
            last_delivered_at: None,
            deliveries: VecDeque::new(),
        }
    }
}

impl Webhooks {
    pub fn new(timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(concat!("agentyard-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot build the webhook HTTP client with its settings; using the defaults");
                reqwest::Client::new()
            });
        Self {
            node: format!("node-{}", ulid::Ulid::new().to_string().to_lowercase()),
            http,
            states: Mutex::new(HashMap::new()),
            removed: Mutex::new(std::collections::HashSet::new()),
        }
    }

    fn states(&self) -> MutexGuard<'_, HashMap<Key, Status>> {
        // Plain bookkeeping: nothing a panicking holder could leave half-changed that matters.
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn update(&self, key: &Key, f: impl FnOnce(&mut Status)) {
        f(self.states().entry(key.clone()).or_default());
    }

    /// The webhook with what this node knows of its deliveries.
    pub fn view(&self, stored: &StoredWebhook) -> WebhookView {
        let key = (stored.hook.namespace.clone(), stored.hook.id.clone());
        let status = self.states().get(&key).cloned().unwrap_or_default();
        WebhookView {
            webhook: stored.hook.clone(),
            state: status.state,
            consecutive_failures: status.failures,
            last_error: status.last_error,
            paused_until: status.paused_until,
            last_delivered_at: status.last_delivered_at,
        }
    }

    /// The latest attempts this node made, newest first.
    pub fn deliveries(&self, ns: &Namespace, id: &str) -> Vec<Delivery> {
        self.states()
            .get(&(ns.clone(), id.to_owned()))
            .map(|s| s.deliveries.iter().rev().cloned().collect())
            .unwrap_or_default()
    }

    pub fn forget(&self, ns: &Namespace, id: &str) {
        self.states().remove(&(ns.clone(), id.to_owned()));
    }

    /// The webhook was removed: its worker delivers nothing more.
    pub fn removed(&self, ns: &Namespace, id: &str) {
        self.forget(ns, id);
        self.removed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((ns.clone(), id.to_owned()));
    }

    fn was_removed(&self, key: &Key) -> bool {
        self.removed.lock().unwrap_or_else(|e| e.into_inner()).contains(key)
    }

    /// Its worker stopped: an id is never made again, so the mark can go.
    fn stopped(&self, key: &Key) {
        self.removed.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// The signature header's value for a body sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(3 + digest.len() * 2);
    out.push_str("v1=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Starts and ends the workers as webhooks come and go, until shutdown.
pub struct WebhookLoop {
    state: AppState,
}

impl WebhookLoop {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    pub async fn run(self, shutdown: watch::Receiver<bool>) {
        let mut workers: HashMap<Key, tokio::task::JoinHandle<()>> = HashMap::new();
        let mut stop = shutdown.clone();
        loop {
            match self.state.store.list_webhooks().await {
                Ok(hooks) => {
                    workers.retain(|_, w| !w.is_finished());
                    for hook in hooks {
                        let key = (hook.hook.namespace.clone(), hook.hook.id.clone());
                        if let std::collections::hash_map::Entry::Vacant(slot) = workers.entry(key.clone()) {
                            let worker = Worker {
                                s: self.state.clone(),
                                key,
                                hook,
                                shutdown: shutdown.clone(),
                            };
                            slot.insert(tokio::spawn(worker.run()));
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhooks: cannot list the webhooks"),
            }
            tokio::select! {
                _ = stop.wait_for(|s| *s) => break,
                () = tokio::time::sleep(SCAN_EVERY) => {}
            }
        }
        for (_, worker) in workers {
            let _ = worker.await;
        }
        tracing::debug!("webhook loop stopped");
    }
}

/// Why a worker stops delivering.
enum Stop {
    /// The server shuts down.
    Shutdown,
    /// The webhook was removed through this node.
    Removed,
    /// Another node holds the lease, or the webhook was removed.
    NotOurs,
}

struct Worker {
    s: AppState,
    key: Key,
    hook: StoredWebhook,
    shutdown: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        let webhooks = self.s.webhooks.clone();
        // Not holding it yet: wait for the lease, then deliver until it is lost.
        loop {
            match self.take_lease().await {
                Some(true) => {}
                Some(false) => {
                    if !self.exists().await {
                        webhooks.forget(&self.key.0, &self.key.1);
                        return;
                    }
                    if self.sleep(self.s.config.webhooks.lease / 3).await.is_err() {
                        return;
                    }
                    continue;
                }
                None => {
                    if self.sleep(Duration::from_secs(1)).await.is_err() {
                        return;
                    }
                    continue;
                }
            }
            // Another node may have delivered while this one did not hold it.
            if !self.refresh().await {
                webhooks.forget(&self.key.0, &self.key.1);
                return;
            }
            match self.deliver_while_held().await {
                Stop::Shutdown => {
                    self.release_lease().await;
                    return;
                }
                Stop::Removed => {
                    webhooks.stopped(&self.key);
                    return;
                }
                Stop::NotOurs => continue,
            }
        }
    }

    /// Takes or renews the lease: `None` when the store failed.
    async fn take_lease(&self) -> Option<bool> {
        let now = self.s.clock.now();
        let until = now.add_millis(self.s.config.webhooks.lease.as_millis() as u64);
        let webhooks = &self.s.webhooks;
        match self
            .s
            .store
            .lease_webhook(&self.key.0, &self.key.1, &webhooks.node, now, until)
            .await
        {
            Ok(held) => Some(held),
            Err(e) => {
                tracing::warn!(error = %e, webhook = %self.key.1, "webhooks: cannot take the delivery lease");
                None
            }
        }
    }

    /// Hands the lease back at shutdown, so the next process (or node) delivers at once rather
    /// than after the lease ran out.
    async fn release_lease(&self) {
        let now = self.s.clock.now();
        let node = &self.s.webhooks.node;
        if let Err(e) = self
            .s
            .store
            .lease_webhook(&self.key.0, &self.key.1, node, now, now)
            .await
        {
            tracing::debug!(error = %e, webhook = %self.key.1, "webhooks: cannot hand the delivery lease back");
        }
    }

    async fn exists(&self) -> bool {
        self.find().await.is_some()
    }

    async fn find(&self) -> Option<StoredWebhook> {
        self.s
            .store
            .list_webhooks()
            .await
            .ok()?
            .into_iter()
            .find(|h| h.hook.namespace == self.key.0 && h.hook.id == self.key.1)
    }

    /// Reads the webhook as stored (its cursor may have moved); false when it is gone.
    async fn refresh(&mut self) -> bool {
        match self.find().await {
            Some(hook) => {
                self.hook = hook;
                true
            }
            None => false,
        }
    }

    /// Sleeps, or ends early (`Err`) when the server shuts down.
    async fn sleep(&mut self, d: Duration) -> Result<(), ()> {
        tokio::select! {
            _ = self.shutdown.wait_for(|s| *s) => Err(()),
            () = tokio::time::sleep(d) => Ok(()),
        }
    }

    async fn deliver_while_held(&mut self) -> Stop {
        let renew_every = self.s.config.webhooks.lease / 3;
        let mut renewed = Instant::now();
        let filter = EventFilter {
            types: self.hook.hook.types.clone(),
            ..EventFilter::default()
        };
        let mut cursor = self.hook.hook.cursor;
        loop {
            if *self.shutdown.borrow() {
                return Stop::Shutdown;
            }
            if renewed.elapsed() >= renew_every {
                match self.take_lease().await {
                    Some(true) => renewed = Instant::now(),
                    Some(false) => return Stop::NotOurs,
                    None => {}
                }
            }
            let s = self.s.clone();
            let until = tokio::time::Instant::now() + Duration::from_secs(1);
            let ns = self.key.0.clone();
            let read = s
                .dispatch
                .events
                .wait_for(until, || {
                    let (s, ns, filter) = (&s, &ns, &filter);
                    async move {
                        let page = s.store.read_events(ns, filter, cursor, BATCH).await?;
                        let moved = page.next != cursor;
                        Ok((page, moved))
                    }
                })
                .await;
            let page = match read {
                Ok(page) => page,
                Err(e) => {
                    tracing::warn!(error = %e, webhook = %self.key.1, "webhooks: cannot read the event log");
                    if self.sleep(Duration::from_secs(1)).await.is_err() {
                        return Stop::Shutdown;
                    }
                    continue;
                }
            };
            for event in &page.events {
                if let Err(stop) = self.deliver(event, &mut renewed).await {
                    return stop;
                }
                cursor = event.seq;
                match self.s.store.advance_webhook(&self.key.0, &self.key.1, cursor).await {
                    Ok(true) => {}
                    Ok(false) => return Stop::NotOurs,
                    Err(e) => {
                        // Delivered but not recorded: after a restart it goes again (at least once).
                        tracing::warn!(error = %e, webhook = %self.key.1, "webhooks: cannot store the cursor");
                    }
                }
            }
            cursor = cursor.max(page.next);
        }
    }

    /// Delivers one event, retrying until the receiver takes it.
    async fn deliver(&mut self, event: &Event, renewed: &mut Instant) -> Result<(), Stop> {
        let config = self.s.config.webhooks.clone();
        let webhooks = self.s.webhooks.clone();
        let delivery_id = format!("{}:{}", self.key.1, event.seq);
        let body = serde_json::to_vec(&serde_json::json!({
            "delivery_id": delivery_id,
            "webhook_id": self.key.1,
            "event": event,
        }))
        .unwrap_or_default();
        let mut attempt: u32 = 0;
        loop {
            if webhooks.was_removed(&self.key) {
                return Err(Stop::Removed);
            }
            attempt += 1;
            if renewed.elapsed() >= config.lease / 3 {
                match self.take_lease().await {
                    Some(true) => *renewed = Instant::now(),
                    Some(false) => return Err(Stop::NotOurs),
                    None => {}
                }
            }
            let now = self.s.clock.now();
            let timestamp = now.as_millis() / 1_000;
            let started = Instant::now();
            let sent = webhooks
                .http
                .post(&self.hook.hook.url)
                .header("content-type", "application/json")
                .header("agentyard-webhook-id", &self.key.1)
                .header("agentyard-delivery-id", &delivery_id)
                .header("agentyard-event-type", event.kind.as_str())
                .header("agentyard-timestamp", timestamp.to_string())
                .header("agentyard-signature", signature(&self.hook.secret, timestamp, &body))
                .body(body.clone())
                .send()
                .await;
            let duration_ms = started.elapsed().as_millis() as u64;
            let (delivered, status, error) = match sent {
                Ok(r) if r.status().is_success() => (true, Some(r.status().as_u16()), None),
                Ok(r) => (
                    false,
                    Some(r.status().as_u16()),
                    Some(format!("the receiver answered {}", r.status())),
                ),
                Err(e) => (false, None, Some(describe(&e))),
            };
            let record = Delivery {
                id: delivery_id.clone(),
                seq: event.seq,
                event_type: event.kind,
                attempt,
                at: now,
                delivered,
                status,
                error: error.clone(),
                duration_ms,
            };
            let counters = &self.s.counters;
            crate::metrics::Counters::add(
                if delivered {
                    &counters.webhook_deliveries
                } else {
                    &counters.webhook_failures
                },
                1,
            );
            let mut pause = None;
            webhooks.update(&self.key, |st| {
                st.deliveries.push_back(record);
                while st.deliveries.len() > KEPT_DELIVERIES {
                    st.deliveries.pop_front();
                }
                if delivered {
                    st.state = WebhookState::Active;
                    st.failures = 0;
                    st.paused_until = None;
                    st.last_error = None;
                    st.last_delivered_at = Some(now);
                    return;
                }
                st.failures += 1;
                st.last_error = error.clone();
                let wait = if st.failures % config.breaker_failures.max(1) == 0 {
                    let trips = st.failures / config.breaker_failures.max(1);
                    let cooldown = config
                        .breaker_cooldown
                        .saturating_mul(1 << (trips - 1).min(4))
                        .min(config.breaker_cooldown.saturating_mul(10));
                    crate::metrics::Counters::add(&counters.webhook_pauses, 1);
                    st.state = WebhookState::Paused;
                    st.paused_until = Some(now.add_millis(cooldown.as_millis() as u64));
                    tracing::warn!(webhook = %self.key.1, failures = st.failures, cooldown_ms = cooldown.as_millis() as u64,
                        error = ?error, "webhook keeps failing: paused");
                    cooldown
                } else {
                    st.state = WebhookState::Retrying;
                    config
                        .retry_base
                        .saturating_mul(1 << (st.failures - 1).min(16))
                        .min(config.retry_max)
                };
                pause = Some(wait);
            });
            match pause {
                None => return Ok(()),
                Some(wait) => {
                    if self.sleep(wait).await.is_err() {
                        return Err(Stop::Shutdown);
                    }
                }
            }
        }
    }
}

/// What went wrong with a request, for the delivery record.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "the receiver did not answer in time".to_owned()
    } else if e.is_connect() {
        "cannot connect to the receiver".to_owned()
    } else {
        format!("the request failed: {e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        let sig = signature("Jefe", 0, b"what do ya want for nothing?");
        assert!(sig.starts_with("v1="));
        assert_eq!(sig.len(), 3 + 64);
        assert_ne!(
            sig,
            signature("Jefe", 1, b"what do ya want for nothing?"),
            "the timestamp is signed"
        );
        assert_ne!(
            sig,
            signature("Jeff", 0, b"what do ya want for nothing?"),
            "the key matters"
        );
        // "0.what do ya want for nothing?" with the key "Jefe", computed with Python's hmac.
        assert_eq!(
            sig,
            "v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
        );
    }
}
