"""Webhooks through both clients against the real server, delivering to a real receiver (an
``http.server`` in a thread) that checks every request with ``verify_webhook``; and
``verify_webhook`` itself, on requests made up here."""

from __future__ import annotations

import asyncio
import email.message
import http.client
import http.server
import json
import threading
import time
from dataclasses import dataclass, field
from typing import Iterator

import pytest

from _support import Server, unique, wait_until
from agentyard_client import (
    DELIVERY_ID_HEADER,
    EVENT_TYPE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    AsyncClient,
    Client,
    EventType,
    NotFound,
    ValidationError,
    WebhookPayload,
    WebhookState,
    verify_webhook,
    webhook_signature,
)

SECRET = "0123456789abcdef-pytest-secret"


@dataclass(frozen=True)
class Received:
    """One request the receiver took: its headers (as ``http.server`` hands them over), its
    raw body, whether ``verify_webhook`` accepted it, and the status it was answered."""

    headers: email.message.Message
    body: bytes
    verified: bool
    answered: int


@dataclass
class Receiver:
    url: str
    #: Answer these statuses first, in order, then 200 (401 to a request that does not verify).
    failures: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def taken(self) -> list[Received]:
        """The requests answered 200, in the order they came."""
        with self.lock:
            return [r for r in self.requests if r.answered == 200]

    def answers(self) -> list[int]:
        with self.lock:
            return [r.answered for r in self.requests]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on a free port, in a thread, for one test."""
    box: list[Receiver] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            verified = verify_webhook(self.headers, body, SECRET)
            r = box[0]
            with r.lock:
                status = r.failures.pop(0) if r.failures else (200 if verified else 401)
                r.requests.append(Received(self.headers, body, verified, status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # the test reads what it needs from `requests`

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box.append(Receiver(f"http://127.0.0.1:{httpd.server_address[1]}/hook"))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield box[0]
    httpd.shutdown()
    httpd.server_close()
    thread.join()


# -- registering -------------------------------------------------------------------------------


def test_create_list_get_delete(client: Client) -> None:
    made = client.create_webhook("https://ci.example.com/agentyard", SECRET, types=["task.*"])
    assert made.url == "https://ci.example.com/agentyard" and made.namespace == client.namespace
    assert EventType.TASK_CREATED in made.types and EventType.TASK_DEAD_LETTERED in made.types
    assert all(t.kind == "task" for t in made.types) and len(made.types) == 13
    assert made.state == WebhookState.ACTIVE and made.consecutive_failures == 0
    assert made.last_error is None and made.paused_until is None and made.last_delivered_at is None
    assert made.created_at.tzinfo is not None and made.cursor >= 0
    assert SECRET not in repr(made)

    every = client.create_webhook("http://127.0.0.1:9/all", SECRET)
    assert every.types == []  # every type
    one = client.create_webhook("http://127.0.0.1:9/one", SECRET, types="task.dead_lettered")
    assert one.types == [EventType.TASK_DEAD_LETTERED]

    assert sorted(h.id for h in client.list_webhooks()) == sorted([made.id, every.id, one.id])
    assert client.get_webhook(made.id).url == made.url
    assert client.get_webhook(made).id == made.id
    assert client.list_deliveries(made) == []

    client.delete_webhook(made)
    client.delete_webhook(every.id)
    assert [h.id for h in client.list_webhooks()] == [one.id]
    with pytest.raises(NotFound):
        client.get_webhook(made)
    with pytest.raises(NotFound):
        client.delete_webhook(made)
    with pytest.raises(NotFound):
        client.list_deliveries(made)
    # Another namespace sees none of them.
    other = client.with_namespace(unique("ns"))
    assert other.list_webhooks() == []
    with pytest.raises(NotFound):
        other.get_webhook(one)


@pytest.mark.parametrize(
    ("url", "secret", "types", "field"),
    [
        ("http://127.0.0.1:9/x", "too-short", None, "secret"),
        ("http://127.0.0.1:9/x", "s" * 1025, None, "secret"),
        ("http://127.0.0.1:9/x", SECRET, ["task.nope"], "types[0]"),
        ("http://127.0.0.1:9/x", SECRET, ["task.*", "nope.*"], "types[1]"),
        ("ftp://example.com/x", SECRET, None, "url"),
        ("not a url", SECRET, None, "url"),
    ],
)
def test_create_refuses_bad_fields(
    client: Client, url: str, secret: str, types: list[str] | None, field: str
) -> None:
    with pytest.raises(ValidationError) as e:
        client.create_webhook(url, secret, types=types)
    assert e.value.field == field


# -- delivering --------------------------------------------------------------------------------


def test_deliveries_are_signed_in_order_and_verified(client: Client, receiver: Receiver) -> None:
    q = unique()
    client.create_task(q)  # before the webhook: not delivered
    hook = client.create_webhook(receiver.url, SECRET, types=["task.created", "task.completed"])
    receiver.failures = [503]  # the first attempt fails: retried after a second
    first = client.create_task(q, correlation_id="hooked")
    client.complete_task(client.claim(q, "w", wait_ms=1000).tasks[0])  # the earlier task
    second = client.create_task(q)

    wait_until(lambda: len(receiver.taken()) == 3, timeout=20)
    taken = receiver.taken()
    assert all(r.verified for r in receiver.requests)
    payloads = [WebhookPayload.parse(r.body) for r in taken]
    logged = client.list_events(types=["task.created", "task.completed"], after=hook.cursor).events
    assert [p.event for p in payloads] == logged  # the events of the log, in its order
    assert [p.event.type for p in payloads] == ["task.created", "task.completed", "task.created"]
    assert payloads[0].event.subject == f"task:{first.id}"
    assert payloads[0].event.correlation_id == "hooked"
    assert payloads[2].event.subject == f"task:{second.id}"
    for r, p in zip(taken, payloads):
        assert p.webhook_id == hook.id and p.delivery_id == f"{hook.id}:{p.event.seq}"
        assert r.headers[DELIVERY_ID_HEADER] == p.delivery_id
        assert r.headers[EVENT_TYPE_HEADER] == p.event.type
        assert abs(int(r.headers[TIMESTAMP_HEADER]) - time.time()) < 60
        assert r.headers[SIGNATURE_HEADER].startswith("v1=")
        # What a forger could not do: another secret, another body, an old request.
        assert not verify_webhook(r.headers, r.body, "another-secret-0123456789")
        assert not verify_webhook(r.headers, r.body.replace(b"task.", b"tusk."), SECRET)
        assert not verify_webhook(r.headers, r.body, SECRET, now=time.time() + 301)
        assert verify_webhook(r.headers, r.body, SECRET, tolerance_s=None, now=time.time() + 10**6)
        assert verify_webhook(dict(r.headers.items()), r.body, SECRET)
        assert verify_webhook(dict(r.headers.items()), r.body.decode(), SECRET.encode())

    # The failed first attempt was retried with the same delivery id.
    assert receiver.answers()[:2] == [503, 200]
    assert receiver.requests[0].body == receiver.requests[1].body

    deliveries = client.list_deliveries(hook)
    assert len(deliveries) == 4
    assert [d.seq for d in deliveries] == sorted((d.seq for d in deliveries), reverse=True)
    newest, oldest = deliveries[0], deliveries[-1]
    assert newest.delivered and newest.status == 200 and newest.error is None
    assert newest.id == payloads[2].delivery_id and newest.event_type == EventType.TASK_CREATED
    assert (oldest.attempt, oldest.delivered, oldest.status) == (1, False, 503)
    assert oldest.error and "503" in oldest.error
    assert (deliveries[-2].attempt, deliveries[-2].delivered) == (2, True)
    assert deliveries[-2].id == oldest.id == payloads[0].delivery_id
    assert all(d.duration_ms >= 0 and d.at.tzinfo is not None for d in deliveries)

    state = client.get_webhook(hook)
    assert state.state == WebhookState.ACTIVE and state.consecutive_failures == 0
    assert state.last_delivered_at is not None
    assert state.cursor >= payloads[2].event.seq

    client.delete_webhook(hook)
    with pytest.raises(NotFound):
        client.get_webhook(hook)


def test_a_failing_receiver_shows_in_the_webhook_state(client: Client, receiver: Receiver) -> None:
    receiver.failures = [500, 500, 500]
    hook = client.create_webhook(receiver.url, SECRET, types="task.created")
    client.create_task(unique())
    wait_until(lambda: client.get_webhook(hook).consecutive_failures >= 1, timeout=10)
    failing = client.get_webhook(hook)
    assert failing.state == WebhookState.RETRYING
    assert failing.last_error is not None and "500" in failing.last_error
    wait_until(lambda: len(receiver.taken()) == 1, timeout=20)  # 1 s, 2 s, 4 s later
    assert receiver.answers() == [500, 500, 500, 200]
    wait_until(lambda: client.get_webhook(hook).state == WebhookState.ACTIVE, timeout=5)
    assert [d.attempt for d in client.list_deliveries(hook)] == [4, 3, 2, 1]


def test_async_webhooks(server: Server, namespace: str, receiver: Receiver) -> None:
    async def main() -> None:
        async with AsyncClient(server.url, namespace=namespace) as c:
            hook = await c.create_webhook(receiver.url, SECRET, types=[EventType.MESSAGE_SENT])
            assert [h.id for h in await c.list_webhooks()] == [hook.id]
            await c.register_agent("listener")
            sent = await c.send_message("ping", to="listener", correlation_id="hooked-async")
            deadline = time.monotonic() + 10
            while not receiver.taken() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            (taken,) = receiver.taken()
            assert taken.verified
            payload = WebhookPayload.parse(taken.body)
            assert payload.event.type == EventType.MESSAGE_SENT
            assert payload.event.subject == f"message:{sent.seq}"
            assert payload.event.data["id"] == sent.id
            (delivery,) = await c.list_deliveries(hook)
            assert delivery.delivered and delivery.id == payload.delivery_id
            assert (await c.get_webhook(hook)).last_delivered_at is not None
            await c.delete_webhook(hook)
            with pytest.raises(NotFound):
                await c.get_webhook(hook.id)

    asyncio.run(main())


# -- verify_webhook on its own -----------------------------------------------------------------


def signed(body: bytes, secret: str = SECRET, at: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if at is None else at
    return {TIMESTAMP_HEADER: str(ts), SIGNATURE_HEADER: webhook_signature(secret, ts, body)}


def test_the_signature_is_the_servers() -> None:
    # The server's own test vector (crates/agentyard-server/src/dispatch/webhooks.rs).
    assert webhook_signature("Jefe", 0, b"what do ya want for nothing?") == (
        "v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"
    )
    assert verify_webhook(
        {"agentyard-timestamp": "0",
         "agentyard-signature": "v1=37f471929915ccd2cbbe79feb84ffcff4f2bb25e15fc41c2506687331ae179cc"},
        b"what do ya want for nothing?",
        "Jefe",
        now=100,
    )


def test_verify_takes_headers_in_any_shape_and_case() -> None:
    body = json.dumps({"delivery_id": "h:1"}).encode()
    headers = signed(body)
    assert verify_webhook(headers, body, SECRET)
    assert verify_webhook({k.upper(): v for k, v in headers.items()}, body, SECRET)
    assert verify_webhook(list(headers.items()), body, SECRET)
    as_bytes = [(k.lower().encode(), v.encode()) for k, v in headers.items()]  # an ASGI scope's
    assert verify_webhook(as_bytes, bytearray(body), SECRET)
    message = http.client.HTTPMessage()
    for k, v in headers.items():
        message[k] = v
    assert verify_webhook(message, memoryview(body), SECRET)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {TIMESTAMP_HEADER: "1700000000"},
        {SIGNATURE_HEADER: "v1=00"},
        {TIMESTAMP_HEADER: "yesterday", SIGNATURE_HEADER: "v1=00"},
        {TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: "v1=00"},
        {TIMESTAMP_HEADER: "1700000000", SIGNATURE_HEADER: "v1=ä"},
    ],
)
def test_verify_says_false_to_what_is_not_a_delivery(headers: dict[str, str]) -> None:
    assert verify_webhook(headers, b"{}", SECRET, now=1_700_000_000) is False


def test_verify_refuses_stale_and_future_timestamps() -> None:
    body = b'{"x":1}'
    at = 1_700_000_000
    headers = signed(body, at=at)
    assert verify_webhook(headers, body, SECRET, now=at + 300)
    assert not verify_webhook(headers, body, SECRET, now=at + 301)
    assert not verify_webhook(headers, body, SECRET, now=at - 301)
    assert verify_webhook(headers, body, SECRET, tolerance_s=10, now=at + 10)
    assert not verify_webhook(headers, body, SECRET, tolerance_s=10, now=at + 11)
    # The timestamp is signed: moving it invalidates the signature.
    moved = dict(headers, **{TIMESTAMP_HEADER: str(at + 1)})
    assert not verify_webhook(moved, body, SECRET, now=at)


def test_a_payload_reads_back_from_its_body() -> None:
    body = json.dumps(
        {
            "delivery_id": "wh1:7",
            "webhook_id": "wh1",
            "event": {
                "seq": 7,
                "ts": "2026-11-22T07:33:35.123Z",
                "namespace": "default",
                "type": "task.completed",
                "subject": "task:01J",
                "actor": "w1",
                "correlation_id": None,
                "data": {"run_ms": 12},
                "added_later": True,
            },
        }
    ).encode()
    p = WebhookPayload.parse(body)
    assert (p.delivery_id, p.webhook_id, p.event.seq, p.event.type) == ("wh1:7", "wh1", 7, "task.completed")
    assert p.event.ts.year == 2026 and p.event.ts.tzinfo is not None
    assert p.event.data == {"run_ms": 12} and p.event.actor == "w1"
    newer = json.loads(body)
    newer["event"]["type"] = "task.teleported"  # a type a newer server adds
    assert WebhookPayload.parse(json.dumps(newer)).event.type == "task.teleported"
    for bad in (b"not json", b"[]", b'{"delivery_id": "x"}'):
        with pytest.raises(ValueError):
            WebhookPayload.parse(bad)
