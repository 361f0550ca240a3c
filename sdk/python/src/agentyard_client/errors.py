"""Exceptions: every ``application/problem+json`` answer of the server becomes an
:class:`ApiError` subclass chosen by the problem ``type``, carrying the problem's fields.

::

    AgentyardError
    ├── TransportError                 the server could not be reached / the connection broke
    └── ApiError                       the server answered with an error (status, type, detail)
        ├── BadRequest                 400 malformed body, 415 unsupported media type
        ├── Unauthorized               401 no token, or not a valid one (unknown, revoked, mistyped)
        ├── Forbidden                  403 the token's role, namespaces or agent do not allow it
        ├── ValidationError            422 invalid field (``field``) or invalid request
        ├── NotFound                   404 (``NoSuchRoute`` for an unknown route)
        ├── MethodNotAllowed           405
        ├── PayloadTooLarge            413 (``limit``)
        ├── PreconditionRequired       428 an update named no version
        ├── Conflict                   409 / 412
        │   ├── VersionConflict        expected_version, actual_version, current (a Task)
        │   │   ├── PreconditionFailed 412: If-Match named an old version
        │   │   └── MergeConflict      + conflicts (context paths changed on both sides)
        │   ├── LeaseConflict          the lease token is not the task's lease (task_status)
        │   └── InvalidTransition      e.g. cancel a finished task (task_status)
        ├── TooManyRequests            429, ``retry_after`` seconds from Retry-After
        │   ├── Backpressure           queue full (queue, depth, limit)
        │   ├── InboxFull              (agent, depth, limit)
        │   ├── RateLimited            the agent is over its API rate (agent, limit, retry_after_ms)
        │   └── TooManyAgents          a new agent would pass its namespace's cap (agent, limit)
        └── ServerError                5xx
            ├── ServerUnavailable      503, ``retry_after``
            └── InternalServerError    500
"""

from __future__ import annotations

import datetime as _dt
import email.utils
from typing import Any, Mapping, Optional

from ._models import Task, TaskStatus

__all__ = [
    "AgentyardError",
    "ApiError",
    "BadRequest",
    "Conflict",
    "Backpressure",
    "Forbidden",
    "InboxFull",
    "InternalServerError",
    "InvalidTransition",
    "LeaseConflict",
    "MergeConflict",
    "MethodNotAllowed",
    "NoSuchRoute",
    "NotFound",
    "PayloadTooLarge",
    "PreconditionFailed",
    "PreconditionRequired",
    "RateLimited",
    "RequestTimeout",
    "ServerError",
    "ServerUnavailable",
    "TooManyAgents",
    "TooManyRequests",
    "TransportError",
    "Unauthorized",
    "ValidationError",
    "VersionConflict",
    "error_from_response",
]


class AgentyardError(Exception):
    """Base of every error this package raises."""


class TransportError(AgentyardError):
    """The request did not get an answer: connection refused, reset, timed out."""

    def __init__(self, message: str, *, url: str = "") -> None:
        super().__init__(message)
        self.url = url


class ApiError(AgentyardError):
    """The server answered with an error status. ``problem`` is the whole problem body."""

    def __init__(
        self,
        status: int,
        type: str,
        title: str,
        detail: str,
        problem: Mapping[str, Any],
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.status = status
        self.type = type
        self.title = title
        self.detail = detail
        self.problem: dict[str, Any] = dict(problem)
        #: Seconds the server asks to wait before retrying (``Retry-After``), if it said.
        self.retry_after = retry_after
        #: The invalid field, parameter or header (422), if the server named one.
        self.field: Optional[str] = problem.get("field")


class BadRequest(ApiError):
    """400 (the body is not JSON) or 415 (it is not sent as JSON)."""


class Unauthorized(ApiError):
    """401: the server runs with ``--auth`` and the request carried no token, or one it does not
    accept (unknown, revoked or mistyped). Pass ``token=`` to the client or set
    ``AGENTYARD_TOKEN``."""


class Forbidden(ApiError):
    """403: the token is valid but its role does not allow this (a reader writing, a non-admin
    managing tokens), the namespace is not one of its namespaces, or an agent token acts for
    another agent."""


class ValidationError(ApiError):
    """422: a field, parameter or header is invalid (``field`` names it), or the request as a
    whole makes no sense."""


class NotFound(ApiError):
    """404: no such task, agent, ..."""


class NoSuchRoute(NotFound):
    """404: the server has no such route (an older server, or a wrong base URL)."""


class MethodNotAllowed(ApiError):
    """405."""


class RequestTimeout(BadRequest):
    """408: the request body did not arrive within the server's ``--body-timeout-ms``."""


class PayloadTooLarge(ApiError):
    """413: the body is over the server's ``--body-limit`` (``limit`` bytes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limit: Optional[int] = self.problem.get("limit")


class PreconditionRequired(ApiError):
    """428: an update must say which version it is based on."""


class Conflict(ApiError):
    """409/412: the request conflicts with the task's current state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        status = self.problem.get("task_status")
        #: The task's status now (lease conflicts and invalid transitions).
        self.task_status: Optional[TaskStatus] = None if status is None else TaskStatus(status)


class VersionConflict(Conflict):
    """The task changed since the version the update was based on. ``current`` is the task as
    it is now: re-apply the change to it and send again with ``current.version``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.expected_version: Optional[int] = self.problem.get("expected_version")
        self.actual_version: Optional[int] = self.problem.get("actual_version")
        current = self.problem.get("current")
        self.current: Optional[Task] = None if current is None else Task.from_json(current)


class PreconditionFailed(VersionConflict):
    """412: ``If-Match`` named a version that is not the current one."""


class MergeConflict(VersionConflict):
    """A merge update changed context keys that also changed on the server (``conflicts``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conflicts: list[str] = list(self.problem.get("conflicts") or [])


class LeaseConflict(Conflict):
    """The lease token is not (or no longer) the task's lease: the lease expired and the task
    moved on, or was cancelled. Nothing was changed."""


class InvalidTransition(Conflict):
    """The task's status does not allow this (e.g. cancelling a finished task)."""


class TooManyRequests(ApiError):
    """429. Wait ``retry_after`` seconds before retrying."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.depth: Optional[int] = self.problem.get("depth")
        self.limit: Optional[int] = self.problem.get("limit")


class Backpressure(TooManyRequests):
    """The queue holds its maximum of waiting tasks; creates are refused for now."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue: Optional[str] = self.problem.get("queue")


class InboxFull(TooManyRequests):
    """The recipient's inbox holds its maximum of unacknowledged messages."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.agent: Optional[str] = self.problem.get("agent")


class RateLimited(TooManyRequests):
    """The agent named by the request is over its API rate (``limit`` requests a minute)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.agent: Optional[str] = self.problem.get("agent")
        self.retry_after_ms: Optional[int] = self.problem.get("retry_after_ms")


class TooManyAgents(TooManyRequests):
    """A claim or registration would create an agent beyond its namespace's cap (``limit``);
    agents already known go on working."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.agent: Optional[str] = self.problem.get("agent")


class ServerError(ApiError):
    """5xx."""


class ServerUnavailable(ServerError):
    """503: the store does not answer or the server is shutting down; retry later."""


class InternalServerError(ServerError):
    """500: a server bug; the cause is in the server's log."""


_BY_TYPE: dict[str, type[ApiError]] = {
    "/problems/malformed-body": BadRequest,
    "/problems/unsupported-media-type": BadRequest,
    "/problems/unauthorized": Unauthorized,
    "/problems/forbidden": Forbidden,
    "/problems/invalid-field": ValidationError,
    "/problems/invalid-request": ValidationError,
    "/problems/not-found": NotFound,
    "/problems/no-such-route": NoSuchRoute,
    "/problems/method-not-allowed": MethodNotAllowed,
    "/problems/precondition-required": PreconditionRequired,
    "/problems/version-conflict": VersionConflict,
    "/problems/precondition-failed": PreconditionFailed,
    "/problems/merge-conflict": MergeConflict,
    "/problems/lease-conflict": LeaseConflict,
    "/problems/invalid-transition": InvalidTransition,
    "/problems/payload-too-large": PayloadTooLarge,
    "/problems/request-timeout": RequestTimeout,
    "/problems/backpressure": Backpressure,
    "/problems/inbox-full": InboxFull,
    "/problems/rate-limited": RateLimited,
    "/problems/too-many-agents": TooManyAgents,
    "/problems/unavailable": ServerUnavailable,
    "/problems/internal": InternalServerError,
}

_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    408: RequestTimeout,
    409: Conflict,
    412: PreconditionFailed,
    413: PayloadTooLarge,
    415: BadRequest,
    422: ValidationError,
    428: PreconditionRequired,
    429: TooManyRequests,
    500: InternalServerError,
    503: ServerUnavailable,
}


def parse_retry_after(value: Optional[str], now: Optional[_dt.datetime] = None) -> Optional[float]:
    """``Retry-After`` in seconds: delay-seconds, or an HTTP date (seconds until then)."""
    if value is None:
        return None
    text = value.strip()
    try:
        return max(0.0, float(int(text)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=_dt.timezone.utc)
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def problem_class(status: int, type: str) -> type[ApiError]:
    """The exception class for a problem ``type`` (or, for an unknown type, its status)."""
    cls = _BY_TYPE.get(type)
    if cls is not None:
        return cls
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    if status >= 500:
        return ServerError
    return ApiError


def error_from_response(
    status: int, body: Any, retry_after_header: Optional[str], reason: str = ""
) -> ApiError:
    """The exception for an error answer. ``body`` is the decoded JSON body (``None`` or any
    value when it was not a problem document)."""
    problem: dict[str, Any] = dict(body) if isinstance(body, dict) else {}
    type_ = str(problem.get("type") or "about:blank")
    title = str(problem.get("title") or reason or f"HTTP {status}")
    detail = problem.get("detail")
    if detail is None:
        detail = "" if isinstance(body, dict) or body is None else str(body)[:500]
    cls = problem_class(status, type_)
    return cls(
        status,
        type_,
        title,
        str(detail),
        problem,
        retry_after=parse_retry_after(retry_after_header),
    )
