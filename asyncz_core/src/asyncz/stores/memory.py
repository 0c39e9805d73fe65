"""The in-memory store: tasks kept as objects, ordered by next run time in a heap.

Data path: ``add_task`` pushes onto the heap; each pass pops the due tasks and pushes
them back with their next run times; no serialization.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone, tzinfo
from typing import TYPE_CHECKING, cast
from zoneinfo import ZoneInfo

from asyncz.exceptions import ConflictingIdError, TaskLookupError
from asyncz.stores.base import BaseStore

if TYPE_CHECKING:
    from asyncz.tasks import Task

__all__ = ["MemoryStore"]

# (key or None when paused, task id, task). The key is the next run time itself when its
# zone has a fixed offset, else that time in UTC: keys in fixed zones compare exactly (no DST
# folds), with each other and with UTC. The record of a task is the very tuple that sits in
# the heap, so an entry is live exactly while it is its task's record (an identity check),
# and a scheduled task costs one tuple. Equal run times are ordered by id (which, for
# generated ids, is the order of creation) and never compare tasks.
_Entry = tuple[datetime | None, str, "Task"]
_Scheduled = tuple[datetime, str, "Task"]
_UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=_UTC)
# The zoneinfo names of fixed-offset zones besides "Etc/...": the local zone of a machine set
# to UTC is one of these, and its run times are then their own keys too.
_FIXED_NAMES = frozenset(
    ("UTC", "UCT", "GMT", "GMT0", "GMT+0", "GMT-0", "Greenwich", "Universal", "Zulu")
)
_fixed_zones: dict[tzinfo, bool] = {_UTC: True}


def _fixed_offset(zone: tzinfo) -> bool:
    """Whether ``zone``'s offset never changes (a ``timezone``, a zoneinfo ``Etc/*`` or
    UTC alias); cached per zone object."""
    try:
        return _fixed_zones[zone]
    except KeyError:
        pass
    except TypeError:  # an unhashable tzinfo
        return False
    key = getattr(zone, "key", None)
    fixed = type(zone) is timezone or (
        isinstance(zone, ZoneInfo)
        and isinstance(key, str)
        and (key.startswith("Etc/") or key in _FIXED_NAMES)
    )
    if len(_fixed_zones) < 256:
        _fixed_zones[zone] = fixed
    return fixed


class MemoryStore(BaseStore):
    """Keeps tasks in process memory; nothing survives a restart.

    Add, update and delete cost O(log n): the run-time order lives in a binary heap whose
    outdated entries are skipped lazily and compacted when they outnumber the live ones.
    Its methods never suspend, so the scheduler calls them inline from any thread.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.RLock()
        self._records: dict[str, _Entry] = {}
        self._heap: list[_Scheduled] = []
        self._stale = 0  # heap entries that are no longer their task's record
        # Entries handed out as due and taken off the heap until the scheduler writes their
        # task back (update or delete); put back if it has not by the next query.
        self._claimed: dict[str, _Scheduled] = {}

    # -- internals -----------------------------------------------------------------------
    def _put(self, task: Task) -> None:
        when = task.next_run_time
        if isinstance(when, datetime):
            # A next run time in a fixed zone is its own key: a scheduled entry costs one
            # tuple. Others are keyed in UTC, which compares field by field (exact).
            zone = when.tzinfo
            fixed = zone is _UTC or (zone is not None and _fixed_offset(zone))
            key = when if fixed else when.astimezone(_UTC)
            scheduled: _Scheduled = (key, task.id, task)
            heapq.heappush(self._heap, scheduled)
            self._records[task.id] = scheduled
        else:
            self._records[task.id] = (None, task.id, task)

    def _forget(self, task_id: str) -> None:
        entry = self._records.pop(task_id)
        if entry[0] is not None:
            if self._claimed and self._claimed.pop(task_id, None) is entry:
                return  # off the heap already
            self._stale += 1
            if self._stale > 1024 and self._stale > len(self._heap) // 2:
                self._compact()

    def _compact(self) -> None:
        # A record with a timestamp is the very tuple that was pushed on the heap.
        self._heap = [cast(_Scheduled, e) for e in self._records.values() if e[0] is not None]
        heapq.heapify(self._heap)
        self._stale = 0
        self._claimed.clear()  # back on the heap

    def _return_claimed(self) -> None:
        """Put back due entries whose task was not written back (a pass that failed)."""
        for entry in self._claimed.values():
            if self._live(entry):
                heapq.heappush(self._heap, entry)
        self._claimed.clear()

    def _live(self, entry: _Scheduled) -> bool:
        return self._records.get(entry[2].id) is entry

    # -- the contract ---------------------------------------------------------------------
    async def lookup_task(self, task_id: str) -> Task | None:
        entry = self._records.get(task_id)
        return entry[2] if entry is not None else None

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        horizon = now if now.tzinfo is _UTC else now.astimezone(_UTC)
        with self._lock:
            if self._claimed:
                self._return_claimed()
            heap = self._heap
            records = self._records
            claimed = self._claimed
            pop = heapq.heappop
            due: list[Task] = []
            while heap and heap[0][0] <= horizon and (limit is None or len(due) < limit):
                entry = pop(heap)
                task = entry[2]
                if records.get(task.id) is entry:
                    # The task stays in the store (records) until the scheduler writes it
                    # back; only its heap entry waits aside, so it is not pushed again.
                    claimed[task.id] = entry
                    due.append(task)
                else:
                    self._stale -= 1
            return due

    async def get_next_run_time(self) -> datetime | None:
        with self._lock:
            if self._claimed:
                self._return_claimed()
            heap = self._heap
            while heap:
                entry = heap[0]
                if self._live(entry):
                    when = entry[2].next_run_time
                    return when if isinstance(when, datetime) else None
                heapq.heappop(heap)
                self._stale -= 1
            return None

    async def get_all_tasks(self) -> list[Task]:
        with self._lock:
            # A stable sort: equal run times keep the order the tasks were last stored in.
            entries = sorted(
                self._records.values(),
                key=lambda e: (e[0] is None, e[0] if e[0] is not None else _EPOCH),
            )
            return [entry[2] for entry in entries]

    async def add_task(self, task: Task) -> None:
        self.add_task_sync(task)

    def add_task_sync(self, task: Task) -> bool:
        with self._lock:
            if task.id in self._records:
                raise ConflictingIdError(task.id, self.alias)
            self._put(task)
        return True

    async def add_tasks(self, tasks: Sequence[Task], replace_existing: bool = False) -> None:
        with self._lock:
            for task in tasks:
                if task.id in self._records:
                    if not replace_existing:
                        raise ConflictingIdError(task.id, self.alias)
                    self._forget(task.id)
                self._put(task)

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        with self._lock:
            for task in tasks:
                if task.id in self._records:  # deleted meanwhile: nothing to write back
                    self._forget(task.id)
                    self._put(task)

    async def delete_tasks(self, task_ids: Iterable[str]) -> None:
        with self._lock:
            records = self._records
            claimed = self._claimed
            for task_id in task_ids:
                # _forget, unrolled: a pass deletes every finished task of a batch here.
                entry = records.pop(task_id, None)
                if entry is None or entry[0] is None:
                    continue
                if claimed and claimed.pop(task_id, None) is entry:
                    continue  # off the heap already
                self._stale += 1
            if self._stale > 1024 and self._stale > len(self._heap) // 2:
                self._compact()

    async def update_task(self, task: Task) -> None:
        with self._lock:
            if task.id not in self._records:
                raise TaskLookupError(task.id, self.alias)
            self._forget(task.id)
            self._put(task)

    async def delete_task(self, task_id: str) -> None:
        with self._lock:
            if task_id not in self._records:
                raise TaskLookupError(task_id, self.alias)
            self._forget(task_id)

    async def remove_all_tasks(self) -> None:
        with self._lock:
            self._records.clear()
            self._heap.clear()
            self._claimed.clear()
            self._stale = 0

    def __len__(self) -> int:
        return len(self._records)
