"""Every API operation as data: how to build its request and how to read its answer.

Both :class:`~agentyard_client.Client` and :class:`~agentyard_client.AsyncClient` run these
``Call`` objects, so the two clients cannot disagree on a path, a field or a parse: they differ
only in how the bytes travel.
"""

from __future__ import annotations

import datetime
import json as _json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Mapping, Optional, Sequence, TypeVar, Union
from urllib.parse import quote

from ._models import (
    JSON,
    Agent,
    AgentStatus,
    Backoff,
    BatchCreated,
    ClaimResult,
    CompleteManyResult,
    Completion,
    Created,
    Delivery,
    Event,
    EventPage,
    EventType,
    Health,
    InboxPage,
    IssuedToken,
    Limit,
    Message,
    NewArtifact,
    NewTask,
    Progress,
    PruneResult,
    QueueStats,
    Recipient,
    RemovedAgent,
    Subscriptions,
    Task,
    TaskPage,
    TaskStatus,
    TokenInfo,
    TokenRole,
    Trace,
    Webhook,
)
from .errors import ApiError, error_from_response

if sys.version_info >= (3, 11):
    from typing import TypedDict
else:  # pragma: no cover - 3.10
    from typing_extensions import TypedDict

T = TypeVar("T")

#: The header naming the namespace of a request (the server's ``Agentyard-Namespace``).
NAMESPACE_HEADER = "Agentyard-Namespace"
PROBLEM_JSON = "application/problem+json"


class _NoBody:
    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _NoBody()


@dataclass(frozen=True)
class Answer:
    """A decoded HTTP answer: what ``Call.parse`` reads."""

    status: int
    headers: Mapping[str, str]
    body: Any


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and the function that reads its successful answer."""

    method: str
    path: str
    parse: Callable[[Answer], T]
    params: Optional[Mapping[str, str]] = None
    json: Any = NO_BODY
    headers: Mapping[str, str] = field(default_factory=dict)
    #: How long the server may hold the request (long polls), added to the read timeout.
    wait_s: float = 0.0

    def body_bytes(self) -> Optional[bytes]:
        if self.json is NO_BODY:
            return None
        return _json.dumps(self.json, separators=(",", ":"), allow_nan=False).encode()


def seg(value: str) -> str:
    """One path segment, percent-encoded (``repo:acme/web`` → ``repo%3Aacme%2Fweb``)."""
    return quote(str(value), safe="")


def decode_body(content: bytes) -> Any:
    if not content:
        return None
    try:
        return _json.loads(content)
    except ValueError:
        return content.decode("utf-8", "replace")


def finish(call: Call[T], status: int, headers: Mapping[str, str], content: bytes, reason: str) -> T:
    """Raises the mapped :class:`ApiError` for an error answer; parses a successful one."""
    body = decode_body(content)
    if status >= 400:
        raise error_from_response(status, body, headers.get("retry-after"), reason)
    return call.parse(Answer(status, headers, body))


def api_error(status: int, headers: Mapping[str, str], content: bytes, reason: str) -> ApiError:
    return error_from_response(status, decode_body(content), headers.get("retry-after"), reason)


def _drop_none(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


# ---------------------------------------------------------------------------------------------
# Parsers


def _task(a: Answer) -> Task:
    return Task.from_json(a.body)


def _created_task(a: Answer) -> Created[Task]:
    return Created(Task.from_json(a.body), a.status == 201)


def _agent(a: Answer) -> Agent:
    return Agent.from_json(a.body)


def _health(a: Answer) -> Health:
    return Health.from_json(a.body)


def _subscriptions(a: Answer) -> Subscriptions:
    return Subscriptions.from_json(a.body)


# ---------------------------------------------------------------------------------------------
# Health


def health() -> Call[Health]:
    return Call("GET", "/health", _health)


def live() -> Call[Health]:
    return Call("GET", "/health/live", _health)


def ready() -> Call[Health]:
    return Call("GET", "/health/ready", _health)


def openapi() -> Call[dict[str, Any]]:
    return Call("GET", "/openapi.json", lambda a: dict(a.body))


# ---------------------------------------------------------------------------------------------
# Tasks


class TaskOptions(TypedDict, total=False):
    """The optional fields of a task to create (see :class:`NewTask`)."""

    kind: str
    title: str
    priority: int
    required_capabilities: Sequence[str]
    max_attempts: int
    backoff: Union[Backoff, Mapping[str, Any]]
    run_at: Union[datetime.datetime, str]
    delay_ms: int
    timeout_ms: int
    idempotency_key: str
    concurrency_key: str
    rate_limit_key: str
    correlation_id: str
    context: Mapping[str, Any]


def create_task(task: NewTask) -> Call[Created[Task]]:
    return Call("POST", "/v1/tasks", _created_task, json=task.to_json())


def create_tasks(tasks: Sequence[Union[NewTask, Mapping[str, Any]]]) -> Call[BatchCreated]:
    items = [t.to_json() if isinstance(t, NewTask) else dict(t) for t in tasks]
    return Call(
        "POST", "/v1/tasks/batch", lambda a: BatchCreated.from_json(a.body), json={"tasks": items}
    )


def get_task(task_id: str) -> Call[Task]:
    return Call("GET", f"/v1/tasks/{seg(task_id)}", _task)


def list_tasks(
    queue: Optional[str] = None,
    status: Optional[Union[TaskStatus, str]] = None,
    limit: Optional[int] = None,
    cursor: Optional[str] = None,
) -> Call[TaskPage]:
    params = _drop_none(
        {
            "queue": queue,
            "status": None if status is None else str(status),
            "limit": None if limit is None else str(limit),
            "cursor": cursor,
        }
    )
    return Call("GET", "/v1/tasks", lambda a: TaskPage.from_json(a.body), params=params)


def update_task(
    task_id: str,
    *,
    expected_version: Optional[int],
    if_match: Optional[int],
    merge: bool,
    title: Optional[str],
    priority: Optional[int],
    input: JSON,
    context: Optional[Mapping[str, Any]],
    artifacts: Optional[Sequence[NewArtifact]],
    progress: Optional[Progress],
    status: Optional[Union[TaskStatus, str]],
) -> Call[Task]:
    body = _drop_none(
        {
            "expected_version": expected_version,
            "title": title,
            "priority": priority,
            "input": input,
            "context": None if context is None else dict(context),
            "artifacts": None if artifacts is None else [a.to_json() for a in artifacts],
            "progress": None if progress is None else progress.to_json(),
            "status": None if status is None else str(status),
        }
    )
    headers = {} if if_match is None else {"If-Match": f'"{if_match}"'}
    params = {"merge": "true"} if merge else None
    return Call(
        "PATCH", f"/v1/tasks/{seg(task_id)}", _task, params=params, json=body, headers=headers
    )


def cancel_task(task_id: str) -> Call[Task]:
    return Call("POST", f"/v1/tasks/{seg(task_id)}/cancel", _task)


def redrive_task(task_id: str) -> Call[Task]:
    return Call("POST", f"/v1/tasks/{seg(task_id)}/redrive", _task)


def heartbeat_task(
    task_id: str, lease_token: str, lease_ms: Optional[int], progress: Optional[Progress]
) -> Call[Task]:
    body = _drop_none(
        {
            "lease_token": lease_token,
            "lease_ms": lease_ms,
            "progress": None if progress is None else progress.to_json(),
        }
    )
    return Call("POST", f"/v1/tasks/{seg(task_id)}/heartbeat", _task, json=body)


def complete_task(
    task_id: str, lease_token: str, result: JSON, artifacts: Optional[Sequence[NewArtifact]]
) -> Call[Task]:
    item = Completion(task_id, lease_token, result, artifacts).to_json()
    del item["id"]
    return Call("POST", f"/v1/tasks/{seg(task_id)}/complete", _task, json=item)


def complete_tasks(items: Sequence[Completion]) -> Call[CompleteManyResult]:
    return Call(
        "POST",
        "/v1/tasks/complete",
        lambda a: CompleteManyResult.from_json(a.body),
        json={"items": [i.to_json() for i in items]},
    )


def fail_task(
    task_id: str, lease_token: str, message: str, kind: Optional[str], retryable: Optional[bool]
) -> Call[Task]:
    error = _drop_none({"kind": kind, "message": message, "retryable": retryable})
    return Call(
        "POST",
        f"/v1/tasks/{seg(task_id)}/fail",
        _task,
        json={"lease_token": lease_token, "error": error},
    )


def release_task(task_id: str, lease_token: str, delay_ms: Optional[int]) -> Call[Task]:
    return Call(
        "POST",
        f"/v1/tasks/{seg(task_id)}/release",
        _task,
        json=_drop_none({"lease_token": lease_token, "delay_ms": delay_ms}),
    )


# ---------------------------------------------------------------------------------------------
# Queues


def claim(
    queue: str,
    agent: str,
    capabilities: Optional[Sequence[str]],
    max: Optional[int],
    wait_ms: Optional[int],
    lease_ms: Optional[int],
    complete: Optional[Sequence[Completion]],
) -> Call[ClaimResult]:
    body = _drop_none(
        {
            "agent": agent,
            "capabilities": None if capabilities is None else list(capabilities),
            "max": max,
            "wait_ms": wait_ms,
            "lease_ms": lease_ms,
            "complete": [c.to_json() for c in complete] if complete else None,
        }
    )
    return Call(
        "POST",
        f"/v1/queues/{seg(queue)}/claim",
        lambda a: ClaimResult.from_json(a.body),
        json=body,
        wait_s=(wait_ms or 0) / 1000.0,
    )


def list_queues() -> Call[list[QueueStats]]:
    return Call("GET", "/v1/queues", lambda a: [QueueStats.from_json(q) for q in a.body["queues"]])


def queue_stats(queue: str) -> Call[QueueStats]:
    return Call("GET", f"/v1/queues/{seg(queue)}", lambda a: QueueStats.from_json(a.body))


def redrive_queue(queue: str) -> Call[int]:
    return Call("POST", f"/v1/queues/{seg(queue)}/redrive", lambda a: int(a.body["redriven"]))


# ---------------------------------------------------------------------------------------------
# Agents


def register_agent(
    name: str,
    capabilities: Optional[Sequence[str]],
    slots: Optional[int],
    metadata: JSON,
) -> Call[Agent]:
    body = _drop_none(
        {
            "capabilities": None if capabilities is None else list(capabilities),
            "slots": slots,
            "metadata": metadata,
        }
    )
    return Call("PUT", f"/v1/agents/{seg(name)}", _agent, json=body)


def get_agent(name: str) -> Call[Agent]:
    return Call("GET", f"/v1/agents/{seg(name)}", _agent)


def list_agents(
    status: Optional[Union[AgentStatus, str]], cursor: Optional[str] = None
) -> Call[tuple[list[Agent], Optional[str]]]:
    """One page of agents and the cursor of the next (None on the last page)."""
    params: dict[str, str] = {"limit": "1000"}
    if status is not None:
        params["status"] = str(status)
    if cursor is not None:
        params["cursor"] = cursor
    return Call(
        "GET",
        "/v1/agents",
        lambda a: (
            [Agent.from_json(x) for x in a.body["agents"]],
            a.body.get("next_cursor"),
        ),
        params=params,
    )


def heartbeat_agent(name: str) -> Call[Agent]:
    return Call("POST", f"/v1/agents/{seg(name)}/heartbeat", _agent)


def drain_agent(name: str) -> Call[Agent]:
    return Call("POST", f"/v1/agents/{seg(name)}/drain", _agent)


def remove_agent(name: str) -> Call[RemovedAgent]:
    return Call("DELETE", f"/v1/agents/{seg(name)}", lambda a: RemovedAgent.from_json(a.body))


def subscriptions(name: str) -> Call[list[str]]:
    return Call("GET", f"/v1/agents/{seg(name)}/subscriptions", lambda a: [str(t) for t in a.body["topics"]])


def subscribe(name: str, topic: str) -> Call[Subscriptions]:
    return Call("PUT", f"/v1/agents/{seg(name)}/subscriptions/{seg(topic)}", _subscriptions)


def unsubscribe(name: str, topic: str) -> Call[Subscriptions]:
    return Call("DELETE", f"/v1/agents/{seg(name)}/subscriptions/{seg(topic)}", _subscriptions)


# ---------------------------------------------------------------------------------------------
# Messages


def send_message(
    body: JSON,
    to: Recipient,
    sender: Optional[str],
    correlation_id: Optional[str],
    reply_to: Optional[str],
    ttl_ms: Optional[int],
    idempotency_key: Optional[str],
) -> Call[Created[Message]]:
    req = _drop_none(
        {
            "from": sender,
            "correlation_id": correlation_id,
            "reply_to": reply_to,
            "ttl_ms": ttl_ms,
            "idempotency_key": idempotency_key,
        }
    )
    req["to"] = to.to_json()
    req["body"] = body
    return Call(
        "POST",
        "/v1/messages",
        lambda a: Created(Message.from_json(a.body), a.status == 201),
        json=req,
    )


def recipient(agent: Optional[str], topic: Optional[str], broadcast: bool) -> Recipient:
    r = Recipient(agent=agent, topic=topic, broadcast=broadcast)
    r.to_json()  # checks that exactly one is given
    return r


def reply_recipient(original: Message) -> Recipient:
    if original.sender is None:
        raise ValueError(f"message {original.id} names no sender to reply to")
    return Recipient(agent=original.sender)


def read_inbox(
    name: str, after: Optional[int], wait_ms: Optional[int], limit: Optional[int]
) -> Call[InboxPage]:
    params = _drop_none(
        {
            "after": None if after is None else str(after),
            "wait_ms": None if wait_ms is None else str(wait_ms),
            "limit": None if limit is None else str(limit),
        }
    )
    return Call(
        "GET",
        f"/v1/agents/{seg(name)}/inbox",
        lambda a: InboxPage.from_json(a.body),
        params=params,
        wait_s=(wait_ms or 0) / 1000.0,
    )


def ack_inbox(name: str, cursor: int) -> Call[int]:
    return Call(
        "POST",
        f"/v1/agents/{seg(name)}/inbox/ack",
        lambda a: int(a.body["cursor"]),
        json={"cursor": cursor},
    )


def stream_inbox(name: str, after: Optional[int], last_event_id: Optional[str]) -> Call[None]:
    """The request of the SSE stream; its answer is read by :class:`SseDecoder`."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    params = None if after is None or last_event_id is not None else {"after": str(after)}
    return Call(
        "GET",
        f"/v1/agents/{seg(name)}/inbox/stream",
        lambda a: None,
        params=params,
        headers=headers,
    )


# ---------------------------------------------------------------------------------------------
# Limits


def set_limit(
    key: str,
    rate_per_minute: Optional[int],
    burst: Optional[int],
    max_concurrent: Optional[int],
) -> Call[Limit]:
    body = _drop_none(
        {"rate_per_minute": rate_per_minute, "burst": burst, "max_concurrent": max_concurrent}
    )
    return Call("PUT", f"/v1/limits/{seg(key)}", lambda a: Limit.from_json(a.body), json=body)


def list_limits() -> Call[list[Limit]]:
    return Call("GET", "/v1/limits", lambda a: [Limit.from_json(x) for x in a.body["limits"]])


def get_limit(key: str) -> Call[Limit]:
    """``GET /v1/limits/{key}`` (servers before it answer 405: see :func:`limit_from_list`)."""
    return Call("GET", f"/v1/limits/{seg(key)}", lambda a: Limit.from_json(a.body))


def limit_from_list(key: str) -> Call[Limit]:
    """The limits of one key, picked from the list, for servers without ``GET /v1/limits/{key}``.
    A key not listed has the defaults (no rate limit; one at a time as a concurrency key)."""

    def pick(a: Answer) -> Limit:
        for item in a.body["limits"]:
            if item.get("key") == key:
                return Limit.from_json(item)
        return Limit(key=key)

    return Call("GET", "/v1/limits", pick)


def delete_limit(key: str) -> Call[None]:
    return Call("DELETE", f"/v1/limits/{seg(key)}", lambda a: None)


# ---------------------------------------------------------------------------------------------
# Tokens (admin tokens only)


def create_token(
    role: Union[TokenRole, str],
    namespaces: Optional[Sequence[str]],
    agent: Optional[str],
    name: str,
) -> Call[IssuedToken]:
    if isinstance(namespaces, str):
        namespaces = [namespaces]  # one name, not its characters
    body = _drop_none(
        {
            "role": str(TokenRole(role)),
            "namespaces": None if namespaces is None else list(namespaces),
            "agent": agent,
        }
    )
    body["name"] = name
    return Call("POST", "/v1/tokens", lambda a: IssuedToken.from_json(a.body), json=body)


def list_tokens() -> Call[list[TokenInfo]]:
    return Call("GET", "/v1/tokens", lambda a: [TokenInfo.from_json(t) for t in a.body["tokens"]])


def revoke_token(token_id: str) -> Call[TokenInfo]:
    return Call("DELETE", f"/v1/tokens/{seg(token_id)}", lambda a: TokenInfo.from_json(a.body))


# ---------------------------------------------------------------------------------------------
# Events and traces

#: Event types to filter by: one string (an exact type, a kind such as ``"task.*"``, or several
#: of them comma-separated) or a sequence of them.
EventTypes = Union[str, EventType, Sequence[Union[str, EventType]]]

def event_types(types: Optional[EventTypes]) -> Optional[str]:
    """The ``type`` query parameter: the patterns comma-separated (``None`` for no filter)."""
    if types is None:
        return None
    if isinstance(types, str):  # EventType is a str too
        return str(types)
    return ",".join(str(t) for t in types)


def task_subject(task_id: str) -> str:
    """The ``subject`` of a task's events."""
    return f"task:{task_id}"


def _event_filter(
    types: Optional[EventTypes], subject: Optional[str], correlation_id: Optional[str]
) -> dict[str, str]:
    return _drop_none(
        {"type": event_types(types), "subject": subject, "correlation_id": correlation_id}
    )


def list_events(
    after: int,
    limit: Optional[int],
    types: Optional[EventTypes],
    subject: Optional[str],
    correlation_id: Optional[str],
) -> Call[EventPage]:
    params = _event_filter(types, subject, correlation_id)
    params["after"] = str(after)
    if limit is not None:
        params["limit"] = str(limit)
    return Call("GET", "/v1/events", lambda a: EventPage.from_json(a.body), params=params)


def last_seq() -> Call[int]:
    """The newest ``seq`` of the yard's log, read with the smallest page there is."""
    return Call(
        "GET",
        "/v1/events",
        lambda a: int(a.body["last_seq"]),
        params={"after": "0", "limit": "1"},
    )


def trace(correlation_id: str) -> Call[Trace]:
    return Call("GET", f"/v1/traces/{seg(correlation_id)}", lambda a: Trace.from_json(a.body))


def stream_events(
    after: Optional[int],
    last_event_id: Optional[str],
    types: Optional[EventTypes],
    subject: Optional[str],
    correlation_id: Optional[str],
) -> Call[None]:
    """The request of the event stream; its answer is read by :class:`SseDecoder`."""
    headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
    params = _event_filter(types, subject, correlation_id)
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    elif after is not None:
        params["after"] = str(after)
    return Call(
        "GET", "/v1/events/stream", lambda a: None, params=params or None, headers=headers
    )


# ---------------------------------------------------------------------------------------------
# Webhooks


def create_webhook(url: str, secret: str, types: Optional[EventTypes]) -> Call[Webhook]:
    body: dict[str, Any] = {"url": url, "secret": secret}
    if types is not None:
        listed = [types] if isinstance(types, str) else types  # one pattern, not its characters
        body["types"] = [str(t) for t in listed]
    return Call("POST", "/v1/webhooks", lambda a: Webhook.from_json(a.body), json=body)


def list_webhooks() -> Call[list[Webhook]]:
    return Call(
        "GET", "/v1/webhooks", lambda a: [Webhook.from_json(h) for h in a.body["webhooks"]]
    )


def get_webhook(webhook_id: str) -> Call[Webhook]:
    return Call("GET", f"/v1/webhooks/{seg(webhook_id)}", lambda a: Webhook.from_json(a.body))


def delete_webhook(webhook_id: str) -> Call[None]:
    return Call("DELETE", f"/v1/webhooks/{seg(webhook_id)}", lambda a: None)


def list_deliveries(webhook_id: str) -> Call[list[Delivery]]:
    return Call(
        "GET",
        f"/v1/webhooks/{seg(webhook_id)}/deliveries",
        lambda a: [Delivery.from_json(d) for d in a.body["deliveries"]],
    )


# ---------------------------------------------------------------------------------------------
# Admin (admin tokens only)


def prune() -> Call[PruneResult]:
    return Call("POST", "/v1/admin/prune", lambda a: PruneResult.from_json(a.body))


# ---------------------------------------------------------------------------------------------
# Server-Sent Events


@dataclass
class SseEvent:
    event: str
    data: str
    id: Optional[str]


class SseDecoder:
    """Turns the lines of a ``text/event-stream`` into events (the WHATWG rules: ``data``
    lines joined with newlines, comments skipped, the last ``id`` kept, ``retry`` noted)."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: Optional[str] = None
        self.last_event_id: Optional[str] = None
        self.retry_ms: Optional[int] = None

    def feed(self, line: str) -> Optional[SseEvent]:
        line = line.rstrip("\r\n")
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data), self._id)
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
                self.last_event_id = value
        elif name == "retry":
            if value.isdigit():
                self.retry_ms = int(value)
        return None


def message_of(event: SseEvent) -> Optional[Message]:
    """The message an inbox stream event carries (``None`` for other event types)."""
    if event.event != "message":
        return None
    return Message.from_json(_json.loads(event.data))


def event_of(event: SseEvent) -> Event:
    """The log entry an event stream's SSE event carries (its data is the event's JSON)."""
    return Event.from_json(_json.loads(event.data))
