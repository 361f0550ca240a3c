"""The API's answers as typed, immutable dataclasses.

Field names are the server's JSON field names (see ``GET /openapi.json``). Each class has a
``from_json`` that reads the server's JSON and ignores fields it does not know, so a newer
server does not break an older client. Timestamps become timezone-aware ``datetime`` objects in
UTC; JSON payloads (``input``, ``result``, ``context``, message bodies) stay plain Python values.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Generic, Mapping, Optional, Sequence, TypeVar

__all__ = [
    "Agent",
    "AgentStatus",
    "Artifact",
    "Backoff",
    "BatchCreated",
    "ClaimResult",
    "CompleteManyResult",
    "CompleteOutcome",
    "Completion",
    "Created",
    "Delivery",
    "Event",
    "EventPage",
    "EventType",
    "Health",
    "HealthReason",
    "InboxPage",
    "IssuedToken",
    "ItemProblem",
    "Lease",
    "Limit",
    "Message",
    "NewArtifact",
    "NewTask",
    "Progress",
    "PruneResult",
    "QueueStats",
    "Recipient",
    "RemovedAgent",
    "StatusCounts",
    "Subscriptions",
    "Task",
    "TaskError",
    "TaskPage",
    "TaskStatus",
    "TokenInfo",
    "TokenRole",
    "Trace",
    "Webhook",
    "WebhookPayload",
    "WebhookState",
]

JSON = Any
"""Any JSON value: ``dict``, ``list``, ``str``, ``int``, ``float``, ``bool`` or ``None``."""


def parse_time(value: Any) -> _dt.datetime:
    """Parses the server's RFC 3339 timestamps (``2026-11-22T07:33:35.123Z``)."""
    if not isinstance(value, str):
        raise ValueError(f"expected an RFC 3339 timestamp, got {value!r}")
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    parsed = _dt.datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=_dt.timezone.utc)
    return parsed


def _opt_time(value: Any) -> Optional[_dt.datetime]:
    return None if value is None else parse_time(value)


def format_time(value: _dt.datetime) -> str:
    """An aware ``datetime`` as RFC 3339 UTC; a naive one is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_dt.timezone.utc)
    utc = value.astimezone(_dt.timezone.utc)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _OpenEnum(str, Enum):
    """A string enum that accepts values a newer server may add (kept as pseudo-members)."""

    @classmethod
    def _missing_(cls, value: object) -> Any:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = value.upper()
        member._value_ = value
        return member

    def __str__(self) -> str:
        return str(self.value)


class TaskStatus(_OpenEnum):
    """Where a task is in its life. Compares equal to its string value."""

    SCHEDULED = "scheduled"
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED)


class AgentStatus(_OpenEnum):
    """Whether an agent takes work."""

    ACTIVE = "active"
    DRAINING = "draining"
    GONE = "gone"


class TokenRole(_OpenEnum):
    """What an API token allows (see ``docs/design/auth.md``)."""

    #: Everything, in every namespace, tokens included.
    ADMIN = "admin"
    #: Everything in its namespaces except tokens.
    OPERATOR = "operator"
    #: Acts as one agent only: claims, finishes its tasks, reads its inbox, sends from itself.
    AGENT = "agent"
    #: Reads only; lease tokens come back blank (``""``).
    READER = "reader"


@dataclass(frozen=True)
class Lease:
    """The lease of a running task. ``token`` must accompany heartbeat, complete and fail."""

    agent: str
    token: str
    expires_at: _dt.datetime
    acquired_at: _dt.datetime

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Lease:
        return cls(
            agent=d["agent"],
            token=d["token"],
            expires_at=parse_time(d["expires_at"]),
            acquired_at=parse_time(d["acquired_at"]),
        )


@dataclass(frozen=True)
class Backoff:
    """Retry backoff: ``initial_ms * multiplier**(attempt-1)``, capped at ``max_ms``, minus up
    to ``jitter`` of it at random."""

    initial_ms: int = 1000
    max_ms: int = 300_000
    multiplier: float = 2.0
    jitter: float = 0.2

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Backoff:
        return cls(
            initial_ms=int(d["initial_ms"]),
            max_ms=int(d["max_ms"]),
            multiplier=float(d["multiplier"]),
            jitter=float(d["jitter"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "initial_ms": self.initial_ms,
            "max_ms": self.max_ms,
            "multiplier": self.multiplier,
            "jitter": self.jitter,
        }


@dataclass(frozen=True)
class Artifact:
    """Something a task produced or refers to: a ``uri`` or inline ``content``."""

    name: str
    created_at: _dt.datetime
    uri: Optional[str] = None
    content: JSON = None
    media_type: Optional[str] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Artifact:
        return cls(
            name=d["name"],
            created_at=parse_time(d["created_at"]),
            uri=d.get("uri"),
            content=d.get("content"),
            media_type=d.get("media_type"),
        )


@dataclass(frozen=True)
class NewArtifact:
    """An artifact to attach (the server stamps ``created_at``). Needs ``uri`` or ``content``."""

    name: str
    uri: Optional[str] = None
    content: JSON = None
    media_type: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.uri is not None:
            out["uri"] = self.uri
        if self.content is not None:
            out["content"] = self.content
        if self.media_type is not None:
            out["media_type"] = self.media_type
        return out


@dataclass(frozen=True)
class Progress:
    """How far along a running task is."""

    percent: Optional[float] = None
    message: Optional[str] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Progress:
        percent = d.get("percent")
        return cls(percent=None if percent is None else float(percent), message=d.get("message"))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.percent is not None:
            out["percent"] = self.percent
        if self.message is not None:
            out["message"] = self.message
        return out


@dataclass(frozen=True)
class TaskError:
    """Why an attempt failed. ``retryable=False`` sent the task to the dead-letter view."""

    kind: str
    message: str
    retryable: bool = True

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TaskError:
        return cls(kind=d["kind"], message=d["message"], retryable=bool(d.get("retryable", True)))


@dataclass(frozen=True)
class Task:
    """A unit of work, as the server holds it."""

    id: str
    namespace: str
    queue: str
    status: TaskStatus
    input: JSON
    priority: int
    required_capabilities: list[str]
    attempt: int
    max_attempts: int
    backoff: Backoff
    run_at: _dt.datetime
    version: int
    created_at: _dt.datetime
    updated_at: _dt.datetime
    kind: Optional[str] = None
    title: Optional[str] = None
    timeout_ms: Optional[int] = None
    lease: Optional[Lease] = None
    idempotency_key: Optional[str] = None
    concurrency_key: Optional[str] = None
    rate_limit_key: Optional[str] = None
    correlation_id: Optional[str] = None
    artifacts: list[Artifact] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)
    progress: Optional[Progress] = None
    result: JSON = None
    error: Optional[TaskError] = None
    finished_at: Optional[_dt.datetime] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Task:
        lease = d.get("lease")
        progress = d.get("progress")
        error = d.get("error")
        return cls(
            id=d["id"],
            namespace=d["namespace"],
            queue=d["queue"],
            status=TaskStatus(d["status"]),
            input=d.get("input"),
            priority=int(d.get("priority", 0)),
            required_capabilities=list(d.get("required_capabilities") or []),
            attempt=int(d["attempt"]),
            max_attempts=int(d["max_attempts"]),
            backoff=Backoff.from_json(d["backoff"]),
            run_at=parse_time(d["run_at"]),
            version=int(d["version"]),
            created_at=parse_time(d["created_at"]),
            updated_at=parse_time(d["updated_at"]),
            kind=d.get("kind"),
            title=d.get("title"),
            timeout_ms=d.get("timeout_ms"),
            lease=None if lease is None else Lease.from_json(lease),
            idempotency_key=d.get("idempotency_key"),
            concurrency_key=d.get("concurrency_key"),
            rate_limit_key=d.get("rate_limit_key"),
            correlation_id=d.get("correlation_id"),
            artifacts=[Artifact.from_json(a) for a in d.get("artifacts") or []],
            context=dict(d.get("context") or {}),
            progress=None if progress is None else Progress.from_json(progress),
            result=d.get("result"),
            error=None if error is None else TaskError.from_json(error),
            finished_at=_opt_time(d.get("finished_at")),
        )

    @property
    def lease_token(self) -> str:
        """The token of the task's lease; ``ValueError`` when it holds none."""
        if self.lease is None:
            raise ValueError(f"task {self.id} is {self.status} and holds no lease")
        return self.lease.token


@dataclass(frozen=True)
class NewTask:
    """A task to create, for :meth:`Client.create_tasks` (``create_task`` takes the same
    fields as keyword arguments). ``None`` leaves a field to the server's default."""

    queue: str
    input: JSON = None
    kind: Optional[str] = None
    title: Optional[str] = None
    priority: Optional[int] = None
    required_capabilities: Optional[Sequence[str]] = None
    max_attempts: Optional[int] = None
    backoff: Optional[Backoff | Mapping[str, Any]] = None
    run_at: Optional[_dt.datetime | str] = None
    delay_ms: Optional[int] = None
    timeout_ms: Optional[int] = None
    idempotency_key: Optional[str] = None
    concurrency_key: Optional[str] = None
    rate_limit_key: Optional[str] = None
    correlation_id: Optional[str] = None
    context: Optional[Mapping[str, Any]] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"queue": self.queue}
        if self.input is not None:
            out["input"] = self.input
        for name in (
            "kind",
            "title",
            "priority",
            "max_attempts",
            "delay_ms",
            "timeout_ms",
            "idempotency_key",
            "concurrency_key",
            "rate_limit_key",
            "correlation_id",
        ):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.required_capabilities is not None:
            out["required_capabilities"] = list(self.required_capabilities)
        if self.backoff is not None:
            out["backoff"] = (
                self.backoff.to_json() if isinstance(self.backoff, Backoff) else dict(self.backoff)
            )
        if self.run_at is not None:
            out["run_at"] = (
                self.run_at if isinstance(self.run_at, str) else format_time(self.run_at)
            )
        if self.context is not None:
            out["context"] = dict(self.context)
        return out


T = TypeVar("T")


@dataclass(frozen=True)
class Created(Generic[T]):
    """The answer of a create or a send that may have been deduplicated by its idempotency key:
    ``created`` is False when the server returned the original."""

    value: T
    created: bool


@dataclass(frozen=True)
class BatchCreated:
    """``POST /v1/tasks/batch``: the tasks in request order and how many were new."""

    tasks: list[Task]
    created: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BatchCreated:
        return cls(tasks=[Task.from_json(t) for t in d["tasks"]], created=int(d["created"]))


@dataclass(frozen=True)
class TaskPage:
    """One page of ``GET /v1/tasks``; pass ``next_cursor`` as ``cursor`` for the next."""

    items: list[Task]
    next_cursor: Optional[str]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TaskPage:
        return cls(items=[Task.from_json(t) for t in d["items"]], next_cursor=d.get("next_cursor"))


@dataclass(frozen=True)
class Completion:
    """A running task to finish successfully: for ``complete_many`` and a claim's
    ``complete`` ("done, next")."""

    id: str
    lease_token: str
    result: JSON = None
    artifacts: Optional[Sequence[NewArtifact]] = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "lease_token": self.lease_token}
        if self.result is not None:
            out["result"] = self.result
        if self.artifacts:
            out["artifacts"] = [a.to_json() for a in self.artifacts]
        return out


@dataclass(frozen=True)
class ItemProblem:
    """Why one item of a batch failed: the problem its own request would have answered."""

    type: str
    title: str
    status: int
    detail: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ItemProblem:
        return cls(type=d["type"], title=d["title"], status=int(d["status"]), detail=d["detail"])


@dataclass(frozen=True)
class CompleteOutcome:
    """The outcome of one completion: the task's new ``version``, or its ``error``."""

    id: str
    version: Optional[int] = None
    error: Optional[ItemProblem] = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CompleteOutcome:
        error = d.get("error")
        return cls(
            id=d["id"],
            version=d.get("version"),
            error=None if error is None else ItemProblem.from_json(error),
        )


@dataclass(frozen=True)
class CompleteManyResult:
    """``POST /v1/tasks/complete``: one outcome per item, in request order."""

    items: list[CompleteOutcome]
    completed: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> CompleteManyResult:
        return cls(
            items=[CompleteOutcome.from_json(o) for o in d["items"]],
            completed=int(d["completed"]),
        )


@dataclass(frozen=True)
class ClaimResult:
    """The answer of a claim: the tasks handed out (each with its lease; maybe none) and, when
    the claim carried completions, their outcomes."""

    tasks: list[Task]
    completed: Optional[list[CompleteOutcome]] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ClaimResult:
        completed = d.get("completed")
        return cls(
            tasks=[Task.from_json(t) for t in d["tasks"]],
            completed=None
            if completed is None
            else [CompleteOutcome.from_json(o) for o in completed],
        )


@dataclass(frozen=True)
class StatusCounts:
    scheduled: int = 0
    queued: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    cancelled: int = 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> StatusCounts:
        return cls(**{k: int(d.get(k, 0)) for k in cls.__dataclass_fields__})


@dataclass(frozen=True)
class QueueStats:
    """A queue's counts; ``depth`` is queued + scheduled."""

    queue: str
    counts: StatusCounts
    depth: int
    oldest_ready_at: Optional[_dt.datetime] = None
    oldest_ready_age_ms: Optional[int] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> QueueStats:
        return cls(
            queue=d["queue"],
            counts=StatusCounts.from_json(d["counts"]),
            depth=int(d["depth"]),
            oldest_ready_at=_opt_time(d.get("oldest_ready_at")),
            oldest_ready_age_ms=d.get("oldest_ready_age_ms"),
        )


@dataclass(frozen=True)
class Agent:
    """A registered agent (worker)."""

    name: str
    namespace: str
    capabilities: list[str]
    slots: int
    metadata: JSON
    status: AgentStatus
    last_heartbeat: _dt.datetime
    registered_at: _dt.datetime
    running: int
    inbox_start: int
    inbox_cursor: int
    #: Registered by a claim rather than by ``register_agent``: the server removes it once it
    #: has been gone long enough. Registering it makes it explicit.
    implicit: bool = False

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Agent:
        return cls(
            name=d["name"],
            namespace=d["namespace"],
            capabilities=list(d.get("capabilities") or []),
            slots=int(d["slots"]),
            metadata=d.get("metadata"),
            status=AgentStatus(d["status"]),
            last_heartbeat=parse_time(d["last_heartbeat"]),
            registered_at=parse_time(d["registered_at"]),
            running=int(d.get("running", 0)),
            inbox_start=int(d.get("inbox_start", 0)),
            inbox_cursor=int(d.get("inbox_cursor", 0)),
            implicit=bool(d.get("implicit", False)),
        )


@dataclass(frozen=True)
class RemovedAgent:
    """``DELETE /v1/agents/{name}``: the tasks it held went back to their queues."""

    agent: str
    released: list[str]

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> RemovedAgent:
        return cls(agent=d["agent"], released=list(d["released"]))


@dataclass(frozen=True)
class Subscriptions:
    """An agent's topics after a (un)subscribe; ``changed`` is False when nothing changed."""

    topics: list[str]
    changed: bool

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Subscriptions:
        return cls(topics=list(d["topics"]), changed=bool(d["changed"]))


@dataclass(frozen=True)
class Recipient:
    """Who a message is for: one ``agent``, a ``topic``'s subscribers, or everyone
    (``broadcast``)."""

    agent: Optional[str] = None
    topic: Optional[str] = None
    broadcast: bool = False

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Recipient:
        return cls(agent=d.get("agent"), topic=d.get("topic"), broadcast=bool(d.get("broadcast")))

    def to_json(self) -> dict[str, Any]:
        given = [self.agent is not None, self.topic is not None, self.broadcast]
        if sum(given) != 1:
            raise ValueError("a message goes to exactly one of: an agent, a topic, or broadcast")
        if self.agent is not None:
            return {"agent": self.agent}
        if self.topic is not None:
            return {"topic": self.topic}
        return {"broadcast": True}


@dataclass(frozen=True)
class Message:
    """A message; ``seq`` is its place in the namespace's sequence (inbox cursors are these)."""

    id: str
    seq: int
    namespace: str
    to: Recipient
    body: JSON
    created_at: _dt.datetime
    sender: Optional[str] = None
    correlation_id: Optional[str] = None
    reply_to: Optional[str] = None
    expires_at: Optional[_dt.datetime] = None
    idempotency_key: Optional[str] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Message:
        return cls(
            id=d["id"],
            seq=int(d["seq"]),
            namespace=d["namespace"],
            to=Recipient.from_json(d["to"]),
            body=d.get("body"),
            created_at=parse_time(d["created_at"]),
            sender=d.get("from"),
            correlation_id=d.get("correlation_id"),
            reply_to=d.get("reply_to"),
            expires_at=_opt_time(d.get("expires_at")),
            idempotency_key=d.get("idempotency_key"),
        )


@dataclass(frozen=True)
class InboxPage:
    """Messages of one inbox read and the cursor after them (pass it as ``after`` to read on,
    and to ``ack_inbox`` once they are handled)."""

    messages: list[Message]
    cursor: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> InboxPage:
        return cls(messages=[Message.from_json(m) for m in d["messages"]], cursor=int(d["cursor"]))


@dataclass(frozen=True)
class Limit:
    """The dispatch limits of one key (a task's ``rate_limit_key`` or ``concurrency_key``).
    ``max_concurrent=None`` means one at a time for a concurrency key."""

    key: str
    rate_per_minute: Optional[int] = None
    burst: Optional[int] = None
    max_concurrent: Optional[int] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Limit:
        return cls(
            key=d["key"],
            rate_per_minute=d.get("rate_per_minute"),
            burst=d.get("burst"),
            max_concurrent=d.get("max_concurrent"),
        )


@dataclass(frozen=True)
class HealthReason:
    """Why the server reports itself degraded."""

    kind: str
    namespace: str
    name: str
    depth: int
    limit: int
    detail: str

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> HealthReason:
        return cls(
            kind=d["kind"],
            namespace=d["namespace"],
            name=d["name"],
            depth=int(d["depth"]),
            limit=int(d["limit"]),
            detail=d["detail"],
        )


@dataclass(frozen=True)
class Health:
    """``ok``, ``degraded`` (with ``reasons``), or ``ready``."""

    status: str
    reasons: list[HealthReason] = field(default_factory=list)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Health:
        return cls(
            status=d["status"],
            reasons=[HealthReason.from_json(r) for r in d.get("reasons") or []],
        )


@dataclass(frozen=True)
class TokenInfo:
    """An API token as the server shows it: its public ``id`` and its grant, never its secret.
    ``namespaces`` is ``["*"]`` for every namespace; ``agent`` names the agent an ``agent``
    token acts as; ``revoked_at`` is set once it is revoked."""

    id: str
    role: TokenRole
    namespaces: list[str]
    name: str
    created_at: _dt.datetime
    agent: Optional[str] = None
    revoked_at: Optional[_dt.datetime] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TokenInfo:
        return cls(
            id=d["id"],
            role=TokenRole(d["role"]),
            namespaces=list(d.get("namespaces") or []),
            name=d.get("name") or "",
            created_at=parse_time(d["created_at"]),
            agent=d.get("agent"),
            revoked_at=_opt_time(d.get("revoked_at")),
        )

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


@dataclass(frozen=True)
class IssuedToken:
    """A token just made: ``token`` (``ayt_…``) is shown this once and cannot be read again, so
    keep it now. It is left out of ``repr()`` so it does not end up in logs."""

    token: str = field(repr=False)
    info: TokenInfo

    @property
    def id(self) -> str:
        return self.info.id

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> IssuedToken:
        return cls(token=d["token"], info=TokenInfo.from_json(d))


class EventType(_OpenEnum):
    """What an event of the log says happened (its ``type``). Compares equal to its string
    value; a type a newer server adds is kept as a pseudo-member. Filters also take a kind,
    ``"task.*"``, for every type of it."""

    TASK_CREATED = "task.created"
    TASK_CLAIMED = "task.claimed"
    #: A heartbeat that reported progress (one that only moved the lease is no event).
    TASK_PROGRESS = "task.progress"
    TASK_UPDATED = "task.updated"
    TASK_COMPLETED = "task.completed"
    #: An attempt failed; the task will be retried.
    TASK_FAILED = "task.failed"
    #: Failed for good: no attempts left, or the error was not retryable.
    TASK_DEAD_LETTERED = "task.dead_lettered"
    TASK_RELEASED = "task.released"
    TASK_LEASE_EXPIRED = "task.lease_expired"
    #: Its lease was taken away: its agent was declared gone, or removed.
    TASK_LEASE_REVOKED = "task.lease_revoked"
    TASK_CANCELLED = "task.cancelled"
    TASK_REDRIVEN = "task.redriven"
    #: A scheduled task came due: it is ready.
    TASK_PROMOTED = "task.promoted"
    AGENT_REGISTERED = "agent.registered"
    AGENT_DRAINING = "agent.draining"
    AGENT_GONE = "agent.gone"
    #: A ``gone`` agent showed signs of life again.
    AGENT_BACK = "agent.back"
    AGENT_REMOVED = "agent.removed"
    MESSAGE_SENT = "message.sent"
    LIMIT_SET = "limit.set"
    LIMIT_REMOVED = "limit.removed"

    @property
    def kind(self) -> str:
        """What it happens to: ``task``, ``agent``, ``message`` or ``limit``."""
        return str(self.value).partition(".")[0]


@dataclass(frozen=True)
class Event:
    """An entry of the event log: what happened (``type``) to what (``subject``: ``task:<id>``,
    ``agent:<name>``, ``message:<seq>`` or ``limit:<key>``), when, and who did it (``actor``,
    the agent, when an agent did). ``seq`` grows across the whole yard: pass the last one seen
    as ``after`` (or a stream's ``last_event_id``) to go on exactly where you stopped.
    ``data`` holds the type's details (a task's ``queue``, ``status``, ``attempt``, ``error``…)."""

    seq: int
    ts: _dt.datetime
    namespace: str
    type: EventType
    subject: str
    actor: Optional[str] = None
    correlation_id: Optional[str] = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Event:
        data = d.get("data")
        return cls(
            seq=int(d["seq"]),
            ts=parse_time(d["ts"]),
            namespace=d["namespace"],
            type=EventType(d["type"]),
            subject=d["subject"],
            actor=d.get("actor"),
            correlation_id=d.get("correlation_id"),
            data=dict(data) if isinstance(data, Mapping) else {},
        )


@dataclass(frozen=True)
class EventPage:
    """One page of ``GET /v1/events``, in ``seq`` order. Pass ``next_after`` as ``after`` to go
    on: every matching event up to it was returned. A page may be short, even empty, while
    more lies further on (a filter had a long stretch to look through): the reader is caught
    up only once ``next_after`` equals the ``after`` it sent. ``last_seq`` is the newest
    ``seq`` of the whole yard's log when the page was read."""

    events: list[Event]
    next_after: int
    last_seq: int

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EventPage:
        return cls(
            events=[Event.from_json(e) for e in d["events"]],
            next_after=int(d["next_after"]),
            last_seq=int(d["last_seq"]),
        )


@dataclass(frozen=True)
class Trace:
    """Everything that happened under one correlation id, in order (tasks, messages, agent
    changes). At most 10,000 events: ``truncated`` says there are more (read them with
    ``iter_events(correlation_id=…, after=events[-1].seq)``)."""

    correlation_id: str
    events: list[Event]
    truncated: bool = False

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Trace:
        return cls(
            correlation_id=d["correlation_id"],
            events=[Event.from_json(e) for e in d["events"]],
            truncated=bool(d.get("truncated", False)),
        )


class WebhookState(_OpenEnum):
    """Whether a webhook's deliveries go out."""

    #: Delivering, or waiting for events.
    ACTIVE = "active"
    #: The last delivery failed; it is retried with backoff.
    RETRYING = "retrying"
    #: Failed too many times in a row: held until ``paused_until``, then tried again.
    PAUSED = "paused"


@dataclass(frozen=True)
class Webhook:
    """A registered webhook (never its secret) with its delivery state as the node answering
    delivers it. ``types`` are the exact event types it receives (a kind given as ``task.*``
    comes back spelt out; empty: every type). ``cursor`` is the ``seq`` of the last event
    delivered (before the first delivery: the newest event when it was made; a webhook gets
    what happens after it exists)."""

    id: str
    namespace: str
    url: str
    types: list[EventType]
    created_at: _dt.datetime
    cursor: int
    state: WebhookState = WebhookState.ACTIVE
    #: Failed attempts since the last delivery that worked.
    consecutive_failures: int = 0
    last_error: Optional[str] = None
    paused_until: Optional[_dt.datetime] = None
    last_delivered_at: Optional[_dt.datetime] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Webhook:
        return cls(
            id=d["id"],
            namespace=d["namespace"],
            url=d["url"],
            types=[EventType(t) for t in d.get("types") or []],
            created_at=parse_time(d["created_at"]),
            cursor=int(d["cursor"]),
            state=WebhookState(d.get("state", "active")),
            consecutive_failures=int(d.get("consecutive_failures", 0)),
            last_error=d.get("last_error"),
            paused_until=_opt_time(d.get("paused_until")),
            last_delivered_at=_opt_time(d.get("last_delivered_at")),
        )


@dataclass(frozen=True)
class Delivery:
    """One attempt to deliver one event to a webhook. ``id`` (``<webhook id>:<seq>``) is the
    same on every attempt at one event; ``status`` is the receiver's HTTP status when it
    answered, ``error`` why the attempt failed."""

    id: str
    seq: int
    event_type: EventType
    #: 1 for the first attempt at this event.
    attempt: int
    at: _dt.datetime
    delivered: bool
    duration_ms: int
    status: Optional[int] = None
    error: Optional[str] = None

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Delivery:
        status = d.get("status")
        return cls(
            id=d["id"],
            seq=int(d["seq"]),
            event_type=EventType(d["event_type"]),
            attempt=int(d["attempt"]),
            at=parse_time(d["at"]),
            delivered=bool(d["delivered"]),
            duration_ms=int(d.get("duration_ms", 0)),
            status=None if status is None else int(status),
            error=d.get("error"),
        )


@dataclass(frozen=True)
class WebhookPayload:
    """The JSON body of a webhook delivery, for receivers: the ``event`` and its
    ``delivery_id`` (the same on every attempt at one event: de-duplicate by it). Read it with
    :meth:`parse` once :func:`~agentyard_client.verify_webhook` accepted the request."""

    delivery_id: str
    webhook_id: str
    event: Event

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> WebhookPayload:
        return cls(
            delivery_id=d["delivery_id"],
            webhook_id=d["webhook_id"],
            event=Event.from_json(d["event"]),
        )

    @classmethod
    def parse(cls, body: bytes | str) -> WebhookPayload:
        """Reads a delivery's raw body (``ValueError`` when it is not one)."""
        try:
            doc = json.loads(body)
            return cls.from_json(doc)
        except (KeyError, TypeError, AttributeError) as e:
            raise ValueError(f"not an agentyard webhook delivery: {e!r}") from e


@dataclass(frozen=True)
class PruneResult:
    """What ``prune`` deleted, in every namespace: finished tasks, events, messages (acknowledged
    by everyone they are for, or expired) and idempotency keys (their tasks and messages
    stay)."""

    tasks: int = 0
    events: int = 0
    messages: int = 0
    idempotency_keys: int = 0

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PruneResult:
        return cls(**{k: int(d.get(k, 0)) for k in cls.__dataclass_fields__})

    @property
    def total(self) -> int:
        return self.tasks + self.events + self.messages + self.idempotency_keys
