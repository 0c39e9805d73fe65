"""Process-pool executor (alias ``processpool``): CPU-bound work in child processes.

Data path: a pass submits due runs here; the callable runs in a child process, and the
result (or the error, with its traceback as text) is reported (event) in this process.
"""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from concurrent.futures import Future
from concurrent.futures import ProcessPoolExecutor as _ProcessPool
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asyncz.exceptions import TaskTimeoutError
from asyncz.executors.base import BaseExecutor, call_task, format_traceback

if TYPE_CHECKING:
    from asyncz.tasks import Task

__all__ = ["ProcessPoolExecutor"]


def _run_in_child(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[bool, Any, str | None]:
    try:
        return True, call_task(fn, args, kwargs), None
    except Exception as exc:
        return False, exc, format_traceback(exc)


def _run_in_own_process(conn: Any, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    try:
        conn.send(_run_in_child(fn, args, kwargs))
    finally:
        conn.close()


class ProcessPoolExecutor(BaseExecutor):
    """Runs tasks in a pool of ``max_workers`` processes.

    The callable and its arguments must be picklable (a module-level function). Coroutine
    functions are awaited in the child. The task hooks run in the parent process, around the
    child's run. ``mp_context`` picks the start method (``"spawn"`` by default, which is safe
    with threads; ``"forkserver"`` or ``"fork"`` where you know it is).

    A task with a ``timeout`` runs in a process of its own rather than in the pool (a pool
    worker cannot be stopped alone without breaking the pool): at the deadline that process
    is terminated and the run is reported as timed out.
    """

    def __init__(
        self,
        max_workers: int = 10,
        mp_context: str = "spawn",
        pool_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self.max_workers = max_workers
        self.mp_context = mp_context
        self.pool_kwargs = dict(pool_kwargs or {})
        self._pool: _ProcessPool | None = None
        self._running: set[Future[Any]] = set()

    checks_tasks = True

    def check_task(self, task: Task) -> None:
        """Refuse a callable (or arguments) that cannot be pickled to a child process: a
        lambda, a nested function, a method of a local class. Pickling a module-level
        function stores only its ``module:qualname``, so this check is cheap."""
        from asyncz.exceptions import UnpicklableTaskError
        from asyncz.tasks.task import task_label

        for what, value in (
            ("callable", task.fn),
            ("arguments", task.args),
            ("keyword arguments", dict(task.kwargs)),
        ):
            if what != "callable" and not value:
                continue
            try:
                pickle.dumps(value)
            except Exception as exc:
                if what == "callable":
                    what = f"callable {getattr(task.fn, '__qualname__', task.fn)!r}"
                raise UnpicklableTaskError(task_label(task), task.executor, what, exc) from exc

    def _executor(self) -> _ProcessPool:
        if self._pool is None:
            context = multiprocessing.get_context(self.mp_context)
            self._pool = _ProcessPool(self.max_workers, mp_context=context, **self.pool_kwargs)
        return self._pool

    def do_submit(self, task: Task, run_times: list[datetime]) -> None:
        remaining = list(run_times)
        self._next(task, remaining, run_times)

    def _next(self, task: Task, remaining: list[datetime], run_times: list[datetime]) -> None:
        run_time = remaining.pop(0)
        if isinstance(task.timeout, float):
            threading.Thread(
                target=self._run_own_process,
                args=(task, run_time, remaining, run_times, task.timeout),
                name=f"asyncz-{self.alias}-timed",
                daemon=True,
            ).start()
            return
        self.reporter.started(task, run_time)
        started = time.time()
        future = self._executor().submit(_run_in_child, task.fn, task.args, dict(task.kwargs))
        self._running.add(future)

        def done(f: Future[tuple[bool, Any, str | None]]) -> None:
            self._running.discard(f)
            value: Any = None
            error: BaseException | None = None
            trace: str | None = None
            try:
                ok, payload, trace = f.result()
                if ok:
                    value = payload
                else:
                    error = payload
            except BaseException as exc:  # the pool broke, or the payload did not pickle
                error, trace = exc, format_traceback(exc)
            self.run_finished(
                task, run_time, value, error, trace, started_at=started, submission=run_times
            )
            if remaining and self._pool is not None:
                self._next(task, remaining, run_times)
            else:
                self.finish_instance(task.id)

        future.add_done_callback(done)

    def _run_own_process(
        self,
        task: Task,
        run_time: datetime,
        remaining: list[datetime],
        run_times: list[datetime],
        timeout: float,
    ) -> None:
        """On a thread of its own: one run in a process of its own, terminated at the
        deadline."""
        context = multiprocessing.get_context(self.mp_context)
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(  # type: ignore[attr-defined]
            target=_run_in_own_process,
            args=(sender, task.fn, task.args, dict(task.kwargs)),
            daemon=True,
        )
        self.reporter.started(task, run_time)
        started = time.time()
        value: Any = None
        error: BaseException | None = None
        trace: str | None = None
        try:
            process.start()
            sender.close()
            if receiver.poll(timeout):
                ok, payload, trace = receiver.recv()
                if ok:
                    value = payload
                else:
                    error = payload
            else:
                process.terminate()
                error = TaskTimeoutError(task.id, timeout)
            process.join(5)
        except BaseException as exc:  # the process died, or the payload did not pickle
            error, trace = exc, format_traceback(exc)
        finally:
            receiver.close()
        self.run_finished(
            task, run_time, value, error, trace, started_at=started, submission=run_times
        )
        if remaining:
            self._next(task, remaining, run_times)
        else:
            self.finish_instance(task.id)

    def cancel_running(self) -> int:
        return sum(1 for future in list(self._running) if future.cancel())

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            self._pool = None
