//! What the log store gives back after it is closed (or its file is cut short) and opened again.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use agentyard_core::agent::AgentRegistration;
use agentyard_core::flow::{KeyLimit, RateLimit};
use agentyard_core::message::{NewMessage, Recipient};
use agentyard_core::task::Completion;
use agentyard_core::{
    AgentName, Capability, Namespace, NewTask, QueueName, TaskCommand, TaskId, TaskStatus, Timestamp,
};
use agentyard_store::{
    AgentOptions, AgentStore, Claim, CreateOptions, LimitStore, MessageStore, OwnedChange, SendOptions, Store,
    StoredLimit, TokenStore,
};
use agentyard_store_log::{LogOptions, LogStore};

// Beside this file rather than in it: API tokens and events came later, and this file is long
// enough.
#[path = "reopen/events.rs"]
mod events;
#[path = "reopen/tokens.rs"]
mod tokens;

fn at(ms: i64) -> Timestamp {
    Timestamp::from_millis(1_800_000_000_000 + ms)
}

fn ns() -> Namespace {
    Namespace::default_namespace()
}

fn queue(name: &str) -> QueueName {
    QueueName::parse(name).expect("valid queue")
}

fn agent(name: &str) -> AgentName {
    AgentName::parse(name).expect("valid agent")
}

fn open(path: &Path) -> LogStore {
    LogStore::open(path, LogOptions::default()).expect("open the log")
}

/// Every kind of change the store records: tasks created, claimed, completed, cancelled, and
/// released back to the queue; agents registered, drained, deleted (releasing their leases);
/// messages direct, to a topic and broadcast; subscriptions taken and dropped; limits set,
/// replaced and removed; tokens made and revoked; an inbox acknowledged.
async fn every_kind_of_change(s: &LogStore) {
    let q = queue("reopen");
    let mut keyed = NewTask::on(q.clone(), serde_json::json!({ "n": 0 }));
    keyed.idempotency_key = Some("the-key".into());
    let mut news = vec![keyed];
    news.extend((1..20).map(|n| NewTask::on(q.clone(), serde_json::json!({ "n": n }))));
    let created = s
        .create_tasks(&ns(), news, CreateOptions::default(), at(0))
        .await
        .expect("create");
    assert_eq!(created.len(), 20);

    let reg = AgentRegistration {
        capabilities: vec![Capability::parse("rust").expect("valid")],
        slots: 4,
        metadata: serde_json::json!({ "host": "a" }),
    };
    for name in ["worker-1", "worker-2", "leaver"] {
        s.register_agent(&ns(), &agent(name), reg.clone(), AgentOptions::default(), at(1))
            .await
            .expect("register");
    }
    let claimed = s
        .claim_tasks(&ns(), &Claim::new(q.clone(), agent("worker-1"), 5, 30_000), at(2))
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 5);
    for t in &claimed[..3] {
        let token = t.lease.as_ref().expect("lease").token.clone();
        let done = TaskCommand::Complete {
            token,
            completion: Completion {
                result: Some(serde_json::json!({ "ok": t.id.to_string() })),
                artifacts: Vec::new(),
            },
        };
        s.apply(&ns(), t.id, done, at(3)).await.expect("complete");
    }
    // Later than the others (`run_at` orders claims), so no claim took it first.
    let late = s
        .create_tasks(
            &ns(),
            vec![NewTask::on(q.clone(), serde_json::json!({ "n": 20 }))],
            CreateOptions::default(),
            at(1),
        )
        .await
        .expect("create");
    s.apply(&ns(), late[0].task.id, TaskCommand::Cancel, at(3))
        .await
        .expect("cancel");
    let held = s
        .claim_tasks(&ns(), &Claim::new(q.clone(), agent("leaver"), 2, 30_000), at(4))
        .await
        .expect("claim");
    assert_eq!(held.len(), 2);
    s.drain_agent(&ns(), &agent("worker-2"), at(5)).await.expect("drain");
    let released = s.delete_agent(&ns(), &agent("leaver"), at(6)).await.expect("delete");
    assert_eq!(released.len(), 2);

    for (key, limit) in [
        ("openai", rate(60, 5)),
        ("repo", concurrent(2)),
        ("gone", concurrent(1)),
    ] {
        s.put_limit(&ns(), key, limit, agentyard_core::Timestamp::from_millis(0))
            .await
            .expect("put a limit");
    }
    s.put_limit(&ns(), "openai", rate(10, 1), agentyard_core::Timestamp::from_millis(0))
        .await
        .expect("replace a limit");
    assert!(
        s.delete_limit(&ns(), "gone", agentyard_core::Timestamp::from_millis(0))
            .await
            .expect("remove a limit")
    );
    assert!(
        !s.delete_limit(&ns(), "never-set", agentyard_core::Timestamp::from_millis(0))
            .await
            .expect("remove no limit"),
        "nothing to remove, and no frame"
    );
    tokens::make_and_revoke(s).await;

    let topic = queue("news");
    assert!(s.subscribe(&ns(), &agent("worker-1"), &topic).await.expect("subscribe"));
    assert!(s.subscribe(&ns(), &agent("worker-2"), &topic).await.expect("subscribe"));
    assert!(
        s.unsubscribe(&ns(), &agent("worker-2"), &topic)
            .await
            .expect("unsubscribe")
    );
    let message = |to: Recipient, key: Option<&str>| NewMessage {
        from: Some(agent("worker-2")),
        to,
        body: serde_json::json!({ "hello": "there" }),
        correlation_id: Some("c-1".into()),
        reply_to: None,
        ttl_ms: None,
        idempotency_key: key.map(str::to_owned),
    };
    let direct = Recipient::Agent {
        agent: agent("worker-1"),
    };
    let sent = s
        .send_message(&ns(), message(direct, Some("m-key")), SendOptions::default(), at(7))
        .await
        .expect("send");
    s.send_message(
        &ns(),
        message(Recipient::Topic { topic }, None),
        SendOptions::default(),
        at(7),
    )
    .await
    .expect("send to a topic");
    s.send_message(
        &ns(),
        message(Recipient::Broadcast { broadcast: true }, None),
        SendOptions::default(),
        at(7),
    )
    .await
    .expect("broadcast");
    s.ack_inbox(&ns(), &agent("worker-1"), sent.message.seq)
        .await
        .expect("ack");
}

fn rate(rate_per_minute: u32, burst: u32) -> KeyLimit {
    KeyLimit {
        rate: Some(RateLimit { rate_per_minute, burst }),
        max_concurrent: None,
    }
}

fn concurrent(max: u64) -> KeyLimit {
    KeyLimit {
        rate: None,
        max_concurrent: Some(max),
    }
}

fn stored(ns: &Namespace, key: &str, limit: KeyLimit) -> StoredLimit {
    StoredLimit {
        namespace: ns.clone(),
        key: key.to_owned(),
        limit,
    }
}

/// Compares two exports entry by entry, so a failure names the first entry that differs.
fn same(a: &[OwnedChange], b: &[OwnedChange]) {
    assert_eq!(a.len(), b.len(), "as many entries");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x == y, "entry {i} differs:\n{x:?}\n{y:?}");
    }
}

/// Waits for the workers, then for the compaction in progress; checks that at least one
/// compaction ran, and closes the store. Returns what it held.
async fn close_after(workers: Vec<tokio::task::JoinHandle<()>>, s: Arc<LogStore>) -> Vec<OwnedChange> {
    for w in workers {
        w.await.expect("worker");
    }
    let s = Arc::try_unwrap(s).ok().expect("the only handle");
    s.finish_compaction();
    assert!(s.compactions() >= 1, "the log was compacted while the workers ran");
    s.export()
}

fn tasks_in(export: &[OwnedChange]) -> usize {
    export.iter().filter(|c| matches!(c, OwnedChange::Task { .. })).count()
}

#[tokio::test]
async fn a_reopened_store_holds_exactly_what_it_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let before = {
        let s = open(&path);
        every_kind_of_change(&s).await;
        s.export()
    };
    assert_eq!(tasks_in(&before), 21);
    let s = open(&path);
    same(&s.export(), &before);
    assert_eq!(s.replayed().frames, 28, "one frame per call that changed something");
    assert_eq!(s.replayed().cut_bytes, 0);

    assert_eq!(
        s.list_limits().await.expect("limits"),
        vec![
            stored(&ns(), "openai", rate(10, 1)),
            stored(&ns(), "repo", concurrent(2))
        ],
        "the limits as last set, the removed one gone"
    );
    assert_eq!(
        s.list_tokens().await.expect("tokens"),
        tokens::made_and_revoked(),
        "the tokens, the revoked one with its first time"
    );

    // The indexes came back too, not only the rows: counts, claim order, idempotency, inboxes.
    let stats = s
        .queue_stats(&ns(), Some(&queue("reopen")), at(10))
        .await
        .expect("stats");
    let counts = stats[0].counts;
    assert_eq!((counts.succeeded, counts.running, counts.cancelled), (3, 2, 1));
    assert_eq!(
        counts.queued, 15,
        "the deleted agent's two tasks went back to the queue"
    );
    let mut again = NewTask::on(queue("reopen"), serde_json::json!({}));
    again.idempotency_key = Some("the-key".into());
    let dup = s
        .create_tasks(&ns(), vec![again], CreateOptions::default(), at(11))
        .await
        .expect("create");
    assert!(!dup[0].created, "the idempotency key survived the restart");
    let inbox = s
        .read_inbox(&ns(), &agent("worker-1"), None, 10, at(12))
        .await
        .expect("inbox");
    assert_eq!(
        inbox.messages.len(),
        2,
        "the topic message and the broadcast, after the acknowledged one"
    );
    let next = s
        .claim_tasks(
            &ns(),
            &Claim::new(queue("reopen"), agent("worker-1"), 20, 30_000),
            at(13),
        )
        .await
        .expect("claim");
    assert_eq!(next.len(), 15);
    assert!(next.iter().all(|t| t.status == TaskStatus::Running));
}

#[tokio::test]
async fn a_frame_cut_short_is_dropped_and_the_rest_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let before = {
        let s = open(&path);
        every_kind_of_change(&s).await;
        s.export()
    };
    let whole = std::fs::metadata(&path).expect("log").len();
    // A write the crash interrupted: a header announcing 100 bytes, and 10 of them.
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).expect("open");
    f.write_all(&100u32.to_le_bytes()).expect("write");
    f.write_all(&0u32.to_le_bytes()).expect("write");
    f.write_all(b"{\"Task\":{\"").expect("write");
    drop(f);

    let s = open(&path);
    same(&s.export(), &before);
    assert_eq!(s.replayed().cut_bytes, 18);
    assert_eq!(
        std::fs::metadata(&path).expect("log").len(),
        whole,
        "the torn end is cut off"
    );
    let kept = s.replayed().cut_kept_in.clone().expect("the cut bytes are kept");
    assert_eq!(kept.parent(), path.parent(), "beside the log");
    let mut torn = 100u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&0u32.to_le_bytes());
    torn.extend_from_slice(b"{\"Task\":{\"");
    assert_eq!(std::fs::read(&kept).expect("kept"), torn, "exactly the bytes cut off");
    // And the store goes on appending after the cut.
    s.create_tasks(
        &ns(),
        vec![NewTask::on(queue("reopen"), serde_json::json!({}))],
        CreateOptions::default(),
        at(20),
    )
    .await
    .expect("create");
    drop(s);
    let s = open(&path);
    assert_eq!(tasks_in(&s.export()), 22);
    assert_eq!(s.replayed().cut_bytes, 0);
    assert_eq!(s.replayed().cut_kept_in, None);
}

/// A log at `path` holding every kind of change, then damaged by `damage` (which gets the file's
/// bytes), reopened: the store, and the damaged bytes.
async fn reopen_damaged(path: &Path, damage: impl FnOnce(&mut Vec<u8>)) -> (LogStore, Vec<u8>) {
    {
        let s = open(path);
        every_kind_of_change(&s).await;
    }
    let mut bytes = std::fs::read(path).expect("log");
    damage(&mut bytes);
    std::fs::write(path, &bytes).expect("write");
    (open(path), bytes)
}

#[tokio::test]
async fn a_frame_with_a_wrong_checksum_ends_the_log_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    // The last frame's last byte changed: as if only part of its pages reached the disk.
    let (s, bytes) = reopen_damaged(&path, |bytes| {
        let last = bytes.len() - 2;
        bytes[last] ^= 0x55;
    })
    .await;
    let r = s.replayed();
    assert!(r.cut_bytes > 0 && r.cut_bytes < 1_000, "{r:?}");
    let kept = std::fs::read(r.cut_kept_in.as_ref().expect("the cut bytes are kept")).expect("kept");
    assert_eq!(
        kept,
        bytes[bytes.len() - r.cut_bytes as usize..],
        "the damaged frame is kept as it was"
    );
    let inbox_cursor = s
        .get_agent(&ns(), &agent("worker-1"))
        .await
        .expect("agent")
        .inbox_cursor;
    assert_eq!(
        inbox_cursor, 0,
        "the acknowledgement was the last frame, and it is gone"
    );
}

/// The file header of a log this version writes: a frame whose body is the magic bytes and the
/// format version.
const HEADER_LEN: usize = 26;

fn assert_headed(bytes: &[u8]) {
    assert_eq!(
        &bytes[8..22],
        b"agentyard-log\0",
        "the magic bytes, after the header's frame header"
    );
    assert_eq!(bytes[22..26], 1u32.to_le_bytes(), "format version 1");
}

/// Where each frame of changes starts, and its whole length.
fn frames_of(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut at = HEADER_LEN;
    let mut out = Vec::new();
    while at < bytes.len() {
        let len = 8 + u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes")) as usize;
        out.push((at, len));
        at += len;
    }
    out
}

/// A log holding every kind of change: its bytes, and the state after each of its frames.
async fn log_with_every_kind_of_change(path: &Path) -> Vec<u8> {
    let s = open(path);
    every_kind_of_change(&s).await;
    drop(s);
    std::fs::read(path).expect("log")
}

/// What a log holding only the bytes `bytes[..end]` gives back (a copy, opened and closed).
fn state_of_prefix(dir: &Path, bytes: &[u8], end: usize) -> Vec<OwnedChange> {
    let copy = dir.join(format!("prefix-{end}.log"));
    std::fs::write(&copy, &bytes[..end]).expect("write");
    let s = open(&copy);
    assert_eq!(s.replayed().cut_bytes, 0, "a prefix of whole frames");
    s.export()
}

fn files_beside(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(path.parent().expect("dir"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("yard.log"))
        .collect();
    names.sort();
    names
}

/// One flipped byte in a frame in the middle, with whole frames after it (a bad sector, a stray
/// write): the open is refused, naming the byte, and the file is left as it was. With `repair`
/// it opens, cut at the damaged frame: exactly the changes from there on are lost, and the bytes
/// cut off are kept beside the log.
#[tokio::test]
async fn damage_in_the_middle_stops_the_open_unless_repaired() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let mut bytes = log_with_every_kind_of_change(&path).await;
    assert_headed(&bytes);
    let frames = frames_of(&bytes);
    assert_eq!(frames.len(), 28);
    let (damaged, _) = frames[12];
    bytes[damaged + 8 + 20] ^= 0x55;
    std::fs::write(&path, &bytes).expect("write");

    let err = LogStore::open(&path, LogOptions::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains(&format!("damaged at byte {damaged} ")), "{err}");
    assert!(err.contains("fails its checksum"), "{err}");
    assert!(err.contains("--repair"), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("log"),
        bytes,
        "the refused log is left as it was"
    );
    assert_eq!(files_beside(&path), ["yard.log"], "nothing cut, nothing kept");

    let expected = state_of_prefix(dir.path(), &bytes, damaged);
    let repair = LogOptions {
        repair: true,
        ..LogOptions::default()
    };
    let s = LogStore::open(&path, repair).expect("opens with repair");
    let r = s.replayed().clone();
    assert!(r.repaired, "{r:?}");
    assert_eq!(r.frames, 12, "the frames before the damage");
    assert_eq!((r.bytes, r.cut_bytes), (damaged as u64, (bytes.len() - damaged) as u64));
    same(&s.export(), &expected);
    let kept = std::fs::read(r.cut_kept_in.as_ref().expect("kept")).expect("kept");
    assert_eq!(kept, bytes[damaged..], "every byte from the damage on, as it was");
    assert_eq!(
        std::fs::read(&path).expect("log"),
        bytes[..damaged],
        "the log is cut at the damage"
    );
    drop(s);
    let s = open(&path);
    assert_eq!(
        (s.replayed().frames, s.replayed().cut_bytes),
        (12, 0),
        "and opens again as it was left"
    );
}

/// A damaged length (one that now runs past the end of the file, or into the middle of the
/// next frame) with whole frames behind it is damage too, not a torn tail.
#[tokio::test]
async fn a_damaged_frame_length_in_the_middle_stops_the_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let bytes = log_with_every_kind_of_change(&path).await;
    let (damaged, _) = frames_of(&bytes)[3];
    for (byte, flip) in [(3, 0x40), (0, 0x01)] {
        let mut b = bytes.clone();
        b[damaged + byte] ^= flip;
        std::fs::write(&path, &b).expect("write");
        let err = LogStore::open(&path, LogOptions::default())
            .err()
            .expect("refused")
            .to_string();
        assert!(err.contains(&format!("damaged at byte {damaged} ")), "{err}");
        assert_eq!(std::fs::read(&path).expect("log"), b, "left as it was");
    }
}

/// A tail of zeros (a file system that grew the file but lost the data of its last write), or of
/// garbage, with no whole frame in it, is a torn tail: cut and kept.
#[tokio::test]
async fn a_tail_of_zeros_or_garbage_is_a_torn_write() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let bytes = log_with_every_kind_of_change(&path).await;
    let before = state_of_prefix(dir.path(), &bytes, bytes.len());
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let garbage: Vec<u8> = (0..100_000)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    for tail in [vec![0; 5000], garbage] {
        let mut damaged = bytes.clone();
        damaged.extend_from_slice(&tail);
        std::fs::write(&path, &damaged).expect("write");
        let s = open(&path);
        assert_eq!(s.replayed().cut_bytes, tail.len() as u64);
        assert!(!s.replayed().repaired);
        same(&s.export(), &before);
    }
}

/// Every frame but the last whole, and the last one's length running past the end (a write cut
/// short), followed by a few bytes of garbage: nothing valid follows, so it is a torn tail.
#[tokio::test]
async fn a_torn_last_frame_is_cut_whatever_is_in_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let bytes = log_with_every_kind_of_change(&path).await;
    let (last, len) = *frames_of(&bytes).last().expect("frames");
    assert_eq!(last + len, bytes.len());
    let before = state_of_prefix(dir.path(), &bytes, last);
    for end in [last + 3, last + 8, last + len / 2, last + len - 1] {
        std::fs::write(&path, &bytes[..end]).expect("write");
        let s = open(&path);
        assert_eq!(s.replayed().cut_bytes, (end - last) as u64, "cut at {end}");
        same(&s.export(), &before);
    }
}

/// A new log starts with its header; a file that is not a log, or a log of a newer format, is
/// refused and left alone.
#[tokio::test]
async fn the_header_says_what_the_file_is() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    drop(open(&path));
    let bytes = std::fs::read(&path).expect("log");
    assert_eq!(bytes.len(), HEADER_LEN, "a new log is its header");
    assert_headed(&bytes);
    assert!(open(&path).replayed().headed);

    let foreign = b"SQLite format 3\0 and then a database".to_vec();
    std::fs::write(&path, &foreign).expect("write");
    let err = LogStore::open(&path, LogOptions::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("is not an agentyard log"), "{err}");
    assert_eq!(std::fs::read(&path).expect("file"), foreign, "left alone");

    // Format version 2, with a frame behind it.
    let mut newer = bytes.clone();
    newer[22..26].copy_from_slice(&2u32.to_le_bytes());
    let crc = crc32fast::hash(&newer[8..26]);
    newer[4..8].copy_from_slice(&crc.to_le_bytes());
    newer.extend_from_slice(b"whatever version 2 writes");
    std::fs::write(&path, &newer).expect("write");
    let err = LogStore::open(&path, LogOptions::default())
        .err()
        .expect("refused")
        .to_string();
    assert!(
        err.contains("format version 2") && err.contains("newer agentyard"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).expect("file"), newer, "left alone");

    // Only the start of a header: a crash as the file was created. It is written again.
    std::fs::write(&path, &bytes[..11]).expect("write");
    let s = open(&path);
    assert_eq!(s.replayed().bytes, HEADER_LEN as u64);
    drop(s);
    assert_eq!(std::fs::read(&path).expect("log"), bytes);
}

/// A log as the release before headers and records wrote it (the fixture: its frames as that
/// release made them, JSON of the API types of then): it opens, is appended to as it is, and its
/// first compaction gives it a header.
#[tokio::test]
async fn a_log_from_before_headers_opens_and_gains_one_when_compacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let mut old = Vec::new();
    for line in [
        r#"{"Agent":{"name":"worker-1","namespace":"default","capabilities":["rust"],"slots":4,"metadata":{"host":"a"},"status":"active","last_heartbeat":"2027-01-15T08:00:00.001Z","registered_at":"2027-01-15T08:00:00.001Z","running":0,"inbox_start":0,"inbox_cursor":0}}"#,
        r#"{"Task":{"task":{"id":"01KBWQ8T3E0000000000000000","namespace":"default","queue":"builds","kind":"compile","title":"Build \"web\" ✓","input":{"repo":"acme/web","n":1,"f":0.5},"status":"running","priority":-3,"required_capabilities":["rust"],"attempt":1,"max_attempts":5,"backoff":{"initial_ms":1500,"max_ms":60000,"multiplier":2.5,"jitter":0.1},"run_at":"2027-01-15T08:00:00.001Z","timeout_ms":90000,"lease":{"agent":"worker-1","token":"01kbwq8t3e00000000000000zz","expires_at":"2027-01-15T08:00:30.002Z","acquired_at":"2027-01-15T08:00:00.002Z"},"idempotency_key":"build-42","concurrency_key":"repo:acme/web","rate_limit_key":null,"correlation_id":"corr-1","artifacts":[{"name":"log","uri":"s3://b/log.txt","media_type":"text/plain","created_at":"2027-01-15T08:00:00.003Z"}],"context":{"plan":{"step":2}},"progress":{"percent":42.5,"message":"linking"},"result":null,"error":null,"version":3,"created_at":"2027-01-15T08:00:00.000Z","updated_at":"2027-01-15T08:00:00.004Z","finished_at":null},"meta":{"context_versions":{"plan":2}}}}"#,
        r#"{"Agent":{"name":"worker-1","namespace":"default","capabilities":["rust"],"slots":4,"metadata":{"host":"a"},"status":"active","last_heartbeat":"2027-01-15T08:00:00.005Z","registered_at":"2027-01-15T08:00:00.001Z","running":1,"inbox_start":0,"inbox_cursor":0}}"#,
        r#"{"Message":{"id":"msg-0","seq":1,"namespace":"default","from":null,"to":{"agent":"worker-1"},"body":{"text":"hi"},"correlation_id":null,"reply_to":null,"expires_at":null,"idempotency_key":"k-1","created_at":"2027-01-15T08:00:00.006Z"}}"#,
    ] {
        let body = format!("{line}\n");
        let len = u32::try_from(body.len()).expect("short");
        old.extend_from_slice(&len.to_le_bytes());
        old.extend_from_slice(&crc32fast::hash(body.as_bytes()).to_le_bytes());
        old.extend_from_slice(body.as_bytes());
    }
    std::fs::write(&path, &old).expect("write the old log");
    let options = LogOptions {
        compact_at_bytes: 8 << 10,
        ..LogOptions::default()
    };
    let s = LogStore::open(&path, options).expect("open");
    let r = s.replayed().clone();
    assert_eq!((r.frames, r.changes, r.cut_bytes, r.headed), (4, 4, 0, false));
    let task = s
        .get_task(&ns(), TaskId::parse("01KBWQ8T3E0000000000000000").expect("id"))
        .await
        .expect("the task");
    assert_eq!(task.title.as_deref(), Some("Build \"web\" ✓"));
    assert_eq!(task.lease.as_ref().map(|l| l.agent.as_str()), Some("worker-1"));
    assert_eq!(task.status, TaskStatus::Running);
    let worker = s.get_agent(&ns(), &agent("worker-1")).await.expect("agent");
    assert_eq!(worker.running, 1, "counted from the running tasks");
    let inbox = s
        .read_inbox(&ns(), &agent("worker-1"), None, 10, at(0))
        .await
        .expect("inbox");
    assert_eq!(inbox.messages.len(), 1);
    // Appended to as it is: the old frames stay, no header is put in front of them.
    s.put_limit(&ns(), "openai", rate(60, 5), agentyard_core::Timestamp::from_millis(0))
        .await
        .expect("put");
    let now = std::fs::read(&path).expect("log");
    assert_eq!(now[..old.len()], old[..]);
    // Until the log grows enough to be compacted: the snapshot has the header.
    for n in 1..=100 {
        s.put_limit(&ns(), "churn", rate(n, 1), agentyard_core::Timestamp::from_millis(0))
            .await
            .expect("put");
    }
    s.finish_compaction();
    assert!(s.compactions() >= 1, "the log was compacted");
    let before = s.export();
    drop(s);
    assert_headed(&std::fs::read(&path).expect("log"));
    let s = open(&path);
    assert!(s.replayed().headed);
    same(&s.export(), &before);
}

#[tokio::test]
async fn compaction_keeps_every_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let options = LogOptions {
        fsync: true,
        compact_at_bytes: 16 << 10,
        ..LogOptions::default()
    };
    let q = queue("churn");
    let before = {
        let s = Arc::new(LogStore::open(&path, options).expect("open"));
        // The same few tasks change many times: the log grows, the state does not.
        let created = s
            .create_tasks(
                &ns(),
                (0..10)
                    .map(|n| NewTask::on(q.clone(), serde_json::json!({ "n": n })))
                    .collect(),
                CreateOptions::default(),
                at(0),
            )
            .await
            .expect("create");
        let mut workers = Vec::new();
        for (i, c) in created.into_iter().enumerate() {
            let s = s.clone();
            workers.push(tokio::spawn(async move {
                for round in 0..60u64 {
                    let patch = agentyard_core::task::TaskPatch {
                        input: Some(serde_json::json!({ "round": round, "worker": i, "pad": "x".repeat(200) })),
                        ..Default::default()
                    };
                    let cmd = TaskCommand::Update {
                        patch,
                        expected_version: c.task.version + round,
                        merge: false,
                    };
                    s.apply(&ns(), c.task.id, cmd, at(1)).await.expect("update");
                }
            }));
        }
        // The first starts at 16 KB of the ~420 KB appended. How small the file ends depends on
        // how the compaction thread was scheduled against the writers, so that is not asserted.
        close_after(workers, s).await
    };
    let s = LogStore::open(&path, options).expect("reopen");
    same(&s.export(), &before);
    let t = s.list_tasks(&ns(), &Default::default(), None, 100).await.expect("list");
    assert!(t.items.iter().all(|t| t.version == 61), "every update is there");
}

#[tokio::test]
async fn a_second_process_cannot_open_the_same_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let _first = open(&path);
    let err = LogStore::open(&path, LogOptions::default()).err().expect("refused");
    assert!(err.to_string().contains("in use"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_is_in_the_file_before_its_caller_is_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let s = open(&path);
    for n in 0..200 {
        let created = s
            .create_tasks(
                &ns(),
                vec![NewTask::on(queue("acked"), serde_json::json!({ "n": n }))],
                CreateOptions::default(),
                at(n),
            )
            .await
            .expect("create");
        let id = created[0].task.id.to_string();
        let file = std::fs::read(&path).expect("read the log");
        assert!(
            file.windows(id.len()).any(|w| w == id.as_bytes()),
            "task {id} was acknowledged before it was written"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compactions_while_the_store_changes_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    // Small enough that snapshots are taken again and again while the workers below go on.
    let options = LogOptions {
        fsync: false,
        compact_at_bytes: 8 << 10,
        ..LogOptions::default()
    };
    let before = {
        let s = Arc::new(LogStore::open(&path, options).expect("open"));
        let mut workers = Vec::new();
        for w in 0..4 {
            let s = s.clone();
            workers.push(tokio::spawn(async move {
                let q = queue(&format!("churn-{w}"));
                let me = agent(&format!("worker-{w}"));
                let reg = AgentRegistration {
                    capabilities: Vec::new(),
                    slots: 1,
                    metadata: serde_json::json!({}),
                };
                s.register_agent(&ns(), &me, reg, AgentOptions::default(), at(0))
                    .await
                    .expect("register");
                for i in 0..150 {
                    let new = NewTask::on(q.clone(), serde_json::json!({ "w": w, "i": i, "pad": "y".repeat(300) }));
                    s.create_tasks(&ns(), vec![new], CreateOptions::default(), at(i))
                        .await
                        .expect("create");
                    if i % 3 == 0 {
                        continue; // some stay queued
                    }
                    let claimed = s
                        .claim_tasks(&ns(), &Claim::new(q.clone(), me.clone(), 1, 60_000), at(i))
                        .await
                        .expect("claim");
                    if i % 3 == 1 {
                        continue; // some stay running
                    }
                    for t in claimed {
                        let token = t.lease.as_ref().expect("lease").token.clone();
                        let done = TaskCommand::Complete {
                            token,
                            completion: Completion {
                                result: Some(serde_json::json!(i)),
                                artifacts: Vec::new(),
                            },
                        };
                        s.apply(&ns(), t.id, done, at(i)).await.expect("complete");
                    }
                    s.heartbeat_agent(&ns(), &me, at(i)).await.expect("heartbeat");
                }
            }));
        }
        // The first one starts at 8 KB, while the workers are far from done; how many follow
        // depends on how the threads are scheduled, so only one is certain.
        close_after(workers, s).await
    };
    assert_eq!(tasks_in(&before), 600);
    let s = LogStore::open(&path, options).expect("reopen");
    same(&s.export(), &before);
}

#[tokio::test]
async fn a_snapshot_left_half_written_by_a_crash_is_ignored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let before = {
        let s = open(&path);
        every_kind_of_change(&s).await;
        s.export()
    };
    // A compaction killed before its rename leaves its snapshot beside the log.
    let leftover = dir.path().join("yard.log.compacting");
    std::fs::write(&leftover, b"half a snapshot").expect("write");
    let s = open(&path);
    same(&s.export(), &before);
    assert!(!leftover.exists(), "the leftover is removed");
}

/// Limits are in the snapshot a compaction writes, not only in the frames it replaces.
#[tokio::test]
async fn limits_survive_compaction_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let options = LogOptions {
        fsync: false,
        compact_at_bytes: 4 << 10,
        ..LogOptions::default()
    };
    let tenant = Namespace::parse("tenant-b").expect("valid namespace");
    let before = {
        let s = LogStore::open(&path, options).expect("open");
        s.put_limit(&ns(), "openai", rate(60, 5), agentyard_core::Timestamp::from_millis(0))
            .await
            .expect("put");
        s.put_limit(
            &tenant,
            "openai",
            concurrent(3),
            agentyard_core::Timestamp::from_millis(0),
        )
        .await
        .expect("put");
        s.put_limit(
            &ns(),
            "removed",
            concurrent(1),
            agentyard_core::Timestamp::from_millis(0),
        )
        .await
        .expect("put");
        assert!(
            s.delete_limit(&ns(), "removed", agentyard_core::Timestamp::from_millis(0))
                .await
                .expect("delete")
        );
        // One agent heartbeating again and again: the log grows past the threshold, the state
        // does not (a heartbeat logs no event).
        churn(&s).await;
        s.finish_compaction();
        assert!(s.compactions() >= 1, "the log was compacted");
        s.export()
    };
    let s = LogStore::open(&path, options).expect("reopen");
    same(&s.export(), &before);
    assert!(
        s.replayed().frames < 204,
        "read back from a snapshot, not every call: {:?}",
        s.replayed()
    );
    assert_eq!(
        s.list_limits().await.expect("limits"),
        vec![
            stored(&ns(), "openai", rate(60, 5)),
            stored(&tenant, "openai", concurrent(3)),
        ]
    );
}

/// Registers an agent and heartbeats it 200 times: 200 frames that leave the state as it was
/// but for the agent's last heartbeat.
pub(crate) async fn churn(s: &LogStore) {
    let reg = AgentRegistration {
        capabilities: Vec::new(),
        slots: 1,
        metadata: serde_json::Value::Null,
    };
    s.register_agent(&ns(), &agent("churner"), reg, AgentOptions::default(), at(0))
        .await
        .expect("register");
    for n in 1..=200 {
        s.heartbeat_agent(&ns(), &agent("churner"), at(n))
            .await
            .expect("heartbeat");
    }
}

/// A log written before limits existed (change kinds encoded as they always were) still opens,
/// and limits set afterwards are appended behind its frames.
#[tokio::test]
async fn a_log_from_before_limits_still_opens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yard.log");
    let mut old = Vec::new();
    for line in [
        r#"{"Subscribed":{"namespace":"default","agent":"worker-1","topic":"news","after":0}}"#,
        r#"{"Subscribed":{"namespace":"default","agent":"worker-1","topic":"other","after":0}}"#,
        r#"{"Unsubscribed":{"namespace":"default","agent":"worker-1","topic":"other"}}"#,
    ] {
        let body = format!("{line}\n");
        let len = u32::try_from(body.len()).expect("short");
        old.extend_from_slice(&len.to_le_bytes());
        old.extend_from_slice(&crc32fast::hash(body.as_bytes()).to_le_bytes());
        old.extend_from_slice(body.as_bytes());
    }
    std::fs::write(&path, &old).expect("write the old log");
    {
        let s = open(&path);
        assert_eq!((s.replayed().frames, s.replayed().cut_bytes), (3, 0));
        s.put_limit(&ns(), "openai", rate(60, 5), agentyard_core::Timestamp::from_millis(0))
            .await
            .expect("put");
    }
    let s = open(&path);
    assert_eq!(s.replayed().frames, 4);
    let events: Vec<OwnedChange> = s
        .export()
        .into_iter()
        .filter(|c| !matches!(c, OwnedChange::Event(_)))
        .collect();
    assert_eq!(
        events,
        vec![
            OwnedChange::Subscribed {
                namespace: ns(),
                agent: agent("worker-1"),
                topic: queue("news"),
                after: 0,
            },
            OwnedChange::Limit {
                namespace: ns(),
                key: "openai".into(),
                limit: rate(60, 5),
            },
        ]
    );
    let now = std::fs::read(&path).expect("log");
    assert_eq!(now[..old.len()], old[..], "the old frames are left as they were");
}
