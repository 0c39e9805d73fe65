"""``asyncz run CONFIG``: a scheduler and its tasks assembled from one configuration file.

The file is the usual TOML configuration (see ``docs/configuration.md``) plus a ``tasks``
table. The directory of the file is put on ``sys.path`` so that ``fn = "jobs:cleanup"``
finds ``jobs.py`` beside it. Without a ``default`` store, tasks are kept in an embedded
persistent store under ``--data-dir`` (default: ``.asyncz/`` beside the file): a SQLite
file when ``asyncz-sqlalchemy`` is installed, otherwise the core's file store. So tasks keep
their schedule across restarts.

A declared task that is already stored with the same definition keeps its stored schedule
(its next run time survives a restart); a changed definition replaces the stored one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from asyncz import events as ev
from asyncz.schedulers.asyncio import NativeAsyncIOScheduler
from asyncz.settings import AsynczSettings, TaskDeclaration, load_settings

__all__ = ["embedded_store", "run_config"]

logger = logging.getLogger("asyncz.run")


def embedded_store(data_dir: Path) -> dict[str, Any]:
    """The embedded persistent store entry: SQLite when installed, else the file store."""
    from asyncz.registry import registry

    data_dir.mkdir(parents=True, exist_ok=True)
    if "sqlalchemy" in registry.aliases("store"):
        return {"type": "sqlalchemy", "database": f"sqlite:///{data_dir / 'tasks.db'}"}
    return {"type": "file", "directory": str(data_dir / "tasks")}


def _definition(state: Mapping[str, Any], clock_keys: frozenset[str]) -> tuple[Any, ...]:
    """What a declaration defines; trigger state derived from the clock (``clock_keys``,
    e.g. an interval's ``start_at`` that was not declared) does not count."""
    trigger = state.get("trigger")
    if isinstance(trigger, Mapping) and isinstance(trigger.get("state"), Mapping):
        kept = {k: v for k, v in trigger["state"].items() if k not in clock_keys}
        trigger = {"type": trigger.get("type"), "state": kept}
    return (
        state.get("fn"),
        tuple(state.get("args") or ()),
        dict(state.get("kwargs") or {}),
        trigger,
        state.get("executor"),
        state.get("coalesce"),
        state.get("max_instances"),
        state.get("misfire_grace_time"),
    )


async def _declare(scheduler: NativeAsyncIOScheduler, task_id: str, decl: TaskDeclaration) -> str:
    """Add one declared task; returns "added", "kept" or "replaced"."""
    trigger = decl.trigger
    trigger_args: dict[str, Any] = {}
    trigger_ref: Any = None
    if isinstance(trigger, Mapping):
        trigger_args = {k: v for k, v in trigger.items() if k not in ("type", "class")}
        trigger_ref = trigger.get("type")
        if trigger_ref is None and "class" in trigger:
            from asyncz.registry import resolve_ref

            trigger_ref = resolve_ref(str(trigger["class"]), "trigger")(**trigger_args)
            trigger_args = {}
    elif trigger is not None:
        trigger_ref = trigger
    options: dict[str, Any] = {
        "args": list(decl.args),
        "kwargs": dict(decl.kwargs),
        "id": task_id,
        "name": decl.name,
        "executor": decl.executor,
        "store": decl.store,
        **decl.task_options(),
    }
    store_alias = decl.store or "default"
    existing = await scheduler.get_task_async(task_id, store_alias)
    candidate = scheduler._build_task(decl.fn, trigger_ref, options, trigger_args)
    if existing is not None:
        try:
            clock = frozenset(k for k in ("start_at",) if k not in trigger_args)
            same = _definition(existing.__getstate__(), clock) == _definition(
                candidate.__getstate__(), clock
            )
        except ValueError:
            same = False
        if same:
            return "kept"
        await scheduler.delete_task_async(task_id, store_alias)
        await scheduler._add_built(candidate)
        return "replaced"
    await scheduler._add_built(candidate)
    return "added"


def _log_event(event: ev.SchedulerEvent) -> None:
    if isinstance(event, ev.TaskExecutionEvent):
        if event.code == ev.TASK_EXECUTED:
            logger.info(
                "%s ran (scheduled %s): %r",
                event.task_id,
                event.scheduled_run_time,
                event.return_value,
            )
        elif event.code == ev.TASK_ERROR:
            logger.error(
                "%s failed (scheduled %s): %r",
                event.task_id,
                event.scheduled_run_time,
                event.exception,
            )
        elif event.code == ev.TASK_MISSED:
            logger.warning("%s missed its run at %s", event.task_id, event.scheduled_run_time)


async def run_config(
    config_file: Path,
    *,
    data_dir: Path | None = None,
    duration: float | None = None,
    settings: AsynczSettings | None = None,
) -> int:
    """Run the scheduler described by ``config_file`` until SIGINT/SIGTERM (or ``duration``
    seconds). Returns the number of task runs observed."""
    config_file = config_file.resolve()
    base = str(config_file.parent)
    if base not in sys.path:
        sys.path.insert(0, base)
    settings = settings or load_settings(config_file=config_file)
    stores: dict[str, Any] = dict(settings.stores)
    if "default" not in stores:
        stores["default"] = embedded_store(data_dir or config_file.parent / ".asyncz")
    scheduler = NativeAsyncIOScheduler(config_file=str(config_file), stores=stores)
    runs = 0

    def count(event: ev.SchedulerEvent) -> None:
        nonlocal runs
        runs += 1

    scheduler.add_listener(_log_event, ev.TASK_EXECUTED | ev.TASK_ERROR | ev.TASK_MISSED)
    scheduler.add_listener(count, ev.TASK_EXECUTED | ev.TASK_ERROR)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed: list[signal.Signals] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    await scheduler.start()
    try:
        for task_id, decl in settings.tasks.items():
            outcome = await _declare(scheduler, task_id, decl)
            logger.info("Task %s %s", task_id, outcome)
        for info in await scheduler.get_task_infos_async():
            logger.info(
                "  %s: %s, next run %s", info.id, info.trigger_description, info.next_run_time
            )
        if duration is None:
            await stop.wait()
        else:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), duration)
        logger.info("Shutting down")
    finally:
        await scheduler.shutdown()
        for sig in installed:
            loop.remove_signal_handler(sig)
    return runs
