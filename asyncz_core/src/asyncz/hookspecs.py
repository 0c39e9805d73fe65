"""Behaviour hooks: what a plugin can observe or extend, as pluggy hook specifications.

Components (stores, executors, triggers, serializers) are found through the registry; these
hooks are for behaviour around them: metrics, tracing, audit logs. A plugin is a module (or
object) with functions decorated by :data:`asyncz.hookimpl` and named like the specs below. A
distribution exposes it through the entry-point group ``asyncz``::

    [project.entry-points.asyncz]
    my_plugin = "my_package.asyncz_plugin"

Every hook is called with keyword arguments; an implementation may accept any subset of them.
Exceptions raised by a hook implementation are logged by the scheduler and never stop it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from asyncz.events import SchedulerEvent
    from asyncz.schedulers.base import BaseScheduler
    from asyncz.tasks import Task

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "asyncz"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


@hookspec
def asyncz_scheduler_started(scheduler: BaseScheduler) -> None:
    """Called once each time ``scheduler`` really starts (the outermost ``start()``).

    Called on the scheduler's event loop after its stores and executors have started and
    before any task is submitted. The return value is ignored.
    """


@hookspec
def asyncz_scheduler_shutdown(scheduler: BaseScheduler) -> None:
    """Called once each time ``scheduler`` really shuts down (the outermost ``shutdown()``).

    Called after the executors and stores have been shut down. The return value is ignored.
    """


@hookspec
def asyncz_event_dispatched(scheduler: BaseScheduler, event: SchedulerEvent) -> None:
    """Called for every event the scheduler dispatches, after its listeners ran.

    ``event`` is the same object the listeners received (``event.code`` says which event).
    Called on the thread that dispatched the event; keep it fast. The return value is ignored.
    """


@hookspec
def asyncz_task_before_run(scheduler: BaseScheduler, task: Task, run_time: datetime) -> None:
    """Called by the executor right before it runs ``task`` for its ``run_time``.

    Called in the context the task runs in (the event loop for coroutines run by the
    ``asyncio`` executor, the worker thread for thread pools, never in a child process), so it
    can open a tracing span around the call. The return value is ignored.
    """


@hookspec
def asyncz_task_after_run(
    scheduler: BaseScheduler,
    task: Task,
    run_time: datetime,
    return_value: Any,
    exception: BaseException | None,
    outcome: str,
) -> None:
    """Called by the executor right after ``task`` ran for ``run_time``.

    ``exception`` is the exception the task raised (``None`` on success), ``return_value`` its
    result otherwise; ``outcome`` is the run's outcome as history records it (``success``,
    ``error``, ``timeout``, ``cancelled``). Called in the same context as
    :func:`asyncz_task_before_run`. The return value is ignored.
    """
