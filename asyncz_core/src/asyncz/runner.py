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
from asyncz._util import ref_to_callable
from asyncz.exceptions import (
    AsynczError,
    ConfigurationError,
    PluginLoadError,
    UnknownAliasError,
)
from asyncz.schedulers.asyncio import NativeAsyncIOScheduler
from asyncz.settings import AsynczSettings, TaskDeclaration, load_settings
from asyncz.tasks._state import POLICY_DEFAULTS
from asyncz.tasks.options import DECLARABLE, DEFAULTABLE
from asyncz.tasks.task import Task, UnknownTaskOptionError, _make_trigger
from asyncz.triggers import UnknownOptionError
from asyncz.triggers._cronfields import CronExpressionError

__all__ = ["DECLARED_TAG", "StartError", "embedded_store", "plan_tasks", "run_config"]

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
        *(state.get(name) for name in POLICY_DEFAULTS),
    )


#: The tag ``asyncz run`` puts on the tasks it declares. On each start, a stored task that
#: carries it and that the file no longer declares is removed; tasks without it (added by an
#: application, an operator, another tool) are never touched. Stored with the task, so it
#: survives restarts in every persistent store.
DECLARED_TAG = "asyncz-run"


class _Planned:
    """One declared task, built and checked before the scheduler starts."""

    __slots__ = ("store", "task", "task_id", "trigger_args")

    def __init__(self, task_id: str, task: Task, store: str, trigger_args: dict[str, Any]):
        self.task_id = task_id
        self.task = task
        self.store = store
        self.trigger_args = trigger_args


def _where(config_file: Path) -> str:
    return f" [in {config_file}]"


def _trigger_error(key: str, exc: Exception, options: Mapping[str, Any]) -> tuple[str, str]:
    """``(TOML key, message)`` for a trigger that could not be built."""
    if isinstance(exc, UnknownOptionError):
        if isinstance(exc, UnknownTaskOptionError):
            return f"{key}.{exc.key}", (
                f"not an option of the trigger; {exc.suggestion!r} is a task option: "
                "write it in the task's table, not in its trigger"
            )
        hint = f"did you mean {exc.suggestion!r}? " if exc.suggestion else ""
        return f"{key}.{exc.key}", f"unknown option; {hint}(valid: {', '.join(exc.valid)})"
    if isinstance(exc, UnknownAliasError):
        return f"{key}.type", str(exc)
    if isinstance(exc, CronExpressionError) and exc.field in options:
        return f"{key}.{exc.field}", f"{exc.token!r} {exc.reason}"
    text = str(exc)
    for name in options:  # "seconds: expected a number, not '2s'"
        if text.startswith(f"{name}:"):
            return f"{key}.{name}", text[len(name) + 1 :].strip()
    if isinstance(exc, (TypeError, ValueError)):
        return key, text
    return key, f"{type(exc).__name__}: {text}"


def _build_trigger(trigger: Any, trigger_args: dict[str, Any]) -> Any:
    if isinstance(trigger, Mapping) and "class" in trigger:
        from asyncz.registry import resolve_ref

        return resolve_ref(str(trigger["class"]), "trigger")(**trigger_args)
    if isinstance(trigger, Mapping):
        return _make_trigger(trigger.get("type"), trigger_args)
    return _make_trigger(trigger, {})


def _plan_one(scheduler: NativeAsyncIOScheduler, task_id: str, decl: TaskDeclaration) -> _Planned:
    """Build one declared task; raises :class:`ConfigurationError` naming each TOML key
    that is wrong (trigger, callable, store and executor are checked independently)."""
    key = f"tasks.{task_id}"
    errors: list[tuple[str, str]] = []
    trigger = decl.trigger
    trigger_args: dict[str, Any] = {}
    if isinstance(trigger, Mapping):
        trigger_args = {k: v for k, v in trigger.items() if k not in ("type", "class")}
    built: Any = None
    try:
        built = _build_trigger(trigger, trigger_args)
    except PluginLoadError as exc:
        errors.append((f"{key}.trigger.class", str(exc)))
    except Exception as exc:
        errors.append(_trigger_error(f"{key}.trigger", exc, trigger_args))
    fn = decl.fn
    if isinstance(fn, str):
        try:
            fn = ref_to_callable(fn)
        except Exception as exc:
            errors.append((f"{key}.fn", f"cannot import {decl.fn!r}: {type(exc).__name__}: {exc}"))
    store = decl.store or "default"
    if store not in scheduler.stores:
        configured = ", ".join(sorted(scheduler.stores))
        errors.append((f"{key}.store", f"no store named {store!r}; configured: {configured}"))
    executors = {"default", *scheduler.executors}
    executor = decl.executor or "default"
    if executor not in executors:
        configured = ", ".join(sorted(executors))
        errors.append(
            (f"{key}.executor", f"no executor named {executor!r}; configured: {configured}")
        )
    if errors:
        raise ConfigurationError(errors)
    # The options the table lets a TOML task set; those task_defaults may set only when written
    # (decl.task_options), and replace_existing is this command's own (_commit_one).
    options: dict[str, Any] = {
        name: getattr(decl, name)
        for name in DECLARABLE
        if name not in DEFAULTABLE and name != "replace_existing"
    }
    options.update(decl.task_options(), id=task_id, tags=[DECLARED_TAG])
    try:
        task = scheduler._build_task(fn, built, options, {})
    except TypeError as exc:
        which = "kwargs" if decl.kwargs and not decl.args else "args"
        raise ConfigurationError([(f"{key}.{which}", str(exc))]) from exc
    except Exception as exc:
        raise ConfigurationError([(key, f"{type(exc).__name__}: {exc}")]) from exc
    target = scheduler.executors.get(executor)
    if target is not None and target.checks_tasks:
        try:
            target.check_task(task)
        except AsynczError as exc:
            raise ConfigurationError([(f"{key}.fn", str(exc))]) from exc
    return _Planned(task_id, task, store, trigger_args)


def plan_tasks(
    scheduler: NativeAsyncIOScheduler, tasks: Mapping[str, TaskDeclaration], config_file: Path
) -> list[_Planned]:
    """Build every declared task (callable imported, trigger built, arguments checked)
    without touching a store. Raises one :class:`ConfigurationError` listing every problem,
    each under its TOML key (``tasks.b.trigger.hour``)."""
    planned: list[_Planned] = []
    errors: list[tuple[str, str]] = []
    for task_id, decl in tasks.items():
        try:
            planned.append(_plan_one(scheduler, task_id, decl))
        except ConfigurationError as exc:
            errors.extend((k, m + _where(config_file)) for k, m in exc.errors)
    if errors:
        raise ConfigurationError(errors)
    return planned


async def _declare(scheduler: NativeAsyncIOScheduler, plan: _Planned) -> str:
    """Add one planned task; returns "added", "kept" or "replaced"."""
    candidate = plan.task
    existing = await scheduler.get_task_async(plan.task_id, plan.store)
    if existing is not None:
        try:
            clock = frozenset(k for k in ("start_at",) if k not in plan.trigger_args)
            same = existing.tags == candidate.tags and _definition(
                existing.__getstate__(), clock
            ) == _definition(candidate.__getstate__(), clock)
        except ValueError:
            same = False
        if same:
            return "kept"
        await scheduler.delete_task_async(plan.task_id, plan.store)
        await scheduler._add_built(candidate)
        return "replaced"
    await scheduler._add_built(candidate)
    return "added"


async def _remove_undeclared(
    scheduler: NativeAsyncIOScheduler, planned: list[_Planned], config_file: Path
) -> None:
    """Remove the tasks this command declared before (they carry :data:`DECLARED_TAG`)
    that the file no longer declares."""
    declared = {(p.store, p.task_id) for p in planned}
    for alias in list(scheduler.stores):
        for task in await scheduler.get_tasks_async(alias):
            if DECLARED_TAG in task.tags and (alias, task.id) not in declared:
                await scheduler.delete_task_async(task.id, alias)
                logger.info(
                    "Task %s removed from store %r: %s no longer declares it",
                    task.id,
                    alias,
                    config_file.name,
                )


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
    # Everything is built and checked before anything starts: a broken file changes nothing.
    planned = plan_tasks(scheduler, settings.tasks, config_file)
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
    try:
        # Paused until the declarations are applied: nothing runs from a stale schedule.
        await scheduler.start(paused=True)
    except AsynczError:
        _remove_handlers(loop, installed)
        raise
    except Exception as exc:
        _remove_handlers(loop, installed)
        raise StartError(config_file, exc) from exc
    try:
        for plan in planned:
            outcome = await _declare(scheduler, plan)
            logger.info("Task %s %s", plan.task_id, outcome)
        await _remove_undeclared(scheduler, planned, config_file)
        scheduler.resume()
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
        _remove_handlers(loop, installed)
    return runs


def _remove_handlers(loop: asyncio.AbstractEventLoop, installed: list[signal.Signals]) -> None:
    for sig in installed:
        loop.remove_signal_handler(sig)


class StartError(AsynczError, RuntimeError):
    """The scheduler of ``asyncz run`` could not start (a store could not be reached, ...)."""

    def __init__(self, config_file: Path, cause: BaseException) -> None:
        self.config_file = config_file
        super().__init__(
            f"The scheduler of {config_file} could not start: {type(cause).__name__}: {cause}"
        )
