"""At shutdown: run the ``shutdown``-trigger tasks once, and report what a timeout cut short.

Data path: ``AsyncIOScheduler.shutdown`` stops the processing loop, then
:func:`run_shutdown_tasks` finds every task with a
:class:`~asyncz.triggers.shutdown.ShutdownTrigger` in every store and runs it here, within
the shutdown's deadline (a coroutine in the current asyncio task, a function on a daemon
thread of its own); the executors are then joined, and after a timeout
:func:`report_unfinished` logs each task that was still running.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asyncz import events as ev
from asyncz._timer import resolve as _resolve
from asyncz.stores._listing import list_store
from asyncz.stores.base import PersistentStore, call
from asyncz.tasks.task import Task, TaskLabel, task_label
from asyncz.timeutil import utc

if TYPE_CHECKING:
    from asyncz.executors.base import BaseExecutor
    from asyncz.schedulers.base import BaseScheduler

__all__ = ["report_unfinished", "run_shutdown_tasks"]


async def run_shutdown_tasks(scheduler: BaseScheduler, deadline: float | None) -> None:
    """Run every ``shutdown``-trigger task of ``scheduler`` once, each to its end or until
    ``deadline`` (a loop time), when a coroutine is cancelled and a function left to its thread.

    A memory store's shutdown tasks are removed after running; a persistent store keeps
    them: it may be shared, and its other schedulers (or the next start) run them too.
    """
    from asyncz.triggers.shutdown import ShutdownTrigger

    now = datetime.now(utc)
    for alias, store in list(scheduler.stores.items()):
        ran: list[str] = []
        for task in (await list_store(store)).tasks:
            if not isinstance(task.trigger, ShutdownTrigger):
                continue
            executor = scheduler.executors.get(task.executor)
            if executor is None:
                scheduler.logger.error(
                    "Shutdown task %s names the executor %r, which this "
                    "scheduler does not have; it did not run",
                    task_label(task),
                    task.executor,
                )
                continue
            await _run_now(scheduler, executor, task, now, deadline)
            ran.append(task.id)
        if ran and not isinstance(store, PersistentStore):
            await call(store, store.delete_tasks(ran))
            for task_id in ran:
                scheduler._dispatch(ev.TaskEvent(ev.TASK_REMOVED, task_id, alias))


async def _run_now(
    scheduler: BaseScheduler,
    executor: BaseExecutor,
    task: Task,
    now: datetime,
    deadline: float | None,
) -> None:
    """Run ``task`` once, here: a coroutine in the current asyncio task, a function on a
    daemon thread of its own (which a shutdown that timed out can leave behind)."""
    from asyncz.executors.base import is_coroutine_function

    loop = asyncio.get_running_loop()
    remaining = None if deadline is None else max(0.0, deadline - loop.time())
    executor.start_instance(task.id, task.name)
    if is_coroutine_function(task.fn):
        # In this very task (no inner task that the loop's teardown could cancel).
        if not await _within(remaining, executor.run_coroutine(task, [now])):
            scheduler.logger.warning(
                "Shutdown task %s was cancelled at the shutdown timeout",
                task_label(task),
            )
        return
    done: asyncio.Future[None] = loop.create_future()

    def run() -> None:
        try:
            executor.run_sync(task, [now])
        finally:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, done)

    threading.Thread(target=run, name="asyncz-shutdown-task", daemon=True).start()
    try:
        await asyncio.wait_for(asyncio.shield(done), remaining)
    except asyncio.TimeoutError:  # not yet the builtin TimeoutError on Python 3.10
        scheduler.logger.warning(
            "Shutdown task %s still runs on its thread at the shutdown timeout; abandoned",
            task_label(task),
        )


def report_unfinished(
    scheduler: BaseScheduler,
    executor: BaseExecutor,
    before: list[tuple[str, str | None, int, datetime]],
) -> None:
    """After a shutdown timeout: one log line per task that was running in ``executor``
    (``before``, taken when the time ran out), naming it, since when, and what became of
    it: cancelled (a coroutine that ended) or abandoned (still running, on a thread or in
    a process, or a coroutine that ignores cancellation)."""
    still = {task_id for task_id, *_ in executor.running()}
    for task_id, name, count, since in before:
        scheduler.logger.warning(
            "Task %s running since %s (%d instance(s)) on executor %r: %s",
            TaskLabel(task_id, name),
            since.isoformat(timespec="milliseconds"),
            count,
            executor.alias,
            "abandoned, still running" if task_id in still else "cancelled",
        )


async def _within(seconds: float | None, coro: Coroutine[Any, Any, Any]) -> bool:
    """Await ``coro`` in the current task; after ``seconds`` cancel it. False when it was cut.

    Like ``asyncio.timeout`` (which Python 3.10 lacks): the cancellation is delivered to the
    current task, so ``coro`` needs no task of its own.
    """
    if seconds is None:
        await coro
        return True
    task = asyncio.current_task()
    assert task is not None
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    handle = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        await coro
    except asyncio.CancelledError:
        if not expired:
            raise
        uncancel = getattr(task, "uncancel", None)  # Python 3.11+
        if uncancel is not None:
            uncancel()
        return False
    finally:
        handle.cancel()
    return True
