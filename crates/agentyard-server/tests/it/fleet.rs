//! End to end over HTTP: 200 agents register, subscribe to topics, exchange direct, topic and
//! broadcast messages concurrently, and read their inboxes with long polls and acks. Every agent
//! must receive exactly what was meant for it, once, in sequence order, with each sender's
//! direct messages in the order they were sent.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use agentyard_core::api::SendMessageRequest;
use agentyard_core::message::TopicName;
use agentyard_core::{AgentName, Namespace};
use serde_json::json;

use crate::{Backend, TestApp, agent};

const AGENTS: usize = 200;
const TOPICS: usize = 8;
/// Direct messages each agent sends (to its next few neighbours).
const DIRECT_PER_AGENT: usize = 3;
/// Topic messages each of the first 40 agents sends.
const TOPIC_SENDERS: usize = 40;
const BROADCASTS: usize = 5;

fn name(i: usize) -> AgentName {
    agent(&format!("agent-{i:03}"))
}

fn topic(t: usize) -> TopicName {
    TopicName::parse(format!("topic-{t}")).unwrap()
}

/// The topics agent `i` subscribes to: two, or one when they coincide.
fn topics_of(i: usize) -> BTreeSet<usize> {
    [i % TOPICS, (i / TOPICS + i) % TOPICS].into_iter().collect()
}

/// A message's identity in the test: (kind, sender, n).
type Key = (String, usize, usize);

async fn two_hundred_agents_each_receive_exactly_their_messages_in_order_once(backend: Backend) {
    let app = TestApp::spawn(backend).await;
    let client = app.client.clone();

    // Register and subscribe, all agents at once.
    let mut setup = Vec::new();
    for i in 0..AGENTS {
        let client = client.clone();
        setup.push(tokio::spawn(async move {
            client.register_agent(&name(i), &Default::default()).await.unwrap();
            for t in topics_of(i) {
                client.subscribe(&name(i), &topic(t)).await.unwrap();
            }
        }));
    }
    for s in setup {
        s.await.unwrap();
    }

    // What everyone should get.
    let mut expected: BTreeMap<usize, BTreeSet<Key>> = (0..AGENTS).map(|i| (i, BTreeSet::new())).collect();
    for i in 0..AGENTS {
        for n in 0..DIRECT_PER_AGENT {
            let to = (i + 1 + n * 7) % AGENTS;
            expected.get_mut(&to).unwrap().insert(("direct".into(), i, n));
        }
    }
    for i in 0..TOPIC_SENDERS {
        let t = i % TOPICS;
        for (r, subs) in (0..AGENTS).map(|r| (r, topics_of(r))) {
            if subs.contains(&t) {
                expected.get_mut(&r).unwrap().insert(("topic".into(), i, t));
            }
        }
    }
    for b in 0..BROADCASTS {
        for set in expected.values_mut() {
            set.insert(("broadcast".into(), 0, b));
        }
    }

    // Readers start first and long-poll while the traffic flows; each acks what it handled.
    let mut readers = Vec::new();
    for i in 0..AGENTS {
        let client = client.clone();
        let want = expected[&i].len();
        readers.push(tokio::spawn(async move {
            let mut got: Vec<(u64, Key)> = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while got.len() < want {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "agent {i} got {} of {want}",
                    got.len()
                );
                let page = client.inbox(&name(i), None, Some(2_000), Some(50)).await.unwrap();
                for m in &page.messages {
                    let b = &m.body;
                    let key = (
                        b["kind"].as_str().unwrap().to_owned(),
                        b["from"].as_u64().unwrap() as usize,
                        b["n"].as_u64().unwrap() as usize,
                    );
                    got.push((m.seq, key));
                }
                if !page.messages.is_empty() {
                    client.ack(&name(i), page.cursor).await.unwrap();
                }
            }
            // Nothing more comes: everything was acknowledged and nothing extra was sent.
            let rest = client.inbox(&name(i), None, Some(200), None).await.unwrap();
            assert!(rest.messages.is_empty(), "agent {i} got extra messages");
            got
        }));
    }

    // The traffic: every agent sends its direct messages one after the other; topic senders and
    // broadcasts go at the same time.
    let mut senders = Vec::new();
    for i in 0..AGENTS {
        let client = client.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..DIRECT_PER_AGENT {
                let to = (i + 1 + n * 7) % AGENTS;
                let mut req = SendMessageRequest::to_agent(name(to), json!({"kind": "direct", "from": i, "n": n}));
                req.from = Some(name(i));
                client.send_message(&req).await.unwrap();
            }
            if i < TOPIC_SENDERS {
                let t = i % TOPICS;
                let mut req = SendMessageRequest::to_topic(topic(t), json!({"kind": "topic", "from": i, "n": t}));
                req.from = Some(name(i));
                client.send_message(&req).await.unwrap();
            }
            if i < BROADCASTS {
                let req = SendMessageRequest::broadcast(json!({"kind": "broadcast", "from": 0, "n": i}));
                client.send_message(&req).await.unwrap();
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }

    for (i, reader) in readers.into_iter().enumerate() {
        let got = reader.await.unwrap();
        let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "agent {i}: out of order {seqs:?}");
        let keys: Vec<&Key> = got.iter().map(|(_, k)| k).collect();
        let unique: BTreeSet<Key> = keys.iter().map(|k| (*k).clone()).collect();
        assert_eq!(unique.len(), keys.len(), "agent {i} got a message twice");
        assert_eq!(unique, expected[&i], "agent {i} got the wrong messages");
        let mut last_n: BTreeMap<usize, usize> = BTreeMap::new();
        for (kind, from, n) in keys {
            if kind == "direct"
                && let Some(prev) = last_n.insert(*from, *n)
            {
                assert!(prev < *n, "agent {i}: direct messages of {from} out of send order");
            }
        }
    }
    let sent = AGENTS * DIRECT_PER_AGENT + TOPIC_SENDERS + BROADCASTS;
    assert_eq!(
        app.state.store.message_count(&Namespace::default()).await.unwrap(),
        sent as u64,
        "every message is stored once, however many agents read it"
    );
    app.stop().await;
}

backend_tests!(
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    two_hundred_agents_each_receive_exactly_their_messages_in_order_once,
);
