"""examples/python runs: the fleet (worker.py) and the producer, briefly, against a real server,
so the examples cannot rot."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from _support import REPO_ROOT, Server, agentyard_bin, wait_until
from agentyard_client import AgentStatus, Client, TaskStatus

EXAMPLES = REPO_ROOT / "examples" / "python"


def test_producer_and_fleet(server: Server, namespace: str) -> None:
    env = dict(os.environ, AGENTYARD_URL=server.url, AGENTYARD_NAMESPACE=namespace, PYTHONUNBUFFERED="1")
    fleet = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "worker.py"), "--grace", "5"],
        cwd=EXAMPLES,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    client = Client(server.url, namespace=namespace)
    try:
        wait_until(
            lambda: {a.name for a in client.list_agents()} >= {"scout", "writer", "polyglot"},
            timeout=20,
        )
        producer = subprocess.run(
            [sys.executable, str(EXAMPLES / "producer.py"), "--pages", "4", "--timeout", "60"],
            cwd=EXAMPLES,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert producer.returncode == 0, producer.stdout + producer.stderr
        reports = [line for line in producer.stdout.splitlines() if line.startswith("report ")]
        assert len(reports) == 4 and all("from polyglot: FR: " in r for r in reports), producer.stdout
        assert "all 4 reports in" in producer.stdout

        pages = list(client.iter_tasks(queue="pages"))
        texts = list(client.iter_tasks(queue="texts"))
        assert len(pages) == 4 and len(texts) == 8
        assert all(t.status == TaskStatus.SUCCEEDED for t in pages + texts)
        assert {t.result["by"] for t in pages} == {"scout"}
        translations = [t for t in texts if t.kind == "translate"]
        summaries = [t for t in texts if t.kind == "summarize"]
        assert len(translations) == 4 and {t.result["by"] for t in translations} == {"polyglot"}
        assert {t.result["by"] for t in summaries} <= {"writer", "polyglot"}
        assert {t.correlation_id for t in texts} == {t.correlation_id for t in pages}
        # every agent has read and acknowledged its messages (the broadcast last) before it stops
        wait_until(
            lambda: all(not client.read_inbox(n).messages for n in ("scout", "writer", "polyglot")),
            timeout=20,
        )
    finally:
        fleet.send_signal(signal.SIGTERM)
        try:
            out, _ = fleet.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            fleet.kill()
            out, _ = fleet.communicate()
    assert fleet.returncode == 0, out
    for name in ("scout", "writer", "polyglot"):
        assert f"{name} got a message from producer: {{'event': 'batch-done'" in out, out
        assert f"worker {name} stopped" in out
    assert "writer got a message from scout" in out and "polyglot got a message from scout" in out
    assert "fleet stopped" in out
    assert all(a.status == AgentStatus.DRAINING for a in client.list_agents() if a.name != "producer")
    client.close()


def rust_worker_bin() -> Path:
    """The Rust example (`cargo build -p agentyard-client --example worker`, which
    scripts/test-python does), beside the server binary."""
    explicit = os.environ.get("AGENTYARD_RUST_WORKER")
    binary = Path(explicit) if explicit else agentyard_bin().parent / "examples" / "worker"
    if not binary.exists():
        pytest.fail(
            f"the Rust example worker is not at {binary}: build it with "
            "`cargo build -p agentyard-client --example worker --locked`",
            pytrace=False,
        )
    return binary


def test_the_rust_scout_takes_pages_and_stops_gracefully(server: Server, namespace: str) -> None:
    env = dict(os.environ, AGENTYARD_URL=server.url, AGENTYARD_NAMESPACE=namespace, RUST_LOG="info")
    env.pop("AGENTYARD_TOKEN", None)
    scout = subprocess.Popen(
        [str(rust_worker_bin())], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    client = Client(server.url, namespace=namespace)
    try:
        pages = [
            client.create_task("pages", {"url": f"https://example.com/{i}"}, required_capabilities=["web"])
            for i in range(3)
        ]
        wait_until(
            lambda: all(client.get_task(p.id).status == TaskStatus.SUCCEEDED for p in pages), timeout=30
        )
        assert {client.get_task(p.id).result["by"] for p in pages} == {"rust-scout"}
        texts = list(client.iter_tasks(queue="texts"))
        assert len(texts) == 3 and {t.kind for t in texts} == {"summarize"}
    finally:
        scout.send_signal(signal.SIGTERM)
        try:
            out, _ = scout.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            scout.kill()
            out, _ = scout.communicate()
    assert scout.returncode == 0, out
    assert "worker rust-scout stopped: 3 completed, 0 failed, 0 given back" in out, out
    assert client.get_agent("rust-scout").status == AgentStatus.DRAINING
    client.close()
