//! The `agent`, `msg` and `limit` commands against a real `agentyard serve` on a fresh SQLite
//! file: what a person types, with `--json` output checked.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

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

fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_agentyard"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .arg("--store")
        .arg(format!("sqlite://{}", dir.path().join("cli.db").display()))
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

/// Runs a command against the server; returns its stdout, failing on a non-zero exit.
fn run(server: &Server, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_agentyard"))
        .args(args)
        .env("AGENTYARD_URL", &server.url)
        .env_remove("AGENTYARD_NAMESPACE")
        .output()
        .expect("run agentyard");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "agentyard {args:?} failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn json(server: &Server, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = run(server, &all);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {text}"))
}

#[test]
fn agents_messages_and_limits_from_the_command_line() {
    let server = start();
    let alice = json(
        &server,
        &["agent", "register", "alice", "--capability", "rust,gpu", "--slots", "2"],
    );
    assert_eq!(
        (alice["status"].as_str(), alice["slots"].as_u64()),
        (Some("active"), Some(2))
    );
    run(&server, &["agent", "register", "bob"]);
    run(&server, &["msg", "subscribe", "-a", "bob", "news"]);

    let sent = json(
        &server,
        &[
            "msg",
            "send",
            "--to",
            "alice",
            "--from",
            "bob",
            "--correlation-id",
            "c-1",
            r#"{"q": "ping?"}"#,
        ],
    );
    assert_eq!(sent["body"]["q"], "ping?");
    run(&server, &["msg", "send", "--topic", "news", "hello news"]);
    run(&server, &["msg", "send", "--broadcast", "42"]);

    // alice reads once without acknowledging: the messages stay.
    let inbox = json(&server, &["msg", "recv", "-a", "alice", "--wait-ms", "100"]);
    let bodies: Vec<&Value> = inbox["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["body"])
        .collect();
    assert_eq!(bodies, [&serde_json::json!({"q": "ping?"}), &serde_json::json!(42)]);
    let again = json(&server, &["msg", "recv", "-a", "alice", "--wait-ms", "100", "--ack"]);
    assert_eq!(again["messages"].as_array().unwrap().len(), 2);
    let empty = json(&server, &["msg", "recv", "-a", "alice", "--wait-ms", "100"]);
    assert!(empty["messages"].as_array().unwrap().is_empty());

    // alice answers bob's question.
    let seq = inbox["messages"][0]["seq"].as_u64().unwrap().to_string();
    let reply = json(&server, &["msg", "reply", "-a", "alice", "--seq", &seq, "pong"]);
    assert_eq!(
        (reply["to"]["agent"].as_str(), reply["correlation_id"].as_str()),
        (Some("bob"), Some("c-1"))
    );
    let bob = json(&server, &["msg", "recv", "-a", "bob", "--wait-ms", "100", "--ack"]);
    let bodies: Vec<Value> = bob["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].clone())
        .collect();
    assert_eq!(
        bodies,
        [
            serde_json::json!("hello news"),
            serde_json::json!(42),
            serde_json::json!("pong")
        ]
    );

    run(&server, &["agent", "drain", "alice"]);
    let agents = json(&server, &["agent", "list"]);
    let view: Vec<(&str, &str)> = agents
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["status"].as_str().unwrap()))
        .collect();
    assert_eq!(view, [("alice", "draining"), ("bob", "active")]);
    let table = run(&server, &["agent", "list"]);
    assert!(
        table.contains("LAST HEARTBEAT") && table.contains("gpu,rust") && table.contains("ago"),
        "{table}"
    );
    let removed = json(&server, &["agent", "remove", "alice"]);
    assert_eq!(removed["released"].as_array().unwrap().len(), 0);

    json(
        &server,
        &["limit", "set", "openai", "--rate-per-minute", "60", "--burst", "5"],
    );
    let limits = json(&server, &["limit", "list"]);
    assert_eq!(limits[0]["key"], "openai");
    assert_eq!(limits[0]["burst"], 5);

    // What a person reads: a rate key says nothing of concurrency, and the reverse.
    let said = run(&server, &["limit", "set", "openai", "--rate-per-minute", "60"]);
    assert_eq!(
        said.trim(),
        r#"tasks with rate_limit_key "openai" start at most 60 a minute (bursts of 1)"#
    );
    let said = run(&server, &["limit", "set", "repo-a", "--max-concurrent", "2"]);
    assert_eq!(
        said.trim(),
        r#"tasks with concurrency_key "repo-a" run at most 2 at once"#
    );
    let said = run(&server, &["limit", "delete", "repo-a"]);
    assert!(said.contains("limits removed"), "{said}");
    let limits = json(&server, &["limit", "list"]);
    assert_eq!(limits.as_array().map(Vec::len), Some(1), "{limits}");
    let out = Command::new(env!("CARGO_BIN_EXE_agentyard"))
        .args(["limit", "delete", "repo-a"])
        .env("AGENTYARD_URL", &server.url)
        .env_remove("AGENTYARD_NAMESPACE")
        .output()
        .expect("run agentyard");
    assert!(!out.status.success(), "deleting a key with no limits fails");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("404"), "{stderr}");
}

#[test]
fn an_unreachable_server_is_said_once_with_a_hint() {
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_agentyard"))
        .args(["limit", "list"])
        .env("AGENTYARD_URL", format!("http://127.0.0.1:{port}"))
        .env_remove("AGENTYARD_NAMESPACE")
        .output()
        .expect("run agentyard");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("cannot reach the agentyard server").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("hint: is `agentyard serve` running there?"), "{stderr}");
}

#[test]
fn bench_only_runs_the_named_workloads() {
    let server = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("drain.json");
    let url = server.url.clone();
    run(
        &server,
        &[
            "bench",
            "drain",
            "--url",
            &url,
            "--smoke",
            "--n",
            "50",
            "--only",
            "complete-in-claim",
            "--json",
            out.to_str().expect("utf-8 path"),
        ],
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&out).expect("the JSON report")).expect("JSON");
    let names: Vec<&str> = report["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["name"].as_str().expect("a name"))
        .collect();
    assert_eq!(
        names,
        [
            "drain claim1 complete-in-claim x10",
            "drain claim10 complete-in-claim x10"
        ]
    );
    assert_eq!(report["settings"]["only"], "complete-in-claim");
    for row in report["results"].as_array().expect("results") {
        // The bench's own CPU is always known; a server it did not start has no CPU or memory
        // figures, so they are left out.
        assert!(
            row["bench_cpu_us_per_task"].as_f64().is_some_and(|us| us >= 0.0),
            "{row}"
        );
        assert!(row.get("server_cpu_us_per_task").is_none(), "{row}");
        assert!(row.get("server_peak_rss_mb").is_none(), "{row}");
    }

    for (args, says) in [
        (
            ["bench", "enqueue", "--only", "no such workload"],
            "--only \"no such workload\" matches no workload of the enqueue suite; its workloads are: \
             enqueue one-by-one x1, enqueue one-by-one x10, enqueue batch100 x1",
        ),
        (
            ["bench", "latency", "--only", "pick-up"],
            "--only picks workloads of the drain or enqueue suite; the latency suite runs whole",
        ),
    ] {
        let refused = Command::new(env!("CARGO_BIN_EXE_agentyard"))
            .args(args)
            .args(["--url", &url, "--smoke"])
            .output()
            .expect("run agentyard");
        assert!(!refused.status.success());
        let stdout = String::from_utf8_lossy(&refused.stdout);
        assert!(stdout.is_empty(), "refused before running anything: {stdout}");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// A server the bench starts itself is measured too: its peak memory and its CPU per task.
#[test]
fn bench_reports_the_cost_of_a_self_started_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("drain.json");
    let ran = Command::new(env!("CARGO_BIN_EXE_agentyard"))
        .args(["bench", "drain", "--store", "memory", "--smoke", "--n", "200"])
        .args([
            "--only",
            "claim1 complete-in-claim",
            "--json",
            out.to_str().expect("utf-8 path"),
        ])
        .output()
        .expect("run agentyard");
    assert!(ran.status.success(), "{}", String::from_utf8_lossy(&ran.stderr));
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        stdout.contains("CPU µs SERVER") && stdout.contains("CPU µs: CPU time"),
        "{stdout}"
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&out).expect("the JSON report")).expect("JSON");
    let row = &report["results"][0];
    assert_eq!(row["name"], "drain claim1 complete-in-claim x10");
    for field in ["server_cpu_us_per_task", "bench_cpu_us_per_task", "server_peak_rss_mb"] {
        assert!(row[field].as_f64().is_some_and(|v| v >= 0.0), "{field}: {row}");
    }
    assert!(row["server_peak_rss_mb"].as_f64().is_some_and(|mb| mb > 1.0), "{row}");
}

/// Every command's arguments are well formed: a debug build checks them (clap's debug asserts)
/// only when the command is parsed, so a clash — such as a command's own `--token` beside the
/// global API `--token` — would otherwise show up only when a person types that command.
#[test]
fn every_command_builds_its_help() {
    fn subcommands(path: &[String]) -> Vec<String> {
        let out = Command::new(env!("CARGO_BIN_EXE_agentyard"))
            .args(path)
            .arg("--help")
            .env("RUST_BACKTRACE", "0")
            .output()
            .expect("run agentyard --help");
        assert!(
            out.status.success(),
            "agentyard {} --help failed: {}",
            path.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        help.lines()
            .skip_while(|l| !l.starts_with("Commands:"))
            .skip(1)
            .take_while(|l| !l.trim().is_empty())
            .filter_map(|l| l.split_whitespace().next())
            .filter(|c| *c != "help")
            .map(str::to_owned)
            .collect()
    }
    let mut pending = vec![Vec::<String>::new()];
    let mut checked = 0;
    while let Some(path) = pending.pop() {
        for sub in subcommands(&path) {
            let mut next = path.clone();
            next.push(sub);
            pending.push(next);
        }
        checked += 1;
    }
    assert!(checked > 30, "only {checked} commands found");
}
