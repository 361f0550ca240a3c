//! The stored documents are the store's own records, version 1: rows as this version writes
//! them (fixtures, committed here; the same JSON the release before the records wrote) read back
//! through the store whatever the API types become.

use agentyard_core::agent::AgentStatus;
use agentyard_core::message::Recipient;
use agentyard_core::{AgentName, TaskId, TaskStatus};
use agentyard_store::{AgentStore, MessageStore, Store};
use rusqlite::params;

use super::{at, db, ns, open};

const TASK_ID: &str = "01KBWQ8T3E0000000000000000";

const TASK: &str = r#"{"id":"01KBWQ8T3E0000000000000000","namespace":"default","queue":"builds","kind":"compile","title":"Build \"web\" ✓","input":{"repo":"acme/web","n":1,"f":0.5},"status":"running","priority":-3,"required_capabilities":["rust"],"attempt":1,"max_attempts":5,"backoff":{"initial_ms":1500,"max_ms":60000,"multiplier":2.5,"jitter":0.1},"run_at":"2027-01-15T08:00:00.001Z","timeout_ms":90000,"lease":{"agent":"worker-1","token":"01kbwq8t3e00000000000000zz","expires_at":"2027-01-15T08:00:30.002Z","acquired_at":"2027-01-15T08:00:00.002Z"},"idempotency_key":"build-42","concurrency_key":"repo:acme/web","rate_limit_key":null,"correlation_id":"corr-1","artifacts":[{"name":"log","uri":"s3://b/log.txt","media_type":"text/plain","created_at":"2027-01-15T08:00:00.003Z"}],"context":{"plan":{"step":2}},"progress":{"percent":42.5,"message":"linking"},"result":null,"error":null,"version":3,"created_at":"2027-01-15T08:00:00.000Z","updated_at":"2027-01-15T08:00:00.004Z","finished_at":null}"#;
const META: &str = r#"{"context_versions":{"plan":2}}"#;
const AGENT: &str = r#"{"name":"worker-1","namespace":"default","capabilities":["rust"],"slots":4,"metadata":{"host":"a"},"status":"active","last_heartbeat":"2027-01-15T08:00:00.005Z","registered_at":"2027-01-15T08:00:00.001Z","inbox_start":0,"inbox_cursor":0}"#;
const MESSAGE: &str = r#"{"id":"msg-0","seq":1,"namespace":"default","from":null,"to":{"agent":"worker-1"},"body":{"text":"hi"},"correlation_id":null,"reply_to":null,"expires_at":null,"idempotency_key":"k-1","created_at":"2027-01-15T08:00:00.006Z"}"#;

#[tokio::test]
async fn rows_as_written_by_this_version_read_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = db(&dir);
    drop(open(&path));
    {
        let conn = rusqlite::Connection::open(&path).expect("raw open");
        conn.execute(
            "INSERT INTO tasks (namespace, id, queue, status, priority, run_at, lease_expires_at, idempotency_key, \
             capabilities, doc, meta, lease_agent, concurrency_key) VALUES ('default', ?1, 'builds', 'running', -3, \
             1800000000001, 1800000030002, 'build-42', 'rust', ?2, ?3, 'worker-1', 'repo:acme/web')",
            params![TASK_ID, TASK, META],
        )
        .expect("task row");
        conn.execute(
            "INSERT INTO agents (namespace, name, status, last_heartbeat, doc) \
             VALUES ('default', 'worker-1', 'active', 1800000000005, ?1)",
            params![AGENT],
        )
        .expect("agent row");
        conn.execute(
            "INSERT INTO messages (namespace, seq, kind, to_name, expires_at, idempotency_key, doc) \
             VALUES ('default', 1, 'agent', 'worker-1', NULL, 'k-1', ?1)",
            params![MESSAGE],
        )
        .expect("message row");
        conn.execute("INSERT INTO message_seq (namespace, last) VALUES ('default', 1)", [])
            .expect("sequence row");
    }
    let store = open(&path);
    let task = store
        .get_task(&ns(), TaskId::parse(TASK_ID).expect("id"))
        .await
        .expect("the task");
    assert_eq!(task.title.as_deref(), Some("Build \"web\" ✓"));
    assert_eq!(task.status, TaskStatus::Running);
    assert_eq!(task.version, 3);
    assert_eq!(task.run_at, at(1));
    assert_eq!(task.artifacts[0].uri.as_deref(), Some("s3://b/log.txt"));
    assert_eq!(task.progress.as_ref().and_then(|p| p.percent), Some(42.5));
    assert_eq!(task.meta.context_versions.get("plan"), Some(&2));
    let lease = task.lease.clone().expect("leased");
    assert_eq!((lease.agent.as_str(), lease.expires_at), ("worker-1", at(30_002)));
    let worker = AgentName::parse("worker-1").expect("valid");
    let agent = store.get_agent(&ns(), &worker).await.expect("the agent");
    assert_eq!((agent.status, agent.slots, agent.running), (AgentStatus::Active, 4, 1));
    let inbox = store.read_inbox(&ns(), &worker, None, 10, at(10)).await.expect("inbox");
    assert_eq!(inbox.messages.len(), 1);
    assert_eq!(inbox.messages[0].to, Recipient::Agent { agent: worker.clone() });
    assert_eq!(inbox.messages[0].idempotency_key.as_deref(), Some("k-1"));

    // And what this version writes for them now is the same JSON: a heartbeat rewrites the
    // agent's document with only its heartbeat changed.
    store.heartbeat_agent(&ns(), &worker, at(5)).await.expect("heartbeat");
    drop(store);
    let conn = rusqlite::Connection::open(&path).expect("raw open");
    let doc: String = conn
        .query_row("SELECT doc FROM agents WHERE name = 'worker-1'", [], |r| r.get(0))
        .expect("agent row");
    assert_eq!(doc, AGENT);
}
