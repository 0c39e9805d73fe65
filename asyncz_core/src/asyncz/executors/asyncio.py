"""The default executor: coroutine functions on the scheduler's loop, plain ones in threads.

Data path: a pass submits due runs here; coroutine functions run as tasks on the
scheduler's loop, plain ones on its pool of ``max_workers`` threads; each run is reported
(event).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor as _ThreadPool
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asyncz.executors.base import BaseExecutor, is_coroutine_function

if TYPE_CHECKING:
    from asyncz.abc import SchedulerHandle
    from asyncz.tasks import Task

__all__ = ["AsyncIOExecutor"]


class AsyncIOExecutor(BaseExecutor):
    """Runs coroutine functions as tasks on the scheduler's event loop.

    Plain functions run on a thread pool of ``max_workers`` threads, so they never block the
    loop.
    """

    def __init__(self, max_workers: int = 10) -> None:
        super().__init__()
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self.max_workers = max_workers
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pool: _ThreadPool | None = None
        self._running: set[asyncio.Future[Any]] = set()

    def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        super().start(scheduler, alias)
        self._loop = scheduler.event_loop

    def _thread_pool(self) -> _ThreadPool:
        if self._pool is None:
            self._pool = _ThreadPool(self.max_workers, thread_name_prefix=f"asyncz-{self.alias}")
        return self._pool

    def do_submit(self, task: Task, run_times: list[datetime]) -> None:
        loop = self._loop
        if loop is None:
            raise RuntimeError("the executor has not been started")
        if is_coroutine_function(task.fn):
            if task.overlap == "cancel_other":  # named, so that a later run can cancel it
                name = f"asyncz:{task.id}"
                self._coroutines.add(
                    loop.create_task(self.run_coroutine(task, run_times), name=name)
                )
            else:
                self._coroutines.add(loop.create_task(self.run_coroutine(task, run_times)))
        else:
            future = loop.run_in_executor(self._thread_pool(), self.run_sync, task, run_times)
            self._running.add(future)
            future.add_done_callback(self._running.discard)

    def cancel_running(self) -> int:
        cancelled = 0
        for future in [*self._coroutines, *self._running]:
            if future.cancel():
                cancelled += 1
        return cancelled

    def shutdown(self, wait: bool = True) -> None:
        if not wait:
            self.cancel_running()
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            self._pool = None
