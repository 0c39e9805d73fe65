"""Run history kept in memory: the default of :class:`~asyncz.stores.base.BaseStore` for a
store whose backend does not keep records itself (the memory store; a persistent store
until it implements history natively, with ``keeps_history = False``).

Data path: the scheduler's history recorder -> ``store.add_runs(records)`` (a batch) ->
:class:`RunRing` (one bounded ring per store instance, oldest records dropped first) ->
``get_runs`` newest first; ``prune_runs`` drops records by age and per task.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncz.tasks.runs import RunRecord

__all__ = ["RING_SIZE", "RunRing", "select_runs"]

#: Records one store instance keeps in memory at most (the oldest go first).
RING_SIZE = 20_000


def select_runs(
    records: Iterable[RunRecord],
    task_id: str | None,
    limit: int | None,
    since: datetime | None,
    outcome: str | Sequence[str] | None,
) -> list[RunRecord]:
    """``records`` (newest first) filtered as ``get_runs`` says, at most ``limit``."""
    outcomes = (outcome,) if isinstance(outcome, str) else outcome
    selected: list[RunRecord] = []
    for record in records:
        if task_id is not None and record.task_id != task_id:
            continue
        if outcomes is not None and record.outcome not in outcomes:
            continue
        if since is not None and record.time < since:
            continue
        selected.append(record)
        if limit is not None and len(selected) >= limit:
            break
    return selected


class RunRing:
    """Records in the order they were added (which is the order runs ended), bounded."""

    __slots__ = ("_records",)

    def __init__(self, size: int = RING_SIZE) -> None:
        self._records: deque[RunRecord] = deque(maxlen=size)

    def add(self, records: Iterable[RunRecord]) -> None:
        self._records.extend(records)

    def newest_first(self) -> list[RunRecord]:
        return sorted(self._records, key=_time, reverse=True)

    def get(
        self,
        task_id: str | None,
        limit: int | None,
        since: datetime | None,
        outcome: str | Sequence[str] | None,
    ) -> list[RunRecord]:
        return select_runs(self.newest_first(), task_id, limit, since, outcome)

    def last(self, task_ids: Iterable[str], outcomes: Sequence[str]) -> dict[str, RunRecord]:
        wanted = set(task_ids)
        found: dict[str, RunRecord] = {}
        for record in self.newest_first():
            if (
                record.task_id in wanted
                and record.task_id not in found
                and record.outcome in outcomes
            ):
                found[record.task_id] = record
                if len(found) == len(wanted):
                    break
        return found

    def prune(self, now: datetime, max_age: float, max_per_task: int) -> int:
        """Drop records older than ``max_age`` seconds and all but the newest
        ``max_per_task`` of each task; returns how many were dropped."""
        oldest = now - timedelta(seconds=max_age)
        per_task: dict[str, int] = {}
        kept: list[RunRecord] = []
        for record in self.newest_first():
            if record.time < oldest:
                continue
            count = per_task.get(record.task_id, 0)
            if count >= max_per_task:
                continue
            per_task[record.task_id] = count + 1
            kept.append(record)
        dropped = len(self._records) - len(kept)
        if dropped:
            kept.reverse()
            self._records.clear()
            self._records.extend(kept)
        return dropped

    def clear(self) -> None:
        self._records.clear()

    def __len__(self) -> int:
        return len(self._records)


def _time(record: RunRecord) -> datetime:
    return record.time
