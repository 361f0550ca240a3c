//! Conformance cases of `TokenStore`.

use std::sync::Arc;

use agentyard_core::auth::{Namespaces, Role, TokenId, TokenInfo};
use agentyard_core::{AgentName, Namespace, Timestamp};

use crate::StoreError;
use crate::tokens::{StoredToken, TokenStore};

/// A store under test seen as a `TokenStore`.
pub struct TokenTestStore {
    pub tokens: Arc<dyn TokenStore>,
    pub _guard: Box<dyn std::any::Any + Send + Sync>,
}

/// Expands every token case into a `#[tokio::test]` using `$factory` (see `conformance_tests!`).
#[macro_export]
macro_rules! token_conformance_tests {
    ($factory:path) => {
        $crate::token_conformance_tests!(@each cases $factory);
    };
    (optional $factory:path) => {
        $crate::token_conformance_tests!(@each optional $factory);
    };
    (@each $mode:ident $factory:path) => {
        $crate::token_conformance_tests!(@$mode $factory;
            tokens_of_every_shape_read_back_equal,
            tokens_are_listed_in_id_order_revoked_included,
            a_revocation_keeps_its_first_time,
            a_taken_id_is_invalid_and_changes_nothing
        );
    };
    (@cases $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let test_store = $factory().await;
                $crate::conformance::tokens::$case(&test_store).await;
            }
        )*
    };
    (@optional $factory:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(test_store) = $factory().await else { return };
                $crate::conformance::tokens::$case(&test_store).await;
            }
        )*
    };
}

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn id(s: &str) -> TokenId {
    TokenId::parse(s).expect("valid token id")
}

fn only(names: &[&str]) -> Namespaces {
    let list = names
        .iter()
        .map(|n| Namespace::parse(*n).expect("valid namespace"))
        .collect();
    Namespaces::only(list).expect("at least one")
}

/// A token no other case relies on the fields of: an operator of every namespace.
fn token(token_id: &str, hash_byte: u8) -> StoredToken {
    StoredToken {
        info: TokenInfo {
            id: id(token_id),
            role: Role::Operator,
            namespaces: Namespaces::All,
            agent: None,
            name: format!("token {token_id}"),
            created_at: at(i64::from(hash_byte)),
            revoked_at: None,
        },
        secret_hash: [hash_byte; 32],
    }
}

/// Every role, both shapes of namespaces, with and without an agent name, odd names and hash
/// bytes: each reads back exactly as it was stored, by `find_token` and by `list_tokens`.
pub async fn tokens_of_every_shape_read_back_equal(s: &TokenTestStore) {
    let t = &s.tokens;
    let shapes = [
        (Role::Admin, Namespaces::All, None, ""),
        (Role::Operator, only(&["tenant-a", "tenant-b"]), None, "ops \"night\" ✓"),
        (Role::Operator, Namespaces::All, None, "ops everywhere"),
        (Role::Reader, only(&["default"]), None, "dashboard"),
        (
            Role::Agent,
            only(&["b.team", "a_team"]),
            Some("worker-1"),
            "worker, two namespaces",
        ),
        (Role::Agent, only(&["default"]), Some("w"), "x"),
    ];
    let mut stored = Vec::new();
    for (i, (role, namespaces, agent, name)) in shapes.into_iter().enumerate() {
        let token = StoredToken {
            info: TokenInfo {
                id: id(&format!("shape{i:07}")),
                role,
                namespaces,
                agent: agent.map(|a| AgentName::parse(a).expect("valid agent")),
                name: name.to_owned(),
                created_at: at(i as i64 * 1_001),
                revoked_at: None,
            },
            // Zeros, 0xff and much in between.
            secret_hash: std::array::from_fn(|b| {
                let byte = (b * 8 + i) as u8;
                if i % 2 == 0 { !byte } else { byte }
            }),
        };
        t.create_token(token.clone()).await.expect("create");
        assert_eq!(
            t.find_token(&token.info.id).await.expect("find"),
            Some(token.clone()),
            "{token:?}"
        );
        stored.push(token);
    }
    let long = StoredToken {
        info: TokenInfo {
            name: "n".repeat(agentyard_core::auth::MAX_TOKEN_NAME_LEN),
            ..token("long00000000", 0).info
        },
        secret_hash: [0; 32],
    };
    t.create_token(long.clone()).await.expect("create");
    stored.insert(0, long);
    assert_eq!(t.list_tokens().await.expect("list"), stored);
    assert_eq!(t.find_token(&id("none00000000")).await.expect("find"), None);
}

/// Whatever order they were made in, tokens are listed by id, revoked ones too.
pub async fn tokens_are_listed_in_id_order_revoked_included(s: &TokenTestStore) {
    let t = &s.tokens;
    assert!(t.list_tokens().await.expect("list").is_empty());
    for (token_id, n) in [
        ("m00000000000", 1),
        ("000000000000", 2),
        ("vvvvvvvvvvvv", 3),
        ("a00000000000", 4),
    ] {
        t.create_token(token(token_id, n)).await.expect("create");
    }
    let revoked = t
        .revoke_token(&id("m00000000000"), at(100))
        .await
        .expect("revoke")
        .expect("known");
    let listed = t.list_tokens().await.expect("list");
    let ids: Vec<&str> = listed.iter().map(|t| t.info.id.as_str()).collect();
    assert_eq!(ids, ["000000000000", "a00000000000", "m00000000000", "vvvvvvvvvvvv"]);
    assert_eq!(listed[2], revoked);
    assert_eq!(listed.iter().filter(|t| t.info.revoked_at.is_some()).count(), 1);
}

/// A revocation sets the time once: a second one keeps the first time; an unknown id is `None`.
pub async fn a_revocation_keeps_its_first_time(s: &TokenTestStore) {
    let t = &s.tokens;
    let original = token("revoked00000", 7);
    t.create_token(original.clone()).await.expect("create");
    t.create_token(token("kept00000000", 8)).await.expect("create");
    let revoked = t
        .revoke_token(&original.info.id, at(5_000))
        .await
        .expect("revoke")
        .expect("known");
    let mut expected = original.clone();
    expected.info.revoked_at = Some(at(5_000));
    assert_eq!(revoked, expected, "only the time changed");
    assert_eq!(
        t.find_token(&original.info.id).await.expect("find"),
        Some(expected.clone())
    );
    let again = t
        .revoke_token(&original.info.id, at(9_000))
        .await
        .expect("revoke again")
        .expect("known");
    assert_eq!(again, expected, "the first time stays");
    assert_eq!(t.find_token(&original.info.id).await.expect("find"), Some(expected));
    assert_eq!(
        t.revoke_token(&id("none00000000"), at(9_000)).await.expect("revoke"),
        None
    );
    assert_eq!(
        t.find_token(&id("none00000000")).await.expect("find"),
        None,
        "nothing made"
    );
    let other = t.find_token(&id("kept00000000")).await.expect("find").expect("known");
    assert_eq!(other.info.revoked_at, None, "the other token is untouched");
}

/// Creating a token whose id is taken is `Invalid`, and the first token stays as it was, revoked
/// or not.
pub async fn a_taken_id_is_invalid_and_changes_nothing(s: &TokenTestStore) {
    let t = &s.tokens;
    let first = token("taken0000000", 1);
    t.create_token(first.clone()).await.expect("create");
    let mut second = token("taken0000000", 2);
    second.info.role = Role::Admin;
    second.info.name = "the second".into();
    match t.create_token(second.clone()).await {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("a taken id is invalid, got {other:?}"),
    }
    assert_eq!(t.find_token(&first.info.id).await.expect("find"), Some(first.clone()));
    let revoked = t
        .revoke_token(&first.info.id, at(10))
        .await
        .expect("revoke")
        .expect("known");
    second.info.revoked_at = None;
    match t.create_token(second).await {
        Err(StoreError::Invalid { .. }) => {}
        other => panic!("a revoked token's id stays taken, got {other:?}"),
    }
    assert_eq!(t.list_tokens().await.expect("list"), vec![revoked]);
}
