"""The synchronous :class:`Client` and the asynchronous :class:`AsyncClient`.

Both run the same :mod:`._calls` descriptions of every operation; only the transport differs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from types import TracebackType
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Generic,
    Iterator,
    Mapping,
    Optional,
    Sequence,
    TypeVar,
    Union,
)

import httpx

from . import _calls as calls
from ._calls import Call, EventTypes, SseDecoder, SseEvent, TaskOptions, event_of, message_of
from ._models import (
    JSON,
    Agent,
    AgentStatus,
    BatchCreated,
    ClaimResult,
    CompleteManyResult,
    Completion,
    Created,
    Delivery,
    Event,
    EventPage,
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
from .errors import MethodNotAllowed, NoSuchRoute, NotFound, TransportError

if sys.version_info >= (3, 11):
    from typing import Self, Unpack
else:  # pragma: no cover - 3.10
    from typing_extensions import Self, Unpack

__all__ = [
    "AsyncClient",
    "AsyncEventStream",
    "AsyncInboxStream",
    "Client",
    "EventStream",
    "InboxStream",
    "DEFAULT_URL",
]

T = TypeVar("T")

#: Where the clients connect when given no URL and ``AGENTYARD_URL`` is not set.
DEFAULT_URL = "http://127.0.0.1:7070"
_VERSION = "0.1.0"
TaskRef = Union[Task, str]
TokenRef = Union[TokenInfo, IssuedToken, str]
WebhookRef = Union[Webhook, str]


def _base_url(base_url: Optional[str]) -> str:
    return (base_url or os.environ.get("AGENTYARD_URL") or DEFAULT_URL).rstrip("/")


def _namespace(namespace: Optional[str]) -> Optional[str]:
    return namespace if namespace is not None else os.environ.get("AGENTYARD_NAMESPACE") or None


def _token(token: Optional[str]) -> Optional[str]:
    """The API token to send: the one given, else ``$AGENTYARD_TOKEN``; ``""`` means none.
    Checked here so a token that cannot be a header value fails at once, with a message that
    does not repeat it (httpx's own error would quote the whole header)."""
    value = (token if token is not None else os.environ.get("AGENTYARD_TOKEN", "")).strip()
    if not value:
        return None
    if not all("\x21" <= ch <= "\x7e" for ch in value):
        raise ValueError(
            "the API token holds a space, a control or a non-ASCII character: "
            "it cannot be sent as a header (expected ayt_…)"
        )
    return value


def _token_id(token: TokenRef) -> str:
    return token if isinstance(token, str) else token.id


def _lease(task: TaskRef, lease_token: Optional[str]) -> tuple[str, str]:
    """The id and lease token of a task given as a claimed ``Task`` or as an id and a token."""
    if isinstance(task, Task):
        return task.id, lease_token if lease_token is not None else task.lease_token
    if lease_token is None:
        raise ValueError("pass the lease token, or the claimed Task itself")
    return task, lease_token


def _id(task: TaskRef) -> str:
    return task.id if isinstance(task, Task) else task


def _webhook_id(webhook: WebhookRef) -> str:
    return webhook if isinstance(webhook, str) else webhook.id


def _caught_up(page: EventPage, after: int) -> bool:
    """Whether a reader that asked for events after ``after`` has read everything there is."""
    return page.next_after == after


def _unreachable(base_url: str, exc: Exception) -> TransportError:
    if isinstance(exc, httpx.TimeoutException):
        what = f"the agentyard server at {base_url} did not answer in time ({type(exc).__name__})"
    elif isinstance(exc, httpx.ConnectError):
        what = (
            f"cannot reach the agentyard server at {base_url} ({exc}); is it running? "
            "Start one with `agentyard serve`"
        )
    else:
        what = f"the connection to the agentyard server at {base_url} failed: {exc!r}"
    return TransportError(what, url=base_url)


def _as_transport(base_url: str, exc: Exception) -> TransportError:
    return exc if isinstance(exc, TransportError) else _unreachable(base_url, exc)


class _Base:
    """What both clients share: the URL, the namespace, the token, headers and timeouts."""

    def __init__(
        self,
        base_url: Optional[str],
        namespace: Optional[str],
        timeout: float,
        token: Optional[str],
    ) -> None:
        self._base = _base_url(base_url)
        self._namespace = _namespace(namespace)
        self._timeout = timeout
        # Sent per request (``_headers``) rather than as an httpx default header, so it also
        # goes out through a caller's own ``http_client``; never shown by ``__repr__``.
        self._token = _token(token)

    def __repr__(self) -> str:
        token = "set" if self._token else "none"
        return (
            f"{type(self).__name__}(base_url={self._base!r}, namespace={self.namespace!r}, "
            f"token={token})"
        )

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def namespace(self) -> str:
        """The namespace requests go to (``default`` unless one was given)."""
        return self._namespace or "default"

    def _headers(self, call: Call[Any]) -> dict[str, str]:
        headers = dict(call.headers)
        if call.json is not calls.NO_BODY:
            headers["Content-Type"] = "application/json"
        if self._namespace is not None:
            headers[calls.NAMESPACE_HEADER] = self._namespace
        if self._token is not None:
            headers["Authorization"] = f"Bearer {self._token}"
        return headers

    def _timeout_for(self, call: Call[Any]) -> httpx.Timeout:
        return httpx.Timeout(self._timeout, read=self._timeout + call.wait_s)

    def _default_headers(self, extra: Optional[Mapping[str, str]]) -> dict[str, str]:
        headers = {"User-Agent": f"agentyard-client-python/{_VERSION}", "Accept": "application/json"}
        headers.update(extra or {})
        return headers


class Client(_Base):
    """A synchronous client of the agentyard HTTP API.

    ::

        from agentyard_client import Client

        with Client("http://127.0.0.1:7070") as yard:
            task = yard.create_task("emails", {"to": "ops@example.com"})
            claimed = yard.claim("emails", agent="mailer-1", wait_ms=5000).tasks
            for t in claimed:
                yard.complete_task(t, result={"sent": 1})

    ``base_url`` defaults to ``$AGENTYARD_URL`` or ``http://127.0.0.1:7070``; ``namespace`` to
    ``$AGENTYARD_NAMESPACE`` or the server's ``default``. ``token`` is the API token (``ayt_…``)
    a server run with ``--auth`` needs, sent as ``Authorization: Bearer`` on every request; it
    defaults to ``$AGENTYARD_TOKEN`` (``token=""`` sends none) and never appears in ``repr()``
    or in exception messages. ``timeout`` (seconds) bounds each request; long polls get their
    wait on top. Errors raise :mod:`agentyard_client.errors`. The client is safe to share
    between threads.
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        *,
        namespace: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 10.0,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.Client] = None,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        super().__init__(base_url, namespace, timeout, token)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(
            base_url=self._base,
            headers=self._default_headers(headers),
            transport=transport,
            timeout=timeout,
        )

    def with_namespace(self, namespace: str) -> Client:
        """A client for another namespace sharing this one's connections and token (close this
        one)."""
        return Client(
            self._base,
            namespace=namespace,
            token=self._token or "",
            timeout=self._timeout,
            http_client=self._http,
        )

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def run(self, call: Call[T]) -> T:
        """Sends one call and returns its parsed answer (raises on an error answer)."""
        try:
            r = self._http.request(
                call.method,
                self._base + call.path,
                params=call.params,
                content=call.body_bytes(),
                headers=self._headers(call),
                timeout=self._timeout_for(call),
            )
        except httpx.TransportError as e:
            raise _unreachable(self._base, e) from e
        return calls.finish(call, r.status_code, r.headers, r.content, r.reason_phrase)

    # -- health ---------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /health``: ``ok``, or ``degraded`` with the reasons."""
        return self.run(calls.health())

    def live(self) -> Health:
        """``GET /health/live``: the process answers."""
        return self.run(calls.live())

    def ready(self) -> Health:
        """``GET /health/ready``: raises :class:`ServerUnavailable` when not ready."""
        return self.run(calls.ready())

    def openapi(self) -> dict[str, Any]:
        """The server's OpenAPI document."""
        return self.run(calls.openapi())

    # -- tasks ----------------------------------------------------------------------------

    def create_task(self, queue: str, input: JSON = None, **options: Unpack[TaskOptions]) -> Task:
        """Creates a task (or returns the original one when its ``idempotency_key`` was seen).
        ``options`` are the optional fields of :class:`NewTask`."""
        return self.run(calls.create_task(NewTask(queue, input, **options))).value

    def create_task_outcome(
        self, queue: str, input: JSON = None, **options: Unpack[TaskOptions]
    ) -> Created[Task]:
        """Like :meth:`create_task`, saying whether the task is new (``created``)."""
        return self.run(calls.create_task(NewTask(queue, input, **options)))

    def create_tasks(self, tasks: Sequence[Union[NewTask, Mapping[str, Any]]]) -> BatchCreated:
        """Creates many tasks at once: all of them, or none (422 names the bad item)."""
        return self.run(calls.create_tasks(tasks))

    def get_task(self, task: TaskRef) -> Task:
        return self.run(calls.get_task(_id(task)))

    def list_tasks(
        self,
        *,
        queue: Optional[str] = None,
        status: Optional[Union[TaskStatus, str]] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> TaskPage:
        """One page of tasks in creation order; see :meth:`iter_tasks` for all of them."""
        return self.run(calls.list_tasks(queue, status, limit, cursor))

    def iter_tasks(
        self,
        *,
        queue: Optional[str] = None,
        status: Optional[Union[TaskStatus, str]] = None,
        page_size: Optional[int] = None,
    ) -> Iterator[Task]:
        """Every task matching the filters, fetching pages as the iteration goes."""
        cursor: Optional[str] = None
        while True:
            page = self.run(calls.list_tasks(queue, status, page_size, cursor))
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def update_task(
        self,
        task: TaskRef,
        *,
        expected_version: Optional[int] = None,
        if_match: Optional[int] = None,
        merge: bool = False,
        title: Optional[str] = None,
        priority: Optional[int] = None,
        input: JSON = None,
        context: Optional[Mapping[str, Any]] = None,
        artifacts: Optional[Sequence[NewArtifact]] = None,
        progress: Optional[Progress] = None,
        status: Optional[Union[TaskStatus, str]] = None,
    ) -> Task:
        """``PATCH`` a task, based on the version read: ``expected_version`` (a mismatch raises
        :class:`VersionConflict`) or ``if_match`` (sent as ``If-Match``; raises
        :class:`PreconditionFailed`). With ``merge=True`` the server merges with changes made
        since (context keys deep-merged, artifacts appended; :class:`MergeConflict` when the
        same key changed on both sides)."""
        return self.run(
            calls.update_task(
                _id(task),
                expected_version=expected_version,
                if_match=if_match,
                merge=merge,
                title=title,
                priority=priority,
                input=input,
                context=context,
                artifacts=artifacts,
                progress=progress,
                status=status,
            )
        )

    def cancel_task(self, task: TaskRef) -> Task:
        return self.run(calls.cancel_task(_id(task)))

    def redrive_task(self, task: TaskRef) -> Task:
        """Sends a failed (dead-lettered) task back to its queue with fresh attempts."""
        return self.run(calls.redrive_task(_id(task)))

    def heartbeat_task(
        self,
        task: TaskRef,
        lease_token: Optional[str] = None,
        *,
        lease_ms: Optional[int] = None,
        progress: Optional[Progress] = None,
    ) -> Task:
        """Extends the lease of a running task by ``lease_ms`` from now (server default when
        left out) and reports progress. :class:`LeaseConflict` when the lease is lost."""
        task_id, token = _lease(task, lease_token)
        return self.run(calls.heartbeat_task(task_id, token, lease_ms, progress))

    def complete_task(
        self,
        task: TaskRef,
        lease_token: Optional[str] = None,
        *,
        result: JSON = None,
        artifacts: Optional[Sequence[NewArtifact]] = None,
    ) -> Task:
        """Finishes a running task successfully. Repeating it with the same lease is harmless."""
        task_id, token = _lease(task, lease_token)
        return self.run(calls.complete_task(task_id, token, result, artifacts))

    def complete_tasks(self, items: Sequence[Completion]) -> CompleteManyResult:
        """Finishes many running tasks in one request; each item succeeds or fails alone."""
        return self.run(calls.complete_tasks(items))

    def fail_task(
        self,
        task: TaskRef,
        lease_token: Optional[str] = None,
        *,
        message: str,
        kind: Optional[str] = None,
        retryable: Optional[bool] = None,
    ) -> Task:
        """Reports a failed attempt: retried after the task's backoff while attempts are left
        and ``retryable`` is not False, otherwise the task is ``failed`` (dead-lettered)."""
        task_id, token = _lease(task, lease_token)
        return self.run(calls.fail_task(task_id, token, message, kind, retryable))

    def release_task(
        self,
        task: TaskRef,
        lease_token: Optional[str] = None,
        *,
        delay_ms: Optional[int] = None,
    ) -> Task:
        """Gives a running task back untried: claimable again (after ``delay_ms``), and the
        attempt its claim counted is not spent. For a worker that will not run it after all."""
        task_id, token = _lease(task, lease_token)
        return self.run(calls.release_task(task_id, token, delay_ms))

    # -- queues ---------------------------------------------------------------------------

    def claim(
        self,
        queue: str,
        agent: str,
        *,
        capabilities: Optional[Sequence[str]] = None,
        max: Optional[int] = None,
        wait_ms: Optional[int] = None,
        lease_ms: Optional[int] = None,
        complete: Optional[Sequence[Completion]] = None,
    ) -> ClaimResult:
        """Claims up to ``max`` ready tasks of ``queue`` for ``agent`` under a lease of
        ``lease_ms``, long-polling up to ``wait_ms`` when none is ready. ``complete`` finishes
        running tasks first, in the same round trip ("done, next"); their outcomes are in
        ``completed``."""
        return self.run(calls.claim(queue, agent, capabilities, max, wait_ms, lease_ms, complete))

    def list_queues(self) -> list[QueueStats]:
        return self.run(calls.list_queues())

    def queue_stats(self, queue: str) -> QueueStats:
        return self.run(calls.queue_stats(queue))

    def redrive_queue(self, queue: str) -> int:
        """Sends every failed task of the queue back to it; returns how many."""
        return self.run(calls.redrive_queue(queue))

    # -- agents ---------------------------------------------------------------------------

    def register_agent(
        self,
        name: str,
        *,
        capabilities: Optional[Sequence[str]] = None,
        slots: Optional[int] = None,
        metadata: JSON = None,
    ) -> Agent:
        """Registers an agent (or replaces its registration); it becomes ``active``."""
        return self.run(calls.register_agent(name, capabilities, slots, metadata))

    def get_agent(self, name: str) -> Agent:
        return self.run(calls.get_agent(name))

    def list_agents(self, *, status: Optional[Union[AgentStatus, str]] = None) -> list[Agent]:
        """Every agent of the namespace (or those with `status`), by name, every page."""
        agents: list[Agent] = []
        cursor: Optional[str] = None
        while True:
            page, cursor = self.run(calls.list_agents(status, cursor))
            agents.extend(page)
            if cursor is None:
                return agents

    def heartbeat_agent(self, name: str) -> Agent:
        return self.run(calls.heartbeat_agent(name))

    def drain_agent(self, name: str) -> Agent:
        """The agent finishes what it holds and its claims get nothing new (parked long polls
        end empty) until it registers again."""
        return self.run(calls.drain_agent(name))

    def remove_agent(self, name: str) -> RemovedAgent:
        """Removes an agent; the tasks it held go back to their queues at once."""
        return self.run(calls.remove_agent(name))

    def subscriptions(self, agent: str) -> list[str]:
        """The agent's topics, in name order."""
        return self.run(calls.subscriptions(agent))

    def subscribe(self, agent: str, topic: str) -> Subscriptions:
        return self.run(calls.subscribe(agent, topic))

    def unsubscribe(self, agent: str, topic: str) -> Subscriptions:
        return self.run(calls.unsubscribe(agent, topic))

    # -- messages -------------------------------------------------------------------------

    def send_message(
        self,
        body: JSON = None,
        *,
        to: Optional[str] = None,
        topic: Optional[str] = None,
        broadcast: bool = False,
        sender: Optional[str] = None,
        correlation_id: Optional[str] = None,
        reply_to: Optional[str] = None,
        ttl_ms: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Message:
        """Sends a message to one agent (``to``), a ``topic``'s subscribers, or everyone
        (``broadcast=True``). ``sender`` is the agent replies go to."""
        return self.send_message_outcome(
            body,
            to=to,
            topic=topic,
            broadcast=broadcast,
            sender=sender,
            correlation_id=correlation_id,
            reply_to=reply_to,
            ttl_ms=ttl_ms,
            idempotency_key=idempotency_key,
        ).value

    def send_message_outcome(
        self,
        body: JSON = None,
        *,
        to: Optional[str] = None,
        topic: Optional[str] = None,
        broadcast: bool = False,
        sender: Optional[str] = None,
        correlation_id: Optional[str] = None,
        reply_to: Optional[str] = None,
        ttl_ms: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Created[Message]:
        """Like :meth:`send_message`, saying whether the message is new (``created``)."""
        return self.run(
            calls.send_message(
                body,
                calls.recipient(to, topic, broadcast),
                sender,
                correlation_id,
                reply_to,
                ttl_ms,
                idempotency_key,
            )
        )

    def reply(
        self, original: Message, body: JSON = None, *, sender: Optional[str] = None
    ) -> Message:
        """Answers ``original``: to its sender, with its correlation id, replying to its id."""
        return self.run(
            calls.send_message(
                body,
                calls.reply_recipient(original),
                sender,
                original.correlation_id,
                original.id,
                None,
                None,
            )
        ).value

    def read_inbox(
        self,
        agent: str,
        *,
        after: Optional[int] = None,
        wait_ms: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> InboxPage:
        """One read of the agent's inbox (after the acknowledged cursor unless ``after`` is
        given), long-polling up to ``wait_ms`` when it is empty. Reading does not acknowledge."""
        return self.run(calls.read_inbox(agent, after, wait_ms, limit))

    def ack_inbox(self, agent: str, cursor: int) -> int:
        """Acknowledges the inbox up to ``cursor``; returns the acknowledged cursor."""
        return self.run(calls.ack_inbox(agent, cursor))

    def iter_inbox(
        self,
        agent: str,
        *,
        wait_ms: int = 30_000,
        after: Optional[int] = None,
        limit: Optional[int] = None,
        ack: bool = False,
    ) -> Iterator[Message]:
        """The agent's messages as they come, by long poll, without end (break out of the
        loop to stop). With ``ack=True`` each page is acknowledged once every message of it
        was taken from the iterator and the next one is asked for, so a message the caller
        did not get to comes again on the next read."""
        cursor = after
        while True:
            page = self.read_inbox(agent, after=cursor, wait_ms=wait_ms, limit=limit)
            yield from page.messages
            if ack and page.messages:
                self.ack_inbox(agent, page.cursor)
            cursor = page.cursor

    def stream_inbox(
        self,
        agent: str,
        *,
        after: Optional[int] = None,
        last_event_id: Optional[Union[int, str]] = None,
        reconnect: bool = True,
        read_timeout: float = 60.0,
        max_retries: int = 3,
    ) -> InboxStream:
        """Follows the agent's inbox as Server-Sent Events: an iterator of messages (and a
        context manager that closes the connection). It resumes after ``last_event_id`` (or
        ``after``); when the connection drops it reconnects with ``Last-Event-ID`` so nothing
        is lost or repeated, giving up after ``max_retries`` failed attempts in a row.
        Streaming does not acknowledge."""
        return InboxStream(
            self,
            agent,
            after=after,
            last_event_id=None if last_event_id is None else str(last_event_id),
            reconnect=reconnect,
            read_timeout=read_timeout,
            max_retries=max_retries,
        )

    # -- limits ---------------------------------------------------------------------------

    def set_limit(
        self,
        key: str,
        *,
        rate_per_minute: Optional[int] = None,
        burst: Optional[int] = None,
        max_concurrent: Optional[int] = None,
    ) -> Limit:
        """Sets the dispatch limits of a ``rate_limit_key`` or ``concurrency_key`` (replacing
        what it had; until the server restarts)."""
        return self.run(calls.set_limit(key, rate_per_minute, burst, max_concurrent))

    def get_limit(self, key: str) -> Limit:
        """The limits of one key; all ``None`` when it has none (no rate limit, one running task
        as a concurrency key). Servers without ``GET /v1/limits/{key}`` are read by the list."""
        try:
            return self.run(calls.get_limit(key))
        except MethodNotAllowed:
            return self.run(calls.limit_from_list(key))
        except NoSuchRoute:
            raise
        except NotFound:
            return Limit(key=key)

    def delete_limit(self, key: str) -> None:
        """Removes the limits set for a key (the configuration's apply again). Raises
        :class:`NotFound` when none were set, :class:`MethodNotAllowed` on servers that cannot
        remove limits."""
        self.run(calls.delete_limit(key))

    def list_limits(self) -> list[Limit]:
        return self.run(calls.list_limits())

    # -- tokens (admin tokens only) -------------------------------------------------------

    def create_token(
        self,
        role: Union[TokenRole, str],
        namespaces: Optional[Sequence[str]] = None,
        agent: Optional[str] = None,
        name: str = "",
    ) -> IssuedToken:
        """Makes an API token: ``role`` is admin, operator, agent or reader; ``namespaces`` the
        namespaces it may act in (``["*"]`` for every one; leave it out for an admin token);
        ``agent`` the agent name an agent token acts as; ``name`` what it is for. The answer's
        ``token`` is shown this once: keep it. Needs an admin token (:class:`Forbidden`)."""
        return self.run(calls.create_token(role, namespaces, agent, name))

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, revoked ones included, in id order (never their secrets)."""
        return self.run(calls.list_tokens())

    def revoke_token(self, id: TokenRef) -> TokenInfo:
        """Revokes a token (by id, or a :class:`TokenInfo` / :class:`IssuedToken`): it
        authenticates nothing from then on. Revoking it again changes nothing;
        :class:`NotFound` for an unknown id."""
        return self.run(calls.revoke_token(_token_id(id)))

    # -- events and traces ----------------------------------------------------------------

    def list_events(
        self,
        *,
        after: int = 0,
        limit: Optional[int] = None,
        types: Optional[EventTypes] = None,
        subject: Optional[str] = None,
        correlation_id: Optional[str] = None,
    ) -> EventPage:
        """One page of the namespace's event log, oldest first, after the ``seq`` ``after``
        (0: from the oldest kept), at most ``limit`` events (1 to 1000; 100 by default).
        Filters: ``types`` (``"task.completed"``, a kind such as ``"task.*"``, several
        comma-separated or as a list), ``subject`` (``task:<id>``, ``agent:<name>``,
        ``message:<seq>``, ``limit:<key>``) and ``correlation_id``. Go on with
        ``after=page.next_after``; you are caught up when it equals the ``after`` you sent
        (:meth:`iter_events` does that for you). An unknown type raises
        :class:`ValidationError`."""
        return self.run(calls.list_events(after, limit, types, subject, correlation_id))

    def iter_events(
        self,
        *,
        after: int = 0,
        types: Optional[EventTypes] = None,
        subject: Optional[str] = None,
        correlation_id: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> Iterator[Event]:
        """Every matching event after ``after`` (from the oldest kept by default), fetching
        pages as the iteration goes; it ends once it has caught up with the log. To follow
        the log as it grows, use :meth:`stream_events` (with ``after`` the last ``seq`` seen)."""
        while True:
            page = self.run(calls.list_events(after, page_size, types, subject, correlation_id))
            yield from page.events
            if _caught_up(page, after):
                return
            after = page.next_after

    def task_history(self, task: TaskRef) -> list[Event]:
        """Everything that happened to a task, oldest first: its events (``subject``
        ``task:<id>``) from ``task.created`` on. Empty for an unknown task (or one whose
        events were pruned)."""
        return list(self.iter_events(subject=calls.task_subject(_id(task)), page_size=1000))

    def trace(self, correlation_id: str) -> Trace:
        """Everything that happened under one correlation id (a task's or a message's
        ``correlation_id``, or a request's ``X-Correlation-Id`` / ``traceparent``), in order:
        the events of every task, message and agent change made under it. Empty when nothing
        was; at most 10,000 events (``truncated`` says when there are more)."""
        return self.run(calls.trace(correlation_id))

    def stream_events(
        self,
        *,
        types: Optional[EventTypes] = None,
        subject: Optional[str] = None,
        correlation_id: Optional[str] = None,
        after: Optional[int] = None,
        last_event_id: Optional[Union[int, str]] = None,
        reconnect: bool = True,
        read_timeout: float = 60.0,
        max_retries: int = 3,
    ) -> EventStream:
        """Follows the namespace's event log as Server-Sent Events: an iterator of
        :class:`Event` that waits for the next one (and a context manager that closes the
        connection). It starts after ``last_event_id`` (a stream's ``last_event_id``, or an
        event's ``seq``) or ``after``; with neither, with what happens from the first
        ``next()`` on. Filters as in :meth:`list_events`. When the connection drops it
        reconnects with ``Last-Event-ID``, so no event is lost or repeated, giving up with
        :class:`TransportError` after ``max_retries`` failed attempts in a row (at once with
        ``reconnect=False``). ``read_timeout`` bounds the silence between two reads (the
        server sends keep-alives every 15 s)."""
        return EventStream(
            self,
            types=types,
            subject=subject,
            correlation_id=correlation_id,
            after=after,
            last_event_id=None if last_event_id is None else str(last_event_id),
            reconnect=reconnect,
            read_timeout=read_timeout,
            max_retries=max_retries,
        )

    # -- webhooks -------------------------------------------------------------------------

    def create_webhook(
        self, url: str, secret: str, types: Optional[EventTypes] = None
    ) -> Webhook:
        """Registers a webhook: from now on the namespace's events (those of ``types``, exact or
        kinds such as ``"task.*"``; all when left out) are POSTed to ``url`` (http or https),
        in order, at least once, signed with ``secret`` (16 to 1024 bytes; the server keeps it
        and never shows it again). A receiver checks each request with
        :func:`verify_webhook` and reads it with :meth:`WebhookPayload.parse`. Failed deliveries
        are retried with backoff; a webhook that keeps failing is paused for a while (see
        :meth:`get_webhook`). :class:`ValidationError` names a bad ``url``, ``secret`` or
        ``types[i]``."""
        return self.run(calls.create_webhook(url, secret, types))

    def list_webhooks(self) -> list[Webhook]:
        """The namespace's webhooks with their delivery state, by id."""
        return self.run(calls.list_webhooks())

    def get_webhook(self, webhook: WebhookRef) -> Webhook:
        """One webhook (by id, or a :class:`Webhook`) with its delivery state: ``state``,
        ``consecutive_failures``, ``last_error``, ``paused_until``, ``last_delivered_at`` and
        ``cursor``, the ``seq`` of the last event delivered. :class:`NotFound` when unknown."""
        return self.run(calls.get_webhook(_webhook_id(webhook)))

    def delete_webhook(self, webhook: WebhookRef) -> None:
        """Removes a webhook: nothing more is delivered to it. :class:`NotFound` when unknown."""
        self.run(calls.delete_webhook(_webhook_id(webhook)))

    def list_deliveries(self, webhook: WebhookRef) -> list[Delivery]:
        """The latest delivery attempts of a webhook (up to 100, newest first), as the node
        answering made them: each with the event's ``seq``, the ``attempt``, whether it was
        ``delivered``, the receiver's ``status`` or the ``error``."""
        return self.run(calls.list_deliveries(_webhook_id(webhook)))

    # -- admin (admin tokens only) --------------------------------------------------------

    def prune(self) -> PruneResult:
        """Runs the server's retention pass now, in every namespace: deletes what is older than
        its retention ages (finished tasks, events, messages acknowledged by all or expired,
        idempotency keys; a week each by default) and says how many of each. Needs an admin
        token when the server runs with ``--auth`` (:class:`Forbidden`)."""
        return self.run(calls.prune())


class _StreamState(Generic[T]):
    """What every Server-Sent-Events stream shares, sync or async, inbox or event log: the
    decoder, the resume point, the retry policy and how an SSE event becomes an item."""

    def __init__(
        self,
        request: Callable[[Optional[int], Optional[str]], Call[None]],
        read: Callable[[SseEvent], Optional[T]],
        *,
        after: Optional[int],
        last_event_id: Optional[str],
        reconnect: bool,
        read_timeout: float,
        max_retries: int,
        anchor: Optional[Call[int]] = None,
    ) -> None:
        self._request = request
        self._read = read
        self.after = after
        self.decoder = SseDecoder()
        self.decoder.last_event_id = last_event_id
        self.reconnect = reconnect
        self.read_timeout = read_timeout
        self.max_retries = max_retries
        # A stream that starts "from now" reads where now is before it first connects, so a
        # reconnect before its first event resumes there too instead of at a later "now".
        self.anchor = anchor if after is None and last_event_id is None else None
        self.failures = 0
        self.closed = False

    @property
    def last_event_id(self) -> Optional[str]:
        return self.decoder.last_event_id

    def call(self) -> Call[None]:
        return self._request(self.after, self.decoder.last_event_id)

    def anchored(self, seq: int) -> None:
        self.after, self.anchor = seq, None

    def retry_delay(self) -> float:
        return (self.decoder.retry_ms or 500) / 1000.0

    def take(self, line: str) -> Optional[T]:
        event = self.decoder.feed(line)
        if event is None:
            return None
        item = self._read(event)
        if item is not None:
            self.failures = 0
        return item

    def restart(self) -> None:
        """A new connection starts a new event; the resume point stays."""
        last = self.decoder.last_event_id
        retry = self.decoder.retry_ms
        self.decoder = SseDecoder()
        self.decoder.last_event_id = last
        self.decoder.retry_ms = retry


def _inbox_state(
    agent: str,
    after: Optional[int],
    last_event_id: Optional[str],
    reconnect: bool,
    read_timeout: float,
    max_retries: int,
) -> _StreamState[Message]:
    return _StreamState(
        lambda after, last: calls.stream_inbox(agent, after, last),
        message_of,
        after=after,
        last_event_id=last_event_id,
        reconnect=reconnect,
        read_timeout=read_timeout,
        max_retries=max_retries,
    )


def _event_state(
    types: Optional[EventTypes],
    subject: Optional[str],
    correlation_id: Optional[str],
    after: Optional[int],
    last_event_id: Optional[str],
    reconnect: bool,
    read_timeout: float,
    max_retries: int,
) -> _StreamState[Event]:
    return _StreamState(
        lambda after, last: calls.stream_events(after, last, types, subject, correlation_id),
        event_of,
        after=after,
        last_event_id=last_event_id,
        reconnect=reconnect,
        read_timeout=read_timeout,
        max_retries=max_retries,
        anchor=calls.last_seq(),
    )


class _SseStream(Iterator[T]):
    """A Server-Sent-Events stream read with a :class:`Client`: connects on the first
    ``next()``, reconnects with ``Last-Event-ID`` as its state says."""

    def __init__(self, client: Client, state: _StreamState[T]) -> None:
        self._client = client
        self._state = state
        self._response: Optional[httpx.Response] = None
        self._lines: Optional[Iterator[str]] = None

    @property
    def last_event_id(self) -> Optional[str]:
        """The SSE id of the last item received (its ``seq``): where a new stream resumes."""
        return self._state.last_event_id

    def __iter__(self) -> Self:
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._state.closed = True
        self._drop()

    def _drop(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response, self._lines = None, None

    def _connect(self) -> Iterator[str]:
        c = self._client
        if self._state.anchor is not None:
            self._state.anchored(c.run(self._state.anchor))
        call = self._state.call()
        timeout = httpx.Timeout(c._timeout, read=self._state.read_timeout)
        request = c._http.build_request(
            call.method, c._base + call.path, params=call.params, headers=c._headers(call),
            timeout=timeout,
        )
        try:
            response = c._http.send(request, stream=True)
        except httpx.TransportError as e:
            raise _unreachable(c._base, e) from e
        if response.status_code >= 400:
            content = response.read()
            response.close()
            raise calls.api_error(
                response.status_code, response.headers, content, response.reason_phrase
            )
        self._response = response
        self._state.restart()
        return response.iter_lines()

    def __next__(self) -> T:
        state = self._state
        while True:
            if state.closed:
                raise StopIteration
            try:
                if self._lines is None:
                    self._lines = self._connect()
                for line in self._lines:
                    item = state.take(line)
                    if item is not None:
                        return item
                ended: Optional[Exception] = None  # the server ended the stream
            except (httpx.TransportError, TransportError) as e:
                ended = e
            was_closed = state.closed
            self._drop()
            if was_closed:
                raise StopIteration
            if ended is not None:
                state.failures += 1
            if not state.reconnect or state.failures > state.max_retries:
                self.close()
                if ended is None:
                    raise StopIteration
                raise _as_transport(self._client._base, ended) from ended
            time.sleep(state.retry_delay())


class InboxStream(_SseStream[Message]):
    """An agent's inbox as Server-Sent Events (see :meth:`Client.stream_inbox`).
    ``last_event_id`` is the ``seq`` of the last message received, to resume from later."""

    def __init__(
        self,
        client: Client,
        agent: str,
        *,
        after: Optional[int],
        last_event_id: Optional[str],
        reconnect: bool,
        read_timeout: float,
        max_retries: int,
    ) -> None:
        super().__init__(
            client,
            _inbox_state(agent, after, last_event_id, reconnect, read_timeout, max_retries),
        )


class EventStream(_SseStream[Event]):
    """The namespace's event log as Server-Sent Events (see :meth:`Client.stream_events`).
    ``last_event_id`` is the ``seq`` of the last event received, to resume from later."""

    def __init__(
        self,
        client: Client,
        *,
        types: Optional[EventTypes],
        subject: Optional[str],
        correlation_id: Optional[str],
        after: Optional[int],
        last_event_id: Optional[str],
        reconnect: bool,
        read_timeout: float,
        max_retries: int,
    ) -> None:
        super().__init__(
            client,
            _event_state(
                types, subject, correlation_id, after, last_event_id, reconnect, read_timeout,
                max_retries,
            ),
        )


class AsyncClient(_Base):
    """The asynchronous twin of :class:`Client` (same methods, awaited; iterators are async).

    ::

        async with AsyncClient() as yard:
            task = await yard.create_task("emails", {"to": "ops@example.com"})
            async for t in yard.iter_tasks(queue="emails"):
                ...
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        *,
        namespace: Optional[str] = None,
        token: Optional[str] = None,
        timeout: float = 10.0,
        headers: Optional[Mapping[str, str]] = None,
        http_client: Optional[httpx.AsyncClient] = None,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        super().__init__(base_url, namespace, timeout, token)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            base_url=self._base,
            headers=self._default_headers(headers),
            transport=transport,
            timeout=timeout,
        )

    def with_namespace(self, namespace: str) -> AsyncClient:
        """A client for another namespace sharing this one's connections and token (close this
        one)."""
        return AsyncClient(
            self._base,
            namespace=namespace,
            token=self._token or "",
            timeout=self._timeout,
            http_client=self._http,
        )

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    async def run(self, call: Call[T]) -> T:
        """Sends one call and returns its parsed answer (raises on an error answer)."""
        try:
            r = await self._http.request(
                call.method,
                self._base + call.path,
                params=call.params,
                content=call.body_bytes(),
                headers=self._headers(call),
                timeout=self._timeout_for(call),
            )
        except httpx.TransportError as e:
            raise _unreachable(self._base, e) from e
        return calls.finish(call, r.status_code, r.headers, r.content, r.reason_phrase)

    # -- health ---------------------------------------------------------------------------

    async def health(self) -> Health:
        return await self.run(calls.health())

    async def live(self) -> Health:
        return await self.run(calls.live())

    async def ready(self) -> Health:
        return await self.run(calls.ready())

    async def openapi(self) -> dict[str, Any]:
        return await self.run(calls.openapi())

    # -- tasks ----------------------------------------------------------------------------

    async def create_task(
        self, queue: str, input: JSON = None, **options: Unpack[TaskOptions]
    ) -> Task:
        return (await self.run(calls.create_task(NewTask(queue, input, **options)))).value

    async def create_task_outcome(
        self, queue: str, input: JSON = None, **options: Unpack[TaskOptions]
    ) -> Created[Task]:
        return await self.run(calls.create_task(NewTask(queue, input, **options)))

    async def create_tasks(
        self, tasks: Sequence[Union[NewTask, Mapping[str, Any]]]
    ) -> BatchCreated:
        return await self.run(calls.create_tasks(tasks))

    async def get_task(self, task: TaskRef) -> Task:
        return await self.run(calls.get_task(_id(task)))

    async def list_tasks(
        self,
        *,
        queue: Optional[str] = None,
        status: Optional[Union[TaskStatus, str]] = None,
        limit: Optional[int] = None,
        cursor: Optional[str] = None,
    ) -> TaskPage:
        return await self.run(calls.list_tasks(queue, status, limit, cursor))

    async def iter_tasks(
        self,
        *,
        queue: Optional[str] = None,
        status: Optional[Union[TaskStatus, str]] = None,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[Task]:
        cursor: Optional[str] = None
        while True:
            page = await self.run(calls.list_tasks(queue, status, page_size, cursor))
            for task in page.items:
                yield task
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def update_task(
        self,
        task: TaskRef,
        *,
        expected_version: Optional[int] = None,
        if_match: Optional[int] = None,
        merge: bool = False,
        title: Optional[str] = None,
        priority: Optional[int] = None,
        input: JSON = None,
        context: Optional[Mapping[str, Any]] = None,
        artifacts: Optional[Sequence[NewArtifact]] = None,
        progress: Optional[Progress] = None,
        status: Optional[Union[TaskStatus, str]] = None,
    ) -> Task:
        return await self.run(
            calls.update_task(
                _id(task),
                expected_version=expected_version,
                if_match=if_match,
                merge=merge,
                title=title,
                priority=priority,
                input=input,
                context=context,
                artifacts=artifacts,
                progress=progress,
                status=status,
            )
        )

    async def cancel_task(self, task: TaskRef) -> Task:
        return await self.run(calls.cancel_task(_id(task)))

    async def redrive_task(self, task: TaskRef) -> Task:
        return await self.run(calls.redrive_task(_id(task)))

    async def heartbeat_task(
        self,
        task: TaskRef,
        lease_token: Optional[str] = None,
        *,
        lease_ms: Optional[int] = None,
        progress: Optional[Progress] = None,
    ) -> Task:
        task_id, token = _lease(task, lease_token)
        return await self.run(calls.heartbeat_task(task_id, token, lease_ms, progress))

    async def complete_task(
        self,
        task: TaskRef,
        lease_token: Optional[str] = None,
        *,
        result: JSON = None,
        artifacts: Optional[Sequence[NewArtifact]] = None,
    ) -> Task:
        task_id, token = _lease(task, lease_token)
        return await self.run(calls.complete_task(task_id, token, result, artifacts))

    async def complete_tasks(self, items: Sequence[Completion]) -> CompleteManyResult:
        return await self.run(calls.complete_tasks(items))

    async def fail_task(
        self,
        task: TaskRef,
        lease_token: Optional[str] = None,
        *,
        message: str,
        kind: Optional[str] = None,
        retryable: Optional[bool] = None,
    ) -> Task:
        task_id, token = _lease(task, lease_token)
        return await self.run(calls.fail_task(task_id, token, message, kind, retryable))

    async def release_task(
        self,
        task: TaskRef,
        lease_token: Optional[str] = None,
        *,
        delay_ms: Optional[int] = None,
    ) -> Task:
        """Gives a running task back untried (see :meth:`Client.release_task`)."""
        task_id, token = _lease(task, lease_token)
        return await self.run(calls.release_task(task_id, token, delay_ms))

    # -- queues ---------------------------------------------------------------------------

    async def claim(
        self,
        queue: str,
        agent: str,
        *,
        capabilities: Optional[Sequence[str]] = None,
        max: Optional[int] = None,
        wait_ms: Optional[int] = None,
        lease_ms: Optional[int] = None,
        complete: Optional[Sequence[Completion]] = None,
    ) -> ClaimResult:
        return await self.run(
            calls.claim(queue, agent, capabilities, max, wait_ms, lease_ms, complete)
        )

    async def list_queues(self) -> list[QueueStats]:
        return await self.run(calls.list_queues())

    async def queue_stats(self, queue: str) -> QueueStats:
        return await self.run(calls.queue_stats(queue))

    async def redrive_queue(self, queue: str) -> int:
        return await self.run(calls.redrive_queue(queue))

    # -- agents ---------------------------------------------------------------------------

    async def register_agent(
        self,
        name: str,
        *,
        capabilities: Optional[Sequence[str]] = None,
        slots: Optional[int] = None,
        metadata: JSON = None,
    ) -> Agent:
        return await self.run(calls.register_agent(name, capabilities, slots, metadata))

    async def get_agent(self, name: str) -> Agent:
        return await self.run(calls.get_agent(name))

    async def list_agents(
        self, *, status: Optional[Union[AgentStatus, str]] = None
    ) -> list[Agent]:
        """Every agent of the namespace (or those with `status`), by name, every page."""
        agents: list[Agent] = []
        cursor: Optional[str] = None
        while True:
            page, cursor = await self.run(calls.list_agents(status, cursor))
            agents.extend(page)
            if cursor is None:
                return agents

    async def heartbeat_agent(self, name: str) -> Agent:
        return await self.run(calls.heartbeat_agent(name))

    async def drain_agent(self, name: str) -> Agent:
        return await self.run(calls.drain_agent(name))

    async def remove_agent(self, name: str) -> RemovedAgent:
        return await self.run(calls.remove_agent(name))

    async def subscriptions(self, agent: str) -> list[str]:
        """The agent's topics, in name order."""
        return await self.run(calls.subscriptions(agent))

    async def subscribe(self, agent: str, topic: str) -> Subscriptions:
        return await self.run(calls.subscribe(agent, topic))

    async def unsubscribe(self, agent: str, topic: str) -> Subscriptions:
        return await self.run(calls.unsubscribe(agent, topic))

    # -- messages -------------------------------------------------------------------------

    async def send_message(
        self,
        body: JSON = None,
        *,
        to: Optional[str] = None,
        topic: Optional[str] = None,
        broadcast: bool = False,
        sender: Optional[str] = None,
        correlation_id: Optional[str] = None,
        reply_to: Optional[str] = None,
        ttl_ms: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Message:
        outcome = await self.send_message_outcome(
            body,
            to=to,
            topic=topic,
            broadcast=broadcast,
            sender=sender,
            correlation_id=correlation_id,
            reply_to=reply_to,
            ttl_ms=ttl_ms,
            idempotency_key=idempotency_key,
        )
        return outcome.value

    async def send_message_outcome(
        self,
        body: JSON = None,
        *,
        to: Optional[str] = None,
        topic: Optional[str] = None,
        broadcast: bool = False,
        sender: Optional[str] = None,
        correlation_id: Optional[str] = None,
        reply_to: Optional[str] = None,
        ttl_ms: Optional[int] = None,
        idempotency_key: Optional[str] = None,
    ) -> Created[Message]:
        return await self.run(
            calls.send_message(
                body,
                calls.recipient(to, topic, broadcast),
                sender,
                correlation_id,
                reply_to,
                ttl_ms,
                idempotency_key,
            )
        )

    async def reply(
        self, original: Message, body: JSON = None, *, sender: Optional[str] = None
    ) -> Message:
        outcome = await self.run(
            calls.send_message(
                body,
                calls.reply_recipient(original),
                sender,
                original.correlation_id,
                original.id,
                None,
                None,
            )
        )
        return outcome.value

    async def read_inbox(
        self,
        agent: str,
        *,
        after: Optional[int] = None,
        wait_ms: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> InboxPage:
        return await self.run(calls.read_inbox(agent, after, wait_ms, limit))

    async def ack_inbox(self, agent: str, cursor: int) -> int:
        return await self.run(calls.ack_inbox(agent, cursor))

    async def iter_inbox(
        self,
        agent: str,
        *,
        wait_ms: int = 30_000,
        after: Optional[int] = None,
        limit: Optional[int] = None,
        ack: bool = False,
    ) -> AsyncIterator[Message]:
        cursor = after
        while True:
            page = await self.read_inbox(agent, after=cursor, wait_ms=wait_ms, limit=limit)
            for message in page.messages:
                yield message
            if ack and page.messages:
                await self.ack_inbox(agent, page.cursor)
            cursor = page.cursor

    def stream_inbox(
        self,
        agent: str,
        *,
        after: Optional[int] = None,
        last_event_id: Optional[Union[int, str]] = None,
        reconnect: bool = True,
        read_timeout: float = 60.0,
        max_retries: int = 3,
    ) -> AsyncInboxStream:
        return AsyncInboxStream(
            self,
            agent,
            after=after,
            last_event_id=None if last_event_id is None else str(last_event_id),
            reconnect=reconnect,
            read_timeout=read_timeout,
            max_retries=max_retries,
        )

    # -- limits ---------------------------------------------------------------------------

    async def set_limit(
        self,
        key: str,
        *,
        rate_per_minute: Optional[int] = None,
        burst: Optional[int] = None,
        max_concurrent: Optional[int] = None,
    ) -> Limit:
        return await self.run(calls.set_limit(key, rate_per_minute, burst, max_concurrent))

    async def get_limit(self, key: str) -> Limit:
        try:
            return await self.run(calls.get_limit(key))
        except MethodNotAllowed:
            return await self.run(calls.limit_from_list(key))
        except NoSuchRoute:
            raise
        except NotFound:
            return Limit(key=key)

    async def delete_limit(self, key: str) -> None:
        await self.run(calls.delete_limit(key))

    async def list_limits(self) -> list[Limit]:
        return await self.run(calls.list_limits())

    # -- tokens (admin tokens only) -------------------------------------------------------

    async def create_token(
        self,
        role: Union[TokenRole, str],
        namespaces: Optional[Sequence[str]] = None,
        agent: Optional[str] = None,
        name: str = "",
    ) -> IssuedToken:
        return await self.run(calls.create_token(role, namespaces, agent, name))

    async def list_tokens(self) -> list[TokenInfo]:
        return await self.run(calls.list_tokens())

    async def revoke_token(self, id: TokenRef) -> TokenInfo:
        return await self.run(calls.revoke_token(_token_id(id)))

    # -- events and traces ----------------------------------------------------------------

    async def list_events(
        self,
        *,
        after: int = 0,
        limit: Optional[int] = None,
        types: Optional[EventTypes] = None,
        subject: Optional[str] = None,
        correlation_id: Optional[str] = None,
    ) -> EventPage:
        """One page of the event log (see :meth:`Client.list_events`)."""
        return await self.run(calls.list_events(after, limit, types, subject, correlation_id))

    async def iter_events(
        self,
        *,
        after: int = 0,
        types: Optional[EventTypes] = None,
        subject: Optional[str] = None,
        correlation_id: Optional[str] = None,
        page_size: Optional[int] = None,
    ) -> AsyncIterator[Event]:
        """Every matching event after ``after``, until caught up (see
        :meth:`Client.iter_events`)."""
        while True:
            page = await self.run(
                calls.list_events(after, page_size, types, subject, correlation_id)
            )
            for event in page.events:
                yield event
            if _caught_up(page, after):
                return
            after = page.next_after

    async def task_history(self, task: TaskRef) -> list[Event]:
        """Everything that happened to a task, oldest first (see :meth:`Client.task_history`)."""
        subject = calls.task_subject(_id(task))
        return [e async for e in self.iter_events(subject=subject, page_size=1000)]

    async def trace(self, correlation_id: str) -> Trace:
        """Everything that happened under one correlation id (see :meth:`Client.trace`)."""
        return await self.run(calls.trace(correlation_id))

    def stream_events(
        self,
        *,
        types: Optional[EventTypes] = None,
        subject: Optional[str] = None,
        correlation_id: Optional[str] = None,
        after: Optional[int] = None,
        last_event_id: Optional[Union[int, str]] = None,
        reconnect: bool = True,
        read_timeout: float = 60.0,
        max_retries: int = 3,
    ) -> AsyncEventStream:
        """Follows the event log as Server-Sent Events, resuming by ``Last-Event-ID`` (see
        :meth:`Client.stream_events`)."""
        return AsyncEventStream(
            self,
            types=types,
            subject=subject,
            correlation_id=correlation_id,
            after=after,
            last_event_id=None if last_event_id is None else str(last_event_id),
            reconnect=reconnect,
            read_timeout=read_timeout,
            max_retries=max_retries,
        )

    # -- webhooks -------------------------------------------------------------------------

    async def create_webhook(
        self, url: str, secret: str, types: Optional[EventTypes] = None
    ) -> Webhook:
        """Registers a webhook (see :meth:`Client.create_webhook`)."""
        return await self.run(calls.create_webhook(url, secret, types))

    async def list_webhooks(self) -> list[Webhook]:
        return await self.run(calls.list_webhooks())

    async def get_webhook(self, webhook: WebhookRef) -> Webhook:
        return await self.run(calls.get_webhook(_webhook_id(webhook)))

    async def delete_webhook(self, webhook: WebhookRef) -> None:
        await self.run(calls.delete_webhook(_webhook_id(webhook)))

    async def list_deliveries(self, webhook: WebhookRef) -> list[Delivery]:
        """The latest delivery attempts of a webhook, newest first."""
        return await self.run(calls.list_deliveries(_webhook_id(webhook)))

    # -- admin (admin tokens only) --------------------------------------------------------

    async def prune(self) -> PruneResult:
        """Runs the server's retention pass now (see :meth:`Client.prune`)."""
        return await self.run(calls.prune())


class _AsyncSseStream(AsyncIterator[T]):
    """The asynchronous :class:`_SseStream`, read with an :class:`AsyncClient`."""

    def __init__(self, client: AsyncClient, state: _StreamState[T]) -> None:
        self._client = client
        self._state = state
        self._response: Optional[httpx.Response] = None
        self._lines: Optional[AsyncIterator[str]] = None

    @property
    def last_event_id(self) -> Optional[str]:
        """The SSE id of the last item received (its ``seq``): where a new stream resumes."""
        return self._state.last_event_id

    def __aiter__(self) -> Self:
        return self

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._state.closed = True
        await self._drop()

    async def _drop(self) -> None:
        if self._response is not None:
            await self._response.aclose()
        self._response, self._lines = None, None

    async def _connect(self) -> AsyncIterator[str]:
        c = self._client
        if self._state.anchor is not None:
            self._state.anchored(await c.run(self._state.anchor))
        call = self._state.call()
        timeout = httpx.Timeout(c._timeout, read=self._state.read_timeout)
        request = c._http.build_request(
            call.method, c._base + call.path, params=call.params, headers=c._headers(call),
            timeout=timeout,
        )
        try:
            response = await c._http.send(request, stream=True)
        except httpx.TransportError as e:
            raise _unreachable(c._base, e) from e
        if response.status_code >= 400:
            content = await response.aread()
            await response.aclose()
            raise calls.api_error(
                response.status_code, response.headers, content, response.reason_phrase
            )
        self._response = response
        self._state.restart()
        return response.aiter_lines()

    async def __anext__(self) -> T:
        state = self._state
        while True:
            if state.closed:
                raise StopAsyncIteration
            try:
                if self._lines is None:
                    self._lines = await self._connect()
                async for line in self._lines:
                    item = state.take(line)
                    if item is not None:
                        return item
                ended: Optional[Exception] = None
            except (httpx.TransportError, TransportError) as e:
                ended = e
            was_closed = state.closed
            await self._drop()
            if was_closed:
                raise StopAsyncIteration
            if ended is not None:
                state.failures += 1
            if not state.reconnect or state.failures > state.max_retries:
                await self.aclose()
                if ended is None:
                    raise StopAsyncIteration
                raise _as_transport(self._client._base, ended) from ended
            await asyncio.sleep(state.retry_delay())


class AsyncInboxStream(_AsyncSseStream[Message]):
    """The asynchronous :class:`InboxStream`."""

    def __init__(
        self,
        client: AsyncClient,
        agent: str,
        *,
        after: Optional[int],
        last_event_id: Optional[str],
        reconnect: bool,
        read_timeout: float,
        max_retries: int,
    ) -> None:
        super().__init__(
            client,
            _inbox_state(agent, after, last_event_id, reconnect, read_timeout, max_retries),
        )


class AsyncEventStream(_AsyncSseStream[Event]):
    """The asynchronous :class:`EventStream`."""

    def __init__(
        self,
        client: AsyncClient,
        *,
        types: Optional[EventTypes],
        subject: Optional[str],
        correlation_id: Optional[str],
        after: Optional[int],
        last_event_id: Optional[str],
        reconnect: bool,
        read_timeout: float,
        max_retries: int,
    ) -> None:
        super().__init__(
            client,
            _event_state(
                types, subject, correlation_id, after, last_event_id, reconnect, read_timeout,
                max_retries,
            ),
        )
