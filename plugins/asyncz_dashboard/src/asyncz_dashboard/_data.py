"""What the pages and the JSON API show, read from the operator's public API.

Each function takes the open scheduler (an :class:`~asyncz.operator.OperatorScheduler`, or
an application's own running scheduler) and returns plain data. The run history is read
with ``get_task_runs_async``; a store that keeps it only in each node's memory
(``keeps_history = False``) is named on the pages, whose runs cannot be shown here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from asyncz.schedulers.inspection import jsonable
from asyncz.timeutil import utc

__all__ = [
    "SORT_KEYS",
    "STATES",
    "TaskQuery",
    "has_history",
    "history_note",
    "jsonable",
    "nodes",
    "parse_trigger_options",
    "pause",
    "problems",
    "resume",
    "runs",
    "task_detail",
    "tasks",
    "timeline_runs",
]

SORT_KEYS = ("id", "name", "next_run_time", "schedule_state", "executor", "store", "trigger")
STATES = ("scheduled", "paused", "pending", "unrestorable")


@dataclasses.dataclass(frozen=True)
class TaskQuery:
    """The filters and sort of the tasks page (and ``/api/tasks``), from its query string;
    unknown values are dropped, not passed on."""

    state: str | None = None
    trigger: str | None = None
    executor: str | None = None
    q: str | None = None
    sort: str = "next_run_time"
    store: str | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str], stores: list[str]) -> TaskQuery:
        sort = query.get("sort", "next_run_time")
        if sort.lstrip("-") not in SORT_KEYS:
            sort = "next_run_time"
        state = query.get("state") or None
        store = query.get("store") or None
        return cls(
            state=state if state in STATES else None,
            trigger=query.get("trigger") or None,
            executor=query.get("executor") or None,
            q=query.get("q") or None,
            sort=sort,
            store=store if store in stores else None,
        )


async def tasks(op: Any, query: TaskQuery) -> list[Any]:
    infos: list[Any] = await op.get_task_infos_async(
        query.store,
        schedule_state=query.state,
        executor=query.executor,
        trigger=query.trigger,
        q=query.q,
        sort_by=query.sort.lstrip("-"),
        descending=query.sort.startswith("-"),
    )
    return infos


def has_history(op: Any) -> bool:
    return hasattr(op, "get_task_runs_async")


def history_note(op: Any) -> str | None:
    """What the pages say about the stores whose history lives in each node's memory
    (``keeps_history = False``): an operator reads none of their runs; an application's own
    scheduler reads its own runs only."""
    private = [a for a, s in op.stores.items() if not getattr(s, "keeps_history", False)]
    if not private:
        return None
    names = ", ".join(private)
    stores = f"Store {names} keeps" if len(private) == 1 else f"Stores {names} keep"
    if hasattr(op, "request_run_async"):  # an operator: no runs of its own
        return f"{stores} run history only in each node's memory: runs there are not shown here."
    return f"{stores} run history in each node's memory: only this scheduler's runs are shown."


async def runs(
    op: Any,
    task_id: str | None = None,
    *,
    store: str | None = None,
    outcome: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Any]:
    """The run history, newest first; ``[]`` where the installed asyncz keeps none."""
    if not has_history(op):
        return []
    found: list[Any] = await op.get_task_runs_async(
        task_id, limit=limit, since=since, outcome=outcome, store=store
    )
    return found


async def find_task(op: Any, task_id: str, store: str | None) -> Any:
    """The task's snapshot, an unrestorable one included; ``None`` when absent."""
    from asyncz.exceptions import TaskLookupError

    try:
        return await op.find_task_info_async(task_id, store)
    except TaskLookupError:
        return None


async def preview(op: Any, task_id: str, count: int, store: str | None) -> list[datetime]:
    # The synchronous preview waits for the store through the scheduler's loop, which is
    # this one: call it from a thread.
    result = await asyncio.to_thread(op.preview_task_runs, task_id, count, store)
    return list(result)


async def task_detail(op: Any, task_id: str, store: str | None) -> dict[str, Any] | None:
    info = await find_task(op, task_id, store)
    if info is None:
        return None
    upcoming = await preview(op, info.id, 10, info.store) if info.reason is None else []
    history = await runs(op, info.id, store=info.store, limit=50) if info.store else []
    return {"task": info, "next_runs": upcoming, "runs": history, "pause_note": info.pause_note}


async def nodes(op: Any) -> list[dict[str, Any]]:
    now = datetime.now(utc)
    found = await op.get_nodes_async()
    return [
        {
            **node.to_dict(),
            "state": str(node.state_at(now)),
            "expires_at": node.expires_at.isoformat(),
            "heartbeat_age": round((now - node.last_heartbeat).total_seconds(), 1),
        }
        for node in found
    ]


async def problems(op: Any) -> dict[str, Any]:
    """Unrestorable tasks (with reasons), lapsed nodes, missed runs of the last 24 h, and
    scheduled tasks with no live node to run them."""
    unrestorable = await op.get_task_infos_async(schedule_state="unrestorable")
    found_nodes = await nodes(op)
    lapsed = [n for n in found_nodes if n["state"] == "dead"]
    since = datetime.now(utc) - timedelta(hours=24)
    missed = await runs(op, outcome="missed", since=since, limit=200)
    scheduled = await op.get_task_infos_async(schedule_state="scheduled")
    idle = bool(scheduled) and not any(n["state"] == "alive" for n in found_nodes)
    return {
        "unrestorable": unrestorable,
        "lapsed_nodes": lapsed,
        "missed_runs": missed,
        "no_live_node": idle,
        "scheduled_count": len(scheduled),
        "history": has_history(op),
        "count": len(unrestorable) + len(lapsed) + len(missed) + int(idle),
    }


async def timeline_runs(
    op: Any, hours: float = 24, cap: int = 400
) -> tuple[datetime, datetime, list[tuple[Any, list[datetime], bool]]]:
    """Each scheduled task with its run times in the next ``hours`` (at most ``cap``; the
    flag says there are more)."""
    start = datetime.now(utc)
    end = start + timedelta(hours=hours)
    rows = []
    for info in await op.get_task_infos_async(schedule_state="scheduled"):
        upcoming = await preview(op, info.id, cap + 1, info.store)
        within = [t for t in upcoming if t < end]
        rows.append((info, within[:cap], len(within) > cap))
    return start, end, rows


# -- actions ---------------------------------------------------------------------------------
async def pause(op: Any, task_id: str, store: str | None, note: str | None) -> Any:
    """Pause with an optional note (kept with the task and in a ``paused`` history record)."""
    note = " ".join(note.split()) if note else None
    return await op.pause_task_async(task_id, store, note=note)


async def resume(op: Any, task_id: str, store: str | None) -> Any:
    return await op.resume_task_async(task_id, store)


def parse_trigger_options(text: str) -> dict[str, Any]:
    """``minutes=30 jitter=1.5 day_of_week=mon-fri``: words ``KEY=VALUE``, a value read as
    JSON when it parses (never evaluated), else kept as text. ``ValueError`` names the bad
    word."""
    options: dict[str, Any] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"trigger option {word!r}: expected KEY=VALUE (e.g. minutes=30)")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    return options
