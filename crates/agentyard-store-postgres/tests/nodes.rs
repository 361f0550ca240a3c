//! Several stores on one schema, as several nodes see it: notifications reach the other nodes,
//! tokens made on one are known to all, limits, concurrency keys and expiry hold across them
//! as if there were one, and a follower of the event log sees every node's events once, in order.

use std::sync::Arc;
use std::time::Duration;

use agentyard_core::event::Event;
use agentyard_core::flow::RateLimit;
use agentyard_core::message::{NewMessage, Recipient};
use agentyard_core::{AgentName, Namespace, NewTask, QueueName, TaskStatus, Timestamp};
use agentyard_core::{Completion, TaskCommand};
use agentyard_store::agents::{AgentOptions, AgentStore};
use agentyard_store::events::{EventFilter, EventStore};
use agentyard_store::{
    Claim, CreateOptions, DispatchGate, LimitStore, MessageStore, RemoteChange, SendOptions, Store, StoredToken,
    TokenStore,
};
use agentyard_store_postgres::testing::TestSchema;
use agentyard_store_postgres::{PgOptions, PgStore};
use tokio::sync::mpsc;

async fn nodes(test: &str, n: usize) -> Option<(Vec<Arc<PgStore>>, TestSchema)> {
    let schema = TestSchema::create(test).await?;
    let mut out = Vec::new();
    for _ in 0..n {
        let options = PgOptions::parse(&schema.url).expect("test URL");
        out.push(Arc::new(PgStore::connect(options).await.expect("connect")));
    }
    Some((out, schema))
}

fn ns() -> Namespace {
    Namespace::default_namespace()
}

fn q(name: &str) -> QueueName {
    QueueName::parse(name).expect("valid")
}

fn agent(name: &str) -> AgentName {
    AgentName::parse(name).expect("valid")
}

fn now() -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000)
}

/// Starts `store` listening and returns what it hears.
async fn listen(store: &PgStore) -> mpsc::UnboundedReceiver<RemoteChange> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    assert!(store.watch_remote(Arc::new(move |c| {
        let _ = tx.send(c);
    })));
    // The first thing heard is the resync of a fresh listener: from then on it listens.
    let first = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await;
    assert_eq!(first.expect("listening within 10 s"), Some(RemoteChange::Resync));
    rx
}

async fn next(rx: &mut mpsc::UnboundedReceiver<RemoteChange>) -> RemoteChange {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a notification within 10 s")
        .expect("listening")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_hear_of_ready_tasks_messages_and_limits() {
    let Some((stores, _schema)) = nodes("notifications", 2).await else {
        return;
    };
    let (a, b) = (&stores[0], &stores[1]);
    let mut heard_by_b = listen(b).await;
    let mut heard_by_a = listen(a).await;

    a.create_tasks(
        &ns(),
        vec![NewTask::on(q("emails"), serde_json::json!({}))],
        CreateOptions::default(),
        now(),
    )
    .await
    .expect("create");
    assert_eq!(
        next(&mut heard_by_b).await,
        RemoteChange::TasksReady {
            namespace: ns(),
            queue: q("emails"),
            ready: 1,
        }
    );

    a.register_agent(
        &ns(),
        &agent("w-1"),
        agentyard_core::agent::AgentRegistration {
            capabilities: vec![],
            slots: 1,
            metadata: serde_json::Value::Null,
        },
        AgentOptions::default(),
        now(),
    )
    .await
    .expect("register");
    let to = Recipient::Agent { agent: agent("w-1") };
    let message = NewMessage {
        from: None,
        to: to.clone(),
        body: serde_json::json!("hi"),
        correlation_id: None,
        reply_to: None,
        ttl_ms: None,
        idempotency_key: None,
    };
    a.send_message(&ns(), message, SendOptions::default(), now())
        .await
        .expect("send");
    assert_eq!(
        next(&mut heard_by_b).await,
        RemoteChange::MessageSent { namespace: ns(), to }
    );

    b.put_limit(
        &ns(),
        "openai",
        agentyard_core::flow::KeyLimit {
            rate: None,
            max_concurrent: Some(2),
        },
        agentyard_core::Timestamp::from_millis(0),
    )
    .await
    .expect("put");
    assert_eq!(next(&mut heard_by_a).await, RemoteChange::LimitsChanged);
    // Neither heard its own changes.
    assert!(heard_by_a.try_recv().is_err(), "a hears nothing of its own");
    assert!(heard_by_b.try_recv().is_err(), "b hears nothing of its own");
}

/// A token made on one node is known to the others, which hear of its creation and of its first
/// revocation; a second revocation and a refused creation change nothing and tell nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_nodes_hear_of_tokens_made_and_revoked() {
    use agentyard_core::auth::{Namespaces, Role, TokenId, TokenInfo};

    let Some((stores, _schema)) = nodes("token notifications", 2).await else {
        return;
    };
    let (a, b) = (&stores[0], &stores[1]);
    let mut heard_by_b = listen(b).await;
    let id = TokenId::parse("shared000000").expect("valid");
    let token = StoredToken {
        info: TokenInfo {
            id: id.clone(),
            role: Role::Reader,
            namespaces: Namespaces::All,
            agent: None,
            name: "dashboard".into(),
            created_at: now(),
            revoked_at: None,
        },
        secret_hash: [3; 32],
    };
    a.create_token(token.clone()).await.expect("create");
    assert_eq!(next(&mut heard_by_b).await, RemoteChange::TokensChanged);
    assert_eq!(b.find_token(&id).await.expect("find"), Some(token.clone()));
    assert!(a.create_token(token).await.is_err(), "the id is taken");

    let revoked = a.revoke_token(&id, now().add_millis(5)).await.expect("revoke");
    assert_eq!(next(&mut heard_by_b).await, RemoteChange::TokensChanged);
    assert_eq!(b.find_token(&id).await.expect("find"), revoked);
    a.revoke_token(&id, now().add_millis(9)).await.expect("revoke again");
    // Something b hears after them: had the refused creation or the second revocation told the
    // other nodes, b would hear that first.
    a.put_limit(
        &ns(),
        "openai",
        agentyard_core::flow::KeyLimit {
            rate: None,
            max_concurrent: Some(2),
        },
        agentyard_core::Timestamp::from_millis(0),
    )
    .await
    .expect("put");
    assert_eq!(next(&mut heard_by_b).await, RemoteChange::LimitsChanged);
}

/// A gate whose rate lives in the store: 5 at once, then one a minute.
struct Shared;

impl DispatchGate for Shared {
    fn max_concurrent(&self, _key: &str) -> u64 {
        1
    }
    fn take_rate_token(&self, _key: &str, _now: Timestamp) -> bool {
        panic!("a shared rate is taken from the store's bucket, never the gate's")
    }
    fn shared_rate(&self, key: &str) -> Option<RateLimit> {
        (key == "openai").then_some(RateLimit {
            rate_per_minute: 1,
            burst: 5,
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_shared_rate_and_a_concurrency_key_hold_across_nodes() {
    let Some((stores, _schema)) = nodes("shared limits", 3).await else {
        return;
    };
    let mut batch = Vec::new();
    for i in 0..40 {
        let mut t = NewTask::on(q("llm"), serde_json::json!({ "i": i }));
        if i % 2 == 0 {
            t.rate_limit_key = Some("openai".into());
        } else {
            t.concurrency_key = Some("repo".into());
        }
        batch.push(t);
    }
    stores[0]
        .create_tasks(&ns(), batch, CreateOptions::default(), now())
        .await
        .expect("create");
    // Twelve claimers over three nodes at the same instant, each wanting everything.
    let mut claims = Vec::new();
    for i in 0..12 {
        let store = stores[i % 3].clone();
        claims.push(tokio::spawn(async move {
            let mut c = Claim::new(q("llm"), agent(&format!("w-{i}")), 40, 60_000);
            c.gate = Some(Arc::new(Shared));
            store.claim_tasks(&ns(), &c, now()).await.expect("claim")
        }));
    }
    let mut claimed = Vec::new();
    for c in claims {
        claimed.extend(c.await.expect("claimer"));
    }
    let rated = claimed.iter().filter(|t| t.rate_limit_key.is_some()).count();
    let keyed = claimed.iter().filter(|t| t.concurrency_key.is_some()).count();
    assert_eq!(rated, 5, "the burst of one bucket, whatever node claims");
    assert_eq!(keyed, 1, "one running task of the concurrency key across the nodes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_node_expires_leases_and_each_task_once() {
    let Some((stores, _schema)) = nodes("expiry", 3).await else {
        return;
    };
    let batch = (0..60)
        .map(|i| NewTask::on(q("work"), serde_json::json!({ "i": i })))
        .collect();
    stores[0]
        .create_tasks(&ns(), batch, CreateOptions::default(), now())
        .await
        .expect("create");
    let claimed = stores[1]
        .claim_tasks(&ns(), &Claim::new(q("work"), agent("w"), 60, 1_000), now())
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 60);
    let later = now().add_millis(5_000);
    let mut sweeps = Vec::new();
    for store in &stores {
        for _ in 0..3 {
            let store = store.clone();
            sweeps.push(tokio::spawn(async move {
                store.expire_leases(later, 7).await.expect("expire")
            }));
        }
    }
    let mut expired = Vec::new();
    for s in sweeps {
        expired.extend(s.await.expect("sweep"));
    }
    // Whatever the sweeps left (each takes at most 7), a last one finishes.
    expired.extend(stores[2].expire_leases(later, 100).await.expect("expire"));
    let mut ids: Vec<_> = expired.iter().map(|t| t.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!((ids.len(), expired.len()), (60, 60), "each lease expired once");
    for t in &expired {
        assert_eq!((t.status, t.attempt), (TaskStatus::Queued, 1), "{t:?}");
    }
}

/// Writers on two nodes create, claim and complete tasks while a follower reads the log with
/// `after = next`, from either node, until they are done: it sees every event exactly once, in
/// seq order, none skipped (what a full read afterwards finds).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_follower_sees_every_nodes_events_once_in_order() {
    let Some((stores, _schema)) = nodes("event follower", 2).await else {
        return;
    };
    let (writers, per_writer) = (8usize, 25usize);
    let mut handles = Vec::new();
    for w in 0..writers {
        let store = stores[w % 2].clone();
        handles.push(tokio::spawn(async move {
            let queue = q(&format!("q{w}"));
            let who = agent(&format!("w{w}"));
            for n in 0..per_writer {
                let created = store
                    .create_tasks(
                        &ns(),
                        vec![NewTask::on(queue.clone(), serde_json::json!({ "n": n }))],
                        CreateOptions::default(),
                        now(),
                    )
                    .await
                    .expect("create");
                let claimed = store
                    .claim_tasks(&ns(), &Claim::new(queue.clone(), who.clone(), 1, 60_000), now())
                    .await
                    .expect("claim");
                assert_eq!(claimed.len(), 1);
                assert_eq!(claimed[0].id, created[0].task.id);
                let token = claimed[0].lease.as_ref().expect("leased").token.clone();
                let done = TaskCommand::Complete {
                    token,
                    completion: Completion::default(),
                };
                store.apply(&ns(), claimed[0].id, done, now()).await.expect("complete");
            }
        }));
    }
    let everyone = EventFilter::default();
    let mut seen: Vec<Event> = Vec::new();
    let mut after = 0;
    let mut reads = 0usize;
    loop {
        let writing = handles.iter().any(|h| !h.is_finished());
        let page = stores[reads % 2]
            .read_events(&ns(), &everyone, after, 50)
            .await
            .expect("read");
        reads += 1;
        assert!(page.next >= after);
        seen.extend(page.events);
        let caught_up = page.next == after;
        after = page.next;
        if !writing && caught_up {
            break;
        }
    }
    for h in handles {
        h.await.expect("writer");
    }
    // Whatever committed after the last read of the loop (none should have).
    loop {
        let page = stores[0].read_events(&ns(), &everyone, after, 50).await.expect("read");
        if page.next == after {
            break;
        }
        seen.extend(page.events);
        after = page.next;
    }
    for pair in seen.windows(2) {
        assert!(
            pair[0].seq < pair[1].seq,
            "in seq order, once: {} then {}",
            pair[0].seq,
            pair[1].seq
        );
    }
    let mut full = Vec::new();
    let mut from = 0;
    loop {
        let page = stores[1]
            .read_events(&ns(), &everyone, from, 1_000)
            .await
            .expect("read");
        if page.next == from {
            break;
        }
        full.extend(page.events);
        from = page.next;
    }
    assert_eq!(full.len(), writers * per_writer * 3, "three events a task");
    assert_eq!(
        seen, full,
        "the follower saw the whole log, nothing twice, nothing skipped"
    );
    let seqs: Vec<u64> = full.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "seqs are given without holes"
    );
    assert!(reads > 3, "the follower read while the writers wrote ({reads} reads)");
}
