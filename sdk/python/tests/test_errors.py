"""problem+json answers become exceptions carrying their fields: provoked on real servers where
a flag makes that possible, and checked against every problem the server renders (its own
snapshot files) for the rest."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any, Callable

import httpx
import pytest

from _support import REPO_ROOT, Server, unique
from agentyard_client import (
    ApiError,
    AsyncClient,
    Backpressure,
    BadRequest,
    Client,
    Conflict,
    Forbidden,
    InboxFull,
    InternalServerError,
    InvalidTransition,
    LeaseConflict,
    MergeConflict,
    MethodNotAllowed,
    NoSuchRoute,
    NotFound,
    PayloadTooLarge,
    PreconditionFailed,
    PreconditionRequired,
    RateLimited,
    RequestTimeout,
    ServerError,
    ServerUnavailable,
    Task,
    TaskStatus,
    TooManyAgents,
    TooManyRequests,
    TransportError,
    Unauthorized,
    ValidationError,
    VersionConflict,
)
from agentyard_client.errors import parse_retry_after

StartServer = Callable[..., Server]

SNAPSHOTS = REPO_ROOT / "crates" / "agentyard-server" / "src" / "api" / "snapshots"

#: Each problem the server renders (by snapshot name) and the exception it must become.
EXPECTED: dict[str, type[ApiError]] = {
    "malformed_body": BadRequest,
    "unsupported_media_type": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "invalid_field": ValidationError,
    "invalid_request": ValidationError,
    "not_found": NotFound,
    "no_such_route": NoSuchRoute,
    "method_not_allowed": MethodNotAllowed,
    "precondition_required": PreconditionRequired,
    "version_conflict": VersionConflict,
    "precondition_failed": PreconditionFailed,
    "merge_conflict": MergeConflict,
    "lease_conflict": LeaseConflict,
    "invalid_transition": InvalidTransition,
    "payload_too_large": PayloadTooLarge,
    "request_timeout": RequestTimeout,
    "backpressure": Backpressure,
    "inbox_full": InboxFull,
    "rate_limited": RateLimited,
    "too_many_agents": TooManyAgents,
    "unavailable": ServerUnavailable,
    "internal": InternalServerError,
}


def snapshots() -> dict[str, dict[str, Any]]:
    found = {}
    for path in sorted(SNAPSHOTS.glob("agentyard_server__api__error__tests__*.snap")):
        name = path.stem.split("__")[-1]
        text = path.read_text()
        found[name] = json.loads(text.split("---", 2)[2])
    return found


def raised_by(status: int, body: Any, headers: dict[str, str] | None = None) -> ApiError:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()

    def answer(request: httpx.Request) -> httpx.Response:
        h = {"content-type": "application/problem+json", **(headers or {})}
        return httpx.Response(status, content=content, headers=h)

    with Client("http://yard.test", transport=httpx.MockTransport(answer)) as c:
        with pytest.raises(ApiError) as e:
            c.get_task("01KA9Q3Z8006AB4RTCGKRYT3D2")
    return e.value


def test_every_problem_the_server_renders_is_mapped() -> None:
    rendered = snapshots()
    assert rendered, f"no snapshots under {SNAPSHOTS}"
    unmapped, unrendered = set(rendered) - set(EXPECTED), set(EXPECTED) - set(rendered)
    assert not unmapped, f"the server renders problems this test does not map: {unmapped}"
    assert not unrendered, (
        f"no snapshot of {unrendered}: the server's every_problem_renders_as_problem_json "
        "(crates/agentyard-server/src/api/error.rs) should render each problem type"
    )
    for name, snap in rendered.items():
        headers = {} if snap["retry_after"] is None else {"retry-after": snap["retry_after"]}
        err = raised_by(snap["status"], snap["body"], headers)
        assert type(err) is EXPECTED[name], name
        body = snap["body"]
        assert (err.status, err.type, err.title, err.detail) == (
            body["status"],
            body["type"],
            body["title"],
            body["detail"],
        ), name
        assert err.problem == body
        expected_retry = None if snap["retry_after"] is None else float(snap["retry_after"])
        assert err.retry_after == expected_retry, name
        assert err.field == body.get("field")
        if isinstance(err, VersionConflict):
            assert err.expected_version == body["expected_version"]
            assert err.actual_version == body["actual_version"]
            assert isinstance(err.current, Task) and err.current.id == body["current"]["id"]
        if isinstance(err, MergeConflict):
            assert err.conflicts == body["conflicts"]
        if isinstance(err, Conflict) and "task_status" in body:
            assert err.task_status == TaskStatus(body["task_status"])
        if isinstance(err, TooManyRequests):
            assert (err.depth, err.limit) == (body.get("depth"), body.get("limit"))
        if isinstance(err, RateLimited):
            assert err.agent == body["agent"] and err.retry_after_ms == body["retry_after_ms"]
        if isinstance(err, Backpressure):
            assert err.queue == body["queue"]
        if isinstance(err, PayloadTooLarge):
            assert err.limit == body["limit"]


def test_answers_that_are_not_problems() -> None:
    proxy = raised_by(502, b"<html>Bad gateway</html>")
    assert type(proxy) is ServerError and proxy.status == 502 and "Bad gateway" in proxy.detail
    unknown = raised_by(409, {"type": "/problems/new-kind", "title": "New", "status": 409, "detail": "d"})
    assert type(unknown) is Conflict and unknown.detail == "d"
    teapot = raised_by(418, {})
    assert type(teapot) is ApiError and teapot.status == 418


def test_retry_after_as_seconds_or_http_date() -> None:
    import datetime as dt

    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:05 GMT", now) == 5.0
    err = raised_by(503, {"type": "/problems/unavailable", "title": "t", "status": 503, "detail": "d"},
                    {"retry-after": "Thu, 01 Jan 2099 00:00:00 GMT"})
    assert isinstance(err, ServerUnavailable) and err.retry_after is not None
    assert err.retry_after > 1e6


def test_backpressure_on_a_full_queue(start_server: StartServer) -> None:
    srv = start_server("--max-queue-depth", "2")
    with Client(srv.url) as c:
        q = unique()
        c.create_task(q)
        c.create_task(q)
        with pytest.raises(Backpressure) as e:
            c.create_task(q)
        err = e.value
        assert isinstance(err, TooManyRequests) and err.status == 429
        assert (err.queue, err.depth, err.limit, err.retry_after) == (q, 2, 2, 1.0)
        health = c.health()
        assert health.status == "degraded"
        assert any(r.kind == "queue" and r.name == q for r in health.reasons)


def test_rate_limited_agent(start_server: StartServer) -> None:
    srv = start_server("--agent-rate-per-minute", "1", "--agent-burst", "1")
    with Client(srv.url) as c:
        c.register_agent("flooder")
        with pytest.raises(RateLimited) as e:
            c.heartbeat_agent("flooder")
        err = e.value
        assert err.agent == "flooder" and err.limit == 1
        assert err.retry_after is not None and err.retry_after >= 1
        assert err.retry_after_ms is not None and err.retry_after_ms > 0
        c.register_agent("calm")  # another agent has its own bucket


def test_inbox_full(start_server: StartServer) -> None:
    srv = start_server("--max-inbox-depth", "1")
    with Client(srv.url) as c:
        c.register_agent("busy")
        c.send_message(1, to="busy")
        with pytest.raises(InboxFull) as e:
            c.send_message(2, to="busy")
        assert (e.value.agent, e.value.depth, e.value.limit, e.value.retry_after) == ("busy", 1, 1, 1.0)


def test_payload_too_large(start_server: StartServer) -> None:
    srv = start_server("--body-limit", "1024")
    with Client(srv.url) as c:
        with pytest.raises(PayloadTooLarge) as e:
            c.create_task(unique(), {"blob": "x" * 4096})
        assert e.value.status == 413 and e.value.limit == 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_server_says_so_once() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, timeout=2) as c:
        with pytest.raises(TransportError) as e:
            c.health()
    message = str(e.value)
    assert url in message and "agentyard serve" in message
    assert e.value.url == url

    async def go() -> None:
        async with AsyncClient(url, timeout=2) as ac:
            with pytest.raises(TransportError):
                await ac.health()

    asyncio.run(go())


def test_real_conflicts_carry_their_fields(client: Client) -> None:
    q = unique()
    t = client.create_task(q)
    client.update_task(t, expected_version=1, title="new")
    with pytest.raises(Conflict) as e:
        client.update_task(t, expected_version=1, status="cancelled")
    assert isinstance(e.value, VersionConflict)
    assert e.value.current is not None and e.value.current.title == "new"
    with pytest.raises(ValidationError) as v:
        client.update_task(t, expected_version=2, status="running")
    assert v.value.type == "/problems/invalid-request"


def test_error_text_is_one_line() -> None:
    # str() of an error is one line a log can carry: status, title and detail.
    err = raised_by(404, {"type": "/problems/not-found", "title": "Not found", "status": 404,
                          "detail": "no task 01KA9Q3Z8006AB4RTCGKRYT3D2"})
    assert str(err) == "404 Not found: no task 01KA9Q3Z8006AB4RTCGKRYT3D2"
