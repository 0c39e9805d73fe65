"""Stores: where tasks live between runs (the interface is :class:`asyncz.abc.Store`).

Data path: the scheduler starts a store with ``start(scheduler, alias)``, then reaches it
only through :func:`call`; tasks a store restores go back bound to the scheduler
(``scheduler.bind_task``), unrestorable ones are reported with
:meth:`PersistentStore.report_unrestorable`.

A store is asynchronous. It either never suspends (``io_loop is None``: the in-memory store,
whose methods complete in one step and may be driven without an event loop) or it does
network I/O (``uses_io_loop = True``): the scheduler then gives it its I/O loop
(``io_loop``, see :func:`attach_io_loop`) before ``start()``, on a thread the scheduler
owns and shares between such stores and its synchronous API, and takes it back after
``shutdown()``. A plugin writes plain async methods and never manages a loop or a thread.
The scheduler reaches a store only through :func:`call` (from a coroutine on any loop, or
driven inline without one); its synchronous API runs those coroutines inline, on the
store's ``io_loop`` or on the portal of the scheduler, so that it works from any
thread, even from inside a coroutine on the scheduler's own loop, without deadlock.
:func:`call_sync` is for code that drives a store without a scheduler (tests, benchmarks,
scripts). :func:`call` bounds every call by ``call_timeout`` seconds
(``asyncz.store_timeout``): a frozen server is reported as :class:`StoreTimeoutError`.

A store written with plain synchronous methods (as custom stores for Asyncz are) works too:
:meth:`BaseStore.__init_subclass__` wraps each synchronous method of the contract in a
coroutine and gives the store a worker thread of its own as ``io_loop``, so the methods run
there, one at a time, never on the scheduler's loop (:mod:`asyncz.stores._plain`).
``get_due_tasks(now)`` without ``limit`` is accepted (synchronous or not); the scheduler then
takes at most ``limit`` of its result.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import (
    Awaitable,
    Callable,
    Collection,
    Coroutine,
    Generator,
    Iterable,
    Sequence,
)
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from asyncz.abc import Store, TaskPage
from asyncz.exceptions import (
    ConflictingIdError,
    StoreTimeoutError,
    StoreUnavailableError,
    TaskLookupError,
    TaskRestoreError,
)
from asyncz.stores._loops import LoopThread
from asyncz.stores._plain import (
    CONTRACT,
    add_limit,
    run_sync_method,
    stopping_worker,
    takes_limit,
    worker_loop,
)

if TYPE_CHECKING:
    from datetime import datetime

    from asyncz.abc import SchedulerHandle
    from asyncz.nodes import NodeInfo
    from asyncz.stores._history import RunRing
    from asyncz.tasks import Task
    from asyncz.tasks.runs import RunRecord

__all__ = [
    "BaseStore",
    "LoopThread",
    "PersistentStore",
    "attach_io_loop",
    "call",
    "call_sync",
    "detach_io_loop",
    "is_finished",
    "run_inline",
    "unavailable",
]

T = TypeVar("T")

#: What a timed-out wait raises: on Python 3.10 ``asyncio.TimeoutError`` is not yet the
#: builtin ``TimeoutError``.
_TIMEOUTS = (TimeoutError, asyncio.TimeoutError)


class _Done:
    """An awaitable that is already finished, and harmless to drop."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return
        yield  # makes this a generator that returns at once


_DONE = _Done()


def _coroutine(awaitable: Awaitable[T]) -> Coroutine[Any, Any, T]:
    if inspect.iscoroutine(awaitable):
        return awaitable

    async def wait() -> T:
        return await awaitable

    return wait()


def is_finished(task: Task) -> bool:
    """Whether :meth:`~asyncz.abc.Store.release_tasks` must delete ``task``: it has no next
    run time and is not paused (a paused task that a node ran on request is written back,
    still paused)."""
    return task.next_run_time is None and task.paused_at is None


class BaseStore(Store):
    """Base class of every store; the interface, method by method, is
    :class:`asyncz.abc.Store`.

    Contract (checked by the suite in :mod:`asyncz.testing`):

    * ``add_task`` raises :class:`ConflictingIdError` when the id exists;
      ``update_task`` and ``delete_task`` raise :class:`TaskLookupError` when it does not.
    * ``get_due_tasks(now, limit)`` returns tasks whose next run time is ``<= now``, ordered
      by next run time, at most ``limit`` of them; paused tasks (no next run time) never.
    * ``get_next_run_time()`` is the earliest next run time of a non-paused task, or None.
    * ``get_all_tasks()`` returns every task ordered by next run time, paused ones last.
    * Tasks returned by a store have ``store_alias`` set to the store's alias.
    """

    #: The loop the store's I/O runs on; ``None`` for stores whose methods never suspend.
    io_loop: asyncio.AbstractEventLoop | None = None
    #: ``True`` for a store that does network I/O: the scheduler sets :attr:`io_loop` before
    #: :meth:`start` (see :func:`attach_io_loop`) and clears it after :meth:`shutdown`.
    uses_io_loop: ClassVar[bool] = False
    #: The store's kind in messages (its alias, ``"redis"``); the class name when empty.
    kind: ClassVar[str] = ""
    #: The driver's exceptions that mean "the server cannot be reached": :meth:`start`
    #: failing with one of them (or an :class:`OSError`) is reported as
    #: :class:`~asyncz.exceptions.StoreUnavailableError`.
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = ()
    #: Seconds one call may take before :func:`call` gives up with
    #: :class:`~asyncz.exceptions.StoreTimeoutError` (``asyncz.store_timeout``, set by the
    #: scheduler); ``None``: no limit.
    call_timeout: float | None = None
    #: Seconds between passes even when nothing is due, for stores that other processes
    #: change (so their additions are seen); ``None``: only the store's own changes matter.
    poll_interval: float | None = None

    #: ``True`` for a store that several processes share and that implements claims under a
    #: lease, fenced write-backs, compare-and-set updates and node records in its backend
    #: (see :class:`asyncz.abc.Store`, "coordination"). The scheduler then claims due tasks
    #: with :meth:`acquire_due_tasks`, writes them back with :meth:`release_tasks` *before*
    #: it submits their runs, and heartbeats. ``False``: the store is private to one process
    #: and those methods are the plain ones below, built on the rest of the contract.
    coordinated: ClassVar[bool] = False

    #: ``True`` for a store that keeps run history in its backend (it survives a restart and
    #: is shared by the nodes); ``False``: the records are kept in a bounded ring in this
    #: store instance's memory (:mod:`asyncz.stores._history`), which is what the methods
    #: ``add_runs`` ... ``prune_runs`` below do.
    keeps_history: ClassVar[bool] = False

    #: Names of the contract methods this class implements as plain (synchronous) functions;
    #: they run on the store's worker thread (see the module documentation).
    _sync_methods: frozenset[str] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        adapted = set(cls._sync_methods)
        for name in CONTRACT:
            fn = cls.__dict__.get(name)
            if fn is None or not inspect.isfunction(fn):
                continue
            if not inspect.iscoroutinefunction(fn):
                setattr(cls, name, run_sync_method(name, fn))
                adapted.add(name)
            elif name == "get_due_tasks" and not takes_limit(fn):
                setattr(cls, name, add_limit(fn))
        if adapted:
            cls._sync_methods = frozenset(adapted)
            if inspect.getattr_static(cls, "io_loop", None) is None:
                cls.io_loop = property(worker_loop)  # type: ignore[assignment]
            if not getattr(cls.shutdown, "__asyncz_stops_worker__", False):
                cls.shutdown = stopping_worker(cls.shutdown)  # type: ignore[method-assign]

    def __init__(self, **options: Any) -> None:
        if options:
            key = next(iter(options))
            raise TypeError(f"{type(self).__name__} got an unexpected option {key!r}")
        self.alias: str | None = None
        self.scheduler: SchedulerHandle | None = None
        self.logger = logging.getLogger("asyncz.stores")

    def start(self, scheduler: SchedulerHandle, alias: str) -> Awaitable[None]:
        """Called when the scheduler starts (or the store is added to a running one).

        Takes effect at once and returns a finished awaitable: an ``async def start``
        awaits ``super().start(...)``, a plain one (Asyncz's style) just calls it.
        """
        self.scheduler = scheduler
        self.alias = alias
        self.logger = scheduler.loggers[f"asyncz.stores.{alias}"]
        return _DONE

    def shutdown(self) -> Awaitable[None]:
        """Release resources (connections, threads). Called when the scheduler stops.

        Returns a finished awaitable, like :meth:`start`.
        """
        return _DONE

    def address(self) -> str | None:
        """Where the store's data lives, for messages (``redis://host:6379/0``), without any
        password; ``None`` when there is nothing to say."""
        return None

    def address_options(self) -> tuple[str, ...]:
        """The store options that set :meth:`address` (``("url",)``), named in errors."""
        return ()

    def status(self) -> dict[str, Any]:
        """Problems the store noticed by itself, for inspection (e.g. ``{"wiped_at": ...}``);
        empty when there are none."""
        return {}

    def _bind(self, task: Task) -> Task:
        """Hand a task that came out of this store to the scheduler, which binds it
        (:meth:`asyncz.abc.SchedulerHandle.bind_task`); without one, set its alias."""
        alias = self.alias or "default"
        if self.scheduler is not None:
            return self.scheduler.bind_task(task, alias)
        task.store_alias = alias
        return task

    def add_task_sync(self, task: Task) -> bool:
        """Store a new task from synchronous code, on the calling thread; ``False`` if the
        store has no synchronous path (then the scheduler awaits :meth:`add_task` on
        ``io_loop``).

        A network store whose driver has a synchronous client overrides this, so that a
        synchronous ``add_task`` costs one round trip instead of a thread hop to the store's
        loop and back on top of it. Same contract as :meth:`add_task`: it must be safe to
        call from any thread, and raise :class:`ConflictingIdError` when the id exists.
        """
        return False

    async def get_unrestorable(self) -> dict[str, str]:
        """Ids of stored tasks that cannot be restored, with the reason (kept, not deleted)."""
        return {}

    async def get_task_page(self, cursor: str | None, limit: int) -> TaskPage:
        """Everything in one page; a store that can page overrides it (see the contract)."""
        return TaskPage(list(await self.get_all_tasks()), await self.get_unrestorable(), None)

    async def add_tasks(self, tasks: Sequence[Task], replace_existing: bool = False) -> None:
        """Store many tasks (one round trip where the backend allows it).

        With ``replace_existing`` a task whose id exists replaces it; otherwise the first
        conflicting id raises :class:`ConflictingIdError` (tasks before it are stored).
        """
        for task in tasks:
            try:
                await self.add_task(task)
            except ConflictingIdError:
                if not replace_existing:
                    raise
                await self.update_task(task)

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        """Write back many tasks after a processing pass (one round trip where possible)."""
        for task in tasks:
            try:
                await self.update_task(task)
            except TaskLookupError:
                # Deleted while it was being processed: nothing to write back.
                pass

    async def delete_tasks(self, task_ids: Iterable[str]) -> None:
        """Remove many tasks; ids that are already gone are ignored."""
        for task_id in task_ids:
            try:
                await self.delete_task(task_id)
            except TaskLookupError:
                pass

    # -- coordination, for a store one process owns ------------------------------------------
    # A coordinated store overrides all five with its backend's primitives.
    async def acquire_due_tasks(
        self, node: str, now: datetime, lease: float, limit: int
    ) -> list[Task]:
        """The due tasks (:meth:`get_due_tasks`): nobody else claims in a private store."""
        due = await self.get_due_tasks(now, limit)
        return due if len(due) <= limit else list(due)[:limit]

    async def release_tasks(self, node: str, tasks: Sequence[Task]) -> list[Task]:
        """Write every task back (:meth:`update_tasks`, finished ones :meth:`delete_tasks`)."""
        keep = [task for task in tasks if not is_finished(task)]
        if keep:
            await self.update_tasks(keep)
        if len(keep) < len(tasks):
            await self.delete_tasks([task.id for task in tasks if is_finished(task)])
        return list(tasks)

    def _node_records(self) -> dict[str, NodeInfo]:
        records: dict[str, NodeInfo] | None = self.__dict__.get("_asyncz_nodes")
        if records is None:
            records = self.__dict__["_asyncz_nodes"] = {}
        return records

    async def heartbeat(self, node: NodeInfo, extend_claims: bool = True) -> None:
        """Keep the record in memory (nobody else reads it)."""
        records = self._node_records()
        records[node.identity] = node
        for identity in [i for i, n in records.items() if n.expired_for(node.last_heartbeat)]:
            del records[identity]

    async def remove_node(self, node: NodeInfo) -> None:
        self._node_records()[node.identity] = node

    async def get_nodes(self) -> list[NodeInfo]:
        records = self._node_records()
        return [records[identity] for identity in sorted(records)]

    # -- run history, kept in memory ------------------------------------------------------------
    # A store that keeps history in its backend overrides all four (and keeps_history = True).
    def _run_ring(self) -> RunRing:
        ring: RunRing | None = self.__dict__.get("_asyncz_runs")
        if ring is None:
            from asyncz.stores._history import RunRing

            ring = self.__dict__["_asyncz_runs"] = RunRing()
        return ring

    async def add_runs(self, records: Sequence[RunRecord]) -> None:
        self._run_ring().add(records)

    def add_raw_runs(
        self,
        items: Collection[RunRecord | tuple[Any, ...]],
        build: Callable[[tuple[Any, ...]], RunRecord],
    ) -> bool:
        """The history recorder's fast path into the in-memory ring: keep ``items``
        (records, and raw tuples that ``build`` turns into records when first read), without
        building the records nobody reads. Returns False, keeping nothing, for a store that
        takes records only through :meth:`add_runs` (it overrides it, or runs its I/O on
        another loop): the recorder then builds them and calls :meth:`add_runs`."""
        if (
            type(self).add_runs is not BaseStore.add_runs
            or self.io_loop is not None
            or self.uses_io_loop
        ):
            return False
        self._run_ring().add_raw(items, build)
        return True

    async def get_runs(
        self,
        task_id: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        outcome: str | Sequence[str] | None = None,
    ) -> list[RunRecord]:
        return self._run_ring().get(task_id, limit, since, outcome)

    async def get_last_runs(
        self, task_ids: Sequence[str], outcomes: Sequence[str]
    ) -> dict[str, RunRecord]:
        return self._run_ring().last(task_ids, outcomes)

    async def prune_runs(self, now: datetime, max_age: float, max_per_task: int) -> None:
        self._run_ring().prune(now, max_age, max_per_task)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} alias={self.alias!r}>"


class PersistentStore(BaseStore):
    """Base of stores that keep serialized tasks outside the process.

    ``serializer`` is a :class:`~asyncz.serializers.base.BaseSerializer`, an alias
    (``"json"``, the default, or ``"pickle"``) or ``None``. :meth:`encode_task` and
    :meth:`decode_task` are the only way tasks cross the boundary; a payload that cannot be
    restored raises :class:`TaskRestoreError` from :meth:`decode_task`, and the store must
    keep it, exclude it from due queries and report it once with
    :meth:`report_unrestorable`.
    """

    def __init__(self, serializer: Any = None, **options: Any) -> None:
        super().__init__(**options)
        from asyncz.registry import resolve
        from asyncz.serializers.base import BaseSerializer

        if serializer is None:
            serializer = "json"
        if isinstance(serializer, str):
            serializer = resolve("serializer", serializer)()
        if not isinstance(serializer, BaseSerializer):
            raise TypeError(f"serializer must be a BaseSerializer or an alias, not {serializer!r}")
        self.serializer: BaseSerializer = serializer
        self._reported: set[tuple[str, str]] = set()

    def encode_task(self, task: Task) -> bytes:
        return self.serializer.dumps(task.__getstate__())

    def decode_task(self, task_id: str, payload: bytes) -> Task:
        """Restore a task; :class:`TaskRestoreError` (naming the id and reason) if it cannot."""
        from asyncz.tasks import Task

        try:
            state = self.serializer.loads(payload)
            task = Task.__new__(Task)
            task.__setstate__(state)
        except Exception as exc:
            raise TaskRestoreError(task_id, f"{type(exc).__name__}: {exc}") from exc
        return self._bind(task)

    def report_unrestorable(self, task_id: str, reason: str) -> None:
        """Log and dispatch ``TASK_RESTORE_FAILED`` once per (task, reason)."""
        key = (task_id, reason)
        if key in self._reported:
            return
        self._reported.add(key)
        self.logger.error(
            "Stored task %r cannot be restored and is kept in store %r: %s",
            task_id,
            self.alias,
            reason,
        )
        if self.scheduler is not None:
            self.scheduler.report_unrestorable(task_id, self.alias, reason)

    def report_wiped(self, detail: str) -> None:
        """Report that the backend lost the store's data (call once per loss): an error log
        line and ``STORE_WIPED``; :meth:`status` should say so from then on."""
        self.logger.error("Store %r lost its data: %s", self.alias, detail)
        if self.scheduler is not None:
            self.scheduler.report_wiped(self.alias, detail)


def _kind(store: BaseStore) -> str:
    return store.kind or type(store).__name__


def _setting(store: BaseStore) -> str | None:
    scheduler = store.scheduler
    prefix = scheduler.prefix if scheduler is not None else "asyncz."
    options = store.address_options()
    if not options:
        return None
    base = f"{prefix}stores.{store.alias or 'default'}"
    return " / ".join(f"{base}.{option}" for option in options)


#: Characters of a driver's error message quoted in a StoreUnavailableError.
_REASON_LIMIT = 200


def unavailable(store: BaseStore, cause: BaseException) -> StoreUnavailableError:
    """The :class:`StoreUnavailableError` that reports ``cause`` for ``store`` (raise it
    ``from cause``)."""
    if isinstance(cause, StoreUnavailableError):
        return cause
    reason = f"{type(cause).__name__}: {cause}".strip().rstrip(":")
    reason = " ".join(reason.split())  # one line, whatever the driver wrote
    if len(reason) > _REASON_LIMIT:  # the whole text stays in the chained cause
        reason = reason[: _REASON_LIMIT - 3].rstrip() + "..."
    return StoreUnavailableError(
        store.alias, _kind(store), store.address(), _setting(store), reason
    )


def _timed_out(store: BaseStore, coro: Coroutine[Any, Any, Any], timeout: float) -> Exception:
    scheduler = store.scheduler
    prefix = scheduler.prefix if scheduler is not None else "asyncz."
    operation = getattr(coro, "__qualname__", None) or getattr(coro, "__name__", "a call")
    operation = str(operation).rsplit(".", 1)[-1] + "()"
    return StoreTimeoutError(
        store.alias,
        _kind(store),
        store.address(),
        operation,
        timeout,
        setting=f"{prefix}store_timeout",
    )


def attach_io_loop(store: BaseStore, loop: asyncio.AbstractEventLoop) -> bool:
    """Give a store that does I/O (``uses_io_loop``) its I/O loop, unless it has one.

    Called by the scheduler before :meth:`BaseStore.start`; a test harness that drives a
    store by itself does the same. ``True`` when the loop was given (then
    :func:`detach_io_loop` takes it back after the store's shutdown).
    """
    if not store.uses_io_loop or store.io_loop is not None:
        return False
    store.io_loop = loop
    return True


_standalone: LoopThread | None = None
_standalone_lock = threading.Lock()


def _standalone_io_loop(store: BaseStore) -> asyncio.AbstractEventLoop:
    """A store that does I/O, used without a scheduler (a script, a test): it gets the
    process's shared standalone I/O loop (one daemon thread, started on first use)."""
    global _standalone
    with _standalone_lock:
        if _standalone is None:
            _standalone = LoopThread("asyncz-io-standalone")
        loop = _standalone.start()
    attach_io_loop(store, loop)
    return loop


def detach_io_loop(store: BaseStore) -> None:
    """Take back the loop :func:`attach_io_loop` gave (after the store's shutdown)."""
    if store.uses_io_loop:
        store.io_loop = None


def run_inline(coro: Awaitable[T]) -> T:
    """Run a coroutine that never suspends to completion, without an event loop."""
    coro = _coroutine(coro)
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coro.close()
    raise RuntimeError(
        "A store without an io_loop suspended; a store that does I/O must run it on its own "
        "loop (set io_loop, e.g. with asyncz.stores.base.LoopThread)"
    )


async def call(store: BaseStore, coro: Awaitable[T]) -> T:
    """Await a store coroutine from any event loop, within the store's ``call_timeout``.

    Driven inline (by :func:`run_inline`, no loop on this thread), a call to a store with
    an I/O loop blocks this thread until the answer, without suspending: nothing else can
    run on a thread without a loop, so blocking it is safe.
    """
    coro = _coroutine(coro)
    loop = store.io_loop
    if loop is None:
        if not store.uses_io_loop:
            return await coro
        loop = _standalone_io_loop(store)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    timeout = store.call_timeout
    if running is loop:
        if timeout is None:
            return await coro
        try:
            return await asyncio.wait_for(coro, timeout)
        except _TIMEOUTS:
            raise _timed_out(store, coro, timeout) from None
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        if running is None:
            return future.result(timeout)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except (*_TIMEOUTS, FutureTimeout):
        future.cancel()  # cancels the coroutine on the store's loop
        raise _timed_out(store, coro, timeout or 0.0) from None


def call_sync(store: BaseStore, coro: Awaitable[T]) -> T:
    """Run a store coroutine from synchronous code on any thread."""
    coro = _coroutine(coro)
    loop = store.io_loop
    if loop is None:
        if not store.uses_io_loop:
            return run_inline(coro)
        loop = _standalone_io_loop(store)
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("call_sync() on the store's own loop would deadlock; await it")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()
