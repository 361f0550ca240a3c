"""The AsyncClient runs the same calls as the Client: each operation once, awaited, against the
real server, with the async iterators (pages, inbox long poll, SSE)."""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest

from _support import Server, unique
from agentyard_client import (
    AgentStatus,
    AsyncClient,
    Completion,
    LeaseConflict,
    MethodNotAllowed,
    NewTask,
    NotFound,
    Progress,
    TaskStatus,
    VersionConflict,
)


async def later(delay: float, call: Awaitable[object]) -> None:
    await asyncio.sleep(delay)
    await call


def run(server: Server, namespace: str, body: Callable[[AsyncClient], Awaitable[None]]) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, namespace=namespace) as c:
            await body(c)

    asyncio.run(main())


def test_async_tasks_and_queues(server: Server, namespace: str) -> None:
    async def body(c: AsyncClient) -> None:
        assert (await c.health()).status == "ok"
        assert (await c.live()).status == "ok"
        assert (await c.ready()).status == "ready"
        assert "paths" in await c.openapi()
        q = unique()
        t = await c.create_task(q, {"n": 0}, idempotency_key="k", max_attempts=2,
                                backoff={"initial_ms": 100, "jitter": 0})
        again = await c.create_task_outcome(q, {"n": 9}, idempotency_key="k")
        assert not again.created and again.value.id == t.id
        batch = await c.create_tasks([NewTask(q, {"n": i}) for i in range(1, 5)])
        assert batch.created == 4
        assert (await c.get_task(t.id)).input == {"n": 0}
        page = await c.list_tasks(queue=q, limit=2)
        assert len(page.items) == 2 and page.next_cursor
        ids = [x.id async for x in c.iter_tasks(queue=q, page_size=2)]
        assert ids == [t.id] + [x.id for x in batch.tasks]

        updated = await c.update_task(t, expected_version=1, title="t")
        with pytest.raises(VersionConflict) as e:
            await c.update_task(t, expected_version=1, title="u")
        assert e.value.actual_version == updated.version

        claimed = (await c.claim(q, "w", max=2, lease_ms=5000, wait_ms=1000)).tasks
        assert [x.id for x in claimed] == [t.id, batch.tasks[0].id]
        beat = await c.heartbeat_task(claimed[0], progress=Progress(30))
        assert beat.progress == Progress(30.0)
        failed = await c.fail_task(claimed[0], message="boom", kind="oops")
        assert failed.status == TaskStatus.SCHEDULED
        done = await c.complete_task(claimed[1].id, claimed[1].lease_token, result=1)
        assert done.status == TaskStatus.SUCCEEDED
        with pytest.raises(LeaseConflict):
            await c.complete_task(claimed[0])

        nxt = await c.claim(q, "w", max=2, capabilities=["x"])
        many = await c.complete_tasks([Completion(x.id, x.lease_token, "ok") for x in nxt.tasks])
        assert many.completed == 2
        last = (await c.claim(q, "w")).tasks
        dn = await c.claim(q, "w", complete=[Completion(last[0].id, last[0].lease_token)], wait_ms=3000)
        assert dn.completed is not None and dn.completed[0].ok
        assert [x.id for x in dn.tasks] == [t.id]  # the retry, after its 100 ms backoff
        final = await c.fail_task(dn.tasks[0], message="again")
        assert final.status == TaskStatus.FAILED
        assert (await c.redrive_task(t)).status == TaskStatus.QUEUED
        assert (await c.cancel_task(t)).status == TaskStatus.CANCELLED

        stats = await c.queue_stats(q)
        assert stats.counts.succeeded == 4 and stats.counts.cancelled == 1
        assert q in [s.queue for s in await c.list_queues()]
        t2 = await c.create_task(q)
        c2 = (await c.claim(q, "w")).tasks[0]
        await c.fail_task(c2, message="final", retryable=False)
        assert await c.redrive_queue(q) == 1
        assert (await c.get_task(t2)).status == TaskStatus.QUEUED

    run(server, namespace, body)


def test_async_agents_messages_and_limits(server: Server, namespace: str) -> None:
    async def body(c: AsyncClient) -> None:
        a = await c.register_agent("a1", capabilities=["x"], slots=2, metadata={"v": 1})
        assert a.slots == 2
        await c.register_agent("a2")
        assert (await c.get_agent("a1")).capabilities == ["x"]
        assert (await c.heartbeat_agent("a1")).status == AgentStatus.ACTIVE
        assert [x.name for x in await c.list_agents()] == ["a1", "a2"]
        assert (await c.subscribe("a1", "news")).topics == ["news"]
        assert await c.subscriptions("a1") == ["news"]
        assert (await c.unsubscribe("a1", "news")).changed

        m = await c.send_message({"hi": 1}, to="a1", sender="a2", correlation_id="c")
        assert (await c.send_message_outcome("x", broadcast=True, idempotency_key="b")).created
        page = await c.read_inbox("a1", wait_ms=100)
        assert [x.body for x in page.messages] == [{"hi": 1}, "x"]
        assert await c.ack_inbox("a1", m.seq) == m.seq
        reply = await c.reply(m, "hello back", sender="a1")
        assert reply.to.agent == "a2" and reply.reply_to == m.id

        senders = [asyncio.create_task(later(0.3, c.send_message("late", to="a1")))]
        got = []
        async for msg in c.iter_inbox("a1", wait_ms=5000, ack=True):
            got.append(msg.body)
            if len(got) == 2:
                break
        assert got == ["x", "late"]

        async with c.stream_inbox("a2", after=0) as stream:
            first = await stream.__anext__()
            assert first.body == "x"  # the broadcast; the direct message went to a1
            senders.append(asyncio.create_task(later(0.2, c.send_message("s", to="a2"))))
            bodies = [first.body]
            async for msg in stream:
                bodies.append(msg.body)
                if msg.body == "s":
                    break
        assert bodies == ["x", "hello back", "s"]
        async with c.stream_inbox("a2", last_event_id=stream.last_event_id) as resumed:
            senders.append(asyncio.create_task(later(0.2, c.send_message("t", to="a2"))))
            assert (await resumed.__anext__()).body == "t"
        await asyncio.gather(*senders)
        with pytest.raises(NotFound):
            await c.stream_inbox("ghost").__anext__()

        drained = await c.drain_agent("a1")
        assert drained.status == AgentStatus.DRAINING
        removed = await c.remove_agent("a1")
        assert removed.agent == "a1" and removed.released == []

        key = unique("k")
        assert (await c.set_limit(key, rate_per_minute=10)).burst == 1
        assert (await c.get_limit(key)).rate_per_minute == 10
        assert key in [x.key for x in await c.list_limits()]
        if "delete" in (await c.openapi())["paths"]["/v1/limits/{key}"]:
            await c.delete_limit(key)
            assert (await c.get_limit(key)).rate_per_minute is None
        else:
            with pytest.raises(MethodNotAllowed):
                await c.delete_limit(key)
        other = c.with_namespace(unique("ns"))
        assert await other.list_agents() == []

    run(server, namespace, body)
