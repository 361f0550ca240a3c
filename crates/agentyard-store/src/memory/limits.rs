//! `LimitStore` on the memory store: the limits in one map of the state, each set or removal
//! recorded for the sink like every other change, so the log store keeps them.

use agentyard_core::event::limit_changed;
use agentyard_core::flow::KeyLimit;
use agentyard_core::{Namespace, Timestamp};
use async_trait::async_trait;

use super::{Change, MemoryStore};
use crate::{LimitStore, StoreError, StoredLimit};

#[async_trait]
impl LimitStore for MemoryStore {
    async fn list_limits(&self) -> Result<Vec<StoredLimit>, StoreError> {
        let st = self.lock();
        Ok(st
            .limits
            .iter()
            .map(|((namespace, key), limit)| StoredLimit {
                namespace: namespace.clone(),
                key: key.clone(),
                limit: *limit,
            })
            .collect())
    }

    async fn put_limit(&self, ns: &Namespace, key: &str, limit: KeyLimit, now: Timestamp) -> Result<(), StoreError> {
        let mut st = self.lock();
        st.record(Change::Limit {
            namespace: ns,
            key,
            limit: &limit,
        });
        st.log(limit_changed(ns, key, Some(&limit), now));
        st.limits.insert((ns.clone(), key.to_owned()), limit);
        Ok(())
    }

    async fn delete_limit(&self, ns: &Namespace, key: &str, now: Timestamp) -> Result<bool, StoreError> {
        let mut st = self.lock();
        let removed = st.limits.remove(&(ns.clone(), key.to_owned())).is_some();
        if removed {
            st.record(Change::LimitRemoved { namespace: ns, key });
            st.log(limit_changed(ns, key, None, now));
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use agentyard_core::flow::RateLimit;

    use super::*;
    use crate::{ChangeSink, OwnedChange};

    /// Keeps every change as the log store would write it (JSON), and the seals.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl ChangeSink for Recorder {
        fn record(&self, change: &Change<'_>) {
            let line = serde_json::to_string(change).expect("a change encodes");
            self.0.lock().expect("recorder").push(line);
        }

        fn seal(&self) {
            self.0.lock().expect("recorder").push("seal".into());
        }
    }

    impl Recorder {
        fn take(&self) -> Vec<String> {
            std::mem::take(&mut *self.0.lock().expect("recorder"))
        }
    }

    fn ns(name: &str) -> Namespace {
        Namespace::parse(name).expect("valid namespace")
    }

    fn limit(per_minute: u32, max_concurrent: Option<u64>) -> KeyLimit {
        KeyLimit {
            rate: Some(RateLimit {
                rate_per_minute: per_minute,
                burst: 3,
            }),
            max_concurrent,
        }
    }

    /// Each set or removal is one sealed call; a removal of nothing records nothing; the
    /// recorded lines read back as the changes, and restored into another store give it the
    /// same limits.
    #[tokio::test]
    async fn limit_changes_reach_the_sink_and_restore() {
        let store = MemoryStore::new();
        let recorder = Arc::new(Recorder::default());
        store.attach(recorder.clone());
        store
            .put_limit(
                &ns("a"),
                "openai",
                limit(60, None),
                agentyard_core::Timestamp::from_millis(0),
            )
            .await
            .expect("put");
        store
            .put_limit(
                &ns("a"),
                "repo",
                limit(10, Some(2)),
                agentyard_core::Timestamp::from_millis(0),
            )
            .await
            .expect("put");
        store
            .put_limit(
                &ns("b"),
                "openai",
                KeyLimit::default(),
                agentyard_core::Timestamp::from_millis(0),
            )
            .await
            .expect("put");
        assert!(
            store
                .delete_limit(&ns("a"), "repo", agentyard_core::Timestamp::from_millis(0))
                .await
                .expect("delete")
        );
        assert!(
            !store
                .delete_limit(&ns("a"), "repo", agentyard_core::Timestamp::from_millis(0))
                .await
                .expect("delete again")
        );
        let lines = recorder.take();
        assert_eq!(lines.iter().filter(|l| *l == "seal").count(), 4, "{lines:?}");
        assert_eq!(lines.last().map(String::as_str), Some("seal"), "{lines:?}");
        let changes: Vec<OwnedChange> = lines
            .iter()
            .filter(|l| *l != "seal")
            .map(|l| serde_json::from_str(l).expect("a change reads back"))
            .collect();
        let limits: Vec<&OwnedChange> = changes.iter().filter(|c| !matches!(c, OwnedChange::Event(_))).collect();
        assert_eq!(changes.len(), 2 * limits.len(), "each change with its event");
        assert_eq!(
            *limits[3],
            OwnedChange::LimitRemoved {
                namespace: ns("a"),
                key: "repo".into(),
            }
        );
        let copy = MemoryStore::new();
        copy.restore(changes);
        let limits = copy.list_limits().await.expect("list");
        assert_eq!(limits, store.list_limits().await.expect("list"));
        assert_eq!(limits.len(), 2);
    }

    /// The export (the log's snapshot) holds the limits, after everything else, page by page.
    #[tokio::test]
    async fn the_export_holds_the_limits() {
        let store = MemoryStore::new();
        for n in 0..5u32 {
            store
                .put_limit(
                    &ns("a"),
                    &format!("key-{n}"),
                    limit(n + 1, None),
                    agentyard_core::Timestamp::from_millis(0),
                )
                .await
                .expect("put");
        }
        let mut cursor = crate::ExportCursor::default();
        let mut pages = Vec::new();
        while !cursor.done() {
            pages.push(store.export_page(&mut cursor, 2));
        }
        // The five limits, then their five events.
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 2, 2, 2]);
        assert!(matches!(pages[2][1], OwnedChange::Event(_)));
        let copy = MemoryStore::new();
        copy.restore(pages.into_iter().flatten());
        assert_eq!(
            copy.list_limits().await.expect("list"),
            store.list_limits().await.expect("list")
        );
        assert_eq!(copy.export(), store.export());
    }
}
