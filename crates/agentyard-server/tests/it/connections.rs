//! Connections: half-open clients (some headers, then nothing) cannot keep others out, waiting
//! connections are closed after the header or idle timeout, a body that trickles in is cut at
//! the body timeout, and nothing cuts a long poll or an event stream. Only the connection
//! handling is under test, so every case runs on the memory store.

use std::net::SocketAddr;
use std::time::Duration;

use agentyard_core::api::{ClaimRequest, CreateTaskRequest, SendMessageRequest};
use agentyard_server::ServerConfig;
use agentyard_server::http::connections;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::{TestApp, agent, q, register};

async fn spawn(config: ServerConfig) -> TestApp {
    let (backend, _guard) = crate::backends::memory_store().await.expect("the memory store");
    TestApp::spawn_with(backend, config).await
}

/// Timeouts short enough for a test; the cap as configured.
fn short(header_ms: u64, idle_ms: u64, body_ms: u64) -> ServerConfig {
    ServerConfig {
        header_timeout: Duration::from_millis(header_ms),
        idle_timeout: Duration::from_millis(idle_ms),
        body_timeout: Duration::from_millis(body_ms),
        ..ServerConfig::default()
    }
}

const HEALTH: &[u8] = b"GET /health HTTP/1.1\r\nHost: yard\r\n\r\n";

/// A client that sent part of a request's headers and then nothing.
async fn half_open(addr: SocketAddr) -> Option<TcpStream> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    tcp.write_all(b"GET /health HTTP/1.1\r\nHost: yard\r\n").await.ok()?;
    Some(tcp)
}

/// Opens `n` half-open connections, 100 at a time.
async fn half_open_many(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut open = Vec::with_capacity(n);
    while open.len() < n {
        let batch = (n - open.len()).min(100);
        let made = futures::future::join_all((0..batch).map(|_| half_open(addr))).await;
        open.extend(made.into_iter().flatten());
    }
    open
}

/// Reads one answer: its status and body (the server always sends a Content-Length).
async fn read_answer(tcp: &mut TcpStream) -> (u16, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
            let status = head[9..12].parse().expect("a status code");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().expect("a length"))
                .unwrap_or(0);
            let body_start = end + 4;
            while buf.len() < body_start + length {
                let n = tcp.read(&mut chunk).await.expect("read the body");
                assert!(n > 0, "the connection closed inside an answer");
                buf.extend_from_slice(&chunk[..n]);
            }
            return (
                status,
                String::from_utf8_lossy(&buf[body_start..body_start + length]).into_owned(),
            );
        }
        let n = tcp.read(&mut chunk).await.expect("read an answer");
        assert!(n > 0, "the connection closed before an answer");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Asks for /health on a new connection and answers how long the answer took.
async fn health_on_a_new_connection(addr: SocketAddr) -> Duration {
    let started = Instant::now();
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(HEALTH).await.expect("send");
    let (status, _) = read_answer(&mut tcp).await;
    assert_eq!(status, 200);
    started.elapsed()
}

/// How long until the server closes `tcp` (counted from `since`); panics after `limit`.
async fn closed(tcp: &mut TcpStream, since: Instant, limit: Duration) -> Duration {
    let mut chunk = [0u8; 1024];
    let read = tokio::time::timeout(limit, async {
        loop {
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the connection was still open after {limit:?}");
    since.elapsed()
}

/// Lets this process open `n` more descriptors if the hard limit allows; answers how many it
/// may open.
fn descriptors_for(n: u64) -> u64 {
    let _ = connections::raise_descriptor_limit();
    connections::descriptor_limit().map_or(n, |limit| n.min(limit.saturating_sub(256)))
}

/// The issue's attack with every setting at its default: 5,000 half-open connections, and
/// `/health` still answers at once. (Each connection is two descriptors of this process, one
/// per end; with fewer than ~10,300 allowed, fewer are opened.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_half_open_connections_do_not_keep_health_from_answering() {
    let app = spawn(ServerConfig::default()).await;
    let n = descriptors_for(10_000) / 2;
    if n < 5_000 {
        println!("the descriptor limit allows {n} half-open connections, not 5,000");
    }
    let _attack = half_open_many(app.addr, n as usize).await;
    for _ in 0..20 {
        let took = health_on_a_new_connection(app.addr).await;
        assert!(took < Duration::from_secs(2), "/health took {took:?}");
        assert_eq!(app.client.health().await.expect("health").status, "ok");
    }
    app.stop().await;
}

/// At the cap, each new connection closes the one that has waited longest without a request:
/// the oldest half-open ones go, `/health` is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_the_longest_waiting_connection_makes_room() {
    let app = spawn(ServerConfig {
        max_connections: 16,
        ..ServerConfig::default()
    })
    .await;
    let mut attack = half_open_many(app.addr, 300).await;
    for _ in 0..10 {
        let took = health_on_a_new_connection(app.addr).await;
        assert!(took < Duration::from_secs(2), "/health took {took:?}");
    }
    // The header timeout (10 s) has not passed: the first one was closed to make room.
    closed(&mut attack[0], Instant::now(), Duration::from_secs(5)).await;
    app.stop().await;
}

/// Out of descriptors (`EMFILE` on accept): the longest-waiting connection is closed so the
/// new one can be accepted. Needs a process of its own (it lowers the descriptor limit), so it
/// runs only under nextest.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_longest_waiting_connection_makes_room() {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    if std::env::var("NEXTEST_EXECUTION_MODE").as_deref() != Ok("process-per-test") {
        println!("skipped: lowers the descriptor limit of its process, so it runs only under nextest");
        return;
    }
    let app = spawn(ServerConfig::default()).await;
    let _attack = half_open_many(app.addr, 100).await;
    // Let the half-open connections be accepted, then take every descriptor but one (the
    // client's): the server's next accept fails with EMFILE.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let open = std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd").count() as u64;
    let before = getrlimit(Resource::Nofile);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(open + 16),
            maximum: before.maximum,
        },
    )
    .expect("lower the descriptor limit");
    let mut filler = Vec::new();
    while let Ok(f) = std::fs::File::open("/dev/null") {
        filler.push(f);
    }
    assert!(!filler.is_empty(), "no descriptor was left to take");
    filler.pop();
    let mut took = Vec::new();
    for _ in 0..5 {
        took.push(tokio::time::timeout(Duration::from_secs(5), health_on_a_new_connection(app.addr)).await);
    }
    drop(filler);
    setrlimit(Resource::Nofile, before).expect("restore the descriptor limit");
    for t in took {
        let t = t.expect("/health answered with no descriptor to spare");
        assert!(t < Duration::from_secs(2), "/health took {t:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_request_whose_headers_stall_is_closed_at_the_header_timeout() {
    let app = spawn(short(300, 10_000, 10_000)).await;
    // Some headers, then nothing.
    let start = Instant::now();
    let mut slow = half_open(app.addr).await.expect("connect");
    // Nothing at all.
    let mut silent = TcpStream::connect(app.addr).await.expect("connect");
    let slow_took = closed(&mut slow, start, Duration::from_secs(5)).await;
    let silent_took = closed(&mut silent, start, Duration::from_secs(5)).await;
    for took in [slow_took, silent_took] {
        assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    }
    // A kept-alive connection gets the header timeout again from the next request's first byte.
    let mut kept = TcpStream::connect(app.addr).await.expect("connect");
    kept.write_all(HEALTH).await.expect("send");
    assert_eq!(read_answer(&mut kept).await.0, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let start = Instant::now();
    kept.write_all(b"GET /health HTTP/1.1\r\n").await.expect("send");
    let took = closed(&mut kept, start, Duration::from_secs(5)).await;
    assert!(took >= Duration::from_millis(250), "closed after {took:?}");
    assert!(
        took < Duration::from_secs(3),
        "closed after {took:?}, not at the header timeout"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_at_the_idle_timeout() {
    let app = spawn(short(200, 1_500, 10_000)).await;
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    tcp.write_all(HEALTH).await.expect("send");
    assert_eq!(read_answer(&mut tcp).await.0, 200);
    // Waiting longer than the header timeout between requests is fine.
    tokio::time::sleep(Duration::from_millis(600)).await;
    tcp.write_all(HEALTH).await.expect("send");
    assert_eq!(read_answer(&mut tcp).await.0, 200);
    let idle_from = Instant::now();
    let took = closed(&mut tcp, idle_from, Duration::from_secs(10)).await;
    assert!(took >= Duration::from_millis(1_300), "closed after {took:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_body_that_trickles_in_is_cut_at_the_body_timeout() {
    let app = spawn(short(10_000, 10_000, 500)).await;
    let mut tcp = TcpStream::connect(app.addr).await.expect("connect");
    let body =
        br#"{"queue": "trickle", "input": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#;
    let head = format!(
        "POST /v1/tasks HTTP/1.1\r\nHost: yard\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    tcp.write_all(head.as_bytes()).await.expect("send");
    let start = Instant::now();
    // One byte every 100 ms never lets a gap reach the timeout: only a deadline for the whole
    // body stops it.
    let (mut read, mut write) = tcp.into_split();
    let trickle = tokio::spawn(async move {
        for b in body {
            if write.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut answer))
        .await
        .expect("an answer and a close within 5 s");
    let took = start.elapsed();
    trickle.abort();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("/problems/request-timeout"), "{answer}");
    assert!(answer.contains("did not arrive within 500 ms"), "{answer}");
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert_eq!(
        app.client
            .list_tasks(None, None, None, None)
            .await
            .map(|p| p.items.len())
            .ok(),
        Some(0)
    );
    app.stop().await;
}

/// Long polls and event streams serve one request for as long as they last: no timeout of a
/// waiting connection applies, however short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_and_an_event_stream_outlive_every_timeout() {
    let app = spawn(short(200, 200, 200)).await;
    register(&app, "listener").await;
    let mut stream = app.client.inbox_stream(&agent("listener"), None).await.expect("stream");

    let client = app.client.clone();
    let claim = tokio::spawn(async move {
        let mut req = ClaimRequest::new(agent("poller"));
        req.wait_ms = Some(5_000);
        client.claim(&q("later"), &req).await
    });
    let empty = {
        let mut req = ClaimRequest::new(agent("patient"));
        req.wait_ms = Some(1_000);
        let started = Instant::now();
        let res = app.client.claim(&q("never"), &req).await.expect("an empty claim");
        (res.tasks.len(), started.elapsed())
    };
    assert_eq!(empty.0, 0);
    assert!(empty.1 >= Duration::from_millis(900), "answered after {:?}", empty.1);

    // Well past every timeout, both are still there.
    let created = app
        .client
        .create_task(&CreateTaskRequest::new(q("later"), json!("late")))
        .await
        .expect("create");
    let claimed = claim.await.expect("claim task").expect("the long poll");
    assert_eq!(claimed.tasks.first().map(|t| t.id), Some(created.id));

    app.client
        .send_message(&SendMessageRequest::to_agent(agent("listener"), json!("still here")))
        .await
        .expect("send");
    let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("an event in time")
        .expect("the stream")
        .expect("the stream is open");
    assert_eq!(message.body, Value::from("still here"));
    app.stop().await;
}

/// When every connection is serving a request, a new one waits until one is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_connection_serves_a_request_new_ones_wait_for_one() {
    let app = spawn(ServerConfig {
        max_connections: 4,
        ..ServerConfig::default()
    })
    .await;
    let polls: Vec<_> = (0..4)
        .map(|i| {
            // A client each: one connection each.
            let client = agentyard_client::Client::new(format!("http://{}", app.addr));
            tokio::spawn(async move {
                let mut req = ClaimRequest::new(agent(&format!("poller-{i}")));
                req.wait_ms = Some(1_500);
                client.claim(&q("empty"), &req).await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let took = health_on_a_new_connection(app.addr).await;
    assert!(
        took >= Duration::from_millis(700),
        "/health answered after {took:?} with every slot taken"
    );
    for poll in polls {
        assert!(poll.await.expect("poll task").expect("the long poll").tasks.is_empty());
    }
    app.stop().await;
}
