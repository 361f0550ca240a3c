"""The :class:`Worker`: an agent's claim loop, with handlers per queue.

::

    from agentyard_client import Client, FatalError, Worker

    worker = Worker(Client(), "mailer-1", capabilities=["smtp"], concurrency=4)

    @worker.handler("emails")
    def send(job):
        if "to" not in job.input:
            raise FatalError("no recipient")        # dead-lettered, never retried
        return {"sent": deliver(job.input)}          # the task's result; other exceptions retry

    worker.run()   # until SIGTERM / SIGINT, then a graceful shutdown

What it does for you:

* registers the agent (capabilities, ``slots=concurrency``), claims with long polls and runs up
  to ``concurrency`` handlers at once, each in its own thread (``async def`` handlers run in
  their own event loop in that thread; see :class:`AsyncWorker` for an asyncio program);
* heartbeats every running task's lease (every third of ``lease_ms``) and the agent itself, so
  a handler may run far longer than the lease; a task whose lease is lost (cancelled, or it
  expired and moved on) shows ``job.lease_lost`` and its outcome is discarded;
* completes a task inside the next claim ("done, next": one round trip) when the claim loop is
  ready to claim again, or at once when it is waiting in a long poll;
* fails a task on an exception: :class:`FatalError` goes straight to the dead-letter view,
  anything else is retried after the task's backoff while it has attempts left;
* shuts down gracefully on SIGTERM/SIGINT (or :meth:`Worker.stop`): drains the agent (no new
  tasks; a parked claim ends), lets running handlers finish for ``shutdown_grace`` seconds, then
  gives the rest back untried (``release_task``: no attempt spent). A second signal skips what
  is left of the grace period.

It logs to the ``agentyard_client.worker`` logger.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Awaitable, Callable, Optional, Sequence, TypeVar, Union

from ._client import Client
from ._jobs import Failure, JobBase, check_result, failure_of
from ._models import Completion, Progress, Task
from .errors import (
    AgentyardError,
    ApiError,
    LeaseConflict,
    NotFound,
    ServerError,
    TooManyRequests,
    TransportError,
)

__all__ = ["Job", "Worker", "run_workers"]

LOG = logging.getLogger("agentyard_client.worker")

Handler = Callable[["Job"], Union[Any, Awaitable[Any]]]
H = TypeVar("H", bound=Handler)

#: Long-poll wait of each claim when the worker serves several queues (they are polled in turn).
MULTI_QUEUE_WAIT_MS = 1_000
#: Kind of the failure that releases a task the worker could not finish before shutting down.


class Job(JobBase):
    """A claimed task, as a handler of a :class:`Worker` receives it: ``job.task``,
    ``job.input``, ``job.attempt``, ``job.progress(...)``, ``job.add_artifact(...)``,
    ``job.lease_lost``, ``job.client``, ``job.logger``."""

    def __init__(self, task: Task, worker: Worker) -> None:
        super().__init__(task, worker.name, worker.logger)
        self.client = worker.client
        self._worker = worker

    def progress(self, percent: Optional[float] = None, message: Optional[str] = None) -> None:
        """Reports progress now (a heartbeat that also extends the lease)."""
        self._worker._heartbeat(self, Progress(percent, message))

    @property
    def stopping(self) -> bool:
        """True once the worker is shutting down: finish soon, or stop and raise."""
        return self._worker._stopping.is_set()


@dataclass
class _Running:
    job: Job
    queue: str
    last_beat: float
    thread: Optional[threading.Thread] = None
    released: bool = False


@dataclass
class _State:
    running: dict[str, _Running] = field(default_factory=dict)
    pending: list[Completion] = field(default_factory=list)
    polling: bool = False


class Worker:
    """Runs handlers for the tasks of one or more queues as agent ``name``. See the module
    documentation for what it does.

    :param client: the :class:`Client` to talk to the server with.
    :param name: the agent's name, unique to this worker process.
    :param capabilities: what the agent can do; tasks requiring others are not handed to it.
    :param concurrency: most tasks run at once.
    :param lease_ms: lease length asked for (heartbeats renew it every third of it).
    :param poll_wait_ms: longest long poll of a claim when the queue is empty.
    :param shutdown_grace: seconds running handlers get to finish at shutdown.
    :param heartbeat_interval: seconds between lease heartbeats (default ``lease_ms / 3``).
    :param agent_heartbeat_interval: seconds between agent heartbeats (the server declares an
        agent silent for ``--agent-timeout-ms``, 30 s by default, gone).
    :param register: register the agent at start (and drain it at shutdown).
    """

    def __init__(
        self,
        client: Client,
        name: str,
        *,
        capabilities: Sequence[str] = (),
        concurrency: int = 1,
        lease_ms: int = 30_000,
        poll_wait_ms: int = 10_000,
        shutdown_grace: float = 30.0,
        heartbeat_interval: Optional[float] = None,
        agent_heartbeat_interval: float = 10.0,
        register: bool = True,
        metadata: Any = None,
        logger: Optional[logging.Logger] = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if lease_ms < 100:
            raise ValueError("lease_ms must be at least 100")
        self.client = client
        self.name = name
        self.capabilities = list(capabilities)
        self.concurrency = concurrency
        self.lease_ms = lease_ms
        self.poll_wait_ms = poll_wait_ms
        self.shutdown_grace = shutdown_grace
        self.heartbeat_interval = heartbeat_interval or lease_ms / 3000.0
        self.agent_heartbeat_interval = agent_heartbeat_interval
        self.register = register
        self.metadata = metadata
        self.logger = logger or LOG
        self._handlers: dict[str, Handler] = {}
        self._cond = threading.Condition()
        self._state = _State()
        self._stopping = threading.Event()
        self._hurry = threading.Event()
        self._stopped = threading.Event()
        self._started = False
        self._threads: list[threading.Thread] = []
        self.error: Optional[BaseException] = None
        #: Tasks finished successfully, failed, and released at shutdown by this worker.
        self.stats = {"succeeded": 0, "failed": 0, "released": 0}

    # -- set-up ---------------------------------------------------------------------------

    def handler(self, queue: str) -> Callable[[H], H]:
        """Decorator: ``fn(job)`` handles the tasks of ``queue``; its return value (JSON) is
        the task's result. ``async def`` handlers are awaited."""

        def register(fn: H) -> H:
            self.add_handler(queue, fn)
            return fn

        return register

    def add_handler(self, queue: str, fn: Handler) -> None:
        if self._started:
            raise RuntimeError("add handlers before the worker starts")
        if queue in self._handlers:
            raise ValueError(f"queue {queue!r} already has a handler")
        self._handlers[queue] = fn

    # -- life cycle -----------------------------------------------------------------------

    def run(self, *, handle_signals: bool = True) -> None:
        """Runs until SIGTERM/SIGINT (or :meth:`stop`), then shuts down gracefully. Raises
        what stopped the worker if it was an error (e.g. a claim the server refused as
        invalid)."""
        run_workers(self, handle_signals=handle_signals)

    def start(self) -> None:
        """Starts the worker's threads and returns; :meth:`stop` and :meth:`join` end it."""
        if not self._handlers:
            raise RuntimeError("the worker has no handler: add one with @worker.handler(queue)")
        if self._started:
            raise RuntimeError("the worker was already started")
        self._started = True
        if self.register:
            self.client.register_agent(
                self.name,
                capabilities=self.capabilities,
                slots=self.concurrency,
                metadata=self.metadata,
            )
        self.logger.info(
            "worker %s started: queues %s, concurrency %d",
            self.name,
            ", ".join(self._handlers),
            self.concurrency,
        )
        for target, what in (
            (self._claims, "claims"),
            (self._supervise, "supervisor"),
            (self._beat, "heartbeats"),
        ):
            t = threading.Thread(target=target, name=f"agentyard-{self.name}-{what}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, *, immediately: bool = False) -> None:
        """Asks the worker to shut down gracefully (safe from any thread and from a signal
        handler). ``immediately`` skips the grace period: running tasks are released now."""
        self._stopping.set()
        if immediately:
            self._hurry.set()
        # No lock here: a signal handler may run while this thread holds it.

    def join(self, timeout: Optional[float] = None) -> bool:
        """Waits until the worker has shut down; False if ``timeout`` passed first."""
        return self._stopped.wait(timeout)

    @property
    def running(self) -> int:
        """Tasks running now."""
        with self._cond:
            return len(self._state.running)

    # -- the claim loop -------------------------------------------------------------------

    def _claims(self) -> None:
        try:
            self._claim_loop()
        except BaseException as e:  # noqa: BLE001 - reported through run()
            self.error = e
            self.logger.error("worker %s stops: %s", self.name, e)
        finally:
            self._stopping.set()

    def _supervise(self) -> None:
        """Waits for the stop, then shuts down: at once, even while a claim is parked."""
        while not self._stopping.wait(0.5):
            pass
        self._shut_down()

    def _claim_loop(self) -> None:
        queues = list(self._handlers)
        wait_ms = self.poll_wait_ms if len(queues) == 1 else min(self.poll_wait_ms, MULTI_QUEUE_WAIT_MS)
        turn = 0
        errors = 0
        while not self._stopping.is_set():
            with self._cond:
                while len(self._state.running) >= self.concurrency and not self._stopping.is_set():
                    self._cond.wait(0.5)
                if self._stopping.is_set():
                    return
                free = self.concurrency - len(self._state.running)
                done, self._state.pending = self._state.pending, []
                self._state.polling = True
            queue = queues[turn % len(queues)]
            turn += 1
            try:
                answer = self.client.claim(
                    queue,
                    self.name,
                    capabilities=self.capabilities,
                    max=min(free, 100),
                    wait_ms=wait_ms,
                    lease_ms=self.lease_ms,
                    complete=done or None,
                )
                errors = 0
            except (TransportError, TooManyRequests, ServerError) as e:
                self._requeue_completions(done)
                errors += 1
                pause = getattr(e, "retry_after", None) or min(0.25 * 2**errors, 5.0)
                self.logger.warning("worker %s: claim failed (%s); retrying in %.1fs", self.name, e, pause)
                self._stopping.wait(pause)
                continue
            except ApiError:
                self._requeue_completions(done)
                raise
            finally:
                with self._cond:
                    self._state.polling = False
            for outcome in answer.completed or []:
                if outcome.error is not None:
                    self.logger.warning(
                        "worker %s: completion of task %s refused: %s",
                        self.name,
                        outcome.id,
                        outcome.error.detail,
                    )
            for task in answer.tasks:
                if self._stopping.is_set():
                    self._release(task, "the worker was shutting down when the claim answered")
                else:
                    self._launch(queue, task)

    def _requeue_completions(self, done: list[Completion]) -> None:
        if done:
            with self._cond:
                self._state.pending[:0] = done

    def _launch(self, queue: str, task: Task) -> None:
        job = Job(task, self)
        running = _Running(job, queue, time.monotonic())
        thread = threading.Thread(
            target=self._run_job,
            args=(running,),
            name=f"agentyard-{self.name}-{task.id}",
            daemon=True,
        )
        running.thread = thread
        with self._cond:
            self._state.running[task.id] = running
        self.logger.debug("worker %s: task %s (attempt %d) started", self.name, task.id, task.attempt)
        thread.start()

    # -- running a task -------------------------------------------------------------------

    def _run_job(self, running: _Running) -> None:
        job = running.job
        fn = self._handlers[running.queue]
        failure: Optional[Failure] = None
        result: Any = None
        try:
            value = fn(job)
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
            result = value
            failure = check_result(result)
        except BaseException as e:  # noqa: BLE001 - every exception is the task's failure
            failure = failure_of(e)
        job._done = True
        if job._abandoned or job.lease_lost:
            self._forget(job.id)
            self.logger.warning(
                "worker %s: task %s finished after its lease was lost (%s); outcome discarded",
                self.name,
                job.id,
                job.lost_reason or "released",
            )
            return
        if failure is None:
            self._succeed(job, result)
        else:
            self._fail(job, failure)

    def _succeed(self, job: Job, result: Any) -> None:
        completion = Completion(job.id, job.lease_token, result, list(job._artifacts) or None)
        with self._cond:
            direct = self._state.polling or self._stopping.is_set()
            if not direct:
                # The claim loop is about to claim again: the completion goes with that claim.
                self._state.pending.append(completion)
                self._state.running.pop(job.id, None)
                self._cond.notify_all()
        self._count("succeeded")
        self.logger.info("worker %s: task %s succeeded", self.name, job.id)
        if direct:
            # The slot stays taken until the completion is sent, so a shutdown waits for it.
            try:
                self._complete_now(completion)
            finally:
                self._forget(job.id)

    def _complete_now(self, c: Completion) -> None:
        try:
            self.client.complete_task(c.id, c.lease_token, result=c.result, artifacts=c.artifacts)
        except LeaseConflict as e:
            self.logger.warning("worker %s: completion of task %s refused: %s", self.name, c.id, e.detail)
        except (TransportError, ServerError, TooManyRequests) as e:
            self.logger.warning(
                "worker %s: cannot complete task %s now (%s); it goes with the next claim",
                self.name,
                c.id,
                e,
            )
            self._requeue_completions([c])

    def _fail(self, job: Job, failure: Failure) -> None:
        level = logging.WARNING if failure.retryable else logging.ERROR
        self.logger.log(
            level,
            "worker %s: task %s failed (%s, %s): %s",
            self.name,
            job.id,
            failure.kind,
            "retryable" if failure.retryable else "final",
            failure.message.splitlines()[0] if failure.message else "",
        )
        try:
            self.client.fail_task(
                job.id,
                job.lease_token,
                message=failure.message,
                kind=failure.kind,
                retryable=failure.retryable,
            )
            self._count("failed")
        except AgentyardError as e:
            # The lease runs out and the server retries the task anyway.
            self.logger.warning("worker %s: cannot report the failure of task %s: %s", self.name, job.id, e)
        finally:
            self._forget(job.id)

    def _count(self, what: str) -> None:
        with self._cond:
            self.stats[what] += 1

    def _forget(self, task_id: str) -> None:
        with self._cond:
            self._state.running.pop(task_id, None)
            self._cond.notify_all()

    def _release(self, task: Task, why: str) -> None:
        try:
            # Given back untried: the shutdown is not the task's fault, so no attempt is spent.
            self.client.release_task(task.id, task.lease_token)
            self._count("released")
            self.logger.info("worker %s: task %s released (%s)", self.name, task.id, why)
        except AgentyardError as e:
            self.logger.warning("worker %s: cannot release task %s: %s", self.name, task.id, e)

    # -- heartbeats -----------------------------------------------------------------------

    def _heartbeat(self, job: Job, progress: Optional[Progress] = None) -> None:
        if job.lease_lost:
            return
        try:
            self.client.heartbeat_task(job.id, job.lease_token, lease_ms=self.lease_ms, progress=progress)
        except (LeaseConflict, NotFound) as e:
            job._lose(e.detail)
            self.logger.warning("worker %s: lease of task %s lost: %s", self.name, job.id, e.detail)
            return
        except AgentyardError as e:
            self.logger.warning("worker %s: heartbeat of task %s failed: %s", self.name, job.id, e)
            return
        with self._cond:
            r = self._state.running.get(job.id)
            if r is not None:
                r.last_beat = time.monotonic()

    def _beat(self) -> None:
        tick = max(0.02, min(self.heartbeat_interval, self.agent_heartbeat_interval) / 4)
        last_agent = time.monotonic()
        while not self._stopped.wait(tick):
            now = time.monotonic()
            with self._cond:
                due = [
                    r.job
                    for r in self._state.running.values()
                    if not r.released
                    and not r.job._done
                    and now - r.last_beat >= self.heartbeat_interval
                ]
            for job in due:
                self._heartbeat(job)
            if self.register and now - last_agent >= self.agent_heartbeat_interval:
                last_agent = now
                try:
                    self.client.heartbeat_agent(self.name)
                except AgentyardError as e:
                    self.logger.warning("worker %s: agent heartbeat failed: %s", self.name, e)

    # -- shutdown -------------------------------------------------------------------------

    def _shut_down(self) -> None:
        try:
            self._drain_and_wait()
        finally:
            self._stopped.set()
            self.logger.info(
                "worker %s stopped (%d succeeded, %d failed, %d released)",
                self.name,
                self.stats["succeeded"],
                self.stats["failed"],
                self.stats["released"],
            )

    def _drain_and_wait(self) -> None:
        self._stopping.set()
        if self.register:
            try:
                self.client.drain_agent(self.name)
            except AgentyardError as e:
                self.logger.warning("worker %s: cannot drain the agent: %s", self.name, e)
        # A drained agent's parked claim ends within about a second; a claim that answers
        # after the stop releases what it got.
        self._threads[0].join(self.poll_wait_ms / 1000.0 + self.client._timeout + 1.0)
        deadline = time.monotonic() + self.shutdown_grace
        with self._cond:
            n = len(self._state.running)
        if n:
            self.logger.info(
                "worker %s stopping: waiting up to %.1fs for %d running task(s)",
                self.name,
                self.shutdown_grace,
                n,
            )
        with self._cond:
            while self._state.running and not self._hurry.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(min(left, 0.1))
            leftovers = [r for r in self._state.running.values() if not r.released]
            for r in leftovers:
                r.released = True
                r.job._abandoned = True
        for r in leftovers:
            r.job._lose("released at shutdown")
            self._release(r.job.task, f"it was still running after the {self.shutdown_grace:.1f}s grace period")
        with self._cond:
            for r in leftovers:
                self._state.running.pop(r.job.id, None)
            done, self._state.pending = self._state.pending, []
        if done:
            try:
                self.client.complete_tasks(done)
            except AgentyardError as e:
                self.logger.warning("worker %s: cannot send %d completion(s): %s", self.name, len(done), e)


async def _await(value: Awaitable[Any]) -> Any:
    return await value


def run_workers(*workers: Worker, handle_signals: bool = True) -> None:
    """Runs workers until SIGTERM/SIGINT (or until each was stopped), then shuts them down
    gracefully, together. A second signal skips what is left of their grace periods. Raises
    the first error that stopped a worker."""
    if not workers:
        raise ValueError("no worker to run")
    installed: list[tuple[int, Any]] = []
    signals_seen = 0

    def on_signal(signum: int, frame: Optional[FrameType]) -> None:
        nonlocal signals_seen
        signals_seen += 1
        LOG.info(
            "%s received: %s",
            signal.Signals(signum).name,
            "shutting down gracefully" if signals_seen == 1 else "releasing running tasks now",
        )
        for w in workers:
            w.stop(immediately=signals_seen > 1)

    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            installed.append((sig, signal.signal(sig, on_signal)))
    try:
        started: list[Worker] = []
        try:
            for w in workers:
                w.start()
                started.append(w)
        except BaseException:
            for w in started:
                w.stop()
            for w in started:
                w.join()
            raise
        try:
            while not all(w.join(0.2) for w in workers):
                pass
        except KeyboardInterrupt:
            for w in workers:
                w.stop()
            for w in workers:
                w.join()
            raise
    finally:
        for signum, previous in installed:
            signal.signal(signum, previous)
    for w in workers:
        if w.error is not None:
            raise w.error
