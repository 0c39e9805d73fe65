"""Adding tasks: ``add_task`` / ``add_task_async`` up to the task being in its store.

Data path: the caller's options -> :meth:`AddingMixin._build_task` (a :class:`Task`, defaults
applied) -> pending (scheduler stopped, committed at start) or committed to its store
(:meth:`AddingMixin._add_running` -> the store's ``add_task``) -> :meth:`AddingMixin._committed`
(state, ``TASK_ADDED``, a wake-up when the new task is due before the planned one). Tasks
added before ``start()`` are checked and committed, store by store, when it starts
(:meth:`AddingMixin._commit_all_pending`).

A mixin of :class:`~asyncz.schedulers.base.BaseScheduler`; its methods are typed with
``self``, the class they are mixed into.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

from asyncz import events as ev
from asyncz._util import UNSET, UnsetType
from asyncz.exceptions import ComponentLookupError, ConflictingIdError
from asyncz.schedulers._processing import LOCK_WAIT, Processor
from asyncz.stores.base import call
from asyncz.tasks._fields import DefaultPolicy
from asyncz.tasks.options import ADD_NAMES, fold_aliases, given
from asyncz.tasks.task import Task, task_label
from asyncz.timeutil import localize, utc

if TYPE_CHECKING:
    from asyncz.executors.base import BaseExecutor
    from asyncz.schedulers.base import BaseScheduler
    from asyncz.stores.base import BaseStore
    from asyncz.triggers.base import BaseTrigger

__all__ = ["AddingMixin"]

T = TypeVar("T")


class AddingMixin:
    """``add_task`` and ``add_task_async`` with the steps between them and the store."""

    if TYPE_CHECKING:  # what this mixin uses from BaseScheduler
        _lock: threading.RLock
        _pending: dict[str, Task]
        _executors: dict[str, BaseExecutor]
        logger: logging.Logger
        task_defaults: dict[str, Any]
        trigger_timezone: tzinfo
        _dispatch: Callable[[ev.SchedulerEvent], None]
        _wants: Callable[[int], bool]
        _stores: dict[str, BaseStore]
        _processor: Processor

        @property
        def running(self) -> bool: ...
        def _block_on(self, coro: Coroutine[Any, Any, T], store: BaseStore | None = None) -> T: ...
        def lookup_store(self, alias: str) -> BaseStore: ...
        def _check_executor(self, task: Task) -> None: ...
        def _wakeup_if_sooner(self, when: datetime | None | UnsetType) -> None: ...

    # The run policies of task_defaults as the one object the tasks that keep them share
    # (made on first use: the mixin has no __init__).
    _default_policy: DefaultPolicy | None = None

    def _as_scheduler(self) -> BaseScheduler:
        return self  # type: ignore[return-value]  # the mixin is only used in BaseScheduler

    def _build_task(
        self,
        fn_or_task: Any,
        trigger: BaseTrigger | str | None,
        options: dict[str, Any],
        trigger_args: dict[str, Any],
    ) -> Task:
        if isinstance(fn_or_task, Task):
            task = fn_or_task
            if task._submitted or task._scheduler is not None:
                raise ValueError(f"Task {task.id!r} was already submitted; a task is added once")
            if task.fn is None:
                raise TypeError("A task without a callable can only be used as a decorator")
            changes = given(fold_aliases(dict(options)))
            changes.pop("replace_existing", None)
            if trigger is not None or trigger_args:
                from asyncz.triggers import create_trigger

                changes["trigger"] = create_trigger(trigger, **trigger_args)
            if changes:
                task._modify(**changes)
            if options.get("replace_existing"):
                task.replace_existing = True
        else:
            # The Task reads each option as the table says (None: not given, aliases).
            task = Task(
                fn_or_task,
                trigger=trigger,
                scheduler=self._as_scheduler(),
                **options,
                **trigger_args,
            )
        task._scheduler = self._as_scheduler()
        self._apply_defaults(task)
        return task

    def _apply_defaults(self, task: Task) -> None:
        """A trigger (run once, now) and the ``task_defaults`` for what the task left unset."""
        if task.trigger is None:
            from asyncz.triggers import create_trigger

            task.trigger = create_trigger(None)
        self._resolve_naive(task)
        defaults = self.task_defaults
        policies = self._default_policy
        if policies is None:
            policies = self._default_policy = DefaultPolicy()
        task._take_defaults(defaults, policies.of(defaults))

    def _resolve_naive(self, task: Task) -> None:
        """Read a naive ``next_run_time`` as wall time in the zone of the task's trigger: the
        trigger's own ``timezone``, else the scheduler's trigger zone (as triggers read their
        naive ``run_at`` / ``start_at`` / ``end_at``)."""
        when = task.next_run_time
        if isinstance(when, datetime) and when.tzinfo is None:
            zone = getattr(task.trigger, "timezone", None)
            task.next_run_time = localize(
                when, zone if isinstance(zone, tzinfo) else self.trigger_timezone
            )

    def add_task(
        self,
        fn_or_task: Callable[..., Any] | Task | str | None = None,
        trigger: BaseTrigger | str | None = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        id: str | None = None,
        name: str | None = None,
        mistrigger_grace_time: float | None | UnsetType = UNSET,
        coalesce: bool | UnsetType = UNSET,
        max_instances: int | UnsetType = UNSET,
        next_run_time: datetime | None | UnsetType = UNSET,
        store: str | None = None,
        executor: str | None = None,
        replace_existing: bool = False,
        fn: Callable[..., Any] | str | None = None,
        misfire_grace_time: float | None | UnsetType = UNSET,
        tags: Iterable[str] | None = None,
        timeout: float | None | UnsetType = UNSET,
        retries: int | UnsetType = UNSET,
        retry_delay: float | UnsetType = UNSET,
        retry_backoff: float | UnsetType = UNSET,
        retry_max_delay: float | None | UnsetType = UNSET,
        retry_jitter: float | UnsetType = UNSET,
        overlap: str | UnsetType = UNSET,
        **trigger_args: Any,
    ) -> Task:
        """Schedule a callable (or a :class:`Task`); without one, return a decorator.

        ``trigger`` is a trigger instance or an alias whose options follow as keyword
        arguments (``add_task(fn, "interval", minutes=2)``). ``next_run_time=None`` adds the
        task paused. Before :meth:`start` the task is pending and is committed to its store
        when the scheduler starts. Returns the :class:`Task`. The run policies (``timeout``,
        ``retries`` and ``retry_*``, ``overlap``) are described in docs/tasks.md.
        """
        if fn_or_task is None:
            fn_or_task = fn
        if fn_or_task is None or isinstance(fn_or_task, Task):
            # Decorator mode, or a task built beforehand: the options as the table names them.
            values = locals()
            options = {name: values[name] for name in ADD_NAMES}
            if fn_or_task is None:
                # A task without a callable; calling it schedules the function.
                return Task(
                    None,
                    trigger=trigger,
                    scheduler=self._as_scheduler(),
                    **given(fold_aliases(options)),
                    **trigger_args,
                )
            return self._add(self._build_task(fn_or_task, trigger, options, trigger_args))
        # The common case: what _build_task does for a callable, without building a mapping of
        # the options first (the Task reads each as the table says), and with the options
        # passed by position (Task._init: __init__'s parameters in order).
        task = Task.__new__(Task)
        task._init(
            fn_or_task,
            id,
            name,
            args,
            kwargs,
            trigger,
            executor,
            store,
            next_run_time,
            coalesce,
            max_instances,
            misfire_grace_time,
            mistrigger_grace_time,
            timeout,
            retries,
            retry_delay,
            retry_backoff,
            retry_max_delay,
            retry_jitter,
            overlap,
            replace_existing,
            self._as_scheduler(),
            tags,
            trigger_args,
        )
        self._apply_defaults(task)
        return self._add(task)

    def _add(self, task: Task) -> Task:
        """Keep a built task pending, or commit it to its store (synchronously)."""
        with self._lock:
            if not self.running:
                self._add_pending(task)
                return task
        store = self.lookup_store(task.store_alias)
        self._ready(task)
        # The store's synchronous path (the memory store's dict insert, a network store's
        # synchronous client) spares the coroutine and any thread hop.
        if not task.replace_existing and store.add_task_sync(task):
            self._committed([task], task.store_alias)
        else:
            self._block_on(self._commit_many([task], task.store_alias), store)
        return task

    async def add_task_async(self, *args: Any, **kwargs: Any) -> Task:
        """Awaitable :meth:`add_task` (for network stores, without blocking the loop)."""
        fn_or_task = args[0] if args else kwargs.pop("fn_or_task", None)
        if fn_or_task is None:
            fn_or_task = kwargs.pop("fn", None)
        if fn_or_task is None:
            raise TypeError("add_task_async() needs a callable or a Task")
        trigger = args[1] if len(args) > 1 else kwargs.pop("trigger", None)
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in ADD_NAMES}
        return await self._add_built(self._build_task(fn_or_task, trigger, options, kwargs))

    async def _add_built(self, task: Task) -> Task:
        """Keep a built task pending (scheduler stopped) or commit it to its store."""
        with self._lock:
            if not self.running:
                self._add_pending(task)
                return task
        return await self._add_running(task)

    def _add_pending(self, task: Task) -> None:
        if task.id in self._pending:
            if not task.replace_existing:
                raise ConflictingIdError(task.id)
            del self._pending[task.id]
        self._pending[task.id] = task
        self.logger.info(
            "Added task %s; it is committed when the scheduler starts", task_label(task)
        )

    def _prepare_commit(self, task: Task, now: datetime) -> None:
        if task.next_run_time is UNSET:
            trigger = task.trigger
            task.next_run_time = (
                trigger.get_next_trigger_time(self.trigger_timezone, None, now) if trigger else None
            )

    # -- tasks added before start() --------------------------------------------------------
    def _check_pending(self) -> None:
        """Before anything starts: every pending task names a store and an executor this
        scheduler has, and that executor can run it."""
        with self._lock:
            pending = list(self._pending.values())
        for task in pending:
            if task.store_alias not in self._stores:
                raise ComponentLookupError(
                    "store", task.store_alias, self._stores, task=task_label(task)
                )
            self._check_executor(task)

    async def _commit_all_pending(self) -> None:
        """At start, once stores and executors are started: commit the pending tasks, store
        by store."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        by_store: dict[str, list[Task]] = {}
        for task in pending:
            by_store.setdefault(task.store_alias, []).append(task)
        for alias, tasks in by_store.items():
            # Under the store's inter-process lock, so that the first run times computed
            # here cannot overwrite a run another process has just processed.
            lock = self._processor.store_lock(alias)
            if lock is not None:
                lock.acquire(LOCK_WAIT)
            try:
                now = datetime.now(utc)
                for task in tasks:
                    self._prepare_commit(task, now)
                await self._commit_pending(tasks, alias)
            finally:
                if lock is not None:
                    lock.release()

    async def _commit_pending(self, tasks: list[Task], alias: str) -> None:
        """Commit the tasks added before start(). An id the store already holds (another
        worker of the same application added it first) keeps the stored task, with a log
        line, unless the pending task says ``replace_existing``."""
        store = self.lookup_store(alias)
        remaining = tasks
        checked: set[str] = set()
        while remaining:
            try:
                await self._commit_many(remaining, alias)
                return
            except ConflictingIdError as exc:
                found = next((i for i, t in enumerate(remaining) if t.id == exc.task_id), None)
                if found is None or remaining[found].replace_existing:
                    raise
                index: int = found
            kept = remaining[index]
            # Tasks before the conflict may or may not have been written (a store's bulk add
            # need not be atomic): writing them again with replace is the same either way.
            head = remaining[:index]
            if head:
                await call(store, store.add_tasks(head, True))
                self._committed(head, alias)
            if kept.id not in checked:
                checked.add(kept.id)
                if await call(store, store.lookup_task(kept.id)) is None:
                    # Not there after all (a store that names the first id of a batch that
                    # lost a race to another worker): try it again, once.
                    remaining = remaining[index:]
                    continue
            kept._submitted = True
            kept.store_alias = alias
            self.logger.info(
                "Task %r is already in store %r: the stored task was kept (add it with "
                "replace_existing=True to replace it)",
                kept.id,
                alias,
            )
            remaining = remaining[index + 1 :]

    def _ready(self, task: Task) -> None:
        """Before a task goes into its store: its executor checks it, and its first run time
        comes from its trigger (unless given)."""
        executor = self._executors.get(task.executor)
        if executor is None or executor.checks_tasks:
            self._check_executor(task)
        self._prepare_commit(task, datetime.now(utc))

    async def _add_running(self, task: Task) -> Task:
        self._ready(task)
        await self._commit_many([task], task.store_alias)
        return task

    async def _commit_many(self, tasks: list[Task], alias: str) -> None:
        store = self.lookup_store(alias)
        if len(tasks) == 1 and not tasks[0].replace_existing:
            await call(store, store.add_task(tasks[0]))
        else:
            replace = [t for t in tasks if t.replace_existing]
            keep = [t for t in tasks if not t.replace_existing]
            if keep:
                await call(store, store.add_tasks(keep, False))
            if replace:
                await call(store, store.add_tasks(replace, True))
        self._committed(tasks, alias)

    def _committed(self, tasks: list[Task], alias: str) -> None:
        """Bookkeeping once tasks are in their store: state, TASK_ADDED, wake-up."""
        soonest: datetime | None = None
        want_event = self._wants(ev.TASK_ADDED)
        for task in tasks:
            task._submitted = True
            task.store_alias = alias
            when = task.next_run_time
            if isinstance(when, datetime) and (soonest is None or when < soonest):
                soonest = when
            if want_event:
                self._dispatch(ev.TaskEvent(ev.TASK_ADDED, task.id, alias))
        if len(tasks) == 1 and self.logger.isEnabledFor(logging.INFO):
            self.logger.info("Added task %s to store %r", task_label(tasks[0]), alias)
        self._wakeup_if_sooner(soonest)
