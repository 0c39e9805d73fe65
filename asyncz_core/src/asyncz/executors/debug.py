"""Debug executor (alias ``debug``): runs tasks inline, for tests and debugging.

Data path: a pass submits due runs here and they start at once (plain functions finish
inside the pass; coroutines become tasks of the running loop); each run is reported (event).
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING

from asyncz.executors.base import BaseExecutor, is_coroutine_function

if TYPE_CHECKING:
    from asyncz.tasks import Task

__all__ = ["DebugExecutor"]


class DebugExecutor(BaseExecutor):
    """Runs plain functions immediately on the calling thread (the scheduler's loop).

    Coroutine functions are started as tasks on the running loop (or run to completion when
    no loop runs). Never use it for real work: a slow task blocks the scheduler.
    """

    def __init__(self) -> None:
        super().__init__()
        self._running: set[asyncio.Task[None]] = set()

    def do_submit(self, task: Task, run_times: list[datetime]) -> None:
        if is_coroutine_function(task.fn):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                asyncio.run(self.run_coroutine(task, run_times))
            else:
                running = loop.create_task(self.run_coroutine(task, run_times))
                self._running.add(running)
                running.add_done_callback(self._running.discard)
        else:
            self.run_sync(task, run_times)
