//! The fleet end to end on the real binary and a SQLite file: 200 agents register, subscribe,
//! exchange direct, topic and broadcast messages and read them with long polls and acks; each
//! gets exactly its messages, once, in order. Then an agent that falls silent loses its task to
//! another.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentyard_client::Client;
use agentyard_core::agent::AgentStatus;
use agentyard_core::api::{ClaimRequest, CreateTaskRequest, SendMessageRequest};
use agentyard_core::message::TopicName;
use agentyard_core::{AgentName, QueueName};
use serde_json::json;

const AGENTS: usize = 200;
const TOPICS: usize = 8;

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentyard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .args(extra)
        .arg("--store")
        .arg(format!("sqlite://{}", dir.path().join("fleet.db").display()))
        .env("AGENTYARD_LOG", "warn")
        .env_remove("AGENTYARD_CONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start agentyard serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the listening line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening on …")
        .to_owned();
    Server { child, url, _dir: dir }
}

fn name(i: usize) -> AgentName {
    AgentName::parse(format!("agent-{i:03}")).unwrap()
}

fn topic(t: usize) -> TopicName {
    TopicName::parse(format!("topic-{t}")).unwrap()
}

fn topics_of(i: usize) -> BTreeSet<usize> {
    [i % TOPICS, (i / TOPICS + i) % TOPICS].into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_agents_on_sqlite_receive_exactly_their_messages() {
    let server = start(&[]);
    let client = Client::new(server.url.clone());
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
    // (kind, sender, n) each agent must get.
    let mut expected: BTreeMap<usize, BTreeSet<(String, usize, usize)>> =
        (0..AGENTS).map(|i| (i, BTreeSet::new())).collect();
    for i in 0..AGENTS {
        for n in 0..2 {
            expected
                .get_mut(&((i + 1 + n * 13) % AGENTS))
                .unwrap()
                .insert(("direct".into(), i, n));
        }
        if i < 24 {
            for r in 0..AGENTS {
                if topics_of(r).contains(&(i % TOPICS)) {
                    expected.get_mut(&r).unwrap().insert(("topic".into(), i, i % TOPICS));
                }
            }
        }
        if i < 3 {
            for set in expected.values_mut() {
                set.insert(("broadcast".into(), 0, i));
            }
        }
    }
    let mut readers = Vec::new();
    for i in 0..AGENTS {
        let client = client.clone();
        let want = expected[&i].len();
        readers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
            while got.len() < want {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "agent {i}: {} of {want}",
                    got.len()
                );
                let page = client.inbox(&name(i), None, Some(2_000), Some(50)).await.unwrap();
                for m in &page.messages {
                    let b = &m.body;
                    got.push((
                        m.seq,
                        (
                            b["kind"].as_str().unwrap().to_owned(),
                            b["from"].as_u64().unwrap() as usize,
                            b["n"].as_u64().unwrap() as usize,
                        ),
                    ));
                }
                if !page.messages.is_empty() {
                    client.ack(&name(i), page.cursor).await.unwrap();
                }
            }
            let rest = client.inbox(&name(i), None, Some(200), None).await.unwrap();
            assert!(rest.messages.is_empty(), "agent {i} got extra messages");
            got
        }));
    }
    let mut senders = Vec::new();
    for i in 0..AGENTS {
        let client = client.clone();
        senders.push(tokio::spawn(async move {
            for n in 0..2 {
                let to = name((i + 1 + n * 13) % AGENTS);
                let mut req = SendMessageRequest::to_agent(to, json!({"kind": "direct", "from": i, "n": n}));
                req.from = Some(name(i));
                client.send_message(&req).await.unwrap();
            }
            if i < 24 {
                let t = i % TOPICS;
                let req = SendMessageRequest::to_topic(topic(t), json!({"kind": "topic", "from": i, "n": t}));
                client.send_message(&req).await.unwrap();
            }
            if i < 3 {
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
        assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "agent {i}: out of order");
        let keys: BTreeSet<_> = got.iter().map(|(_, k)| k.clone()).collect();
        assert_eq!(keys.len(), got.len(), "agent {i} got a message twice");
        assert_eq!(keys, expected[&i], "agent {i} got the wrong messages");
    }
}

#[tokio::test]
async fn a_silent_agent_loses_its_task_to_another() {
    let server = start(&["--agent-timeout-ms", "500"]);
    let client = Client::new(server.url.clone());
    let queue = QueueName::parse("handoff").unwrap();
    let task = client
        .create_task(&CreateTaskRequest::new(queue.clone(), json!(1)))
        .await
        .unwrap();
    let mut claim = ClaimRequest::new(AgentName::parse("silent").unwrap());
    claim.lease_ms = Some(3_600_000);
    assert_eq!(client.claim(&queue, &claim).await.unwrap().tasks[0].id, task.id);
    // The other agent long-polls (a sign of life) until the task comes back.
    let mut other = ClaimRequest::new(AgentName::parse("other").unwrap());
    other.wait_ms = Some(30_000);
    let got = tokio::time::timeout(Duration::from_secs(60), client.claim(&queue, &other))
        .await
        .expect("the task came back in time")
        .unwrap();
    assert_eq!(got.tasks[0].id, task.id);
    let silent = client.agent(&AgentName::parse("silent").unwrap()).await.unwrap();
    assert_eq!(silent.status, AgentStatus::Gone);
    let other = client.agent(&AgentName::parse("other").unwrap()).await.unwrap();
    assert_eq!((other.status, other.running), (AgentStatus::Active, 1));
}
