"""``asyncz tasks``: list, show, add, pause, resume, remove, run, reschedule.

Every command opens the stores as an operator (:mod:`asyncz.operator`): a change is one
compare-and-set write to the shared store, which the nodes see at their next pass (at once
where the store notifies them); nothing runs in this process.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from asyncz._cli.common import (
    OpGroup,
    UserError,
    emit_json,
    fields,
    json_option,
    jsonable,
    operator_options,
    session,
    table,
    when,
)

if TYPE_CHECKING:
    from asyncz.operator import OperatorScheduler
    from asyncz.tasks.info import TaskInfo
    from asyncz.tasks.runs import RunRecord
    from asyncz.triggers.base import BaseTrigger

__all__ = ["tasks"]

SORT_KEYS = ("id", "name", "next_run_time", "schedule_state", "executor", "store", "trigger")
STATES = ("scheduled", "paused", "pending", "unrestorable")


@click.group("tasks", cls=OpGroup)
def tasks() -> None:
    """List, inspect and change the tasks in the deployment's stores."""


# -- reading ----------------------------------------------------------------------------------
def _row(info: TaskInfo) -> list[Any]:
    return [
        info.id,
        info.schedule_state.value,
        info.trigger_description or info.reason,
        when(info.next_run_time),
        info.callable_reference,
        info.executor,
        info.store,
    ]


@tasks.command("list")
@click.option("--state", type=click.Choice(STATES), default=None, help="Only tasks in this state.")
@click.option("--trigger", default=None, metavar="ALIAS", help="Only tasks with this trigger.")
@click.option("--executor", default=None, metavar="ALIAS", help="Only tasks of this executor.")
@click.option("--q", default=None, metavar="TEXT", help="Only tasks whose id, name, callable ...")
@click.option(
    "--sort",
    default="next_run_time",
    show_default=True,
    type=click.Choice([*SORT_KEYS, *(f"-{k}" for k in SORT_KEYS)]),
    help="Sort key; a leading '-' sorts descending.",
)
@operator_options
@json_option
def list_tasks(
    state: str | None,
    trigger: str | None,
    executor: str | None,
    q: str | None,
    sort: str,
    config_file: Path | None,
    store: str | None,
    as_json: bool,
) -> None:
    """The tasks, filtered and sorted as get_task_infos() does."""

    async def read(op: OperatorScheduler) -> list[TaskInfo]:
        return await op.get_task_infos_async(
            store,
            schedule_state=state,
            executor=executor,
            trigger=trigger,
            q=q,
            sort_by=sort.lstrip("-"),
            descending=sort.startswith("-"),
        )

    infos = session(config_file, store, read)
    if as_json:
        emit_json({"tasks": infos})
        return
    if not infos:
        click.echo("No tasks.")
        return
    columns = ["ID", "STATE", "TRIGGER", "NEXT RUN (UTC)", "CALLABLE", "EXECUTOR", "STORE"]
    table(columns, [_row(info) for info in infos])


@tasks.command("show")
@click.argument("task_id", metavar="ID")
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(0, 1000))
@operator_options
@json_option
def show_task(
    task_id: str, count: int, config_file: Path | None, store: str | None, as_json: bool
) -> None:
    """One task: its options, its next COUNT runs and its last runs."""

    async def read(op: OperatorScheduler) -> dict[str, Any]:
        info = await op.find_task_info_async(task_id, store)
        upcoming: list[Any] = []
        if info.reason is None:
            # The synchronous preview waits for the store: on a thread, not on this loop.
            upcoming = list(
                await asyncio.to_thread(op.preview_task_runs, task_id, count, info.store)
            )
        return {"task": info, "next_runs": upcoming, "last_runs": await last_runs(op, info)}

    data = session(config_file, store, read)
    if as_json:
        emit_json(data)
        return
    info: TaskInfo = data["task"]
    pairs: list[tuple[str, Any]] = [
        ("id", info.id),
        ("name", info.name),
        ("state", info.schedule_state.value),
        ("callable", info.callable_reference),
        ("trigger", info.trigger_description),
        ("next run", when(info.next_run_time)),
        ("executor", info.executor),
        ("store", info.store),
        ("args", json.dumps(jsonable(info.args))),
        ("kwargs", json.dumps(jsonable(info.kwargs or {}))),
        ("coalesce", info.coalesce),
        ("max instances", info.max_instances),
        ("misfire grace", info.misfire_grace_time),
        ("tags", ", ".join(sorted(info.tags)) or None),
    ]
    if info.reason:
        pairs.append(("reason", info.reason))
    fields(pairs)
    click.echo("next runs:" if data["next_runs"] else "next runs: none")
    for run_time in data["next_runs"]:
        click.echo(f"  {when(run_time)}")
    click.echo("last runs:" if data["last_runs"] else "last runs: none recorded")
    for run in data["last_runs"]:
        click.echo(f"  {run_line(run)}")


async def last_runs(op: OperatorScheduler, info: TaskInfo, limit: int = 5) -> list[Any]:
    """The task's last runs from the run history, newest first (none without history)."""
    get_runs = getattr(op, "get_task_runs_async", None)
    if get_runs is None or info.store is None:
        return []
    runs: list[Any] = await get_runs(info.id, store=info.store, limit=limit)
    return runs


def run_line(run: RunRecord) -> str:
    """One record of the history as a line: scheduled time, outcome, attempt, duration,
    node, and the error when there was one."""
    parts = [when(run.scheduled_run_time), run.outcome]
    if run.attempt > 1:
        parts.append(f"attempt {run.attempt}")
    if run.duration is not None:
        parts.append(f"{run.duration:.3f} s")
    if run.node:
        parts.append(run.node)
    if run.source not in ("scheduler", None):
        parts.append(run.source)
    if run.error_type:
        parts.append(f"{run.error_type}: {run.error_message or ''}".rstrip(": "))
    if run.note:
        parts.append(repr(run.note))
    return "  ".join(parts)


# -- writing ----------------------------------------------------------------------------------
def parse_trigger_args(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``KEY=VALUE`` words: a value is read as JSON when it parses (``seconds=30``,
    ``jitter=1.5``), else kept as text (``day_of_week=mon-fri``)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            raise UserError(f"trigger option {pair!r}: expected KEY=VALUE (e.g. seconds=30)")
        try:
            options[key] = json.loads(text)
        except ValueError:
            options[key] = text
    return options


def build_trigger(alias: str, options: dict[str, Any]) -> BaseTrigger:
    """The trigger, or a :class:`UserError` naming the option that is wrong."""
    from asyncz.exceptions import UnknownAliasError
    from asyncz.runner import _trigger_error
    from asyncz.triggers import create_trigger

    try:
        return create_trigger(alias, **options)
    except UnknownAliasError as exc:
        raise UserError(f"trigger: {' '.join(str(exc).split())}") from None
    except (TypeError, ValueError) as exc:
        key, message = _trigger_error("trigger", exc, options)
        raise UserError(f"{key}: {message}") from None


def _json_value(value: str | None, option: str, kind: type) -> Any:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise UserError(f"{option}: not JSON: {exc}") from None
    if not isinstance(parsed, kind):
        raise UserError(f"{option}: expected a JSON {kind.__name__}, got {value!r}")
    return parsed


def _done(as_json: bool, verb: str, info: TaskInfo | None, task_id: str) -> None:
    if as_json:
        emit_json({"action": verb, "task_id": task_id, "task": info})
    elif info is None:
        click.echo(f"Task {task_id!r} {verb}.")
    else:
        state = f", next run {when(info.next_run_time)}" if info.next_run_time else ""
        click.echo(f"Task {task_id!r} {verb} (store {info.store!r}{state}).")


@tasks.command("add", context_settings={"ignore_unknown_options": False})
@click.argument("fn")
@click.argument("trigger")
@click.argument("trigger_options", nargs=-1, metavar="[KEY=VALUE]...")
@click.option("--id", "task_id", default=None, help="The task's id (default: generated).")
@click.option("--name", default=None)
@click.option("--args", "args_json", default=None, metavar="JSON", help="Positional arguments.")
@click.option("--kwargs", "kwargs_json", default=None, metavar="JSON", help="Keyword arguments.")
@click.option("--executor", default=None, metavar="ALIAS")
@click.option("--max-instances", type=click.IntRange(min=1), default=None)
@click.option("--coalesce/--no-coalesce", default=None)
@click.option("--misfire-grace-time", type=click.FloatRange(min=0), default=None)
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--paused", is_flag=True, help="Add it paused.")
@click.option("--replace", is_flag=True, help="Replace a task with the same id.")
@operator_options
@json_option
def add_task(
    fn: str,
    trigger: str,
    trigger_options: tuple[str, ...],
    task_id: str | None,
    name: str | None,
    args_json: str | None,
    kwargs_json: str | None,
    executor: str | None,
    max_instances: int | None,
    coalesce: bool | None,
    misfire_grace_time: float | None,
    tags: tuple[str, ...],
    paused: bool,
    replace: bool,
    config_file: Path | None,
    store: str | None,
    as_json: bool,
) -> None:
    """Add FN ("module:function", importable here as in the application) on TRIGGER
    (an alias: interval, cron, date, ...) with its options as KEY=VALUE:

        asyncz tasks add jobs:cleanup interval minutes=30 --id cleanup
    """
    if ":" not in fn:
        raise UserError(f"fn: expected 'module:function', got {fn!r}")
    built = build_trigger(trigger, parse_trigger_args(trigger_options))
    options: dict[str, Any] = {
        "id": task_id,
        "name": name,
        "args": _json_value(args_json, "--args", list),
        "kwargs": _json_value(kwargs_json, "--kwargs", dict),
        "executor": executor,
        "store": store,
        "replace_existing": replace,
        "tags": list(tags) or None,
    }
    for key, value in (
        ("max_instances", max_instances),
        ("coalesce", coalesce),
        ("misfire_grace_time", misfire_grace_time),
    ):
        if value is not None:
            options[key] = value
    if paused:
        options["next_run_time"] = None

    async def write(op: OperatorScheduler) -> TaskInfo:
        from asyncz.exceptions import ConflictingIdError

        try:
            task = await op.add_task_async(fn, built, **options)
        except ConflictingIdError as exc:
            raise UserError(
                f"A task with the id {exc.task_id!r} already exists in store {exc.store!r}; "
                "add it with --replace to replace it"
            ) from None
        except (ImportError, AttributeError, TypeError, ValueError) as exc:
            raise UserError(f"fn {fn!r}: {type(exc).__name__}: {exc}") from None
        return task.snapshot()

    info = session(config_file, store, write)
    _done(as_json, "added", info, info.id)


@tasks.command("pause")
@click.argument("task_id", metavar="ID")
@click.option("--note", default=None, help="Why (kept with the pause time until resumed).")
@operator_options
@json_option
def pause_task(
    task_id: str, note: str | None, config_file: Path | None, store: str | None, as_json: bool
) -> None:
    """Pause a task: no node runs it until it is resumed."""

    async def write(op: OperatorScheduler) -> TaskInfo:
        text = " ".join(note.split()) if note else None
        return (await op.pause_task_async(task_id, store, note=text)).snapshot()

    _done(as_json, "paused", session(config_file, store, write), task_id)


@tasks.command("resume")
@click.argument("task_id", metavar="ID")
@operator_options
@json_option
def resume_task(task_id: str, config_file: Path | None, store: str | None, as_json: bool) -> None:
    """Resume a paused task from its trigger's next fire time (one with none left is
    removed)."""

    async def write(op: OperatorScheduler) -> TaskInfo | None:
        await op.find_task_info_async(task_id, store)  # an unknown id is one line, exit 1
        task = await op.resume_task_async(task_id, store)
        return task.snapshot() if task is not None else None

    info = session(config_file, store, write)
    _done(as_json, "resumed" if info else "removed (its trigger has no fire time left)", info,
          task_id)  # fmt: skip


@tasks.command("remove")
@click.argument("task_id", metavar="ID")
@operator_options
@json_option
def remove_task(task_id: str, config_file: Path | None, store: str | None, as_json: bool) -> None:
    """Remove a task from its store (an unrestorable one too)."""

    async def write(op: OperatorScheduler) -> None:
        await op.delete_task_async(task_id, store)

    session(config_file, store, write)
    _done(as_json, "removed", None, task_id)


@tasks.command("reschedule")
@click.argument("task_id", metavar="ID")
@click.argument("trigger")
@click.argument("trigger_options", nargs=-1, metavar="[KEY=VALUE]...")
@operator_options
@json_option
def reschedule_task(
    task_id: str,
    trigger: str,
    trigger_options: tuple[str, ...],
    config_file: Path | None,
    store: str | None,
    as_json: bool,
) -> None:
    """Give a task a new TRIGGER (options as KEY=VALUE) and the next run time it gives."""
    built = build_trigger(trigger, parse_trigger_args(trigger_options))

    async def write(op: OperatorScheduler) -> TaskInfo:
        return (await op.reschedule_task_async(task_id, store, built)).snapshot()

    _done(as_json, "rescheduled", session(config_file, store, write), task_id)


@tasks.command("run")
@click.argument("task_id", metavar="ID")
@click.option(
    "--wait",
    default=30.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Seconds to wait for a node to report the run (0: only ask).",
)
@operator_options
@json_option
def run_task(
    task_id: str, wait: float, config_file: Path | None, store: str | None, as_json: bool
) -> None:
    """Run a task now on a live node (never in this process), and say which node ran it.

    The request is stored with the task (a pending run, source "manual"); whichever node
    claims the task next runs it. Refused when no node is alive.
    """

    async def act(op: OperatorScheduler) -> tuple[Any, Any]:
        info = await op.find_task_info_async(task_id, store)
        if info.reason is not None or info.store is None:
            raise UserError(f"Task {task_id!r} cannot be restored: {info.reason}")
        alive = [n.identity for n in await op.get_nodes_async(info.store) if n.alive]
        if not alive:
            raise UserError(
                f"No node is alive in store {info.store!r}: nothing would run task "
                f"{task_id!r} (start the application, or asyncz run)"
            )
        requested = await op.request_run_async(task_id, info.store)
        history = getattr(op, "get_task_runs_async", None)
        shared_history = getattr(op.stores[info.store], "keeps_history", False)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        taken = False
        while wait and loop.time() < deadline:
            if shared_history and history is not None:
                for record in await history(task_id, store=info.store, since=requested, limit=20):
                    late = abs((record.scheduled_run_time - requested).total_seconds())
                    if record.source == "manual" and late < 0.001:
                        return requested, record
            elif await op.run_was_taken_async(task_id, info.store, requested):
                # The store keeps no history that other processes read: a node took the
                # run, which one is recorded only in that node's memory.
                taken = True
                break
            await asyncio.sleep(0.1)
        if wait and not taken:
            raise UserError(
                f"Task {task_id!r}: no node took the run requested at {when(requested)} "
                f"within {wait:g} s; it stays requested"
            )
        return requested, "taken" if taken else None

    requested, record = session(config_file, store, act)
    if as_json:
        run = None if record == "taken" else record
        emit_json(
            {"task_id": task_id, "requested_at": requested, "taken": bool(record), "run": run}
        )
    elif record is None:
        click.echo(f"Run of task {task_id!r} requested at {when(requested)}.")
    elif record == "taken":
        click.echo(
            f"Task {task_id!r} was taken by a node (its store keeps no shared run history, "
            "so which node ran it is recorded only in that node)."
        )
    else:
        took = f" in {record.duration:.3f} s" if record.duration is not None else ""
        click.echo(f"Task {task_id!r} ran on node {record.node!r}: {record.outcome}{took}.")
