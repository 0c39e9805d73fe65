"""A task's stored state: what ``Task.__getstate__`` gives a persistent store, and how
``Task.__setstate__`` restores it.

Data path: a :class:`~asyncz.tasks.Task` -> :func:`task_state` (plain data: the callable by
reference, the trigger as data) -> a serializer -> the backend; and back through
:func:`restore_state`. States of version 1 (before the run policies) restore with the
policies' defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from asyncz._util import UNSET, ref_to_callable
from asyncz.tasks._fields import NO_EXTRA, POLICY_NAMES, policy_of
from asyncz.tasks.options import NO_KWARGS, check_tags

if TYPE_CHECKING:
    from asyncz.tasks.task import Task

__all__ = ["POLICY_DEFAULTS", "restore_state", "task_state"]

#: What a state of version 1 (stored before the run policies existed) restores with: the
#: defaults of ``TaskDefaults``.
POLICY_DEFAULTS: dict[str, Any] = {
    "timeout": None,
    "retries": 0,
    "retry_delay": 1.0,
    "retry_backoff": 2.0,
    "retry_max_delay": 3600.0,
    "retry_jitter": 0.0,
    "overlap": "skip",
}
_VERSIONS = (1, 2)


def task_state(task: Task) -> dict[str, Any]:
    """Plain data for persistent stores. ``tags``, ``pending_runs`` (with
    ``scheduled_next``) and the pause note appear only when there are some."""
    from asyncz.tasks.task import STATE_VERSION
    from asyncz.triggers import trigger_to_data

    if task.fn_reference is None:
        raise ValueError(
            f"Task {task.id!r}: {task.fn!r} has no importable 'module:qualname' reference, "
            "so it cannot be stored persistently"
        )
    state = {
        "version": STATE_VERSION,
        "id": task.id,
        "name": task.name,
        "fn": task.fn_reference,
        "args": tuple(task.args),
        "kwargs": dict(task.kwargs),
        "trigger": trigger_to_data(task.trigger) if task.trigger is not None else None,
        "executor": task.executor,
        "coalesce": task.coalesce,
        "max_instances": task.max_instances,
        "misfire_grace_time": task.misfire_grace_time,
        "next_run_time": task.next_run_time,
    }
    for name, default in POLICY_DEFAULTS.items():
        # A task built outside a scheduler may hold UNSET: stored as the default.
        value = getattr(task, name)
        state[name] = default if value is UNSET else value
    if task.tags:
        state["tags"] = sorted(task.tags)
    if task.pending_runs:
        state["pending_runs"] = [run.to_data() for run in task.pending_runs]
        state["scheduled_next"] = task.scheduled_next
    if task.pause_note is not None or task.paused_at is not None:
        state["pause_note"] = task.pause_note
        state["paused_at"] = task.paused_at
    return state


def restore_state(task: Task, state: dict[str, Any]) -> None:
    """Fill ``task`` (made with ``Task.__new__``) from a state :func:`task_state` made."""
    from asyncz.tasks.runs import PendingRun
    from asyncz.triggers import trigger_from_data

    version = state.get("version")
    if version not in _VERSIONS:
        raise ValueError(f"unsupported task state version {version!r}")
    task._scheduler = None
    task._submitted = True
    task._extra = NO_EXTRA
    task.id = state["id"]
    task.name = state["name"]
    task.fn_reference = state["fn"]
    task.fn = ref_to_callable(state["fn"])
    task.args = tuple(state["args"])
    task.kwargs = dict(state["kwargs"]) if state["kwargs"] else NO_KWARGS
    trigger = state["trigger"]
    task.trigger = trigger_from_data(trigger) if trigger is not None else None
    task.executor = state["executor"]
    task.store_alias = "default"
    task.coalesce = state["coalesce"]
    task.max_instances = state["max_instances"]
    task.misfire_grace_time = state["misfire_grace_time"]
    task.next_run_time = state["next_run_time"]
    task.timeout = state.get("timeout", POLICY_DEFAULTS["timeout"])
    task.retries = state.get("retries", POLICY_DEFAULTS["retries"])
    task._policy = policy_of(tuple(state.get(name, POLICY_DEFAULTS[name]) for name in POLICY_NAMES))
    task.tags = check_tags(state.get("tags"))
    pending = state.get("pending_runs")
    task.pending_runs = tuple(PendingRun.from_data(p) for p in pending) if pending else ()
    # The rarely set fields: a task gets a TaskExtra of its own only for a value it has.
    if pending:
        task.scheduled_next = state.get("scheduled_next")
    task.pause_note = state.get("pause_note")
    task.paused_at = state.get("paused_at")
