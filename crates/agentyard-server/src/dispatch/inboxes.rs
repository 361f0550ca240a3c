//! Inbox wake-ups: readers waiting for messages (long-poll reads, Server-Sent-Events streams)
//! park on their agent's [`Notify`] and on their namespace's; a direct message wakes its
//! recipient only, a topic message or a broadcast wakes the namespace's readers.
//!
//! The same protocol as claims makes it race-free: a reader enables its wake-ups before it reads
//! the store, a sender wakes after its message is stored.

use std::collections::HashMap;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentyard_core::message::{Message, Recipient};
use agentyard_core::{AgentName, Clock, Namespace};
use agentyard_store::{InboxPage, MessageStore, StoreError};
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
struct NamespaceReaders {
    /// Woken by topic messages and broadcasts.
    all: Notify,
    agents: Mutex<HashMap<AgentName, Arc<Notify>>>,
}

impl NamespaceReaders {
    fn agents(&self) -> std::sync::MutexGuard<'_, HashMap<AgentName, Arc<Notify>>> {
        // A map of wake-up handles: nothing a panicking holder could leave inconsistent.
        self.agents.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[derive(Default)]
struct Closing {
    closing: AtomicBool,
    closed: Notify,
}

/// Every waiting inbox reader, by namespace and agent.
#[derive(Default)]
pub struct Inboxes {
    namespaces: Mutex<HashMap<Namespace, Arc<NamespaceReaders>>>,
    closing: Arc<Closing>,
}

/// One reader's wake-ups; see [`Inboxes::listen`]. Owns what it needs, so a stream can keep it.
pub struct Listener {
    closing: Arc<Closing>,
    ns: Arc<NamespaceReaders>,
    name: AgentName,
    agent: Arc<Notify>,
}

impl Drop for Listener {
    fn drop(&mut self) {
        let mut agents = self.ns.agents();
        // Two holders left: the map and this listener, so nobody else waits on it.
        if Arc::strong_count(&self.agent) <= 2 {
            agents.remove(&self.name);
        }
    }
}

impl Listener {
    /// Waits until a message may have arrived for the agent, `until` passes or the server shuts
    /// down (then false). `read` runs after the wake-ups are armed: if it finds something, no
    /// wait happens.
    pub async fn wait_for<T, F, Fut>(&self, until: Instant, read: F) -> Result<(T, bool), StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, bool), StoreError>>,
    {
        let mut mine = pin!(self.agent.notified());
        mine.as_mut().enable();
        let mut all = pin!(self.ns.all.notified());
        all.as_mut().enable();
        let mut closed = pin!(self.closing.closed.notified());
        closed.as_mut().enable();
        let (value, found) = read().await?;
        if found || self.is_closing() {
            return Ok((value, found));
        }
        tokio::select! {
            () = mine => {}
            () = all => {}
            () = closed => {}
            () = tokio::time::sleep_until(until) => {}
        }
        Ok((value, false))
    }

    pub fn is_closing(&self) -> bool {
        self.closing.closing.load(Ordering::SeqCst)
    }
}

impl Inboxes {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Namespace, Arc<NamespaceReaders>>> {
        self.namespaces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes the readers a stored message is for.
    pub fn message_sent(&self, m: &Message) {
        self.message_to(&m.namespace, &m.to);
    }

    /// Wakes the readers a message to `to` is for (also one sent through another node).
    pub fn message_to(&self, namespace: &Namespace, to: &Recipient) {
        let Some(ns) = self.map().get(namespace).cloned() else {
            return;
        };
        match to {
            Recipient::Agent { agent } => {
                if let Some(n) = ns.agents().get(agent) {
                    n.notify_waiters();
                }
            }
            Recipient::Topic { .. } | Recipient::Broadcast { .. } => ns.all.notify_waiters(),
        }
    }

    /// The wake-ups of one reader of `name`'s inbox.
    pub fn listen(&self, ns: &Namespace, name: &AgentName) -> Listener {
        let readers = self.map().entry(ns.clone()).or_default().clone();
        let agent = readers.agents().entry(name.clone()).or_default().clone();
        Listener {
            closing: self.closing.clone(),
            ns: readers,
            name: name.clone(),
            agent,
        }
    }

    /// Reads the inbox; when it is empty, waits up to `wait` for a message and reads again.
    /// Re-reads every `recheck` even unwoken (a message sent through another node).
    #[allow(clippy::too_many_arguments)] // Each is a separate input of the read; a struct would only rename them.
    pub async fn read(
        &self,
        store: &dyn MessageStore,
        clock: &dyn Clock,
        ns: &Namespace,
        agent: &AgentName,
        after: Option<u64>,
        limit: usize,
        wait: Duration,
        recheck: Duration,
    ) -> Result<InboxPage, StoreError> {
        let page = store.read_inbox(ns, agent, after, limit, clock.now()).await?;
        if !page.messages.is_empty() || wait.is_zero() || self.closing.closing.load(Ordering::SeqCst) {
            return Ok(page);
        }
        let deadline = Instant::now() + wait;
        let listener = self.listen(ns, agent);
        let mut last = page;
        loop {
            let now = Instant::now();
            if now >= deadline || listener.is_closing() {
                return Ok(last);
            }
            let (page, found) = listener
                .wait_for(deadline.min(now + recheck), || async {
                    let page = store.read_inbox(ns, agent, after, limit, clock.now()).await?;
                    let found = !page.messages.is_empty();
                    Ok((page, found))
                })
                .await?;
            if found {
                return Ok(page);
            }
            last = page;
        }
    }

    /// Wakes every reader to look again (messages may have been missed).
    pub fn wake_all(&self) {
        let namespaces: Vec<Arc<NamespaceReaders>> = self.map().values().cloned().collect();
        for ns in namespaces {
            ns.all.notify_waiters();
        }
    }

    /// Forgets namespaces nobody reads in.
    pub fn prune(&self) {
        self.map()
            .retain(|_, readers| Arc::strong_count(readers) > 1 || !readers.agents().is_empty());
    }

    /// Whether the server is shutting down.
    pub fn is_closing(&self) -> bool {
        self.closing.closing.load(Ordering::SeqCst)
    }

    /// Wakes every reader for good and makes later waits return at once.
    pub fn close(&self) {
        self.closing.closing.store(true, Ordering::SeqCst);
        self.closing.closed.notify_waiters();
    }
}
