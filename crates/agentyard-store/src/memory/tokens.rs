//! `TokenStore` on the memory store: the tokens in one map of the state, by id. A creation and a
//! revocation each record the whole token for the sink, so the log store keeps them.

use agentyard_core::Timestamp;
use agentyard_core::auth::TokenId;
use async_trait::async_trait;

use super::{Change, MemoryStore};
use crate::{StoreError, StoredToken, TokenStore};

#[async_trait]
impl TokenStore for MemoryStore {
    async fn create_token(&self, token: StoredToken) -> Result<(), StoreError> {
        let mut st = self.lock();
        if st.tokens.contains_key(&token.info.id) {
            return Err(StoreError::Invalid {
                message: format!("token id {} is taken", token.info.id),
            });
        }
        st.record(Change::Token(&token));
        st.tokens.insert(token.info.id.clone(), token);
        Ok(())
    }

    async fn find_token(&self, id: &TokenId) -> Result<Option<StoredToken>, StoreError> {
        Ok(self.lock().tokens.get(id).cloned())
    }

    async fn list_tokens(&self) -> Result<Vec<StoredToken>, StoreError> {
        Ok(self.lock().tokens.values().cloned().collect())
    }

    async fn revoke_token(&self, id: &TokenId, now: Timestamp) -> Result<Option<StoredToken>, StoreError> {
        let mut st = self.lock();
        let Some(token) = st.tokens.get_mut(id) else {
            return Ok(None);
        };
        if token.info.revoked_at.is_some() {
            return Ok(Some(token.clone()));
        }
        token.info.revoked_at = Some(now);
        let token = token.clone();
        st.record(Change::Token(&token));
        Ok(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use agentyard_core::auth::{Namespaces, Role, TokenInfo};

    use super::*;
    use crate::{ChangeSink, LimitStore, OwnedChange};

    /// Keeps every change as the log store writes it (its record), and the seals.
    #[derive(Default)]
    struct Recorder(Mutex<Vec<String>>);

    impl ChangeSink for Recorder {
        fn record(&self, change: &Change<'_>) {
            let line = serde_json::to_string(&crate::record::ChangeRecordV1::from(change)).expect("a change encodes");
            self.0.lock().expect("recorder").push(line);
        }

        fn seal(&self) {
            self.0.lock().expect("recorder").push("seal".into());
        }
    }

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + ms)
    }

    fn token(n: u8) -> StoredToken {
        StoredToken {
            info: TokenInfo {
                id: TokenId::parse(format!("token0000{n:03}")).expect("valid id"),
                role: Role::Reader,
                namespaces: Namespaces::All,
                agent: None,
                name: format!("reader {n}"),
                created_at: at(i64::from(n)),
                revoked_at: None,
            },
            secret_hash: [n; 32],
        }
    }

    /// Each creation and each revocation is one sealed call holding the whole token; a refused
    /// creation, a second revocation and a revocation of nothing record nothing. The recorded
    /// changes, restored into another store, give it the same tokens.
    #[tokio::test]
    async fn token_changes_reach_the_sink_and_restore() {
        let store = MemoryStore::new();
        let recorder = Arc::new(Recorder::default());
        store.attach(recorder.clone());
        store.create_token(token(1)).await.expect("create");
        store.create_token(token(2)).await.expect("create");
        let taken = store.create_token(token(1)).await.expect_err("taken");
        assert_eq!(taken.kind(), "invalid");
        let revoked = store
            .revoke_token(&token(1).info.id, at(50))
            .await
            .expect("revoke")
            .expect("known");
        assert_eq!(revoked.info.revoked_at, Some(at(50)));
        let again = store
            .revoke_token(&token(1).info.id, at(60))
            .await
            .expect("revoke again");
        assert_eq!(again, Some(revoked.clone()), "the first time stays");
        assert_eq!(
            store.revoke_token(&token(3).info.id, at(60)).await.expect("revoke"),
            None
        );

        let lines = std::mem::take(&mut *recorder.0.lock().expect("recorder"));
        assert_eq!(lines.iter().filter(|l| *l == "seal").count(), 3, "{lines:?}");
        let changes: Vec<OwnedChange> = lines
            .iter()
            .filter(|l| *l != "seal")
            .map(|l| {
                let record: crate::record::ChangeRecordV1<'_> = serde_json::from_str(l).expect("reads back");
                OwnedChange::from(record)
            })
            .collect();
        assert_eq!(changes.last(), Some(&OwnedChange::Token(revoked)));
        let copy = MemoryStore::new();
        copy.restore(changes);
        assert_eq!(
            copy.list_tokens().await.expect("list"),
            store.list_tokens().await.expect("list")
        );
    }

    /// The export (the log's snapshot) holds the tokens, after everything else, page by page.
    #[tokio::test]
    async fn the_export_holds_the_tokens() {
        let store = MemoryStore::new();
        store
            .put_limit(
                &agentyard_core::Namespace::default_namespace(),
                "k",
                Default::default(),
                agentyard_core::Timestamp::from_millis(0),
            )
            .await
            .expect("put");
        for n in 0..5 {
            store.create_token(token(n)).await.expect("create");
        }
        store.revoke_token(&token(3).info.id, at(9)).await.expect("revoke");
        let mut cursor = crate::ExportCursor::default();
        let mut pages = Vec::new();
        while !cursor.done() {
            pages.push(store.export_page(&mut cursor, 2));
        }
        // The limit, the five tokens, then the limit's event.
        assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 2, 2, 1]);
        assert!(
            matches!(pages[0][0], OwnedChange::Limit { .. }),
            "tokens come after limits"
        );
        assert!(matches!(pages[3][0], OwnedChange::Event(_)), "and before the event log");
        let copy = MemoryStore::new();
        copy.restore(pages.into_iter().flatten());
        assert_eq!(
            copy.list_tokens().await.expect("list"),
            store.list_tokens().await.expect("list")
        );
        assert_eq!(copy.export(), store.export());
    }
}
