//! Wake-ups of the event log's followers (`GET /v1/events/stream`). Anything this node commits
//! may have appended events, so a change pokes the feed and every follower reads again; changes
//! made through another node reach followers by their periodic re-read.
//!
//! The protocol of claims and inboxes: a follower arms its wake-up before it reads the store, so
//! no event slips between a read and a wait.

use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};

use agentyard_store::StoreError;
use tokio::sync::Notify;
use tokio::time::Instant;

#[derive(Default)]
pub struct EventFeed {
    changed: Notify,
    closing: AtomicBool,
}

impl EventFeed {
    /// Something was committed: followers read again.
    pub fn poke(&self) {
        self.changed.notify_waiters();
    }

    /// The server shuts down: followers end their streams.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::SeqCst)
    }

    /// Runs `read`; when it finds nothing, waits until the feed is poked, `until` passes or the
    /// server shuts down. The wake-up is armed before `read` runs.
    pub async fn wait_for<T, F, Fut>(&self, until: Instant, read: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, bool), StoreError>>,
    {
        let mut changed = pin!(self.changed.notified());
        changed.as_mut().enable();
        let (value, found) = read().await?;
        if found || self.is_closing() {
            return Ok(value);
        }
        tokio::select! {
            () = changed => {}
            () = tokio::time::sleep_until(until) => {}
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn a_poke_wakes_a_waiting_follower_and_a_find_does_not_wait() {
        let feed = Arc::new(EventFeed::default());
        let far = Instant::now() + Duration::from_secs(30);
        let found = feed.wait_for(far, || async { Ok((1, true)) }).await.expect("read");
        assert_eq!(found, 1, "something found: no wait");
        let waiting = {
            let feed = feed.clone();
            tokio::spawn(async move { feed.wait_for(far, || async { Ok((2, false)) }).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        feed.poke();
        let woken = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken well before its deadline")
            .expect("task")
            .expect("read");
        assert_eq!(woken, 2);
    }
}
