"""The event log through both clients against the real server: pages and filters, a task's
history, traces, and the live stream, resumed by its last event id (by hand, and on its own
across a server restart) with nothing missed and nothing repeated; and the admin prune."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from pathlib import Path
from typing import Callable

import pytest

from _support import AuthServer, Server, free_port, unique
from agentyard_client import (
    AsyncClient,
    Client,
    Event,
    EventStream,
    EventType,
    Forbidden,
    NotFound,
    PruneResult,
    Task,
    TransportError,
    ValidationError,
)


def create(client: Client, queue: str, correlation_id: str) -> Task:
    return client.create_task(queue, {"n": 1}, correlation_id=correlation_id)


def claim_one(client: Client, queue: str, agent: str) -> Task:
    tasks = client.claim(queue, agent, wait_ms=2000).tasks
    assert len(tasks) == 1, tasks
    return tasks[0]


def later(delay: float, fn: Callable[[], object]) -> threading.Timer:
    t = threading.Timer(delay, fn)
    t.start()
    return t


def take(stream: EventStream, n: int) -> list[Event]:
    got: list[Event] = []
    for event in stream:
        got.append(event)
        if len(got) == n:
            break
    return got


# -- the log -----------------------------------------------------------------------------------


def test_the_log_pages_and_filters(client: Client, server: Server) -> None:
    q = unique()
    task = create(client, q, "run-42")
    create(client, q, "other")
    held = claim_one(client, q, "w1")
    assert held.id == task.id
    client.complete_task(held, result={"ok": True})

    everything = list(client.iter_events())
    assert [e.type for e in everything] == [
        EventType.TASK_CREATED,
        EventType.TASK_CREATED,
        EventType.AGENT_REGISTERED,  # the claim registered its agent first
        EventType.TASK_CLAIMED,
        EventType.TASK_COMPLETED,
    ]
    assert [e.type for e in everything][:2] == ["task.created", "task.created"]  # plain strings too
    seqs = [e.seq for e in everything]
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    created, _, registered, claimed, completed = everything
    assert created.namespace == client.namespace
    assert created.subject == f"task:{task.id}" and created.correlation_id == "run-42"
    assert created.actor is None and created.data["queue"] == q
    assert created.ts.tzinfo is not None
    assert abs((dt.datetime.now(dt.timezone.utc) - created.ts).total_seconds()) < 60
    assert registered.subject == "agent:w1" and registered.type.kind == "agent"
    assert claimed.actor == "w1" and claimed.data["status"] == "running"
    assert completed.actor == "w1" and completed.data["status"] == "succeeded"
    assert isinstance(completed.data["run_ms"], int)

    # A page, and going on from it until caught up.
    page = client.list_events(limit=2)
    assert page.events == everything[:2]
    assert page.next_after == everything[1].seq
    assert page.last_seq >= everything[-1].seq  # the whole yard's newest (other tests' too)
    rest = client.list_events(after=page.next_after, limit=100)
    assert rest.events == everything[2:]
    caught_up = client.list_events(after=rest.next_after)
    assert caught_up.events == [] and caught_up.next_after == rest.next_after
    assert list(client.iter_events(page_size=2)) == everything
    assert list(client.iter_events(after=everything[2].seq)) == everything[3:]

    # Filters: kinds and exact types (a comma-separated string or a list), subject, correlation.
    picked = [EventType.AGENT_REGISTERED, EventType.TASK_CLAIMED]
    assert [e.type for e in client.list_events(types="task.claimed,agent.*").events] == picked
    assert [e.type for e in client.list_events(types=["agent.*", EventType.TASK_CLAIMED]).events] == picked
    assert client.list_events(types=EventType.TASK_COMPLETED).events == [completed]
    assert [e.type for e in client.list_events(types="task.*").events] == [
        "task.created", "task.created", "task.claimed", "task.completed"
    ]
    assert client.list_events(subject="agent:w1").events == [registered]
    assert [e.subject for e in client.list_events(correlation_id="other").events] == [
        everything[1].subject
    ]

    with pytest.raises(ValidationError) as bad_type:
        client.list_events(types="task.nope")
    assert bad_type.value.field == "type" and "task.nope" in (bad_type.value.detail or "")
    with pytest.raises(ValidationError) as bad_limit:
        client.list_events(limit=0)
    assert bad_limit.value.field == "limit"
    with pytest.raises(ValidationError) as bad_after:
        client.list_events(after=-1)
    assert bad_after.value.field == "after"

    # Each namespace reads its own log.
    other = client.with_namespace(unique("ns"))
    assert other.list_events().events == []
    assert list(other.iter_events()) == []


def test_task_history_and_trace(client: Client) -> None:
    q = unique()
    task = create(client, q, "c-7")
    neighbour = create(client, q, "c-8")
    held = claim_one(client, q, "w2")
    client.fail_task(held, message="flaky upstream", kind="timeout")
    client.send_message({"about": task.id}, broadcast=True, correlation_id="c-7")

    history = client.task_history(task)
    assert [e.type for e in history] == ["task.created", "task.claimed", "task.failed"]
    assert all(e.subject == f"task:{task.id}" for e in history)
    assert history[2].actor == "w2"
    assert history[2].data["error"] == {"kind": "timeout", "message": "flaky upstream"}
    assert "retry_at" in history[2].data
    assert client.task_history(task.id) == history
    assert [e.type for e in client.task_history(neighbour)] == ["task.created"]
    assert client.task_history("01J0000000000000000000000Z") == []

    trace = client.trace("c-7")
    assert trace.correlation_id == "c-7" and not trace.truncated
    assert trace.events[:3] == history
    assert [e.type for e in trace.events[3:]] == ["message.sent"]
    assert trace.events[3].subject.startswith("message:")
    empty = client.trace("nothing-happened-under-this")
    assert empty.events == [] and not empty.truncated
    odd = client.trace("a/b c?")  # percent-encoded into one path segment
    assert odd.correlation_id == "a/b c?" and odd.events == []


# -- the stream --------------------------------------------------------------------------------


def test_a_resumed_stream_misses_nothing_and_repeats_nothing(client: Client) -> None:
    q = unique()
    create(client, q, "before")  # made before the stream starts: not sent
    made: list[str] = []

    def make(n: int, start: int) -> None:
        for i in range(start, start + n):
            made.append(create(client, q, f"t{i}").id)

    stream = client.stream_events()
    maker = later(0.3, lambda: make(5, 0))
    with stream:
        seen = take(stream, 3)
    maker.join()
    last = stream.last_event_id
    assert last == str(seen[-1].seq)
    make(5, 5)  # while nobody follows
    with client.stream_events(last_event_id=last) as resumed:
        seen += take(resumed, 7)
    assert [e.subject for e in seen] == [f"task:{i}" for i in made]
    assert [e.correlation_id for e in seen] == [f"t{i}" for i in range(10)]
    assert all(a.seq < b.seq for a, b in zip(seen, seen[1:]))

    # `after` is the same resume point given as a seq; after=0 is from the start.
    with client.stream_events(after=seen[4].seq) as from_after:
        assert next(from_after) == seen[5]
    with client.stream_events(after=0) as from_start:
        assert next(from_start).correlation_id == "before"

    # Filters: only what matches is sent.
    with client.stream_events(types="task.claimed") as claims:
        claimer = later(0.2, lambda: claim_one(client, q, "w3"))
        claimed = next(claims)
        claimer.join()
    assert claimed.type == EventType.TASK_CLAIMED and claimed.actor == "w3"
    with client.stream_events(subject=f"task:{made[-1]}", after=0) as one:
        assert next(one).subject == f"task:{made[-1]}"

    with pytest.raises(ValidationError) as bad:
        next(client.stream_events(last_event_id="yesterday"))
    assert bad.value.field == "Last-Event-ID"
    with pytest.raises(ValidationError) as bad_type:
        next(client.stream_events(types="nope.*"))
    assert bad_type.value.field == "type"


def test_a_stream_reconnects_on_its_own_across_a_server_restart(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    store = f"sqlite://{tmp_path}/yard.db"
    listen = f"127.0.0.1:{free_port()}"
    first = start_server(store=store, listen=listen)
    with Client(first.url) as c:
        before = [c.create_task("jobs").id for _ in range(3)]
        stream = c.stream_events(after=0, max_retries=40)
        got = take(stream, 3)
        assert [e.subject for e in got] == [f"task:{i}" for i in before]
        first.stop()
        second = start_server(store=store, listen=listen)
        assert second.url == first.url
        after = [c.create_task("jobs").id for _ in range(3)]
        with stream:
            got += take(stream, 3)
        assert [e.subject for e in got] == [f"task:{i}" for i in before + after]
        assert all(a.seq < b.seq for a, b in zip(got, got[1:]))
        second.stop()
        # With the server gone for good, the stream gives up after its retries.
        with pytest.raises(TransportError):
            next(c.stream_events(max_retries=1))


def test_a_stream_from_now_reconnects_from_where_it_began(
    start_server: Callable[..., Server], tmp_path: Path
) -> None:
    # A stream that started "from now" and got nothing yet still misses nothing made while it
    # was reconnecting: its "now" was fixed when it first connected.
    store = f"sqlite://{tmp_path}/yard.db"
    listen = f"127.0.0.1:{free_port()}"
    first = start_server(store=store, listen=listen)
    with Client(first.url) as c:
        c.create_task("jobs")  # before the stream: not sent
        made: list[str] = []

        def bounce() -> None:
            first.stop()
            start_server(store=store, listen=listen)
            made.append(c.create_task("jobs").id)  # while the stream reconnects

        bouncer = later(0.5, bounce)
        with c.stream_events(max_retries=40) as quiet:
            event = next(quiet)
        bouncer.join()
        assert event.type == EventType.TASK_CREATED and event.subject == f"task:{made[0]}"


# -- async -------------------------------------------------------------------------------------


def test_async_events_history_trace_and_stream(server: Server, namespace: str) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, namespace=namespace) as c:
            q = unique()
            task = await c.create_task(q, correlation_id="a-1")
            claimed = (await c.claim(q, "aw", wait_ms=1000)).tasks[0]
            await c.complete_task(claimed)

            page = await c.list_events(limit=2)
            assert [e.type for e in page.events] == ["task.created", "agent.registered"]
            everything = [e async for e in c.iter_events(page_size=2)]
            assert [e.type for e in everything] == [
                "task.created", "agent.registered", "task.claimed", "task.completed"
            ]
            assert (await c.list_events(types="task.*", after=page.next_after)).events == everything[2:]
            history = await c.task_history(task)
            assert [e.type for e in history] == ["task.created", "task.claimed", "task.completed"]
            assert (await c.trace("a-1")).events == history

            made: list[str] = []

            async def make(n: int) -> None:
                await asyncio.sleep(0.3)
                for _ in range(n):
                    made.append((await c.create_task(q)).id)

            maker = asyncio.create_task(make(3))
            seen: list[Event] = []
            async with c.stream_events(types="task.created") as stream:
                async for event in stream:
                    seen.append(event)
                    if len(seen) == 2:
                        break
            await maker
            await make(2)
            async with c.stream_events(types="task.created", last_event_id=stream.last_event_id) as again:
                async for event in again:
                    seen.append(event)
                    if len(seen) == 5:
                        break
            assert [e.subject for e in seen] == [f"task:{i}" for i in made]
            with pytest.raises(ValidationError):
                await c.stream_events(last_event_id="nope").__anext__()

    asyncio.run(main())


# -- prune -------------------------------------------------------------------------------------


def test_prune_deletes_what_is_past_its_age(start_server: Callable[..., Server]) -> None:
    srv = start_server(
        "--keep-events-ms", "1",
        "--keep-finished-tasks-ms", "1",
        "--keep-messages-ms", "1",
        "--keep-idempotency-keys-ms", "1",
        "--retention-interval-ms", "3600000",
    )
    with Client(srv.url) as c:
        q = unique()
        done = c.create_task(q, idempotency_key="once")
        c.complete_task(claim_one(c, q, "pruner"))
        waiting = c.create_task(q, idempotency_key="later")  # not finished: kept at any age
        note = c.send_message("read me", to="pruner")
        c.ack_inbox("pruner", note.seq)
        logged = len(list(c.iter_events()))
        assert logged == 6
        time.sleep(0.05)
        pruned = c.prune()
        # The finished task went with its key; the waiting one's key is freed, the task stays.
        assert (pruned.tasks, pruned.events, pruned.messages, pruned.idempotency_keys) == (
            1, logged, 1, 1
        )
        assert pruned.total == pruned.tasks + pruned.events + pruned.messages + pruned.idempotency_keys
        with pytest.raises(NotFound):
            c.get_task(done)
        assert c.get_task(waiting).status == "queued"
        assert list(c.iter_events()) == []
        assert c.prune() == PruneResult()
        assert c.create_task(q, idempotency_key="later").id != waiting.id


def test_prune_needs_an_admin_token(auth_server: AuthServer) -> None:
    with Client(auth_server.url, token=auth_server.admin_token) as admin:
        operator = admin.create_token("operator", ["*"], name="pytest prune")
        assert isinstance(admin.prune(), PruneResult)
        with Client(auth_server.url, token=operator.token) as op:
            with pytest.raises(Forbidden):
                op.prune()
            assert isinstance(op.list_events().events, list)  # reading the log is fine
        admin.revoke_token(operator)
