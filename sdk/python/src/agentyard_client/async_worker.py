"""The :class:`AsyncWorker`: :class:`~agentyard_client.Worker` for asyncio programs.

::

    import asyncio
    from agentyard_client import AsyncClient, AsyncWorker

    async def main():
        async with AsyncClient() as yard:
            worker = AsyncWorker(yard, "summarizer-1", capabilities=["llm"], concurrency=8)

            @worker.handler("texts")
            async def summarize(job):
                return {"summary": await llm(job.input["text"])}

            await worker.run()   # until SIGTERM / SIGINT, then a graceful shutdown

    asyncio.run(main())

Handlers are coroutines (plain functions run in a thread via ``asyncio.to_thread``). It behaves
as the threaded worker does: heartbeats, "done, next" completions, retryable and fatal failures,
graceful shutdown. At the end of the grace period, handlers still running are cancelled
(``asyncio.CancelledError`` inside them) and their tasks released as retryable failures.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Optional, Sequence, TypeVar, Union

from ._client import AsyncClient
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
from .worker import MULTI_QUEUE_WAIT_MS

__all__ = ["AsyncJob", "AsyncWorker"]

LOG = logging.getLogger("agentyard_client.worker")

AsyncHandler = Callable[["AsyncJob"], Union[Awaitable[Any], Any]]
AH = TypeVar("AH", bound=AsyncHandler)


class AsyncJob(JobBase):
    """A claimed task, as a handler of an :class:`AsyncWorker` receives it."""

    def __init__(self, task: Task, worker: AsyncWorker) -> None:
        super().__init__(task, worker.name, worker.logger)
        self.client = worker.client
        self._worker = worker

    async def progress(self, percent: Optional[float] = None, message: Optional[str] = None) -> None:
        """Reports progress now (a heartbeat that also extends the lease)."""
        await self._worker._heartbeat(self, Progress(percent, message))

    @property
    def stopping(self) -> bool:
        return self._worker._stopping.is_set()


@dataclass
class _Running:
    job: AsyncJob
    last_beat: float
    task: Optional[asyncio.Task[None]] = None


@dataclass
class _State:
    running: dict[str, _Running] = field(default_factory=dict)
    pending: list[Completion] = field(default_factory=list)
    polling: bool = False


class AsyncWorker:
    """Runs handlers for the tasks of one or more queues as agent ``name``, on asyncio. The
    parameters are those of :class:`~agentyard_client.Worker`."""

    def __init__(
        self,
        client: AsyncClient,
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
        self._handlers: dict[str, AsyncHandler] = {}
        self._state = _State()
        self._stopping = asyncio.Event()
        self._hurry = asyncio.Event()
        self._changed = asyncio.Event()
        self._side_tasks: set[asyncio.Task[Any]] = set()
        self.stats = {"succeeded": 0, "failed": 0, "released": 0}

    def handler(self, queue: str) -> Callable[[AH], AH]:
        """Decorator: ``fn(job)`` handles the tasks of ``queue``; what it returns (JSON) is
        the task's result."""

        def register(fn: AH) -> AH:
            if queue in self._handlers:
                raise ValueError(f"queue {queue!r} already has a handler")
            self._handlers[queue] = fn
            return fn

        return register

    def stop(self, *, immediately: bool = False) -> None:
        """Asks the worker to shut down gracefully (call it from the worker's event loop)."""
        self._stopping.set()
        if immediately:
            self._hurry.set()
        self._changed.set()

    @property
    def running(self) -> int:
        return len(self._state.running)

    async def run(self, *, handle_signals: bool = True) -> None:
        """Runs until SIGTERM/SIGINT or :meth:`stop`, then shuts down gracefully. Raises what
        stopped the worker if it was an error."""
        if not self._handlers:
            raise RuntimeError("the worker has no handler: add one with @worker.handler(queue)")
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        if handle_signals and threading.current_thread() is threading.main_thread():
            seen = 0

            def on_signal(sig: signal.Signals) -> None:
                nonlocal seen
                seen += 1
                self.logger.info(
                    "%s received: %s",
                    sig.name,
                    "shutting down gracefully" if seen == 1 else "releasing running tasks now",
                )
                self.stop(immediately=seen > 1)

            for sig in (signal.SIGTERM, signal.SIGINT):
                try:
                    loop.add_signal_handler(sig, on_signal, sig)
                    installed.append(sig)
                except (NotImplementedError, RuntimeError):
                    pass
        if self.register:
            await self.client.register_agent(
                self.name, capabilities=self.capabilities, slots=self.concurrency, metadata=self.metadata
            )
        self.logger.info(
            "worker %s started: queues %s, concurrency %d",
            self.name,
            ", ".join(self._handlers),
            self.concurrency,
        )
        beats = asyncio.create_task(self._beat())
        claims = asyncio.create_task(self._claim_loop())
        error: Optional[BaseException] = None
        try:
            stop_wait = asyncio.create_task(self._stopping.wait())
            await asyncio.wait({claims, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            if claims.done() and not claims.cancelled():
                error = claims.exception()
                if error is not None:
                    self.logger.error("worker %s stops: %s", self.name, error)
            await self._shut_down(claims)
        finally:
            beats.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)
            self.logger.info(
                "worker %s stopped (%d succeeded, %d failed, %d released)",
                self.name,
                self.stats["succeeded"],
                self.stats["failed"],
                self.stats["released"],
            )
        if error is not None:
            raise error

    # -- the claim loop -------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        queues = list(self._handlers)
        wait_ms = self.poll_wait_ms if len(queues) == 1 else min(self.poll_wait_ms, MULTI_QUEUE_WAIT_MS)
        turn = 0
        errors = 0
        while not self._stopping.is_set():
            while len(self._state.running) >= self.concurrency and not self._stopping.is_set():
                self._changed.clear()
                await self._changed.wait()
            if self._stopping.is_set():
                return
            free = self.concurrency - len(self._state.running)
            done, self._state.pending = self._state.pending, []
            queue = queues[turn % len(queues)]
            turn += 1
            self._state.polling = True
            try:
                answer = await self.client.claim(
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
                self._state.pending[:0] = done
                errors += 1
                pause = getattr(e, "retry_after", None) or min(0.25 * 2**errors, 5.0)
                self.logger.warning("worker %s: claim failed (%s); retrying in %.1fs", self.name, e, pause)
                try:
                    await asyncio.wait_for(self._stopping.wait(), pause)
                except asyncio.TimeoutError:
                    pass
                continue
            except ApiError:
                self._state.pending[:0] = done
                raise
            finally:
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
                    await self._release(task, "the worker was shutting down when the claim answered")
                else:
                    self._launch(queue, task)

    def _launch(self, queue: str, task: Task) -> None:
        job = AsyncJob(task, self)
        running = _Running(job, time.monotonic())
        self._state.running[task.id] = running
        running.task = asyncio.create_task(self._run_job(queue, job), name=f"agentyard-{task.id}")

    async def _run_job(self, queue: str, job: AsyncJob) -> None:
        fn = self._handlers[queue]
        failure: Optional[Failure] = None
        result: Any = None
        try:
            if inspect.iscoroutinefunction(fn):
                result = await fn(job)
            else:
                result = await asyncio.to_thread(fn, job)
                if inspect.isawaitable(result):
                    result = await result
            failure = check_result(result)
        except asyncio.CancelledError:
            if job._abandoned:
                return
            raise
        except Exception as e:  # noqa: BLE001 - every exception is the task's failure
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
            await self._succeed(job, result)
        else:
            await self._fail(job, failure)

    async def _succeed(self, job: AsyncJob, result: Any) -> None:
        completion = Completion(job.id, job.lease_token, result, list(job._artifacts) or None)
        direct = self._state.polling or self._stopping.is_set()
        if not direct:
            # The claim loop is about to claim again: the completion goes with that claim.
            self._state.pending.append(completion)
            self._forget(job.id)
        self.stats["succeeded"] += 1
        self.logger.info("worker %s: task %s succeeded", self.name, job.id)
        if direct:
            # The slot stays taken until the completion is sent, so a shutdown waits for it.
            try:
                await self.client.complete_task(
                    completion.id, completion.lease_token, result=result, artifacts=completion.artifacts
                )
            except LeaseConflict as e:
                self.logger.warning("worker %s: completion of task %s refused: %s", self.name, job.id, e.detail)
            except (TransportError, ServerError, TooManyRequests) as e:
                self.logger.warning(
                    "worker %s: cannot complete task %s now (%s); it goes with the next claim",
                    self.name,
                    job.id,
                    e,
                )
                self._state.pending.insert(0, completion)
            finally:
                self._forget(job.id)

    async def _fail(self, job: AsyncJob, failure: Failure) -> None:
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
            await self.client.fail_task(
                job.id, job.lease_token, message=failure.message, kind=failure.kind, retryable=failure.retryable
            )
            self.stats["failed"] += 1
        except AgentyardError as e:
            self.logger.warning("worker %s: cannot report the failure of task %s: %s", self.name, job.id, e)
        finally:
            self._forget(job.id)

    def _forget(self, task_id: str) -> None:
        self._state.running.pop(task_id, None)
        self._changed.set()

    async def _release(self, task: Task, why: str) -> None:
        try:
            # Given back untried: the shutdown is not the task's fault, so no attempt is spent.
            await self.client.release_task(task.id, task.lease_token)
            self.stats["released"] += 1
            self.logger.info("worker %s: task %s released (%s)", self.name, task.id, why)
        except AgentyardError as e:
            self.logger.warning("worker %s: cannot release task %s: %s", self.name, task.id, e)

    # -- heartbeats -----------------------------------------------------------------------

    async def _heartbeat(self, job: AsyncJob, progress: Optional[Progress] = None) -> None:
        if job.lease_lost:
            return
        try:
            await self.client.heartbeat_task(job.id, job.lease_token, lease_ms=self.lease_ms, progress=progress)
        except (LeaseConflict, NotFound) as e:
            job._lose(e.detail)
            self.logger.warning("worker %s: lease of task %s lost: %s", self.name, job.id, e.detail)
            return
        except AgentyardError as e:
            self.logger.warning("worker %s: heartbeat of task %s failed: %s", self.name, job.id, e)
            return
        r = self._state.running.get(job.id)
        if r is not None:
            r.last_beat = time.monotonic()

    async def _beat(self) -> None:
        tick = max(0.02, min(self.heartbeat_interval, self.agent_heartbeat_interval) / 4)
        last_agent = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            due = [
                r.job
                for r in list(self._state.running.values())
                if not r.job._done and now - r.last_beat >= self.heartbeat_interval
            ]
            if due:
                await asyncio.gather(*(self._heartbeat(j) for j in due))
            if self.register and now - last_agent >= self.agent_heartbeat_interval:
                last_agent = now
                try:
                    await self.client.heartbeat_agent(self.name)
                except AgentyardError as e:
                    self.logger.warning("worker %s: agent heartbeat failed: %s", self.name, e)

    # -- shutdown -------------------------------------------------------------------------

    async def _shut_down(self, claims: asyncio.Task[None]) -> None:
        self._stopping.set()
        self._changed.set()
        if self.register:
            try:
                await self.client.drain_agent(self.name)
            except AgentyardError as e:
                self.logger.warning("worker %s: cannot drain the agent: %s", self.name, e)
        # A drained agent's parked claim ends within a second or so; do not wait longer.
        try:
            await asyncio.wait_for(asyncio.shield(claims), 5.0)
        except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - reported by run()
            claims.cancel()
        if self._state.running:
            self.logger.info(
                "worker %s stopping: waiting up to %.1fs for %d running task(s)",
                self.name,
                self.shutdown_grace,
                len(self._state.running),
            )
        deadline = time.monotonic() + self.shutdown_grace
        while self._state.running and not self._hurry.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._changed.clear()
            hurry = asyncio.create_task(self._hurry.wait())
            changed = asyncio.create_task(self._changed.wait())
            await asyncio.wait({hurry, changed}, timeout=left, return_when=asyncio.FIRST_COMPLETED)
            hurry.cancel()
            changed.cancel()
        leftovers = list(self._state.running.values())
        for r in leftovers:
            r.job._abandoned = True
            r.job._lose("released at shutdown")
            if r.task is not None:
                r.task.cancel()
        for r in leftovers:
            await self._release(
                r.job.task, f"it was still running after the {self.shutdown_grace:.1f}s grace period"
            )
            self._state.running.pop(r.job.id, None)
        done, self._state.pending = self._state.pending, []
        if done:
            try:
                await self.client.complete_tasks(done)
            except AgentyardError as e:
                self.logger.warning("worker %s: cannot send %d completion(s): %s", self.name, len(done), e)
