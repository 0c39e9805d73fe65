"""Managing and inspecting tasks: find, change, pause, resume, delete, run now, snapshots.

Data path: a task id -> :meth:`ManagementMixin._find` (the pending tasks, then each store) ->
the change written back to its store (``update_task`` / ``delete_task``) and announced
(``TASK_MODIFIED`` / ``TASK_REMOVED``), or a :class:`~asyncz.tasks.task.TaskInfo` snapshot
with the runs in progress. Each method is written once as a coroutine (the ``*_async`` twin);
the synchronous one runs it through ``BaseScheduler._block_on``.

A mixin of :class:`~asyncz.schedulers.base.BaseScheduler`; its methods are typed with
``self``, the class they are mixed into.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Coroutine
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

from asyncz import events as ev
from asyncz._util import UNSET, UnsetType
from asyncz.exceptions import (
    SchedulerNotRunningError,
    StaleTaskError,
    TaskLookupError,
    TaskUnrestorableError,
)
from asyncz.schedulers.inspection import RunPreview, SchedulerInfo, store_status
from asyncz.stores._listing import list_store
from asyncz.stores.base import call
from asyncz.tasks.info import sort_value, unrestorable_info
from asyncz.tasks.task import ScheduleState, Task, TaskInfo, TaskLabel, task_label
from asyncz.timeutil import utc

if TYPE_CHECKING:
    from asyncz.executors.base import BaseExecutor
    from asyncz.nodes import NodeInfo
    from asyncz.schedulers._coordination import Coordinator
    from asyncz.schedulers._processing import Processor
    from asyncz.schedulers._runs import RunKeeper
    from asyncz.schedulers.base import SchedulerState
    from asyncz.stores.base import BaseStore
    from asyncz.triggers.base import BaseTrigger

__all__ = ["ManagementMixin"]

T = TypeVar("T")

#: Times a management write re-reads the task and tries again when another node or process
#: wrote it in between (a compare-and-set refused with StaleTaskError).
WRITE_ATTEMPTS = 20

_SORT_KEYS = ("id", "name", "next_run_time", "schedule_state", "executor", "store", "trigger")


class ManagementMixin:
    """Task CRUD and inspection, each as a coroutine plus its synchronous twin."""

    if TYPE_CHECKING:  # what this mixin uses from BaseScheduler
        _lock: threading.RLock
        _pending: dict[str, Task]
        _stores: dict[str, BaseStore]
        _executors: dict[str, BaseExecutor]
        _state: SchedulerState
        _started_at: datetime | None
        _processor: Processor
        _coordinator: Coordinator
        logger: logging.Logger
        identity: str
        timezone: tzinfo
        trigger_timezone: tzinfo
        startup_delay: float
        _dispatch: Callable[[ev.SchedulerEvent], None]

        @property
        def running(self) -> bool: ...
        def _block_on(self, coro: Coroutine[Any, Any, T], store: BaseStore | None = None) -> T: ...
        def lookup_store(self, alias: str) -> BaseStore: ...
        def _check_executor(self, task: Task) -> None: ...
        def _wakeup_if_sooner(self, when: datetime | None | UnsetType) -> None: ...
        def _resolve_naive(self, task: Task) -> None: ...
        def _submit(
            self, task: Task, store_alias: str, run_times: list[datetime], source: str, folded: int
        ) -> bool: ...
        async def _with_last_runs(self, infos: list[TaskInfo]) -> list[TaskInfo]: ...

        _runs: RunKeeper

    # =====================================================================================
    # finding tasks
    # =====================================================================================
    def _task_id(self, task_or_id: Task | str) -> str:
        return task_or_id.id if isinstance(task_or_id, Task) else str(task_or_id)

    def _pending_task(self, task_id: str, store: str | None) -> Task | None:
        with self._lock:
            task = self._pending.get(task_id)
            if task is not None and (store is None or task.store_alias == store):
                return task
        return None

    async def _find(self, task_id: str, store: str | None) -> tuple[Task, str | None]:
        """The task and its store alias (``None`` while pending); TaskLookupError if absent."""
        pending = self._pending_task(task_id, store)
        if pending is not None:
            return pending, None
        if not self.running:
            raise TaskLookupError(task_id, store)
        aliases = [store] if store is not None else list(self._stores)
        for alias in aliases:
            target = self.lookup_store(alias)
            found = await call(target, target.lookup_task(task_id))
            if found is not None:
                return found, alias
        for alias in aliases:
            target = self.lookup_store(alias)
            reason = await call(target, target.unrestorable_reason(task_id))
            if reason is not None:
                raise TaskUnrestorableError(task_id, alias, reason)
        raise TaskLookupError(task_id, store)

    async def get_task_async(self, task_id: str, store: str | None = None) -> Task | None:
        try:
            task, _ = await self._find(task_id, store)
        except TaskLookupError:
            return None
        return task

    def get_task(self, task_id: str, store: str | None = None) -> Task | None:
        """The task with ``task_id`` (searched in ``store`` or in all), or ``None``."""
        return self._block_on(self.get_task_async(task_id, store))

    async def get_tasks_async(self, store: str | None = None) -> list[Task]:
        tasks, _ = await self._listing(store)
        return tasks

    async def _listing(self, store: str | None) -> tuple[list[Task], list[TaskInfo]]:
        """The tasks (pending ones first, then each store's by next run time) and the
        snapshots of the stored tasks that cannot be restored. Each store is read page by
        page (:func:`~asyncz.stores._listing.list_store`), one call per page."""
        with self._lock:
            tasks = [t for t in self._pending.values() if store is None or t.store_alias == store]
        broken: list[TaskInfo] = []
        if self.running:
            aliases = [store] if store is not None else list(self._stores)
            for alias in aliases:
                listed = await list_store(self.lookup_store(alias))
                tasks.extend(listed.tasks)
                broken.extend(
                    unrestorable_info(i, alias, r) for i, r in listed.unrestorable.items()
                )
        return tasks, broken

    def get_tasks(self, store: str | None = None) -> list[Task]:
        """Every task: pending ones first, then each store's, earliest next run first."""
        return self._block_on(self.get_tasks_async(store))

    # =====================================================================================
    # changing tasks
    # =====================================================================================
    async def update_task_async(
        self, task_id: Task | str, store: str | None = None, **changes: Any
    ) -> Task:
        return await self._update(task_id, store, changes)

    async def _update(
        self,
        task_id: Task | str,
        store: str | None,
        changes: dict[str, Any],
        also: Callable[[Task], None] | None = None,
    ) -> Task:
        """Apply ``changes`` (and ``also``, for what is not an option) to the stored task,
        compare-and-set, read again and retried when another writer came first."""

        def change(task: Task, alias: str | None) -> bool:
            task._modify(**changes)
            if also is not None:
                also(task)
            self._resolve_naive(task)
            if alias is not None and {"executor", "fn", "args", "kwargs"} & changes.keys():
                self._check_executor(task)
            return True

        task, alias = await self._compare_and_set(self._task_id(task_id), store, change)
        if alias is not None:
            self._dispatch(ev.TaskEvent(ev.TASK_MODIFIED, task.id, alias))
            self._wakeup_if_sooner(task.next_run_time)
        return task

    async def _compare_and_set(
        self,
        task_id: str,
        store: str | None,
        change: Callable[[Task, str | None], bool],
        first: tuple[Task, str | None] | None = None,
    ) -> tuple[Task, str | None]:
        """Read the task (``first`` on the first attempt), let ``change`` alter it and store
        it (``update_task``: a compare-and-set in a coordinated store). When another writer
        came first (a node's pass, an operator), read, change and store again, at most
        :data:`WRITE_ATTEMPTS` times (the last StaleTaskError propagates). ``change`` returns
        ``False`` to keep the task unwritten, as a pending one (alias ``None``) always is."""
        for attempt in range(WRITE_ATTEMPTS):
            if first is None or attempt:
                first = await self._find(task_id, store)
            task, alias = first
            if not change(task, alias) or alias is None:
                return task, alias
            target = self.lookup_store(alias)
            try:
                await call(target, target.update_task(task))
            except StaleTaskError:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
                continue
            return task, alias
        raise AssertionError("unreachable")  # pragma: no cover

    def update_task(self, task_id: Task | str, store: str | None = None, **changes: Any) -> Task:
        """Change options of a task, by id or by object (``coalesce=False`` ...)."""
        return self._block_on(self.update_task_async(task_id, store, **changes))

    async def reschedule_task_async(
        self,
        task_id: Task | str,
        store: str | None = None,
        trigger: BaseTrigger | str | None = None,
        **trigger_args: Any,
    ) -> Task:
        from asyncz.triggers import create_trigger

        new_trigger = create_trigger(trigger, **trigger_args)
        now = datetime.now(utc)
        next_time = new_trigger.get_next_trigger_time(self.trigger_timezone, None, now)
        task_id = self._task_id(task_id)
        _, alias = await self._find(task_id, store)
        if alias is None:
            return await self.update_task_async(task_id, store, trigger=new_trigger)
        return await self.update_task_async(
            task_id, store, trigger=new_trigger, next_run_time=next_time
        )

    def reschedule_task(
        self,
        task_id: Task | str,
        store: str | None = None,
        trigger: BaseTrigger | str | None = None,
        **trigger_args: Any,
    ) -> Task:
        """Give a task a new trigger (instance, or alias plus options) and next run time."""
        return self._block_on(self.reschedule_task_async(task_id, store, trigger, **trigger_args))

    async def pause_task_async(
        self, task_id: Task | str, store: str | None = None, *, note: str | None = None
    ) -> Task:
        if note is not None and not isinstance(note, str):
            raise TypeError(f"note must be a string, not {note!r}")
        now = datetime.now(utc)

        def noted(task: Task) -> None:
            task.pause_note = note
            task.paused_at = now

        task = await self._update(task_id, store, {"next_run_time": None}, noted)
        if task._submitted:
            self._runs.note(task, task.store_alias, "paused", note)
        return task

    def pause_task(
        self, task_id: Task | str, store: str | None = None, *, note: str | None = None
    ) -> Task:
        """Pause a task: it stays in its store with no next run time. ``note`` (why, who)
        is kept with the time in the task (``TaskInfo.pause_note`` / ``paused_at``) and in
        a ``paused`` history record. Runs the task owed (retries) are dropped."""
        return self._block_on(self.pause_task_async(task_id, store, note=note))

    async def resume_task_async(self, task_id: Task | str, store: str | None = None) -> Task | None:
        task_id = self._task_id(task_id)
        task, alias = await self._find(task_id, store)
        if alias is None:
            task.next_run_time = UNSET
            return task
        now = datetime.now(utc)
        trigger = task.trigger
        next_time = (
            trigger.get_next_trigger_time(self.trigger_timezone, None, now) if trigger else None
        )
        if next_time is None:
            await self.delete_task_async(task_id, alias)
            return None
        return await self._update(task_id, alias, {"next_run_time": next_time}, _unnoted)

    def resume_task(self, task_id: Task | str, store: str | None = None) -> Task | None:
        """Resume a paused task; one whose trigger has no fire time left is removed."""
        return self._block_on(self.resume_task_async(task_id, store))

    async def delete_task_async(self, task_id: Task | str, store: str | None = None) -> None:
        label = task_label(task_id) if isinstance(task_id, Task) else TaskLabel(task_id, None)
        task_id = self._task_id(task_id)
        with self._lock:
            task = self._pending.get(task_id)
            if task is not None and (store is None or task.store_alias == store):
                del self._pending[task_id]
                self.logger.info("Removed pending task %s", task_label(task))
                self._dispatch(ev.TaskEvent(ev.TASK_REMOVED, task_id, None))
                return
        if not self.running:
            raise TaskLookupError(task_id, store)
        aliases = [store] if store is not None else list(self._stores)
        for alias in aliases:
            target = self.lookup_store(alias)
            try:
                await call(target, target.delete_task(task_id))
            except TaskLookupError:
                continue
            self.logger.info("Removed task %s from store %r", label, alias)
            self._dispatch(ev.TaskEvent(ev.TASK_REMOVED, task_id, alias))
            return
        raise TaskLookupError(task_id, store)

    def delete_task(self, task_id: Task | str, store: str | None = None) -> None:
        """Remove a task; :class:`~asyncz.exceptions.TaskLookupError` when there is none."""
        self._block_on(self.delete_task_async(task_id, store))

    async def remove_all_tasks_async(self, store: str | None = None) -> None:
        with self._lock:
            self._pending = {
                i: t
                for i, t in self._pending.items()
                if store is not None and t.store_alias != store
            }
        if self.running:
            aliases = [store] if store is not None else list(self._stores)
            for alias in aliases:
                target = self.lookup_store(alias)
                await call(target, target.remove_all_tasks())
        self._dispatch(ev.SchedulerEvent(ev.ALL_TASKS_REMOVED, store))

    def remove_all_tasks(self, store: str | None = None) -> None:
        """Remove every task of ``store``, or of all stores when omitted."""
        self._block_on(self.remove_all_tasks_async(store))

    # =====================================================================================
    # running a task now
    # =====================================================================================
    async def run_task_async(
        self,
        task_id: Task | str,
        store: str | None = None,
        *,
        force: bool = True,
        remove_finished: bool = True,
    ) -> Task | None:
        task_id = self._task_id(task_id)
        if not self.running:
            raise SchedulerNotRunningError("running a task")
        task, alias = await self._find(task_id, store)
        if alias is None:  # pragma: no cover - pending tasks exist only while stopped
            raise SchedulerNotRunningError("running a task")
        if not force and task.next_run_time is None:
            raise ValueError(f"Task {task_id!r} is paused; pass force=True to run it anyway")
        now = datetime.now(utc)
        finished = False

        def change(task: Task, alias: str | None) -> bool:
            nonlocal now, finished
            now = datetime.now(utc)
            trigger = task.trigger
            # The manual run counts as a fire at ``now``: the next run is the trigger's first
            # fire time after it, whatever next run time was stored before.
            next_time = (
                trigger.get_next_trigger_time(self.trigger_timezone, now, now) if trigger else None
            )
            finished = next_time is None and remove_finished
            if not finished and task.next_run_time is not None:  # a paused one stays paused
                task.next_run_time = next_time
            return not finished

        # Stored first: in a shared store, a refused write (another node advanced the task
        # meanwhile) is retried from the fresh state before anything runs.
        task, _ = await self._compare_and_set(task_id, alias, change, (task, alias))
        if finished:
            target = self.lookup_store(alias)
            await call(target, target.delete_task(task_id))
            self._submit(task, alias, [now], "manual", 0)
            self._dispatch(ev.TaskEvent(ev.TASK_REMOVED, task_id, alias))
            return None
        self._submit(task, alias, [now], "manual", 0)
        self._dispatch(ev.TaskEvent(ev.TASK_MODIFIED, task_id, alias))
        self._wakeup_if_sooner(task.next_run_time)
        return task

    def run_task(
        self,
        task_id: Task | str,
        store: str | None = None,
        *,
        force: bool = True,
        remove_finished: bool = True,
    ) -> Task | None:
        """Run a task now through its executor (an operator's "run now").

        Dispatches ``TASK_SUBMITTED`` (source ``"manual"``) or ``TASK_MAX_INSTANCES``, then
        recomputes and stores the next run time. When the trigger has no fire time left, the
        task is removed (``remove_finished=True``) or kept paused. ``force=False`` refuses to
        run a paused task. Returns the task, or ``None`` when it was removed.
        """
        return self._block_on(
            self.run_task_async(task_id, store, force=force, remove_finished=remove_finished)
        )

    # =====================================================================================
    # inspection
    # =====================================================================================
    async def get_task_info_async(self, task_id: str, store: str | None = None) -> TaskInfo | None:
        task = await self.get_task_async(task_id, store)
        if task is None:
            return None
        return (await self._with_last_runs([self._with_runs(task.snapshot())]))[0]

    def _with_runs(self, info: TaskInfo) -> TaskInfo:
        """``info`` with the runs of the task in progress in this scheduler."""
        executor = self._executors.get(info.executor) if info.executor else None
        if executor is None or not executor.running_instances(info.id):
            return info
        return dataclasses.replace(
            info,
            running=executor.running_instances(info.id),
            running_since=executor.running_since(info.id),
        )

    def get_task_info(self, task_id: str, store: str | None = None) -> TaskInfo | None:
        """An immutable snapshot of one task, or ``None``."""
        return self._block_on(self.get_task_info_async(task_id, store))

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
    ) -> list[TaskInfo]:
        if sort_by not in _SORT_KEYS:
            raise ValueError(f"Cannot sort by {sort_by!r}; valid keys: {', '.join(_SORT_KEYS)}")
        state: ScheduleState | None = None
        if schedule_state is not None:
            try:
                state = ScheduleState(schedule_state)
            except ValueError:
                valid = ", ".join(s.value for s in ScheduleState)
                raise ValueError(
                    f"Unknown schedule_state {schedule_state!r}; valid states: {valid}"
                ) from None
        tasks, broken = await self._listing(store)
        infos = await self._with_last_runs([self._with_runs(task.snapshot()) for task in tasks])
        infos.extend(broken)
        needle = q.lower() if q else None
        selected = [
            info
            for info in infos
            if (state is None or info.schedule_state is state)
            and (executor is None or info.executor == executor)
            and (trigger is None or trigger in (info.trigger_alias, info.trigger_name))
            and (needle is None or needle in info.search_text())
        ]
        selected.sort(key=lambda info: sort_value(info, sort_by), reverse=descending)
        return selected

    def get_task_infos(
        self,
        store: str | None = None,
        *,
        schedule_state: ScheduleState | str | None = None,
        executor: str | None = None,
        trigger: str | None = None,
        q: str | None = None,
        sort_by: str = "next_run_time",
        descending: bool = False,
    ) -> list[TaskInfo]:
        """Snapshots of the tasks, filtered and sorted (see the Schedulers page)."""
        return self._block_on(
            self.get_task_infos_async(
                store,
                schedule_state=schedule_state,
                executor=executor,
                trigger=trigger,
                q=q,
                sort_by=sort_by,
                descending=descending,
            )
        )

    def preview_task_runs(
        self,
        task_id: str,
        *positional: int | str | None,
        count: int = 5,
        store: str | None = None,
        now: datetime | None = None,
    ) -> RunPreview:
        """The next ``count`` run times of a task, computed from its trigger (nothing runs).

        ``preview_task_runs(task_id, count, store)``, or in Asyncz's order
        ``preview_task_runs(task_id, store, count=...)``: a positional number is the count,
        a positional string the store. Returns a list that also has ``.run_times``
        (Asyncz's name). ``now``: preview as of that time instead of the current one.
        """
        if len(positional) > 2:
            raise TypeError("preview_task_runs() takes task_id, count and store")
        for value in positional:
            if isinstance(value, int) and not isinstance(value, bool):
                count = value
            elif value is None or isinstance(value, str):
                store = value
            else:
                raise TypeError(f"expected a count or a store alias, not {value!r}")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"count must be a number of runs >= 0, not {count!r}")
        task = self.get_task(task_id, store)
        if task is None:
            raise TaskLookupError(task_id, store)
        if now is None:
            now = datetime.now(utc)
        elif now.tzinfo is None:
            from asyncz.timeutil import localize

            now = localize(now, self.timezone)
        return RunPreview.of(task, count, now, self.trigger_timezone)

    async def get_nodes_async(self, store: str | None = None) -> list[NodeInfo]:
        if not self.running:
            raise SchedulerNotRunningError("listing nodes")
        return await self._coordinator.get_nodes(store)

    def get_nodes(self, store: str | None = None) -> list[NodeInfo]:
        """The schedulers (nodes) recorded in ``store``, or in every store: alive, dead
        (heartbeat older than its lease) or stopped, by identity. A store not shared between
        processes knows only this node."""
        return self._block_on(self.get_nodes_async(store))

    def get_scheduler_info(self) -> SchedulerInfo:
        """State, zone, components and task counts: for health checks and dashboards.

        A :class:`~asyncz.schedulers.inspection.SchedulerInfo`: ``info.state`` or
        ``info["state"]``.
        """
        infos = self.get_task_infos()
        counts = {state.value: 0 for state in ScheduleState}
        for info in infos:
            counts[info.schedule_state.value] += 1
        state = self._state.name.removeprefix("STATE_").lower()
        started = self._started_at if self.running else None
        return SchedulerInfo(
            {
                "identity": self.identity,
                "state": state,
                "state_label": state,
                "running": self.running,
                "started_at": started,
                "uptime_seconds": (
                    max(0.0, (datetime.now(utc) - started).total_seconds()) if started else None
                ),
                "timezone": str(self.timezone),
                "stores": {alias: type(s).__name__ for alias, s in self._stores.items()},
                "store_status": store_status(self._stores, self._processor.outages),
                "executors": {alias: type(e).__name__ for alias, e in self._executors.items()},
                "store_aliases": tuple(sorted(self._stores)),
                "executor_aliases": tuple(sorted(self._executors)),
                "tasks": len(infos),
                "task_count": len(infos),
                "tasks_by_state": counts,
                "scheduled_task_count": counts[ScheduleState.SCHEDULED.value],
                "paused_task_count": counts[ScheduleState.PAUSED.value],
                "pending_task_count": counts[ScheduleState.PENDING.value],
                "next_wakeup": self._processor.next_wakeup,
                "startup_delay": self.startup_delay,
            }
        )


def _unnoted(task: Task) -> None:
    task.pause_note = None
    task.paused_at = None
