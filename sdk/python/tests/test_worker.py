"""The Worker and the AsyncWorker against the real server: concurrency, "done, next",
heartbeats, retryable and fatal failures, lost leases, graceful shutdown by signal."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from _support import Server, unique, wait_until
from agentyard_client import (
    AgentStatus,
    AsyncClient,
    AsyncJob,
    AsyncWorker,
    Client,
    FatalError,
    Job,
    RetryableError,
    TaskStatus,
    ValidationError,
    Worker,
)

StartServer = Callable[..., Server]
HERE = Path(__file__).resolve().parent


def settled(client: Client, ids: list[str]) -> Callable[[], bool]:
    return lambda: all(client.get_task(i).status.is_terminal for i in ids)


@pytest.fixture
def running_worker() -> Iterator[Callable[[Worker], Worker]]:
    """Starts workers in the background; stops them (gracefully) after the test."""
    started: list[Worker] = []

    def start(w: Worker) -> Worker:
        w.start()
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()
    for w in started:
        assert w.join(30), f"worker {w.name} did not stop"


def test_worker_runs_up_to_concurrency_handlers(
    client: Client, running_worker: Callable[[Worker], Worker]
) -> None:
    q = unique()
    ids = [client.create_task(q, {"n": i}).id for i in range(9)]
    lock = threading.Lock()
    now = peak = 0
    worker = Worker(client, unique("w"), concurrency=3, poll_wait_ms=1000)

    @worker.handler(q)
    def square(job: Job) -> dict[str, int]:
        nonlocal now, peak
        with lock:
            now += 1
            peak = max(peak, now)
        time.sleep(0.2)
        with lock:
            now -= 1
        return {"square": job.input["n"] ** 2, "attempt": job.attempt}

    running_worker(worker)
    wait_until(settled(client, ids), timeout=20)
    results = [client.get_task(i) for i in ids]
    assert all(t.status == TaskStatus.SUCCEEDED for t in results)
    assert [t.result["square"] for t in results] == [i * i for i in range(9)]
    assert peak == 3
    agent = client.get_agent(worker.name)
    assert agent.slots == 3 and agent.status == AgentStatus.ACTIVE
    assert worker.stats["succeeded"] == 9


def test_done_next_completes_inside_the_next_claim(server: Server, namespace: str) -> None:
    requests: list[tuple[str, str, bytes]] = []

    def record(request: httpx.Request) -> None:
        requests.append((request.method, request.url.path, request.content))

    http = httpx.Client(base_url=server.url, event_hooks={"request": [record]})
    client = Client(server.url, namespace=namespace, http_client=http)
    q = unique()
    ids = [client.create_task(q, i).id for i in range(4)]
    worker = Worker(client, unique("w"), concurrency=1, poll_wait_ms=500)
    worker.add_handler(q, lambda job: job.input * 10)
    worker.start()
    try:
        wait_until(settled(client, ids), timeout=20)
    finally:
        worker.stop()
        assert worker.join(10)
    assert [client.get_task(i).result for i in ids] == [0, 10, 20, 30]
    http.close()
    direct = [r for r in requests if r[1].endswith("/complete")]
    assert direct == [], "every completion should have gone inside a claim"
    claims = [json.loads(r[2]) for r in requests if r[1].endswith("/claim")]
    carried = [c["complete"][0]["id"] for c in claims if "complete" in c]
    assert carried == ids


def test_heartbeats_keep_a_short_lease_alive(
    client: Client, running_worker: Callable[[Worker], Worker]
) -> None:
    q = unique()
    t = client.create_task(q)
    expiries: list[Any] = []
    worker = Worker(client, unique("w"), lease_ms=300, poll_wait_ms=500)

    @worker.handler(q)
    def slow(job: Job) -> str:
        for _ in range(4):
            time.sleep(0.5)
            lease = client.get_task(job.id).lease
            expiries.append(None if lease is None else lease.expires_at)
        return "done"

    running_worker(worker)
    wait_until(settled(client, [t.id]), timeout=20)
    final = client.get_task(t.id)
    assert final.status == TaskStatus.SUCCEEDED and final.attempt == 1
    assert None not in expiries and expiries == sorted(expiries) and len(set(expiries)) == 4


def test_without_heartbeats_the_same_lease_runs_out(
    client: Client, running_worker: Callable[[Worker], Worker]
) -> None:
    """The control of the test above: heartbeats far apart lose the 300 ms lease."""
    q = unique()
    t = client.create_task(q)
    worker = Worker(client, unique("w"), lease_ms=300, heartbeat_interval=60, poll_wait_ms=500)

    @worker.handler(q)
    def slow_first_time(job: Job) -> str:
        if job.attempt == 1:
            time.sleep(2.0)
        return f"attempt {job.attempt}"

    running_worker(worker)
    wait_until(settled(client, [t.id]), timeout=20)
    final = client.get_task(t.id)
    assert final.status == TaskStatus.SUCCEEDED and final.attempt >= 2
    assert final.result == f"attempt {final.attempt}"


@pytest.mark.parametrize("agent_beats", [True, False])
def test_agent_heartbeats_keep_a_busy_agent_alive(
    start_server: StartServer, agent_beats: bool
) -> None:
    srv = start_server("--agent-timeout-ms", "1000")
    client = Client(srv.url)
    q = unique()
    t = client.create_task(q)
    worker = Worker(
        client,
        "busy",
        lease_ms=30_000,
        poll_wait_ms=500,
        agent_heartbeat_interval=0.2 if agent_beats else 60,
    )

    @worker.handler(q)
    def slow_first_time(job: Job) -> int:
        if job.attempt == 1:
            time.sleep(3.0)
        return job.attempt

    worker.start()
    try:
        wait_until(settled(client, [t.id]), timeout=20)
    finally:
        worker.stop()
        assert worker.join(10)
    final = client.get_task(t.id)
    assert final.status == TaskStatus.SUCCEEDED
    if agent_beats:
        assert final.attempt == 1
    else:
        # silent for 1 s while its only slot was busy: gone, its lease released
        assert final.attempt == 2 and final.result == 2


def test_retryable_failures_retry(client: Client, running_worker: Callable[[Worker], Worker]) -> None:
    q = unique()
    flaky = client.create_task(q, "flaky", backoff={"initial_ms": 100, "jitter": 0})
    hopeless = client.create_task(q, "hopeless", max_attempts=2, backoff={"initial_ms": 100, "jitter": 0})
    seen: list[tuple[Any, int]] = []
    worker = Worker(client, unique("w"), poll_wait_ms=300)

    @worker.handler(q)
    def work(job: Job) -> str:
        seen.append((job.input, job.attempt))
        if job.input == "hopeless":
            raise ValueError("the upstream is down")
        if job.attempt == 1:
            raise RetryableError("rate limited upstream", kind="rate_limited")
        return "ok"

    running_worker(worker)
    wait_until(settled(client, [flaky.id, hopeless.id]), timeout=20)
    ok = client.get_task(flaky)
    assert ok.status == TaskStatus.SUCCEEDED and ok.attempt == 2 and ok.result == "ok"
    dead = client.get_task(hopeless)
    assert dead.status == TaskStatus.FAILED and dead.attempt == 2
    assert dead.error is not None and dead.error.kind == "ValueError" and dead.error.retryable
    assert "the upstream is down" in dead.error.message
    assert sorted(seen, key=str) == sorted(
        [("flaky", 1), ("flaky", 2), ("hopeless", 1), ("hopeless", 2)], key=str
    )


def test_fatal_failures_dead_letter_at_once(
    client: Client, running_worker: Callable[[Worker], Worker]
) -> None:
    q = unique()
    bad = client.create_task(q, {"to": None})
    weird = client.create_task(q, "return something that is not JSON")
    worker = Worker(client, unique("w"), poll_wait_ms=300)

    @worker.handler(q)
    def work(job: Job) -> Any:
        if isinstance(job.input, dict):
            raise FatalError("no recipient", kind="invalid_input")
        return object()

    running_worker(worker)
    wait_until(settled(client, [bad.id, weird.id]), timeout=20)
    for task, kind in ((bad, "invalid_input"), (weird, "invalid_result")):
        t = client.get_task(task)
        assert t.status == TaskStatus.FAILED and t.attempt == 1 and t.max_attempts == 3
        assert t.error is not None and t.error.kind == kind and t.error.retryable is False
    assert [t.id for t in client.iter_tasks(queue=q, status="failed")] == [bad.id, weird.id]


def test_progress_artifacts_and_async_handlers(
    client: Client, running_worker: Callable[[Worker], Worker]
) -> None:
    q1, q2 = unique(), unique()
    t1 = client.create_task(q1, "report")
    t2 = client.create_task(q2, 21)
    seen_progress: list[Any] = []
    worker = Worker(client, unique("w"), poll_wait_ms=300, concurrency=2)

    @worker.handler(q1)
    def report(job: Job) -> str:
        job.progress(50, "half way")
        seen_progress.append(client.get_task(job.id).progress)
        job.add_artifact("report.md", content="# Report", media_type="text/markdown")
        job.add_artifact("raw", uri="s3://bucket/raw.json")
        return "written"

    @worker.handler(q2)
    async def double(job: Job) -> int:
        await asyncio.sleep(0.05)
        return int(job.input) * 2

    running_worker(worker)
    wait_until(settled(client, [t1.id, t2.id]), timeout=20)
    done = client.get_task(t1)
    assert done.result == "written"
    assert [(a.name, a.content, a.uri) for a in done.artifacts] == [
        ("report.md", "# Report", None),
        ("raw", None, "s3://bucket/raw.json"),
    ]
    assert seen_progress[0].percent == 50 and seen_progress[0].message == "half way"
    assert client.get_task(t2).result == 42


def test_a_cancelled_task_shows_its_lease_lost(
    client: Client, running_worker: Callable[[Worker], Worker]
) -> None:
    q = unique()
    t = client.create_task(q)
    started = threading.Event()
    noticed: list[bool] = []
    worker = Worker(client, unique("w"), lease_ms=300, poll_wait_ms=300)

    @worker.handler(q)
    def long(job: Job) -> str:
        started.set()
        deadline = time.monotonic() + 10
        while not job.lease_lost and time.monotonic() < deadline:
            time.sleep(0.02)
        noticed.append(job.lease_lost)
        return "ignored"

    running_worker(worker)
    assert started.wait(10)
    client.cancel_task(t)
    wait_until(lambda: bool(noticed), timeout=10)
    assert noticed == [True]
    final = client.get_task(t)
    assert final.status == TaskStatus.CANCELLED and final.result is None


def test_an_invalid_queue_stops_the_worker_with_the_error(client: Client) -> None:
    worker = Worker(client, unique("w"), poll_wait_ms=100)
    worker.add_handler("Not A Queue", lambda job: None)
    with pytest.raises(ValidationError) as e:
        worker.run(handle_signals=False)
    assert e.value.field == "queue"


# -- graceful shutdown in a real process ---------------------------------------------------


def start_worker_process(server: Server, namespace: str, queue: str, sleep_s: float, grace_s: float) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(HERE / "worker_process.py"), server.url, namespace, queue, str(sleep_s), str(grace_s)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def read_line(proc: subprocess.Popen[str], prefix: str, timeout: float = 15) -> str:
    assert proc.stdout is not None
    result: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith(prefix):
                result.append(line.strip())
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    assert result, f"no {prefix!r} line from the worker; stderr: {proc.stderr.read() if proc.stderr and proc.poll() is not None else '(running)'}"
    return result[0]


def test_sigterm_finishes_the_running_task_and_claims_nothing_more(
    client: Client, server: Server, namespace: str
) -> None:
    q = unique()
    first = client.create_task(q, "first")
    second = client.create_task(q, "second")
    proc = start_worker_process(server, namespace, q, sleep_s=1.5, grace_s=20)
    try:
        assert read_line(proc, "running ") == f"running {first.id}"
        proc.send_signal(signal.SIGTERM)
        start = time.monotonic()
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert took < 6, f"shutdown took {took:.1f}s"
    done = client.get_task(first)
    assert done.status == TaskStatus.SUCCEEDED and done.result == {"done": first.id}
    untouched = client.get_task(second)
    assert untouched.status == TaskStatus.QUEUED and untouched.attempt == 0
    assert client.get_agent("proc-worker").status == AgentStatus.DRAINING
    assert "SIGTERM received" in err


@pytest.mark.parametrize("how", ["grace runs out (SIGINT)", "second SIGTERM"])
def test_shutdown_releases_what_does_not_finish(
    client: Client, server: Server, namespace: str, how: str
) -> None:
    q = unique()
    t = client.create_task(q, "long", backoff={"initial_ms": 100, "jitter": 0})
    grace = 0.5 if how.startswith("grace") else 60
    proc = start_worker_process(server, namespace, q, sleep_s=60, grace_s=grace)
    try:
        read_line(proc, "running ")
        start = time.monotonic()
        if how.startswith("grace"):
            proc.send_signal(signal.SIGINT)
        else:
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - start
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert took < 8, f"shutdown took {took:.1f}s"
    released = client.get_task(t)
    assert released.status == TaskStatus.QUEUED
    assert released.attempt == 0 and released.lease is None, "given back untried"
    # another worker gets it, on its first attempt
    again = client.claim(q, "other", wait_ms=3000).tasks
    assert [x.id for x in again] == [t.id] and again[0].attempt == 1


# -- the asyncio worker --------------------------------------------------------------------


def test_async_worker(server: Server, namespace: str) -> None:
    q = unique()
    sync_client = Client(server.url, namespace=namespace)
    ok = [sync_client.create_task(q, {"n": i}).id for i in range(6)]
    fatal = sync_client.create_task(q, {"fatal": True}).id
    flaky = sync_client.create_task(q, {"flaky": True}, backoff={"initial_ms": 100, "jitter": 0}).id
    endless = sync_client.create_task(q, {"endless": True}).id
    state = {"now": 0, "peak": 0}

    async def main() -> None:
        async with AsyncClient(server.url, namespace=namespace) as yard:
            worker = AsyncWorker(yard, unique("aw"), concurrency=3, lease_ms=300,
                                 poll_wait_ms=300, shutdown_grace=0.3)

            @worker.handler(q)
            async def handle(job: AsyncJob) -> Any:
                data = job.input
                if data.get("fatal"):
                    raise FatalError("never", kind="bad")
                if data.get("flaky") and job.attempt == 1:
                    raise RuntimeError("once")
                if data.get("endless"):
                    await job.progress(1, "forever")
                    await asyncio.sleep(3600)
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
                await asyncio.sleep(0.6)  # longer than the lease: heartbeats keep it
                state["now"] -= 1
                return {"n": data.get("n"), "attempt": job.attempt}

            async def stop_when_settled() -> None:
                ids = ok + [fatal, flaky]
                while True:
                    tasks = [await yard.get_task(i) for i in ids]
                    if all(t.status.is_terminal for t in tasks):
                        break
                    await asyncio.sleep(0.05)
                while (await yard.get_task(endless)).status != TaskStatus.RUNNING:
                    await asyncio.sleep(0.05)
                worker.stop()

            stopper = asyncio.create_task(stop_when_settled())
            await asyncio.wait_for(worker.run(handle_signals=False), 30)
            await stopper

    asyncio.run(main())
    results = [sync_client.get_task(i) for i in ok]
    assert all(t.status == TaskStatus.SUCCEEDED and t.attempt == 1 for t in results)
    assert [t.result["n"] for t in results] == list(range(6))
    assert 2 <= state["peak"] <= 3
    f = sync_client.get_task(fatal)
    assert f.status == TaskStatus.FAILED and f.error is not None and f.error.kind == "bad"
    r = sync_client.get_task(flaky)
    assert r.status == TaskStatus.SUCCEEDED and r.attempt == 2
    e = sync_client.get_task(endless)
    assert e.status == TaskStatus.QUEUED and e.attempt == 0, "given back untried"
    sync_client.close()


def test_async_worker_runs_plain_functions_in_threads(server: Server, namespace: str) -> None:
    q = unique()
    sync_client = Client(server.url, namespace=namespace)
    t = sync_client.create_task(q, 5)
    threads: list[str] = []

    async def main() -> None:
        async with AsyncClient(server.url, namespace=namespace) as yard:
            worker = AsyncWorker(yard, unique("aw"), poll_wait_ms=200)

            @worker.handler(q)
            def blocking(job: AsyncJob) -> int:
                threads.append(threading.current_thread().name)
                time.sleep(0.1)
                return int(job.input) + 1

            async def stop_when_done() -> None:
                while not (await yard.get_task(t.id)).status.is_terminal:
                    await asyncio.sleep(0.05)
                worker.stop()

            stopper = asyncio.create_task(stop_when_done())
            await asyncio.wait_for(worker.run(handle_signals=False), 20)
            await stopper

    asyncio.run(main())
    assert sync_client.get_task(t).result == 6
    assert threads and threads[0] != "MainThread"
    sync_client.close()
