"""Run history kept in memory: the default of :class:`~asyncz.stores.base.BaseStore` for a
store whose backend does not keep records itself (the memory store; a persistent store
until it implements history natively, with ``keeps_history = False``).

Data path: the scheduler's history recorder -> ``store.add_runs(records)`` (a batch) ->
:class:`RunRing` (one bounded ring per store instance, oldest records dropped first) ->
``get_runs`` newest first; ``prune_runs`` drops records by age and per task.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

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
    """Records in the order they were added (which is the order runs ended), bounded.

    The scheduler's history recorder hands the ring of a store that keeps no history of its
    own the *raw* form of its records (:meth:`add_raw`: the values of a run, and the
    function that builds its :class:`RunRecord`); they are built when first read
    (:meth:`records`), so runs nobody looks at never cost a record. Pruning reads the raw
    form directly (its task id and end time).
    """

    __slots__ = ("_build", "_raw", "_records")

    def __init__(self, size: int = RING_SIZE) -> None:
        #: RunRecords, and raw tuples (``type(item) is tuple``) still to be built.
        self._records: deque[RunRecord | tuple[Any, ...]] = deque(maxlen=size)
        #: How many raw items were added since the last build (an upper bound: the ring may
        #: have dropped some).
        self._raw = 0
        self._build: Callable[[tuple[Any, ...]], RunRecord] | None = None

    def add(self, records: Iterable[RunRecord]) -> None:
        self._records.extend(records)

    def add_raw(
        self,
        items: Collection[RunRecord | tuple[Any, ...]],
        build: Callable[[tuple[Any, ...]], RunRecord],
    ) -> None:
        """Keep ``items``: records, and raw tuples that ``build`` turns into records when
        they are read. A raw tuple's item 1 is the task id and item 7 the end time (epoch
        seconds), as :meth:`prune` reads them."""
        if self._raw and build != self._build:
            self.records()  # raw items of another recorder: built by theirs first
        self._build = build
        self._raw += len(items)
        self._records.extend(items)

    def records(self) -> deque[RunRecord]:
        """Every record, oldest first (the raw ones built now, once)."""
        records = self._records
        if self._raw:
            build = self._build
            assert build is not None
            built = [build(item) if type(item) is tuple else item for item in records]
            records.clear()
            records.extend(built)
            self._raw = 0
        return cast("deque[RunRecord]", records)

    def newest_first(self) -> list[RunRecord]:
        return sorted(self.records(), key=_time, reverse=True)

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
        ``max_per_task`` of each task; returns how many were dropped. Raw items stay raw."""
        oldest = now.timestamp() - max_age
        per_task: dict[str, int] = {}
        kept: list[RunRecord | tuple[Any, ...]] = []
        items = self._records
        for item in sorted(items, key=_epoch, reverse=True):
            if _epoch(item) < oldest:
                continue
            task_id = item[1] if type(item) is tuple else cast("RunRecord", item).task_id
            count = per_task.get(task_id, 0)
            if count >= max_per_task:
                continue
            per_task[task_id] = count + 1
            kept.append(item)
        dropped = len(items) - len(kept)
        if dropped:
            kept.reverse()
            items.clear()
            items.extend(kept)
        return dropped

    def clear(self) -> None:
        self._records.clear()
        self._raw = 0

    def __len__(self) -> int:
        return len(self._records)


def _time(record: RunRecord) -> datetime:
    return record.time


def _epoch(item: RunRecord | tuple[Any, ...]) -> float:
    if type(item) is tuple:
        end: float = item[7]
        return end
    return cast("RunRecord", item).time.timestamp()
