"""Debug executor (alias ``debug``): runs tasks inline, for tests and debugging."""

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

    def do_submit(self, task: Task, run_times: list[datetime]) -> None:
        if is_coroutine_function(task.fn):
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                asyncio.run(self.run_coroutine(task, run_times))
            else:
                loop.create_task(self.run_coroutine(task, run_times))
        else:
            self.run_sync(task, run_times)
