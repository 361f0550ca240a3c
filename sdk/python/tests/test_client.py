"""Every operation of the synchronous Client against the real server."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Callable

import pytest

from _support import Server, unique
from agentyard_client import (
    AgentStatus,
    Backoff,
    Client,
    Completion,
    InvalidTransition,
    LeaseConflict,
    MergeConflict,
    MethodNotAllowed,
    NewArtifact,
    NewTask,
    NotFound,
    NoSuchRoute,
    PreconditionFailed,
    PreconditionRequired,
    Progress,
    Task,
    TaskStatus,
    ValidationError,
    VersionConflict,
)


def later(delay: float, fn: Callable[[], object]) -> threading.Thread:
    """Runs ``fn`` after ``delay`` seconds in a thread; join it before the test ends."""
    t = threading.Timer(delay, fn)
    t.start()
    return t


def claim_one(client: Client, queue: str, agent: str = "w1", **kw: object) -> Task:
    tasks = client.claim(queue, agent, wait_ms=2000, **kw).tasks  # type: ignore[arg-type]
    assert len(tasks) == 1, tasks
    return tasks[0]


# -- health ------------------------------------------------------------------------------------


def test_health_probes_and_openapi(client: Client) -> None:
    assert client.health().status in ("ok", "degraded")
    assert client.live().status == "ok"
    assert client.ready().status == "ready"
    doc = client.openapi()
    assert "/v1/tasks" in doc["paths"]
    assert "/v1/queues/{queue}/claim" in doc["paths"]


# -- tasks -------------------------------------------------------------------------------------


def test_create_task_with_every_field_and_read_it_back(client: Client) -> None:
    q = unique()
    run_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    t = client.create_task(
        q,
        {"to": "ops@example.com"},
        kind="email",
        title="Send the digest",
        priority=5,
        required_capabilities=["smtp", "html"],
        max_attempts=4,
        backoff=Backoff(initial_ms=100, max_ms=1000, multiplier=3.0, jitter=0.0),
        run_at=run_at,
        timeout_ms=60_000,
        idempotency_key=unique("key"),
        concurrency_key="repo:acme/web",
        rate_limit_key="openai",
        correlation_id="c-1",
        context={"plan": {"step": 1}},
    )
    assert t.status == TaskStatus.SCHEDULED and t.status == "scheduled"
    assert t.queue == q and t.kind == "email" and t.title == "Send the digest"
    assert t.priority == 5 and t.max_attempts == 4 and t.attempt == 0 and t.version == 1
    assert t.required_capabilities == ["html", "smtp"]
    assert t.backoff == Backoff(100, 1000, 3.0, 0.0)
    assert abs((t.run_at - run_at).total_seconds()) < 0.01
    assert t.timeout_ms == 60_000 and t.concurrency_key == "repo:acme/web"
    assert t.rate_limit_key == "openai" and t.correlation_id == "c-1"
    assert t.context == {"plan": {"step": 1}}
    assert t.namespace == client.namespace
    assert t.lease is None and t.finished_at is None
    again = client.get_task(t.id)
    assert again == t


def test_idempotent_create_returns_the_original(client: Client) -> None:
    q, key = unique(), unique("key")
    first = client.create_task_outcome(q, {"n": 1}, idempotency_key=key)
    second = client.create_task_outcome(q, {"n": 2}, idempotency_key=key)
    assert first.created and not second.created
    assert second.value.id == first.value.id and second.value.input == {"n": 1}
    assert client.create_task(q, {"n": 3}, idempotency_key=key).id == first.value.id


def test_batch_create_is_all_or_nothing(client: Client) -> None:
    q, key = unique(), unique("key")
    client.create_task(q, idempotency_key=key)
    batch = client.create_tasks(
        [NewTask(q, {"i": 1}), {"queue": q, "input": {"i": 2}}, NewTask(q, idempotency_key=key)]
    )
    assert batch.created == 2 and len(batch.tasks) == 3
    assert [t.input for t in batch.tasks[:2]] == [{"i": 1}, {"i": 2}]
    with pytest.raises(ValidationError) as e:
        client.create_tasks([NewTask(q), NewTask("Bad Queue")])
    assert e.value.field == "tasks[1].queue"
    assert client.queue_stats(q).counts.queued == 3


def test_missing_and_malformed_ids(client: Client) -> None:
    with pytest.raises(NotFound) as e:
        client.get_task("01KA9Q3Z8006AB4RTCGKRYT3D2")
    assert e.value.status == 404 and e.value.type == "/problems/not-found"
    with pytest.raises(ValidationError) as v:
        client.get_task("not-an-id")
    assert v.value.field == "id" and v.value.status == 422


def test_list_pages_and_the_iterator_walks_them_all(client: Client) -> None:
    q, other = unique(), unique()
    created = [client.create_task(q, {"i": i}).id for i in range(7)]
    client.create_task(other)
    page = client.list_tasks(queue=q, limit=3)
    assert [t.id for t in page.items] == created[:3] and page.next_cursor is not None
    page2 = client.list_tasks(queue=q, limit=3, cursor=page.next_cursor)
    assert [t.id for t in page2.items] == created[3:6]
    assert [t.id for t in client.iter_tasks(queue=q, page_size=2)] == created
    assert len(list(client.iter_tasks())) == 8
    claim_one(client, q)
    running = list(client.iter_tasks(queue=q, status=TaskStatus.RUNNING))
    assert [t.id for t in running] == created[:1]
    with pytest.raises(ValidationError) as e:
        client.list_tasks(status="sleeping")
    assert e.value.field == "status"


def test_update_with_expected_version_if_match_and_merge(client: Client) -> None:
    t = client.create_task(unique(), {"a": 1}, context={"x": 1})
    t2 = client.update_task(t, expected_version=1, title="renamed", priority=3, context={"y": 2})
    assert (t2.version, t2.title, t2.priority, t2.context) == (2, "renamed", 3, {"x": 1, "y": 2})

    with pytest.raises(VersionConflict) as vc:
        client.update_task(t.id, expected_version=1, title="stale")
    err = vc.value
    assert type(err) is VersionConflict and err.status == 409
    assert (err.expected_version, err.actual_version) == (1, 2)
    assert err.current is not None and err.current.title == "renamed" and err.current.version == 2

    with pytest.raises(PreconditionFailed) as pf:
        client.update_task(t.id, if_match=1, title="stale")
    assert pf.value.status == 412 and pf.value.actual_version == 2
    assert isinstance(pf.value, VersionConflict)
    t3 = client.update_task(t.id, if_match=2, input={"a": 2})
    assert t3.input == {"a": 2} and t3.version == 3

    with pytest.raises(PreconditionRequired):
        client.update_task(t.id, title="no version")

    merged = client.update_task(
        t.id,
        expected_version=1,
        merge=True,
        context={"z": 3},
        artifacts=[NewArtifact("notes.md", content="hi", media_type="text/markdown")],
        progress=Progress(10, "starting"),
    )
    assert merged.context == {"x": 1, "y": 2, "z": 3} and merged.version == 4
    assert merged.artifacts[0].name == "notes.md" and merged.artifacts[0].content == "hi"
    assert merged.progress == Progress(10.0, "starting")

    client.update_task(t.id, expected_version=4, context={"x": 10})
    with pytest.raises(MergeConflict) as mc:
        client.update_task(t.id, expected_version=4, merge=True, context={"x": 11})
    assert mc.value.conflicts and "x" in mc.value.conflicts[0]
    assert mc.value.current is not None and mc.value.current.context["x"] == 10

    cancelled = client.update_task(t.id, expected_version=5, status="cancelled")
    assert cancelled.status == TaskStatus.CANCELLED


def test_claim_heartbeat_complete(client: Client) -> None:
    q = unique()
    t = client.create_task(q, {"to": "x"})
    claimed = claim_one(client, q, "mailer-1", lease_ms=2000)
    assert claimed.id == t.id and claimed.status == TaskStatus.RUNNING and claimed.attempt == 1
    assert claimed.lease is not None and claimed.lease.agent == "mailer-1"
    first_expiry = claimed.lease.expires_at
    time.sleep(0.05)
    beat = client.heartbeat_task(claimed, lease_ms=60_000, progress=Progress(50, "half"))
    assert beat.lease is not None and beat.lease.expires_at > first_expiry
    assert (beat.lease.expires_at - first_expiry).total_seconds() > 50
    assert beat.progress == Progress(50.0, "half")

    done = client.complete_task(
        claimed.id,
        claimed.lease_token,
        result={"sent": 1},
        artifacts=[NewArtifact("digest.html", uri="s3://mail/digest.html")],
    )
    assert done.status == TaskStatus.SUCCEEDED and done.result == {"sent": 1}
    assert done.artifacts[0].uri == "s3://mail/digest.html"
    assert done.finished_at is not None and done.lease is None
    again = client.complete_task(claimed, result={"sent": 1})
    assert again.version == done.version

    with pytest.raises(LeaseConflict) as lc:
        client.heartbeat_task(claimed)
    assert lc.value.task_status == TaskStatus.SUCCEEDED and lc.value.status == 409
    with pytest.raises(ValueError):
        client.complete_task(t)  # an unclaimed Task carries no token


def test_a_stale_lease_holder_is_fenced_off(client: Client) -> None:
    q = unique()
    client.create_task(q)
    first = claim_one(client, q, "w1", lease_ms=100)
    time.sleep(1.5)  # the lease expires and the timer loop re-queues the task
    second = claim_one(client, q, "w2")
    assert second.id == first.id and second.attempt == 2
    with pytest.raises(LeaseConflict) as e:
        client.complete_task(first, result="late")
    assert e.value.task_status == TaskStatus.RUNNING
    assert client.get_task(first.id).status == TaskStatus.RUNNING


def test_fail_retry_dead_letter_and_redrive(client: Client) -> None:
    q = unique()
    t = client.create_task(q, max_attempts=2, backoff={"initial_ms": 200, "jitter": 0})
    c1 = claim_one(client, q)
    retry = client.fail_task(c1, message="upstream took too long", kind="timeout")
    assert retry.status == TaskStatus.SCHEDULED and retry.error is not None
    assert (retry.error.kind, retry.error.retryable) == ("timeout", True)
    c2 = claim_one(client, q)  # the long poll waits out the 200 ms backoff
    assert c2.attempt == 2
    dead = client.fail_task(c2.id, c2.lease_token, message="again")
    assert dead.status == TaskStatus.FAILED
    assert [x.id for x in client.iter_tasks(queue=q, status="failed")] == [t.id]

    back = client.redrive_task(t)
    assert back.status == TaskStatus.QUEUED and back.attempt == 0
    with pytest.raises(InvalidTransition) as it:
        client.redrive_task(t)
    assert it.value.task_status == TaskStatus.QUEUED

    c3 = claim_one(client, q)
    final = client.fail_task(c3, message="bad input", kind="invalid", retryable=False)
    assert final.status == TaskStatus.FAILED and final.error is not None
    assert final.error.retryable is False
    assert client.redrive_queue(q) == 1
    assert client.redrive_queue(q) == 0
    assert client.get_task(t).status == TaskStatus.QUEUED


def test_a_released_task_keeps_its_attempt(client: Client) -> None:
    q = unique()
    t = client.create_task(q, max_attempts=1)
    held = claim_one(client, q, "w1")
    back = client.release_task(held)
    assert back.status == TaskStatus.QUEUED and back.attempt == 0 and back.lease is None
    with pytest.raises(LeaseConflict):
        client.release_task(held)
    again = claim_one(client, q, "w2")
    assert again.id == t.id and again.attempt == 1
    later = client.release_task(again.id, again.lease_token, delay_ms=60_000)
    assert later.status == TaskStatus.SCHEDULED


def test_cancel(client: Client) -> None:
    q = unique()
    t = client.create_task(q)
    running = claim_one(client, q)
    cancelled = client.cancel_task(t)
    assert cancelled.status == TaskStatus.CANCELLED and cancelled.lease is None
    with pytest.raises(LeaseConflict):
        client.complete_task(running)
    with pytest.raises(InvalidTransition) as e:
        client.cancel_task(t.id)
    assert e.value.task_status == TaskStatus.CANCELLED


def test_claim_respects_capabilities_max_and_lease(client: Client) -> None:
    q = unique()
    gpu = client.create_task(q, {"k": "gpu"}, required_capabilities=["gpu"], priority=10)
    plain = [client.create_task(q, {"i": i}).id for i in range(3)]
    got = client.claim(q, "cpu-only", max=10, lease_ms=5000).tasks
    assert sorted(t.id for t in got) == sorted(plain)
    assert all(t.lease is not None for t in got)
    lease = got[0].lease
    assert lease is not None
    assert 4.5 < (lease.expires_at - lease.acquired_at).total_seconds() <= 5.0
    assert client.claim(q, "cpu-only").tasks == []
    with_gpu = client.claim(q, "gpu-box", capabilities=["gpu", "cuda"], max=5).tasks
    assert [t.id for t in with_gpu] == [gpu.id]
    with pytest.raises(ValidationError) as e:
        client.claim(q, "x", max=1000)
    assert e.value.field == "max"


def test_claim_long_polls_until_a_task_arrives(client: Client) -> None:
    q = unique()
    start = time.monotonic()
    assert client.claim(q, "w", wait_ms=400).tasks == []
    assert time.monotonic() - start >= 0.35

    def later() -> None:
        time.sleep(0.5)
        client.create_task(q, {"late": True})

    sender = threading.Thread(target=later)
    sender.start()
    start = time.monotonic()
    tasks = client.claim(q, "w", wait_ms=10_000).tasks
    waited = time.monotonic() - start
    sender.join()
    assert [t.input for t in tasks] == [{"late": True}]
    assert 0.4 < waited < 5.0


def test_done_next_completes_inside_the_claim(client: Client) -> None:
    q = unique()
    for i in range(2):
        client.create_task(q, {"i": i})
    first = claim_one(client, q)
    answer = client.claim(
        q,
        "w1",
        complete=[
            Completion(first.id, first.lease_token, {"ok": 1}, [NewArtifact("a", content=1)]),
            Completion("01KA9Q3Z8006AB4RTCGKRYT3D2", "nope"),
        ],
    )
    assert answer.completed is not None and len(answer.completed) == 2
    ok, missing = answer.completed
    assert ok.ok and ok.id == first.id and ok.version is not None
    assert not missing.ok and missing.error is not None and missing.error.status == 404
    assert len(answer.tasks) == 1 and answer.tasks[0].input == {"i": 1}
    done = client.get_task(first)
    assert done.status == TaskStatus.SUCCEEDED and done.result == {"ok": 1}
    assert done.artifacts[0].content == 1


def test_complete_many(client: Client) -> None:
    q = unique()
    for _ in range(3):
        client.create_task(q)
    tasks = client.claim(q, "w", max=3).tasks
    result = client.complete_tasks(
        [Completion(t.id, t.lease_token, {"id": t.id}) for t in tasks[:2]]
        + [Completion(tasks[2].id, "wrong-token")]
    )
    assert result.completed == 2
    assert [o.ok for o in result.items] == [True, True, False]
    bad = result.items[2].error
    assert bad is not None and bad.type == "/problems/lease-conflict" and bad.status == 409


# -- queues ------------------------------------------------------------------------------------


def test_queue_stats_and_list(client: Client) -> None:
    q = unique()
    client.create_task(q)
    client.create_task(q, delay_ms=60_000)
    claim_one(client, q)
    client.create_task(q)
    stats = client.queue_stats(q)
    assert stats.queue == q and stats.depth == 2
    assert (stats.counts.queued, stats.counts.scheduled, stats.counts.running) == (1, 1, 1)
    assert stats.oldest_ready_at is not None and stats.oldest_ready_age_ms is not None
    empty = client.queue_stats(unique())
    assert empty.depth == 0 and empty.oldest_ready_at is None
    listed = {s.queue: s for s in client.list_queues()}
    assert listed[q].depth == 2 and listed[q].counts == stats.counts


# -- agents ------------------------------------------------------------------------------------


def test_agent_lifecycle(client: Client) -> None:
    a = client.register_agent(
        "mailer-1", capabilities=["smtp", "html"], slots=4, metadata={"host": "box-1"}
    )
    assert (a.name, a.status, a.slots) == ("mailer-1", AgentStatus.ACTIVE, 4)
    assert a.capabilities == ["html", "smtp"] and a.metadata == {"host": "box-1"}
    got = client.get_agent("mailer-1")
    assert (got.name, got.capabilities, got.slots, got.metadata) == ("mailer-1", a.capabilities, 4, a.metadata)
    beat = client.heartbeat_agent("mailer-1")
    assert beat.last_heartbeat >= a.last_heartbeat
    client.register_agent("other")
    assert [x.name for x in client.list_agents()] == ["mailer-1", "other"]

    q = unique()
    client.create_task(q)
    held = claim_one(client, q, "mailer-1")
    assert client.get_agent("mailer-1").running == 1
    drained = client.drain_agent("mailer-1")
    assert drained.status == AgentStatus.DRAINING
    client.create_task(q)
    assert client.claim(q, "mailer-1").tasks == []
    assert [x.name for x in client.list_agents(status="draining")] == ["mailer-1"]
    assert [x.name for x in client.list_agents(status=AgentStatus.ACTIVE)] == ["other"]

    removed = client.remove_agent("mailer-1")
    assert removed.agent == "mailer-1" and removed.released == [held.id]
    assert client.get_task(held).status == TaskStatus.QUEUED
    with pytest.raises(NotFound):
        client.get_agent("mailer-1")
    with pytest.raises(ValidationError) as e:
        client.get_agent("Bad Name")
    assert e.value.field == "name"


def test_subscriptions(client: Client) -> None:
    client.register_agent("a1")
    s = client.subscribe("a1", "alerts")
    assert s.topics == ["alerts"] and s.changed
    assert client.subscribe("a1", "alerts").changed is False
    assert client.subscribe("a1", "deploys").topics == ["alerts", "deploys"]
    assert client.subscriptions("a1") == ["alerts", "deploys"]
    u = client.unsubscribe("a1", "alerts")
    assert u.topics == ["deploys"] and u.changed
    assert client.unsubscribe("a1", "alerts").changed is False
    with pytest.raises(NotFound):
        client.subscribe("ghost", "alerts")
    with pytest.raises(NotFound):
        client.subscriptions("ghost")


# -- messages ----------------------------------------------------------------------------------


def test_send_direct_topic_broadcast_and_read_the_inbox(client: Client) -> None:
    client.register_agent("planner")
    client.register_agent("mailer")
    client.subscribe("mailer", "alerts")
    direct = client.send_message(
        {"q": "status?"}, to="mailer", sender="planner", correlation_id="c-7", ttl_ms=60_000
    )
    assert direct.to.agent == "mailer" and direct.sender == "planner"
    assert direct.expires_at is not None
    topic = client.send_message("disk almost full", topic="alerts")
    client.send_message("for planner only", to="planner")
    broadcast = client.send_message("deploy at noon", broadcast=True)
    assert broadcast.to.broadcast and topic.to.topic == "alerts"

    page = client.read_inbox("mailer")
    assert [m.body for m in page.messages] == [{"q": "status?"}, "disk almost full", "deploy at noon"]
    assert page.cursor == broadcast.seq
    assert [m.seq for m in page.messages] == sorted(m.seq for m in page.messages)

    # unacknowledged messages come again; after an ack they do not
    assert len(client.read_inbox("mailer").messages) == 3
    assert client.ack_inbox("mailer", direct.seq) == direct.seq
    assert [m.body for m in client.read_inbox("mailer").messages] == ["disk almost full", "deploy at noon"]
    assert [m.body for m in client.read_inbox("mailer", after=topic.seq).messages] == ["deploy at noon"]
    assert len(client.read_inbox("mailer", limit=1).messages) == 1

    reply = client.reply(direct, "all green", sender="mailer")
    assert reply.to.agent == "planner" and reply.correlation_id == "c-7"
    assert reply.reply_to == direct.id

    with pytest.raises(NotFound):
        client.send_message("hi", to="nobody")
    with pytest.raises(ValueError):
        client.send_message("hi", to="a", topic="b")
    with pytest.raises(ValidationError) as e:
        client.ack_inbox("mailer", broadcast.seq + 1000)
    assert e.value.field == "cursor"


def test_idempotent_send(client: Client) -> None:
    client.register_agent("inbox-1")
    key = unique("msg")
    first = client.send_message_outcome("once", to="inbox-1", idempotency_key=key)
    second = client.send_message_outcome("twice", to="inbox-1", idempotency_key=key)
    assert first.created and not second.created and second.value.id == first.value.id
    assert [m.body for m in client.read_inbox("inbox-1").messages] == ["once"]


def test_inbox_long_poll(client: Client) -> None:
    client.register_agent("waiter")
    start = time.monotonic()
    page = client.read_inbox("waiter", wait_ms=300)
    assert page.messages == [] and time.monotonic() - start >= 0.25

    sender = later(0.4, lambda: client.send_message("wake up", to="waiter"))
    start = time.monotonic()
    page = client.read_inbox("waiter", wait_ms=10_000)
    sender.join()
    assert [m.body for m in page.messages] == ["wake up"]
    assert 0.3 < time.monotonic() - start < 5.0


def test_inbox_iterator_long_polls_and_acknowledges(client: Client) -> None:
    client.register_agent("reader")
    for i in range(3):
        client.send_message(i, to="reader")
    sender = later(0.3, lambda: client.send_message(3, to="reader"))
    got = []
    for m in client.iter_inbox("reader", wait_ms=5000, ack=True):
        got.append(m.body)
        if len(got) == 4:
            break
    sender.join()
    assert got == [0, 1, 2, 3]
    # the first page (0, 1, 2) was acknowledged when the iterator asked for more; 3 was not
    assert [m.body for m in client.read_inbox("reader").messages] == [3]


def test_sse_stream_follows_and_resumes(client: Client) -> None:
    client.register_agent("listener")
    before = client.send_message("before", to="listener")
    stream = client.stream_inbox("listener")
    sender = later(0.3, lambda: [client.send_message(i, to="listener") for i in range(3)])
    got = []
    with stream:
        for m in stream:
            got.append(m)
            if len(got) == 3:
                break
    sender.join()
    assert [m.body for m in got] == ["before", 0, 1]
    assert stream.last_event_id == str(got[-1].seq)
    # resume after the last event received: exactly the rest, nothing repeated
    with client.stream_inbox("listener", last_event_id=stream.last_event_id) as resumed:
        assert next(resumed).body == 2
    with client.stream_inbox("listener", after=before.seq) as from_after:
        assert next(from_after).body == 0
    with pytest.raises(NotFound):
        next(client.stream_inbox("ghost"))


def test_sse_stream_reconnects_across_a_server_restart_of_the_connection(
    start_server: object,
) -> None:
    # A stream whose server goes away ends with a TransportError after its retries.
    from agentyard_client import TransportError

    srv = start_server()  # type: ignore[operator]
    assert isinstance(srv, Server)
    with Client(srv.url) as c:
        c.register_agent("l")
        c.send_message("one", to="l")
        stream = c.stream_inbox("l", max_retries=1)
        assert next(stream).body == "one"
        srv.stop()
        with pytest.raises(TransportError):
            next(stream)


# -- limits ------------------------------------------------------------------------------------


def test_limits(client: Client) -> None:
    key = unique("repo:acme/web")
    limit = client.set_limit(key, max_concurrent=2)
    assert (limit.key, limit.max_concurrent, limit.rate_per_minute) == (key, 2, None)
    rate_key = unique("openai")
    rate = client.set_limit(rate_key, rate_per_minute=60, burst=5)
    assert (rate.rate_per_minute, rate.burst) == (60, 5)
    assert client.get_limit(key) == limit
    assert client.get_limit(rate_key) == rate
    keys = {x.key for x in client.list_limits()}
    assert {key, rate_key} <= keys
    unset = client.get_limit(unique("never-set"))
    assert (unset.rate_per_minute, unset.burst, unset.max_concurrent) == (None, None, None)
    with pytest.raises(ValidationError) as e:
        client.set_limit(key)
    assert e.value.field == "body"
    with pytest.raises(ValidationError) as e2:
        client.set_limit(key, burst=3)
    assert e2.value.field == "rate_per_minute"

    if "delete" in client.openapi()["paths"]["/v1/limits/{key}"]:
        client.delete_limit(key)
        assert client.get_limit(key).max_concurrent is None
        assert key not in {x.key for x in client.list_limits()}
        with pytest.raises(NotFound):
            client.delete_limit(key)
    else:  # a server that cannot remove limits says so
        with pytest.raises(MethodNotAllowed):
            client.delete_limit(key)


def test_concurrency_key_holds_tasks_back(client: Client) -> None:
    q, key = unique(), unique("ck")
    client.set_limit(key, max_concurrent=1)
    for _ in range(2):
        client.create_task(q, concurrency_key=key)
    first = client.claim(q, "w", max=2).tasks
    assert len(first) == 1
    assert client.claim(q, "w").tasks == []
    client.complete_task(first[0])
    assert len(client.claim(q, "w").tasks) == 1


# -- namespaces --------------------------------------------------------------------------------


def test_namespaces_are_separate(client: Client, server: Server) -> None:
    q = unique()
    t = client.create_task(q)
    other = client.with_namespace(unique("ns"))
    assert other.namespace != client.namespace
    with pytest.raises(NotFound):
        other.get_task(t.id)
    assert list(other.iter_tasks(queue=q)) == []
    assert client.get_task(t.id).namespace == client.namespace
    with Client(server.url) as default:
        assert default.namespace == "default"
    with Client(server.url, namespace="Bad Namespace") as bad:
        with pytest.raises(ValidationError) as e:
            bad.list_tasks()
    assert e.value.field == "Agentyard-Namespace"


def test_unknown_route(client: Client) -> None:
    from agentyard_client._calls import Call

    with pytest.raises(NoSuchRoute) as e:
        client.run(Call("GET", "/v2/nothing", lambda a: None))
    assert e.value.status == 404 and isinstance(e.value, NotFound)
