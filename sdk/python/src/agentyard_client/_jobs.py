"""What the threaded :class:`Worker` and the :class:`AsyncWorker` share: the exceptions that
decide between a retry and the dead-letter view, the job a handler receives, and how an
outcome is reported."""

from __future__ import annotations

import json
import logging
import threading
import traceback
from dataclasses import dataclass
from typing import Any, Optional

from ._models import JSON, NewArtifact, Task

__all__ = ["FatalError", "RetryableError", "TaskFailure"]

#: Longest error message sent with a failure (the server accepts 64 KiB).
MAX_MESSAGE = 8 * 1024


class TaskFailure(Exception):
    """Raise from a handler to fail the task with this ``kind`` and message. Any other
    exception fails it too (retryable, its kind the exception's class name)."""

    retryable: bool = True

    def __init__(self, message: str, *, kind: Optional[str] = None) -> None:
        super().__init__(message)
        self.kind = kind or _snake(type(self).__name__)


class RetryableError(TaskFailure):
    """The attempt failed but another may succeed: the task is retried after its backoff
    while it has attempts left, then dead-lettered."""

    retryable = True


class FatalError(TaskFailure):
    """Retrying will not help (bad input, a task that makes no sense): the task goes straight
    to the dead-letter view (status ``failed``), whatever attempts it has left."""

    retryable = False


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i > 0 and not name[i - 1].isupper():
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


@dataclass(frozen=True)
class Failure:
    kind: str
    message: str
    retryable: bool


def failure_of(exc: BaseException) -> Failure:
    """How an exception raised by a handler is reported."""
    if isinstance(exc, TaskFailure):
        return Failure(exc.kind[:128], str(exc)[:MAX_MESSAGE] or exc.kind, exc.retryable)
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    tb = "".join(traceback.format_tb(exc.__traceback__)[-5:])
    message = f"{text}\n{tb}" if tb else text
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    return Failure(type(exc).__name__[:128], message, True)


def check_result(result: JSON) -> Optional[Failure]:
    """A handler's return value must be JSON; a result that is not cannot be stored."""
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as e:
        return Failure("invalid_result", f"the handler returned a value that is not JSON: {e}", False)
    return None


class JobBase:
    """What a handler receives: the claimed task and ways to talk about it."""

    def __init__(self, task: Task, worker_name: str, logger: logging.Logger) -> None:
        self.task = task
        self.worker = worker_name
        self.logger = logger
        self._artifacts: list[NewArtifact] = []
        self._lease_lost = threading.Event()
        self._abandoned = False
        #: Set once the handler returned: no more heartbeats, its outcome is being reported.
        self._done = False
        self.lost_reason: Optional[str] = None

    @property
    def id(self) -> str:
        return self.task.id

    @property
    def input(self) -> Any:
        return self.task.input

    @property
    def attempt(self) -> int:
        return self.task.attempt

    @property
    def lease_token(self) -> str:
        return self.task.lease_token

    @property
    def lease_lost(self) -> bool:
        """True once the task is no longer this worker's: cancelled, its lease expired and it
        moved on, or released at shutdown. A handler that checks it can stop early; whatever
        it returns then is discarded."""
        return self._lease_lost.is_set()

    def add_artifact(
        self,
        name: str,
        *,
        uri: Optional[str] = None,
        content: JSON = None,
        media_type: Optional[str] = None,
    ) -> None:
        """Attaches an artifact, sent with the completion."""
        if uri is None and content is None:
            raise ValueError("an artifact needs a uri or a content")
        self._artifacts.append(NewArtifact(name, uri=uri, content=content, media_type=media_type))

    def _lose(self, reason: str) -> None:
        self.lost_reason = reason
        self._lease_lost.set()
