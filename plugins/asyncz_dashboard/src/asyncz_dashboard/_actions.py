"""The dashboard's actions on a task: pause (with a note), resume, run, delete, reschedule.

Each is ``async (scheduler, task_id, store, form) -> (flash code, what was done)``; the app
checks auth and the CSRF token before, logs who did it after, and redirects to a page that
shows :data:`FLASH` ``[code]`` (a fixed text: nothing from the request is reflected). A
refusal is an :class:`ActionError` shown on the task's page with its HTTP status.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asyncz.exceptions import StaleTaskError, TaskLookupError
from asyncz_dashboard import _data

__all__ = ["ACTIONS", "FLASH", "ActionError"]

FLASH = {
    "paused": "Task paused: no node runs it until it is resumed.",
    "resumed": "Task resumed.",
    "finished": "Task resumed, but its trigger has no fire time left: it was removed.",
    "run-requested": "Run requested: the next node to claim the task runs it (see its history).",
    "ran": "Task submitted in this scheduler.",
    "deleted": "Task deleted.",
    "rescheduled": "Task rescheduled.",
}


class ActionError(Exception):
    """An action refused, with the message to show and the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


Action = Callable[[Any, str, "str | None", dict[str, str]], Awaitable[tuple[str, str]]]


def _where(task_id: str, store: str | None) -> str:
    return f"task {task_id!r}" + (f" in store {store!r}" if store else "")


async def pause(op: Any, task_id: str, store: str | None, form: dict[str, str]) -> tuple[str, str]:
    note = form.get("note", "").strip()[:500] or None
    await _data.pause(op, task_id, store, note)
    return "paused", f"paused {_where(task_id, store)}" + (f" (note: {note!r})" if note else "")


async def resume(op: Any, task_id: str, store: str | None, form: dict[str, str]) -> tuple[str, str]:
    task = await _data.resume(op, task_id, store)
    if task is None:
        return "finished", f"resumed {_where(task_id, store)}: no fire time left, removed"
    return "resumed", f"resumed {_where(task_id, store)}"


async def run(op: Any, task_id: str, store: str | None, form: dict[str, str]) -> tuple[str, str]:
    from asyncz.operator import OperatorError

    info = await _data.find_task(op, task_id, store)
    if info is None:
        raise TaskLookupError(task_id, store)
    if info.reason is not None or info.store is None:
        raise ActionError(f"Task {task_id!r} cannot be restored: {info.reason}", 409)
    request_run = getattr(op, "request_run_async", None)
    if request_run is None:  # the application's own scheduler: it is a node
        await op.run_task_async(task_id, info.store)
        return "ran", f"ran {_where(task_id, info.store)} in this scheduler"
    alive = [n.identity for n in await op.get_nodes_async(info.store) if n.alive]
    if not alive:
        raise ActionError(
            f"No node is alive in store {info.store!r}: nothing would run task {task_id!r}.", 409
        )
    try:
        requested = await request_run(task_id, info.store)
    except OperatorError as exc:
        raise ActionError(str(exc), 409) from None
    return "run-requested", (
        f"requested a run of {_where(task_id, info.store)} at {requested.isoformat()} "
        f"(live nodes: {', '.join(alive)})"
    )


async def delete(op: Any, task_id: str, store: str | None, form: dict[str, str]) -> tuple[str, str]:
    await op.delete_task_async(task_id, store)
    return "deleted", f"deleted {_where(task_id, store)}"


async def reschedule(
    op: Any, task_id: str, store: str | None, form: dict[str, str]
) -> tuple[str, str]:
    from asyncz.exceptions import UnknownAliasError
    from asyncz.triggers import create_trigger

    alias = form.get("trigger", "").strip()
    try:
        options = _data.parse_trigger_options(form.get("options", ""))
        trigger = create_trigger(alias, **options)
    except (UnknownAliasError, TypeError, ValueError) as exc:
        raise ActionError(f"Trigger {alias!r}: {' '.join(str(exc).split())}") from None
    try:
        await op.reschedule_task_async(task_id, store, trigger)
    except StaleTaskError as exc:
        raise ActionError(f"The task changed meanwhile, try again: {exc}", 409) from None
    return "rescheduled", f"rescheduled {_where(task_id, store)} to {trigger}"


ACTIONS: dict[str, Action] = {
    "pause": pause,
    "resume": resume,
    "run": run,
    "delete": delete,
    "reschedule": reschedule,
}
