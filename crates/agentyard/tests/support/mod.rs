//! The multi-node harness: real `agentyard serve` processes on loopback ports, sharing one
//! store, each with the typed client pointed at it. A node's log goes to the test's stderr with
//! its name in front; the harness counts the lines saying the node's PostgreSQL listener is
//! (re)connected, so a test can wait until cross-node wake-ups can arrive.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use agentyard_client::Client;
use agentyard_core::{QueueName, Task};

/// The log line of `agentyard_store_postgres::notify` saying the listener is connected.
const LISTENING: &str = "listening for other nodes' changes";

/// One `agentyard serve` process. Dropping it kills it (SIGKILL).
pub struct Node {
    pub name: String,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    pub client: Client,
    child: Child,
    /// Kept open: the server may write to stdout again.
    _stdout: BufReader<ChildStdout>,
    listens: Arc<AtomicUsize>,
    killed: bool,
}

impl Node {
    /// Starts `agentyard serve --store STORE --listen 127.0.0.1:0 EXTRA…` and waits for its
    /// `listening on http://ADDR` line.
    pub fn start(name: &str, store: &str, extra: &[&str]) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_agentyard"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
            .args(extra)
            .args(["--store", store])
            .env("AGENTYARD_LOG", "warn,agentyard_store_postgres=info")
            .env_remove("AGENTYARD_CONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start agentyard serve");
        let listens = Arc::new(AtomicUsize::new(0));
        let stderr = child.stderr.take().expect("stderr");
        {
            let (name, listens) = (name.to_owned(), listens.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { return };
                    if line.contains(LISTENING) {
                        listens.fetch_add(1, Ordering::SeqCst);
                    }
                    eprintln!("[{name}] {line}");
                }
            });
        }
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read the listening line");
        let Some(addr) = line.trim().strip_prefix("listening on http://") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name}: unexpected first line {line:?} (did the node fail to start? see its log above)");
        };
        let url = format!("http://{addr}");
        Node {
            name: name.to_owned(),
            client: Client::new(url.clone()),
            url,
            child,
            _stdout: stdout,
            listens,
            killed: false,
        }
    }

    /// `n` nodes on `store`, started at the same moment (their migrations take turns), named
    /// `node-a`, `node-b`, …
    pub fn start_many(store: &str, n: usize, extra: &[&str]) -> Vec<Node> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .map(|i| {
                    let name = format!("node-{}", char::from(b'a' + i as u8));
                    s.spawn(move || Node::start(&name, store, extra))
                })
                .collect();
            handles.into_iter().map(|h| h.join().expect("a node started")).collect()
        })
    }

    /// How many times this node's PostgreSQL listener connected so far.
    pub fn listens(&self) -> usize {
        self.listens.load(Ordering::SeqCst)
    }

    /// Waits until the node's listener connected `at_least` times.
    pub async fn wait_listening(&self, at_least: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.listens() < at_least {
            assert!(
                Instant::now() < deadline,
                "{}: its PostgreSQL listener connected {} times, not {at_least}, within {within:?}",
                self.name,
                self.listens()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, and reap it.
    pub fn kill(&mut self) {
        if !self.killed {
            self.child.kill().expect("SIGKILL the node");
            self.child.wait().expect("reap the node");
            self.killed = true;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if !self.killed {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Every node's listener connected: from now on a change made through one wakes the others.
pub async fn wait_all_listening(nodes: &[Node]) {
    for node in nodes {
        node.wait_listening(1, Duration::from_secs(15)).await;
    }
}

/// Every task of `queue`, through `client`, page by page.
pub async fn list_all(client: &Client, queue: &QueueName) -> Vec<Task> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = client
            .list_tasks(Some(queue), None, Some(1_000), cursor.as_deref())
            .await
            .expect("list tasks");
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}
