"""Run history and backfill in the scheduler's public API.

Data path: ``get_task_runs`` flushes this node's buffered records
(:class:`~asyncz.schedulers._runs.RunKeeper`) and reads each store's history
(``store.get_runs``), newest first; ``backfill`` computes a task's trigger fire times in a
window and submits them as one run of source ``"backfill"``. Each method is a coroutine
(``*_async``) plus its synchronous twin.

A mixin of :class:`~asyncz.schedulers.base.BaseScheduler`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Coroutine, Sequence
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

from asyncz.exceptions import BackfillLimitError, SchedulerNotRunningError, TaskLookupError
from asyncz.stores.base import call
from asyncz.tasks.info import LastRun, ScheduleState, TaskInfo
from asyncz.tasks.runs import OUTCOMES, RunRecord, Submission
from asyncz.timeutil import utc

if TYPE_CHECKING:
    from asyncz.schedulers._runs import RunKeeper
    from asyncz.stores.base import BaseStore
    from asyncz.tasks import Task

__all__ = ["HistoryMixin"]

T = TypeVar("T")


def _check_outcome(outcome: str | Sequence[str] | None) -> None:
    wanted = (outcome,) if isinstance(outcome, str) else (outcome or ())
    for value in wanted:
        if value not in OUTCOMES:
            raise ValueError(f"Unknown outcome {value!r}; valid outcomes: {', '.join(OUTCOMES)}")


class HistoryMixin:
    """``get_task_runs``, ``backfill`` and the ``last_run`` of task snapshots."""

    if TYPE_CHECKING:  # what this mixin uses from BaseScheduler
        _stores: dict[str, BaseStore]
        _runs: RunKeeper
        timezone: tzinfo
        trigger_timezone: tzinfo

        @property
        def running(self) -> bool: ...
        def _block_on(self, coro: Coroutine[Any, Any, T], store: BaseStore | None = None) -> T: ...
        def lookup_store(self, alias: str) -> BaseStore: ...
        async def _find(self, task_id: str, store: str | None) -> tuple[Task, str | None]: ...
        async def get_task_info_async(
            self, task_id: str, store: str | None = None
        ) -> TaskInfo | None: ...
        async def get_task_infos_async(
            self,
            store: str | None = None,
            *,
            schedule_state: ScheduleState | str | None = None,
            executor: str | None = None,
            trigger: str | None = None,
            q: str | None = None,
            sort_by: str = "next_run_time",
            descending: bool = False,
        ) -> list[TaskInfo]: ...
        def _submit(
            self, task: Task, store_alias: str, run_times: list[datetime], source: str, folded: int
        ) -> bool: ...

    # -- history -----------------------------------------------------------------------------
    async def get_task_runs_async(
        self,
        task_id: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        outcome: str | Sequence[str] | None = None,
        store: str | None = None,
    ) -> list[RunRecord]:
        _check_outcome(outcome)
        if limit is not None and (isinstance(limit, bool) or limit < 0):
            raise ValueError(f"limit must be a number of records >= 0 or None, not {limit!r}")
        if since is not None and since.tzinfo is None:
            from asyncz.timeutil import localize

            since = localize(since, self.timezone)
        if not self.running:
            return []
        await self._runs.flush()
        aliases = [store] if store is not None else list(self._stores)
        records: list[RunRecord] = []
        for alias in aliases:
            target = self.lookup_store(alias)
            records.extend(
                await call(
                    target, target.get_runs(task_id, limit=limit, since=since, outcome=outcome)
                )
            )
        records.sort(key=lambda r: r.time, reverse=True)
        return records if limit is None else records[:limit]

    def get_task_runs(
        self,
        task_id: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        outcome: str | Sequence[str] | None = None,
        store: str | None = None,
    ) -> list[RunRecord]:
        """The history records of ``task_id`` (``None``: of every task), newest first: at
        most ``limit``, ended at or after ``since``, with ``outcome`` (one, or a list). Each
        is an immutable :class:`~asyncz.tasks.runs.RunRecord`. See docs/history.md."""
        return self._block_on(
            self.get_task_runs_async(
                task_id, limit=limit, since=since, outcome=outcome, store=store
            )
        )

    async def find_task_info_async(self, task_id: str, store: str | None = None) -> TaskInfo:
        """The snapshot of ``task_id``, an unrestorable one included (``reason`` says why);
        :class:`~asyncz.exceptions.TaskLookupError` when no store has it. For operators'
        tools (the CLI, the dashboard), where a task that cannot be restored must still be
        shown."""
        info = await self.get_task_info_async(task_id, store)
        if info is not None:
            return info
        for candidate in await self.get_task_infos_async(store, schedule_state="unrestorable"):
            if candidate.id == task_id:
                return candidate
        raise TaskLookupError(task_id, store)

    def find_task_info(self, task_id: str, store: str | None = None) -> TaskInfo:
        """Synchronous twin of :meth:`find_task_info_async`."""
        return self._block_on(self.find_task_info_async(task_id, store))

    async def _with_last_runs(self, infos: list[TaskInfo]) -> list[TaskInfo]:
        """``infos`` with their ``last_run`` from history (one query per store)."""
        runs = self._runs
        if not runs.enabled or not self.running or not infos:
            return infos
        await runs.flush()
        by_store: dict[str, list[str]] = {}
        for info in infos:
            if info.store is not None and info.store in self._stores:
                by_store.setdefault(info.store, []).append(info.id)
        last: dict[tuple[str, str], RunRecord] = {}
        for alias, ids in by_store.items():
            for task_id, record in (await runs.last_runs(alias, ids)).items():
                last[(alias, task_id)] = record
        if not last:
            return infos
        result = []
        for info in infos:
            found = last.get((info.store or "", info.id))
            if found is not None:
                info = dataclasses.replace(
                    info,
                    last_run=LastRun(found.outcome, found.time, found.duration, found.attempt),
                )
            result.append(info)
        return result

    # -- backfill ----------------------------------------------------------------------------
    async def backfill_async(
        self,
        task_id: str,
        start: datetime,
        end: datetime,
        *,
        limit: int = 100,
        store: str | None = None,
    ) -> list[datetime]:
        if not self.running:
            raise SchedulerNotRunningError("backfilling a task")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive number of runs, not {limit!r}")
        from asyncz.timeutil import localize

        if start.tzinfo is None:
            start = localize(start, self.timezone)
        if end.tzinfo is None:
            end = localize(end, self.timezone)
        if end < start:
            raise ValueError(f"backfill window ends ({end}) before it starts ({start})")
        task, alias = await self._find(task_id, store)
        if alias is None:  # pragma: no cover - pending tasks exist only while stopped
            raise SchedulerNotRunningError("backfilling a task")
        trigger = task.trigger
        if trigger is None:
            raise TaskLookupError(task_id, store)
        zone = self.trigger_timezone
        times: list[datetime] = []
        when = trigger.get_next_trigger_time(zone, start - timedelta(microseconds=1), start)
        while when is not None and when <= end:
            times.append(when)
            if len(times) > limit:
                raise BackfillLimitError(task_id, len(times), limit)
            when = trigger.get_next_trigger_time(zone, when, when)
        if times:
            now = datetime.now(utc)
            self._submit(task, alias, Submission(times, now, "backfill"), "backfill", 0)
        return times

    def backfill(
        self,
        task_id: str,
        start: datetime,
        end: datetime,
        *,
        limit: int = 100,
        store: str | None = None,
    ) -> list[datetime]:
        """Run ``task_id`` once for each fire time of its trigger from ``start`` to ``end``
        (inclusive; naive datetimes are in the scheduler's zone), in order, as one
        submission with source ``"backfill"`` (in events and history). Refuses, with
        :class:`~asyncz.exceptions.BackfillLimitError` and running nothing, a window of more
        than ``limit`` fire times. Returns the run times submitted. The task's own schedule
        is not changed; its ``overlap`` / ``max_instances`` apply to the submission."""
        return self._block_on(self.backfill_async(task_id, start, end, limit=limit, store=store))
