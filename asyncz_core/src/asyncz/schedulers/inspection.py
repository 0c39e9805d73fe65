"""What :meth:`~asyncz.schedulers.base.BaseScheduler.get_scheduler_info` and
:meth:`~asyncz.schedulers.base.BaseScheduler.preview_task_runs` return.

Data path: read-only snapshots of the scheduler (stores, executors, next wake-up) and
of a task's next run times; no step of the run path.

Both read the way Asyncz's models do (``info.identity``, ``preview.run_times``) and keep
working where code treats them as what they were before (a mapping, a list).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncz.stores.base import BaseStore
    from asyncz.tasks.task import Task

__all__ = ["RunPreview", "SchedulerInfo", "jsonable", "store_status"]


class SchedulerInfo(Mapping[str, Any]):
    """An immutable snapshot of a scheduler: ``info.state`` and ``info["state"]`` alike.

    Keys: ``identity``, ``state`` (``"stopped"``, ``"running"``, ``"paused"``; also as
    ``state_label``), ``running``, ``started_at``, ``uptime_seconds``, ``timezone``,
    ``stores`` / ``executors`` (alias -> class name), ``store_status`` (alias -> ``{"state":
    "ok" | "unreachable" | "wiped", ...}``), ``store_aliases`` /
    ``executor_aliases``, ``tasks`` (also ``task_count``), ``tasks_by_state`` (state ->
    count; also ``scheduled_task_count``, ``paused_task_count``, ``pending_task_count``),
    ``next_wakeup``, ``startup_delay``.
    """

    __slots__ = ("_data",)

    _data: dict[str, Any]

    def __init__(self, data: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_data", dict(data))

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[name]
        except KeyError:
            raise AttributeError(
                f"SchedulerInfo has no field {name!r}; fields: {', '.join(self._data)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("SchedulerInfo is immutable")

    def __dir__(self) -> Iterable[str]:
        return [*super().__dir__(), *self._data]

    def to_dict(self) -> dict[str, Any]:
        """A plain (shallow) copy as a dict, e.g. for ``json.dumps``."""
        return dict(self._data)

    def __repr__(self) -> str:
        return f"SchedulerInfo({self._data!r})"


class RunPreview(list[datetime]):
    """The next run times of a task: a list, with Asyncz's ``run_times`` (a tuple),
    ``task_id``, ``requested_count`` and ``exhausted`` (the trigger has no more fire times
    within the preview)."""

    __slots__ = ("exhausted", "requested_count", "task_id")

    def __init__(
        self, run_times: Iterable[datetime], task_id: str, requested_count: int, exhausted: bool
    ) -> None:
        super().__init__(run_times)
        self.task_id = task_id
        self.requested_count = requested_count
        self.exhausted = exhausted

    @property
    def run_times(self) -> tuple[datetime, ...]:
        return tuple(self)

    @classmethod
    def of(cls, task: Task, count: int, now: datetime, trigger_timezone: tzinfo) -> RunPreview:
        """The next ``count`` run times of ``task`` as of ``now``, from its trigger."""
        trigger = task.trigger
        when: datetime | None
        if isinstance(task.next_run_time, datetime):
            when = task.next_run_time
        elif task.next_run_time is None or trigger is None:
            return cls((), task.id, count, trigger is None)
        else:
            when = trigger.get_next_trigger_time(trigger_timezone, None, now)
        runs: list[datetime] = []
        while when is not None and len(runs) < count:
            runs.append(when)
            when = trigger.get_next_trigger_time(trigger_timezone, when, now) if trigger else None
        return cls(runs, task.id, count, when is None)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data, for the CLI's ``--json`` and the dashboard's API:
    dataclasses (``TaskInfo``) and named tuples (``RunRecord``) as objects, datetimes in ISO
    8601, enums by value, sets sorted; anything else by its ``repr``."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if isinstance(value, tuple) and hasattr(value, "_asdict"):  # a NamedTuple (RunRecord)
        return jsonable(value._asdict())
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted(jsonable(v) for v in value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def store_status(
    stores: Mapping[str, BaseStore], outages: Mapping[str, tuple[datetime, str]]
) -> dict[str, dict[str, Any]]:
    """Per store: ``state`` ``"ok"``, ``"unreachable"`` (processing cannot reach it, from
    ``outages``: ``since``, ``reason``) or what the store reports itself (``"wiped"``...)."""
    status: dict[str, dict[str, Any]] = {}
    for alias, store in stores.items():
        entry: dict[str, Any] = {"state": "ok"}
        entry.update(store.status())
        outage = outages.get(alias)
        if outage is not None:
            entry.update(state="unreachable", since=outage[0], reason=outage[1])
        status[alias] = entry
    return status
