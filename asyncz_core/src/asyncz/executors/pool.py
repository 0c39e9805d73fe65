"""Thread-pool executor (aliases ``threadpool`` and ``pool``).

Data path: a pass submits due runs here; each runs on a worker thread of the pool and
is reported (event) from that thread.
"""

from __future__ import annotations

from concurrent.futures import Future
from concurrent.futures import ThreadPoolExecutor as _ThreadPool
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asyncz.executors.base import BaseExecutor

if TYPE_CHECKING:
    from asyncz.tasks import Task

__all__ = ["ThreadPoolExecutor"]


class ThreadPoolExecutor(BaseExecutor):
    """Runs tasks on a pool of ``max_workers`` threads.

    Coroutine functions are awaited on an event loop of the worker thread.
    """

    def __init__(self, max_workers: int = 10, pool_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        if max_workers < 1:
            raise ValueError(f"max_workers must be at least 1, not {max_workers}")
        self.max_workers = max_workers
        self.pool_kwargs = dict(pool_kwargs or {})
        self._pool: _ThreadPool | None = None
        self._running: set[Future[Any]] = set()

    def _executor(self) -> _ThreadPool:
        if self._pool is None:
            options = {"thread_name_prefix": f"asyncz-{self.alias}", **self.pool_kwargs}
            self._pool = _ThreadPool(self.max_workers, **options)
        return self._pool

    def do_submit(self, task: Task, run_times: list[datetime]) -> None:
        future = self._executor().submit(self.run_sync, task, run_times)
        self._running.add(future)
        future.add_done_callback(self._running.discard)

    def cancel_running(self) -> int:
        return sum(1 for future in list(self._running) if future.cancel())

    def shutdown(self, wait: bool = True) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=not wait)
            self._pool = None
