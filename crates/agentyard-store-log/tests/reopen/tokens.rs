//! API tokens after the log store is reopened: read back from their frames, and from the
//! snapshot a compaction writes.

use agentyard_core::auth::{Namespaces, Role, TokenId, TokenInfo};
use agentyard_core::{AgentName, Namespace};
use agentyard_store::{StoredToken, TokenStore};
use agentyard_store_log::{LogOptions, LogStore};

use super::{at, ns, same};

fn id(s: &str) -> TokenId {
    TokenId::parse(s).expect("valid token id")
}

/// An agent token of two namespaces, or an admin token of every one.
fn token(token_id: &str, agent: bool) -> StoredToken {
    let (role, namespaces, name) = if agent {
        let tenant = Namespace::parse("tenant-b").expect("valid namespace");
        let list = Namespaces::only(vec![ns(), tenant]).expect("two");
        (
            Role::Agent,
            list,
            Some(AgentName::parse("worker-1").expect("valid agent")),
        )
    } else {
        (Role::Admin, Namespaces::All, None)
    };
    StoredToken {
        info: TokenInfo {
            id: id(token_id),
            role,
            namespaces,
            agent: name,
            name: format!("token {token_id} ✓"),
            created_at: at(8),
            revoked_at: None,
        },
        secret_hash: std::array::from_fn(|b| b as u8 * 7),
    }
}

/// What `every_kind_of_change` does with tokens: two made and one of them revoked (three
/// frames); a second revocation, a revocation of nothing and a refused creation write none.
pub(super) async fn make_and_revoke(s: &LogStore) {
    s.create_token(token("admin0000000", false)).await.expect("create");
    s.create_token(token("agent0000000", true)).await.expect("create");
    s.revoke_token(&id("agent0000000"), at(9))
        .await
        .expect("revoke")
        .expect("known");
    s.revoke_token(&id("agent0000000"), at(10)).await.expect("revoke again");
    assert_eq!(s.revoke_token(&id("none00000000"), at(10)).await.expect("revoke"), None);
    assert!(s.create_token(token("admin0000000", true)).await.is_err(), "taken");
}

/// The tokens as `make_and_revoke` left them.
pub(super) fn made_and_revoked() -> Vec<StoredToken> {
    let mut revoked = token("agent0000000", true);
    revoked.info.revoked_at = Some(at(9));
    vec![token("admin0000000", false), revoked]
}

/// Tokens are in the snapshot a compaction writes, not only in the frames it replaces; a token
/// made after the compaction is appended behind it.
#[tokio::test]
async fn tokens_survive_compaction_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let options = LogOptions {
        fsync: false,
        compact_at_bytes: 4 << 10,
        ..LogOptions::default()
    };
    let before = {
        let s = LogStore::open(&path, options).expect("open");
        make_and_revoke(&s).await;
        super::churn(&s).await;
        s.finish_compaction();
        assert!(s.compactions() >= 1, "the log was compacted");
        s.create_token(token("late00000000", false)).await.expect("create");
        s.export()
    };
    let s = LogStore::open(&path, options).expect("reopen");
    same(&s.export(), &before);
    assert!(
        s.replayed().frames < 203,
        "read back from a snapshot, not every call: {:?}",
        s.replayed()
    );
    let mut expected = made_and_revoked();
    expected.push(token("late00000000", false));
    assert_eq!(s.list_tokens().await.expect("tokens"), expected);
    assert_eq!(
        s.revoke_token(&id("agent0000000"), at(99))
            .await
            .expect("revoke")
            .and_then(|t| t.info.revoked_at),
        Some(at(9)),
        "still revoked at its first time"
    );
}
