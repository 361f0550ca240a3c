"""API tokens: the client sends ``Authorization: Bearer`` (from ``token=`` or
``$AGENTYARD_TOKEN``) and never shows it; against a real server run with ``--auth``, 401 and
403 become ``Unauthorized`` and ``Forbidden``, an admin makes, lists and revokes tokens, a
reader sees blank lease tokens and an agent token acts only as its agent."""

from __future__ import annotations

import asyncio
import json
from typing import Iterator

import httpx
import pytest

from _support import AuthServer, unique, wait_until
from agentyard_client import (
    AsyncClient,
    Client,
    Forbidden,
    IssuedToken,
    Job,
    NotFound,
    TaskStatus,
    TokenInfo,
    TokenRole,
    Unauthorized,
    Worker,
)

# Made up, in the shape of a real one: a mock server is all it ever reaches.
FAKE = "ayt_0123456789av_" + "a" * 52 + "abcdefg"


def recording(requests: list[httpx.Request]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path.endswith("/stream"):
            return httpx.Response(200, text="", headers={"content-type": "text/event-stream"})
        return httpx.Response(200, json={"status": "ok", "queues": []})

    return httpx.MockTransport(answer)


# -- the client side, against a mock transport --------------------------------------------------


def test_the_token_goes_on_every_request_and_to_derived_clients() -> None:
    seen: list[httpx.Request] = []
    with Client("http://yard.test", token=FAKE, transport=recording(seen)) as c:
        c.health()
        c.list_queues()
        with c.with_namespace("team-a") as other:
            other.list_queues()
        list(c.stream_inbox("bot", reconnect=False))
    assert len(seen) == 4
    assert all(r.headers["authorization"] == f"Bearer {FAKE}" for r in seen)
    assert seen[2].headers["agentyard-namespace"] == "team-a"


def test_the_token_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTYARD_TOKEN", f" {FAKE}\n")  # as `export X=$(… token create)` may leave it
    seen: list[httpx.Request] = []
    with Client("http://yard.test", transport=recording(seen)) as c:
        c.list_queues()
    with Client("http://yard.test", token="", transport=recording(seen)) as c:
        c.list_queues()  # token="" sends none, whatever the environment says
    with Client("http://yard.test", token="ayt_given", transport=recording(seen)) as c:
        c.list_queues()
    assert seen[0].headers["authorization"] == f"Bearer {FAKE}"
    assert "authorization" not in seen[1].headers
    assert seen[2].headers["authorization"] == "Bearer ayt_given"


def test_the_token_never_shows_in_repr_or_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTYARD_TOKEN", raising=False)
    c = Client("http://yard.test", token=FAKE)
    assert FAKE not in repr(c) and "token=set" in repr(c)
    assert "token=none" in repr(Client("http://yard.test"))
    assert FAKE not in repr(AsyncClient("http://yard.test", token=FAKE))
    issued = IssuedToken.from_json(
        {"token": FAKE, "id": "0123456789av", "role": "reader", "namespaces": ["a"],
         "name": "", "created_at": "2026-11-22T07:33:35.123Z"}
    )
    assert issued.token == FAKE and FAKE not in repr(issued) and issued.id == "0123456789av"
    bad = FAKE + "\r\nX-Evil: 1"
    with pytest.raises(ValueError) as e:
        Client("http://yard.test", token=bad)
    assert FAKE not in str(e.value)


# -- against a server run with --auth ----------------------------------------------------------


@pytest.fixture
def admin(auth_server: AuthServer) -> Iterator[Client]:
    with Client(auth_server.url, namespace="team-a", token=auth_server.admin_token) as c:
        yield c


@pytest.fixture
def reader_token(admin: Client) -> Iterator[IssuedToken]:
    issued = admin.create_token("reader", ["team-a"], name="dashboard")
    yield issued
    admin.revoke_token(issued)


def test_without_a_token_only_the_probes_answer(auth_server: AuthServer) -> None:
    with Client(auth_server.url, token="") as c:
        assert c.live().status == "ok"
        assert c.ready().status == "ready"
        assert "paths" in c.openapi()
        with pytest.raises(Unauthorized) as e:
            c.list_queues()
    assert e.value.status == 401 and e.value.type == "/problems/unauthorized"
    raw = httpx.get(auth_server.url + "/v1/queues")
    assert raw.headers["www-authenticate"] == 'Bearer realm="agentyard"'


def test_a_wrong_token_is_unauthorized_and_not_repeated(auth_server: AuthServer) -> None:
    real = auth_server.admin_token
    mistyped = real[:-1] + ("a" if real[-1] != "a" else "b")
    with Client(auth_server.url, token=mistyped) as c:
        with pytest.raises(Unauthorized) as e:
            c.list_queues()
    for text in (str(e.value), repr(e.value), json.dumps(e.value.problem)):
        assert mistyped not in text and real not in text


def test_admin_makes_lists_and_revokes_tokens(admin: Client) -> None:
    issued = admin.create_token(TokenRole.READER, ["team-a"], name="dashboard")
    assert issued.token.startswith("ayt_")
    info = issued.info
    assert (info.role, info.namespaces, info.agent, info.name) == (
        TokenRole.READER, ["team-a"], None, "dashboard"
    )
    assert len(info.id) == 12 and not info.revoked
    agent = admin.create_token("agent", "team-a", agent="bot-1")  # one namespace as a str
    assert agent.info.agent == "bot-1" and agent.info.namespaces == ["team-a"]
    everywhere = admin.create_token("admin")
    assert everywhere.info.namespaces == ["*"]

    listed = {t.id: t for t in admin.list_tokens()}
    assert all(isinstance(t, TokenInfo) for t in listed.values())
    assert listed[info.id] == info

    revoked = admin.revoke_token(issued.id)
    assert revoked.id == info.id and revoked.revoked_at is not None
    assert admin.revoke_token(issued).revoked_at == revoked.revoked_at  # again: nothing changes
    assert next(t for t in admin.list_tokens() if t.id == info.id).revoked
    with pytest.raises(NotFound):
        admin.revoke_token("000000000000")
    admin.revoke_token(agent)
    admin.revoke_token(everywhere)


def test_reader_reads_its_namespaces_only(auth_server: AuthServer, reader_token: IssuedToken) -> None:
    with Client(auth_server.url, namespace="team-a", token=reader_token.token) as reader:
        reader.list_queues()
        with pytest.raises(Forbidden) as e:
            reader.create_task(unique())
        assert e.value.status == 403 and e.value.type == "/problems/forbidden"
        with pytest.raises(Forbidden):
            reader.list_tokens()
        with reader.with_namespace("team-b") as elsewhere:
            with pytest.raises(Forbidden) as e:
                elsewhere.list_tasks()
        assert "team-b" in e.value.detail


def test_reader_sees_blank_lease_tokens(
    auth_server: AuthServer, admin: Client, reader_token: IssuedToken
) -> None:
    q = unique()
    admin.create_task(q)
    (claimed,) = admin.claim(q, "bot-1", lease_ms=60_000).tasks
    assert claimed.lease_token != ""
    with Client(auth_server.url, namespace="team-a", token=reader_token.token) as reader:
        seen = reader.get_task(claimed)
        assert seen.status == TaskStatus.RUNNING and seen.lease is not None
        assert seen.lease.agent == "bot-1" and seen.lease.token == ""
        (listed,) = reader.list_tasks(queue=q).items
        assert listed.lease is not None and listed.lease.token == ""
    assert admin.get_task(claimed).lease_token == claimed.lease_token
    admin.complete_task(claimed)


def test_a_revoked_token_is_unauthorized(auth_server: AuthServer, admin: Client) -> None:
    issued = admin.create_token("reader", ["team-a"])
    with Client(auth_server.url, namespace="team-a", token=issued.token) as reader:
        reader.list_queues()
        admin.revoke_token(issued)
        with pytest.raises(Unauthorized):
            reader.list_queues()


def test_the_token_comes_from_the_environment(
    auth_server: AuthServer, reader_token: IssuedToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTYARD_TOKEN", reader_token.token)
    with Client(auth_server.url, namespace="team-a") as reader:
        reader.list_queues()
        with pytest.raises(Forbidden):
            reader.create_task(unique())
    monkeypatch.delenv("AGENTYARD_TOKEN")
    with Client(auth_server.url, namespace="team-a") as nobody:
        with pytest.raises(Unauthorized):
            nobody.list_queues()


def test_an_agent_token_acts_as_its_agent_and_a_worker_inherits_it(
    auth_server: AuthServer, admin: Client
) -> None:
    issued = admin.create_token("agent", ["team-a"], agent="bot-7")
    q = unique()
    task = admin.create_task(q, {"n": 3})
    with Client(auth_server.url, namespace="team-a", token=issued.token) as bot:
        with pytest.raises(Forbidden):
            bot.register_agent("bot-8")
        with pytest.raises(Forbidden):
            bot.claim(q, "bot-8")
        worker = Worker(bot, "bot-7", poll_wait_ms=500)

        @worker.handler(q)
        def square(job: Job) -> dict[str, int]:
            return {"square": job.input["n"] ** 2}

        worker.start()
        try:
            wait_until(lambda: admin.get_task(task).status.is_terminal)
        finally:
            worker.stop()
            assert worker.join(30)
    done = admin.get_task(task)
    assert done.status == TaskStatus.SUCCEEDED and done.result == {"square": 9}
    assert worker.error is None
    admin.revoke_token(issued)


def test_async_client_with_tokens(auth_server: AuthServer) -> None:
    async def main() -> None:
        async with AsyncClient(auth_server.url, namespace="team-a", token=auth_server.admin_token) as admin:
            issued = await admin.create_token("reader", ["team-a"], name="async")
            assert any(t.id == issued.id for t in await admin.list_tokens())
            async with AsyncClient(auth_server.url, namespace="team-a", token=issued.token) as reader:
                await reader.list_queues()
                with pytest.raises(Forbidden):
                    await reader.create_task(unique())
                async with reader.with_namespace("team-b") as elsewhere:
                    with pytest.raises(Forbidden):
                        await elsewhere.list_queues()
                revoked = await admin.revoke_token(issued)
                assert revoked.revoked_at is not None
                with pytest.raises(Unauthorized):
                    await reader.list_queues()
        async with AsyncClient(auth_server.url, token="") as nobody:
            with pytest.raises(Unauthorized):
                await nobody.list_queues()

    asyncio.run(main())
