"""Executors: run a task's callable for one or more scheduled run times.

Data path: the scheduler calls :meth:`BaseExecutor.submit` (which counts ``max_instances``)
and it calls :meth:`BaseExecutor.do_submit`, which starts the work on a loop, a thread or a
process. Each run time is reported to the scheduler's reporter (:class:`asyncz.abc.RunReporter`):
``started`` before the callable, :meth:`BaseExecutor.run_finished` (a log line, then
``finished``) after it; :meth:`BaseExecutor.finish_instance` once per submission when all its run
times are done. :meth:`BaseExecutor.run_sync` and :meth:`BaseExecutor.run_coroutine` are that
sequence, written once; the interface itself is :class:`asyncz.abc.Executor`.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
import threading
import time
import traceback as tb
from collections import deque
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from asyncz.abc import Executor
from asyncz.exceptions import MaxInstancesReachedError, TaskTimeoutError
from asyncz.tasks.task import task_label

if TYPE_CHECKING:
    from asyncz.abc import RunReporter, SchedulerHandle
    from asyncz.tasks import Task

__all__ = ["BaseExecutor", "call_task", "format_traceback"]


def format_traceback(exc: BaseException) -> str:
    return "".join(tb.format_exception(type(exc), exc, exc.__traceback__))


def call_task(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Call ``fn``; if it is a coroutine function (or returns an awaitable), run it to the end.

    Used by thread and process executors: a coroutine function given to them is actually
    awaited, on a fresh event loop of the worker.
    """
    result = fn(*args, **kwargs)
    if inspect.isawaitable(result):
        return asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


class _NoReporter:
    """The reporter of an executor that has not been started: nobody hears the runs."""

    __slots__ = ()

    def started(self, task: Task, run_time: datetime) -> None:
        pass

    def finished(
        self,
        task: Task,
        run_time: datetime,
        value: Any = None,
        exception: BaseException | None = None,
        traceback: str | None = None,
        *,
        started_at: float | None = None,
        submission: Sequence[datetime] | None = None,
    ) -> None:
        pass


_NO_REPORTER = _NoReporter()


class BaseExecutor(Executor):
    """Base class of every executor.

    :meth:`submit` enforces ``max_instances`` and hands the work to :meth:`do_submit`; an
    implementation reports each run (``self.reporter.started(task, run_time)`` before the
    callable, :meth:`run_finished` after it) and calls :meth:`finish_instance` exactly once per
    submission when all its run times are done. :meth:`run_sync` and :meth:`run_coroutine`
    do all of it.

    Asyncz's names are accepted in subclasses: ``do_send_task`` implements :meth:`do_submit`
    and ``send_task`` overrides :meth:`submit`.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for asyncz_name, name in (("do_send_task", "do_submit"), ("send_task", "submit")):
            if asyncz_name in cls.__dict__ and name not in cls.__dict__:
                setattr(cls, name, cls.__dict__[asyncz_name])

    def __init__(self, **options: Any) -> None:
        if options:
            key = next(iter(options))
            raise TypeError(f"{type(self).__name__} got an unexpected option {key!r}")
        self.scheduler: SchedulerHandle | None = None
        #: Where runs are reported (the scheduler's, from :meth:`start` on).
        self.reporter: RunReporter = _NO_REPORTER
        self.alias: str | None = None
        self.logger = logging.getLogger("asyncz.executors")
        #: The scheduler's loop (from :meth:`start` on), where coroutine runs usually run.
        self._event_loop: asyncio.AbstractEventLoop | None = None
        self._instances: dict[str, int] = {}
        #: task id -> (epoch seconds since which it has been running, task name): set when
        #: its first instance starts, dropped when its last one ends.
        self._since: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()
        #: Runs in progress as asyncio tasks (for cancellation); each removes itself.
        self._coroutines: set[asyncio.Task[Any]] = set()
        #: task id -> submissions waiting for a free instance (``overlap`` buffer_*).
        self._buffered: dict[str, deque[tuple[Task, list[datetime]]]] = {}

    def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        """Called on the scheduler's loop when the scheduler starts (or adds this executor)."""
        self.scheduler = scheduler
        self.reporter = scheduler.reporter
        self._event_loop = scheduler.event_loop
        self.alias = alias
        self.logger = scheduler.loggers[f"asyncz.executors.{alias}"]

    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, block until running work finished."""

    async def join(self, timeout: float | None = None) -> bool:
        """Wait (without blocking the loop) until no run is in progress; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while self._instances:
            if deadline is not None and loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)
        return True

    async def settle(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the coroutine runs in progress to end (after
        :meth:`cancel_running`, so that they report their cancellation); threads and
        processes are not waited for."""
        pending = [task for task in self._coroutines if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)

    def cancel_running(self) -> int:  # pragma: no cover - overridden where possible
        """Cancel what can be cancelled; returns how many runs were cancelled."""
        return 0

    #: Whether :meth:`check_task` must be called for each task added for this executor
    #: (a class attribute, so that executors without a check cost nothing per add).
    checks_tasks: bool = False

    def check_task(self, task: Task) -> None:
        """Refuse, when it is added, a task this executor could never run (raise an
        :class:`~asyncz.exceptions.AsynczError` saying why). Called only when
        :attr:`checks_tasks` is true."""

    def running_instances(self, task_id: str) -> int:
        return self._instances.get(task_id, 0)

    def running_since(self, task_id: str) -> datetime | None:
        """Since when ``task_id`` has been running without a break (at least one instance,
        counted from its submission), or ``None`` when it is not running."""
        entry = self._since.get(task_id)
        return None if entry is None else datetime.fromtimestamp(entry[0], timezone.utc)

    def running(self) -> list[tuple[str, str | None, int, datetime]]:
        """What runs now: ``(task id, task name, instances, running since)`` per task."""
        rows: list[tuple[str, str | None, int, datetime]] = []
        with self._lock:
            for task_id, count in self._instances.items():
                since, name = self._since.get(task_id, (time.time(), None))
                rows.append((task_id, name, count, datetime.fromtimestamp(since, timezone.utc)))
        return rows

    def submit(self, task: Task, run_times: list[datetime]) -> None:
        """Run ``task`` once for each of ``run_times`` (in order).

        When the task already runs ``task.max_instances`` times at once, its ``overlap``
        decides: ``skip`` raises :class:`MaxInstancesReachedError`; ``buffer_one`` keeps this
        submission until an instance ends (one at most: a second one is skipped);
        ``buffer_all`` keeps every one, in order; ``cancel_other`` cancels the running
        coroutine instances and keeps this one to start as soon as they end (threads and
        processes cannot be cancelled: then it waits like ``buffer_one``); ``allow_all`` starts
        it anyway (``max_instances`` does not apply).
        """
        limit = task.max_instances if isinstance(task.max_instances, int) else 1
        with self._lock:
            running = self._instances.get(task.id, 0)
            if running >= limit:
                overlap = task.overlap
                if overlap != "allow_all":
                    if overlap not in ("buffer_one", "buffer_all", "cancel_other"):
                        raise MaxInstancesReachedError(task.id, limit)
                    waiting = self._buffered.get(task.id)
                    if waiting is None:
                        waiting = self._buffered[task.id] = deque()
                    elif waiting and overlap != "buffer_all":
                        raise MaxInstancesReachedError(task.id, limit)
                    waiting.append((task, run_times))
                    running = -1
            if running >= 0:
                self._instances[task.id] = running + 1
                if not running:
                    self._since[task.id] = (time.time(), task.name)
        if running < 0:
            if task.overlap == "cancel_other":
                self.cancel_task(task.id)
            return
        try:
            self.do_submit(task, run_times)
        except BaseException:
            self.finish_instance(task.id)
            raise

    def start_instance(self, task_id: str, name: str | None = None) -> None:
        """Count a run that bypasses :meth:`submit` (shutdown tasks); pair with
        :meth:`finish_instance`."""
        with self._lock:
            running = self._instances.get(task_id, 0)
            self._instances[task_id] = running + 1
            if not running:
                self._since[task_id] = (time.time(), name)

    def finish_instance(self, task_id: str) -> None:
        """Count a run of ``task_id`` as finished: the end of a :meth:`submit` (all its run
        times) or of a :meth:`start_instance`; frees one of its ``max_instances`` (and starts
        a submission buffered by ``overlap``, if one waits)."""
        with self._lock:
            running = self._instances.get(task_id, 0) - 1
            if running > 0:
                self._instances[task_id] = running
            else:
                self._instances.pop(task_id, None)
                self._since.pop(task_id, None)
            waiting = self._buffered.get(task_id) if self._buffered else None
        if waiting:
            loop = self.scheduler.event_loop if self.scheduler is not None else None
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(self._start_buffered, task_id)
                except RuntimeError:  # the loop closed: the buffered runs are dropped
                    pass

    def _start_buffered(self, task_id: str) -> None:
        """On the scheduler's loop: start the oldest submission waiting for ``task_id``."""
        with self._lock:
            waiting = self._buffered.get(task_id)
            if not waiting:
                return
            task, run_times = waiting[0]
            limit = task.max_instances if isinstance(task.max_instances, int) else 1
            running = self._instances.get(task_id, 0)
            if running >= limit:
                return  # taken meanwhile; the next finish_instance tries again
            waiting.popleft()
            if not waiting:
                del self._buffered[task_id]
            self._instances[task_id] = running + 1
            if not running:
                self._since[task_id] = (time.time(), task.name)
        try:
            self.do_submit(task, run_times)
        except Exception:
            self.logger.exception("Starting a buffered run of task %s failed", task_label(task))
            self.finish_instance(task_id)

    def cancel_task(self, task_id: str) -> int:
        """Cancel the coroutine runs of ``task_id`` in progress (``overlap="cancel_other"``);
        returns how many. Threads and processes cannot be cancelled."""
        cancelled = 0
        for running in list(self._coroutines):
            if running.get_name() == f"asyncz:{task_id}" and running.cancel():
                cancelled += 1
        return cancelled

    #: The names these had before (executors written for earlier versions call them).
    claim = start_instance
    release = finish_instance

    @abc.abstractmethod
    def do_submit(self, task: Task, run_times: list[datetime]) -> None:
        """Start running ``task`` for ``run_times``; must not block."""

    def send_task(self, task: Task, run_times: list[datetime]) -> None:
        """Asyncz's name of :meth:`submit`."""
        self.submit(task, run_times)

    def do_send_task(self, task: Task, run_times: list[datetime]) -> None:
        """Asyncz's name of :meth:`do_submit`; a subclass implements ``do_submit``."""
        raise NotImplementedError(f"{type(self).__name__} must implement do_submit()")

    # -- shared run paths ---------------------------------------------------------------
    def run_finished(
        self,
        task: Task,
        run_time: datetime,
        return_value: Any = None,
        exception: BaseException | None = None,
        traceback: str | None = None,
        *,
        started_at: float | None = None,
        submission: Sequence[datetime] | None = None,
    ) -> None:
        """Report one finished run: a log line, then ``reporter.finished`` (its history
        record, TASK_EXECUTED / TASK_ERROR / TASK_TIMEOUT and the ``asyncz_task_after_run``
        hook). ``started_at`` (``time.time()`` when the callable was called) and
        ``submission`` (the ``run_times`` given to :meth:`submit`) go to the record."""
        if exception is not None:
            if traceback is None:
                traceback = format_traceback(exception)
            self.logger.error(
                "Task %s raised %s: %s",
                task_label(task),
                type(exception).__name__,
                exception,
                exc_info=(type(exception), exception, exception.__traceback__)
                if exception.__traceback__ is not None
                else None,
            )
        elif self.logger.isEnabledFor(logging.INFO):
            self.logger.info("Task %s executed successfully", task_label(task))
        self.reporter.finished(
            task,
            run_time,
            return_value,
            exception,
            traceback,
            started_at=started_at,
            submission=submission,
        )

    def run_sync(self, task: Task, run_times: list[datetime]) -> None:
        """Run a submission on the current (worker) thread; reports and releases.

        With a ``timeout``, a run still going at the deadline is reported as timed out then
        (a thread cannot be stopped: it runs on, its result is discarded when it ends, and
        its instance stays counted until then)."""
        reporter = self.reporter
        timeout = task.timeout
        try:
            for run_time in run_times:
                if isinstance(timeout, float):
                    self._run_sync_timed(task, run_time, run_times, timeout)
                    continue
                reporter.started(task, run_time)
                started = time.time()
                try:
                    value = call_task(task.fn, task.args, task.kwargs)  # type: ignore[arg-type]
                except BaseException as exc:
                    self.run_finished(
                        task, run_time, exception=exc, started_at=started, submission=run_times
                    )
                    if not isinstance(exc, Exception):
                        raise
                else:
                    self.run_finished(
                        task, run_time, value, started_at=started, submission=run_times
                    )
        finally:
            self.finish_instance(task.id)

    def _run_sync_timed(
        self, task: Task, run_time: datetime, run_times: list[datetime], timeout: float
    ) -> None:
        lock = threading.Lock()
        ended = [False]
        self.reporter.started(task, run_time)
        started = time.time()

        def expire() -> None:
            with lock:
                if ended[0]:
                    return
                ended[0] = True
            self.run_finished(
                task,
                run_time,
                exception=TaskTimeoutError(task.id, timeout),
                started_at=started,
                submission=run_times,
            )

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        value: Any = None
        error: BaseException | None = None
        try:
            value = call_task(task.fn, task.args, task.kwargs)  # type: ignore[arg-type]
        except BaseException as exc:
            error = exc
        finally:
            timer.cancel()
        with lock:
            late, ended[0] = ended[0], True
        if late:
            self.logger.warning(
                "Task %s ended %.3f s after its timeout of %g s; its result is discarded",
                task_label(task),
                time.time() - started - timeout,
                timeout,
            )
        else:
            self.run_finished(
                task, run_time, value, error, started_at=started, submission=run_times
            )
        if error is not None and not isinstance(error, Exception):
            raise error

    async def run_coroutine(self, task: Task, run_times: list[datetime]) -> None:
        """Run a submission of a coroutine function on the current loop; reports and
        releases (a cancelled run is reported, then the cancellation goes on). With a
        ``timeout``, the run is cancelled at the deadline (the coroutine sees
        ``CancelledError``) and reported as timed out."""
        reporter = self.reporter
        fn: Callable[..., Coroutine[Any, Any, Any]] = task.fn  # type: ignore[assignment]
        timeout = task.timeout
        try:
            for run_time in run_times:
                reporter.started(task, run_time)
                started = time.time()
                deadline = None
                if isinstance(timeout, float):
                    deadline = _Deadline(timeout)
                try:
                    kwargs = task.kwargs
                    coro = fn(*task.args, **kwargs) if kwargs else fn(*task.args)
                    value = await (coro if deadline is None else deadline.run(coro))
                except asyncio.CancelledError as exc:
                    if deadline is not None and deadline.expired:
                        self.run_finished(
                            task,
                            run_time,
                            exception=TaskTimeoutError(task.id, deadline.timeout),
                            started_at=started,
                            submission=run_times,
                        )
                        continue
                    self.run_finished(
                        task, run_time, exception=exc, started_at=started, submission=run_times
                    )
                    raise
                except Exception as exc:
                    self.run_finished(
                        task, run_time, exception=exc, started_at=started, submission=run_times
                    )
                else:
                    self.run_finished(
                        task, run_time, value, started_at=started, submission=run_times
                    )
        finally:
            self.finish_instance(task.id)
            if self._coroutines:
                # Cheaper than a done-callback per run (one loop callback less per task); the
                # scheduler's loop given, current_task() does not look up the running loop
                # (a getpid() system call on Python 3.11).
                loop = self._event_loop
                current = asyncio.current_task(loop) if loop is not None else None
                self._coroutines.discard(current or asyncio.current_task())

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r}>"


class _Deadline:
    """Cancels the current asyncio task (the run) after ``timeout`` seconds; ``expired``
    tells a timeout from any other cancellation."""

    __slots__ = ("expired", "timeout")

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.expired = False

    async def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        current = asyncio.current_task()
        assert current is not None
        handle = asyncio.get_running_loop().call_later(self.timeout, self._expire, current)
        try:
            return await coro
        except asyncio.CancelledError:
            if self.expired:
                uncancel = getattr(current, "uncancel", None)
                if uncancel is not None:  # Python 3.11+: the cancellation is handled here
                    uncancel()
            raise
        finally:
            handle.cancel()

    def _expire(self, task: asyncio.Task[Any]) -> None:
        self.expired = True
        task.cancel()


def is_coroutine_function(fn: Any) -> bool:
    """Whether calling ``fn`` returns a coroutine (cached per callable)."""
    code = getattr(fn, "__code__", None)
    if code is not None and code.co_flags & inspect.CO_COROUTINE:
        return True  # a plain ``async def`` function: the common case, decided at once
    from asyncz._util import callable_info

    return callable_info(fn).is_coroutine
