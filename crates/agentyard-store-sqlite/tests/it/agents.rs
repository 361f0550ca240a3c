//! Agents and messages on SQLite beyond the conformance cases: a broadcast is one row however
//! many agents read it, concurrent senders lose nothing, a reopen keeps agents, cursors,
//! subscriptions and messages, and releasing an agent's leases keeps the queue counts right.

use std::collections::HashSet;
use std::path::Path;

use agentyard_core::agent::{AgentRegistration, AgentStatus};
use agentyard_core::message::{NewMessage, Recipient, TopicName};
use agentyard_core::{AgentName, TaskStatus};
use agentyard_store::{AgentOptions, AgentStore, MessageStore, SendOptions, Store};
use serde_json::json;

use super::{at, claim, create, db, many, ns, open, q};

fn agent(name: &str) -> AgentName {
    AgentName::parse(name).expect("valid agent")
}

fn topic(name: &str) -> TopicName {
    TopicName::parse(name).expect("valid topic")
}

fn reg() -> AgentRegistration {
    AgentRegistration {
        capabilities: Vec::new(),
        slots: 1,
        metadata: json!({}),
    }
}

fn msg(to: Recipient, body: serde_json::Value) -> NewMessage {
    NewMessage {
        from: Some(agent("sender")),
        to,
        body,
        correlation_id: None,
        reply_to: None,
        ttl_ms: None,
        idempotency_key: None,
    }
}

/// Rows of a table, counted on the database file itself rather than through the store.
fn rows(path: &Path, table: &str) -> i64 {
    let conn = rusqlite::Connection::open(path).expect("raw open");
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broadcast_to_a_thousand_agents_is_one_row_read_once_by_each() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let store = open(&path);
    let mut registrations = Vec::new();
    for i in 0..1_000 {
        let store = store.clone();
        registrations.push(tokio::spawn(async move {
            store
                .register_agent(&ns(), &agent(&format!("a-{i}")), reg(), AgentOptions::default(), at(0))
                .await
                .expect("register")
        }));
    }
    for r in registrations {
        r.await.expect("registration");
    }
    let sent = store
        .send_message(
            &ns(),
            msg(Recipient::Broadcast { broadcast: true }, json!("all hands")),
            SendOptions::default(),
            at(1),
        )
        .await
        .expect("broadcast");
    assert_eq!(rows(&path, "messages"), 1, "a broadcast is stored once");
    assert_eq!(store.message_count(&ns()).await.expect("count"), 1);

    let mut readers = Vec::new();
    for i in 0..1_000 {
        let (store, seq) = (store.clone(), sent.message.seq);
        readers.push(tokio::spawn(async move {
            let me = agent(&format!("a-{i}"));
            let page = store.read_inbox(&ns(), &me, None, 10, at(2)).await.expect("read");
            assert_eq!(page.messages.len(), 1, "{me} gets the broadcast");
            assert_eq!((page.messages[0].seq, page.cursor), (seq, seq));
            store.ack_inbox(&ns(), &me, page.cursor).await.expect("ack");
            let again = store.read_inbox(&ns(), &me, None, 10, at(3)).await.expect("read");
            assert!(again.messages.is_empty(), "{me} reads it exactly once");
            assert_eq!(store.inbox_depth(&ns(), &me, at(3)).await.expect("depth"), 0);
        }));
    }
    for r in readers {
        r.await.expect("reader");
    }
    assert_eq!(rows(&path, "messages"), 1, "reading fans out nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_concurrent_senders_lose_nothing_and_keep_the_sequence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = open(&db(&dir));
    store
        .register_agent(&ns(), &agent("sink"), reg(), AgentOptions::default(), at(0))
        .await
        .expect("register");
    let mut senders = Vec::new();
    for w in 0..100 {
        let store = store.clone();
        senders.push(tokio::spawn(async move {
            for i in 0..10 {
                let body = json!({ "w": w, "i": i });
                store
                    .send_message(
                        &ns(),
                        msg(Recipient::Agent { agent: agent("sink") }, body),
                        SendOptions::default(),
                        at(1),
                    )
                    .await
                    .expect("send");
            }
        }));
    }
    for s in senders {
        s.await.expect("sender");
    }
    // Page through it 64 at a time, as a consumer acknowledging each page would.
    let mut received = Vec::new();
    loop {
        let page = store
            .read_inbox(&ns(), &agent("sink"), None, 64, at(2))
            .await
            .expect("read");
        if page.messages.is_empty() {
            break;
        }
        received.extend(page.messages);
        store.ack_inbox(&ns(), &agent("sink"), page.cursor).await.expect("ack");
    }
    assert_eq!(received.len(), 1_000, "every message arrives");
    let seqs: Vec<u64> = received.iter().map(|m| m.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "strictly increasing sequence");
    assert_eq!(
        (seqs[0], seqs[999]),
        (1, 1_000),
        "no sequence is lost or handed out twice"
    );
    for w in 0..100 {
        let mine: Vec<i64> = received
            .iter()
            .filter(|m| m.body["w"] == json!(w))
            .filter_map(|m| m.body["i"].as_i64())
            .collect();
        assert_eq!(mine, (0..10).collect::<Vec<_>>(), "sender {w}'s messages in its order");
    }
    let ids: HashSet<&str> = received.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids.len(), 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_keeps_agents_cursors_subscriptions_and_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    let opts = SendOptions::default();
    let (reader, keyed, held) = {
        let store = open(&path);
        for name in ["reader", "other"] {
            store
                .register_agent(&ns(), &agent(name), reg(), AgentOptions::default(), at(0))
                .await
                .expect("register");
        }
        store
            .subscribe(&ns(), &agent("reader"), &topic("builds"))
            .await
            .expect("subscribe");
        let to_reader = || Recipient::Agent { agent: agent("reader") };
        store
            .send_message(&ns(), msg(to_reader(), json!(1)), opts, at(1))
            .await
            .expect("send");
        let mut keyed = msg(Recipient::Topic { topic: topic("builds") }, json!(2));
        keyed.idempotency_key = Some("build-42".into());
        let keyed = store
            .send_message(&ns(), keyed, opts, at(2))
            .await
            .expect("send")
            .message;
        store
            .send_message(
                &ns(),
                msg(Recipient::Broadcast { broadcast: true }, json!(3)),
                opts,
                at(3),
            )
            .await
            .expect("send");
        let page = store
            .read_inbox(&ns(), &agent("reader"), None, 1, at(4))
            .await
            .expect("read");
        let reader = store
            .ack_inbox(&ns(), &agent("reader"), page.cursor)
            .await
            .expect("ack");
        create(&store, many("work", 1), at(5)).await;
        let held = store
            .claim_tasks(&ns(), &claim("work", "reader", 1), at(6))
            .await
            .expect("claim");
        (reader, keyed, held)
    };
    let store = open(&path);
    let got = store.get_agent(&ns(), &agent("reader")).await.expect("agent survives");
    assert_eq!(got.inbox_cursor, reader.inbox_cursor, "the cursor survives");
    assert_eq!((got.status, got.running), (AgentStatus::Active, 1));
    assert_eq!(
        store.list_agents(&ns()).await.expect("list").len(),
        2,
        "every agent survives"
    );
    assert_eq!(
        store.subscriptions(&ns(), &agent("reader")).await.expect("subs"),
        vec![topic("builds")]
    );
    let rest = store
        .read_inbox(&ns(), &agent("reader"), None, 10, at(7))
        .await
        .expect("read");
    assert_eq!(
        rest.messages.iter().map(|m| m.body.clone()).collect::<Vec<_>>(),
        vec![json!(2), json!(3)],
        "what was not acknowledged is still there"
    );
    assert_eq!(store.message_count(&ns()).await.expect("count"), 3);
    // The idempotency key still holds and the sequence goes on where it stopped.
    let mut again = msg(Recipient::Topic { topic: topic("builds") }, json!("dup"));
    again.idempotency_key = Some("build-42".into());
    let dup = store.send_message(&ns(), again, opts, at(8)).await.expect("send");
    assert!(!dup.created);
    assert_eq!(dup.message, keyed);
    let next = store
        .send_message(
            &ns(),
            msg(Recipient::Agent { agent: agent("other") }, json!(4)),
            opts,
            at(9),
        )
        .await
        .expect("send");
    assert_eq!(next.message.seq, 4);
    // The lease is still the agent's: removing it releases the task.
    let released = store
        .delete_agent(&ns(), &agent("reader"), at(10))
        .await
        .expect("delete");
    assert_eq!(released.iter().map(|t| t.id).collect::<Vec<_>>(), vec![held[0].id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_leases_keep_the_queue_counts_right() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    {
        let store = open(&path);
        for name in ["quiet", "busy"] {
            store
                .touch_agent(&ns(), &agent(name), None, AgentOptions::default(), at(0))
                .await
                .expect("touch");
        }
        create(&store, many("work", 5), at(0)).await;
        let quiet = store
            .claim_tasks(&ns(), &claim("work", "quiet", 3), at(1))
            .await
            .expect("claim");
        let busy = store
            .claim_tasks(&ns(), &claim("work", "busy", 1), at(1))
            .await
            .expect("claim");
        assert_eq!((quiet.len(), busy.len()), (3, 1));
        store
            .heartbeat_agent(&ns(), &agent("busy"), at(5_000))
            .await
            .expect("heartbeat");
        let gone = store.expire_agents(at(6_000), 5_000).await.expect("expire");
        assert_eq!(gone.len(), 1);
        let (agent_gone, released) = &gone[0];
        assert_eq!((agent_gone.name.as_str(), agent_gone.running), ("quiet", 0));
        let mut want: Vec<_> = quiet.iter().map(|t| t.id).collect();
        want.sort();
        assert_eq!(released.iter().map(|t| t.id).collect::<Vec<_>>(), want);
        assert!(
            released
                .iter()
                .all(|t| t.status == TaskStatus::Queued && t.lease.is_none())
        );
        let stats = store
            .queue_stats(&ns(), Some(&q("work")), at(6_000))
            .await
            .expect("stats");
        let c = stats[0].counts;
        assert_eq!((c.queued, c.running), (4, 1), "the counts follow the release");
        assert_eq!(
            store.get_agent(&ns(), &agent("busy")).await.expect("get").running,
            1,
            "the other agent keeps its lease"
        );
    }
    // The counts rebuilt from the table at open agree with the ones kept in memory.
    let store = open(&path);
    let stats = store
        .queue_stats(&ns(), Some(&q("work")), at(7_000))
        .await
        .expect("stats");
    assert_eq!((stats[0].counts.queued, stats[0].counts.running), (4, 1));
    assert_eq!(
        store
            .list_agents(&ns())
            .await
            .expect("list")
            .iter()
            .map(|a| (a.name.as_str().to_owned(), a.status, a.running))
            .collect::<Vec<_>>(),
        vec![
            ("busy".to_owned(), AgentStatus::Active, 1),
            ("quiet".to_owned(), AgentStatus::Gone, 0)
        ]
    );
}
