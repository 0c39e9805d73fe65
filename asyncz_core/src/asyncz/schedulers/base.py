"""The scheduler: owns stores and executors, computes due runs, submits them, reports events.

Data path, each step in one place:

* ``add_task`` (:mod:`asyncz.schedulers._adding`) builds a :class:`~asyncz.tasks.Task` and
  either keeps it *pending* (scheduler not started) or commits it to its store, then wakes the
  processing loop only if the new task is due before the planned wake-up.
* The processing loop (:class:`~asyncz.schedulers._processing.Processor`, which the
  scheduler owns as ``_processor``) sleeps until the earliest next run time of all stores,
  or until woken; each pass fetches due tasks from each store in batches, submits them to
  their executors and writes the new next run times back in one call.
* Executors report each run to :attr:`BaseScheduler.reporter`, the scheduler's
  :class:`~asyncz.schedulers._dispatch.Dispatcher` (listeners, event mask, plugin hooks),
  which dispatches ``TASK_EXECUTED`` / ``TASK_ERROR`` to listeners and plugins.

Management and inspection methods (:mod:`asyncz.schedulers._management`) are written once,
as coroutines (the ``*_async`` twins); the synchronous methods run the same coroutine inline
when every store is in memory, and on a small private loop thread otherwise, so they work from
any thread without deadlock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, TypeVar

from asyncz import events as ev
from asyncz._util import UNSET, UnsetType
from asyncz.exceptions import (
    ComponentLookupError,
    ConfigurationError,
    SchedulerAlreadyRunningError,
    SchedulerNotRunningError,
    StoreUnavailableError,
)
from asyncz.executors.base import BaseExecutor
from asyncz.nodes import default_identity
from asyncz.schedulers._adding import AddingMixin
from asyncz.schedulers._coordination import Coordinator
from asyncz.schedulers._dispatch import Dispatcher
from asyncz.schedulers._history_api import HistoryMixin
from asyncz.schedulers._management import ManagementMixin
from asyncz.schedulers._processing import Processor
from asyncz.schedulers._runs import RunKeeper
from asyncz.schedulers._state import ClassicLogging, SchedulerState
from asyncz.stores.base import (
    BaseStore,
    LoopThread,
    attach_io_loop,
    call,
    detach_io_loop,
    run_inline,
    unavailable,
)
from asyncz.tasks.task import Task, task_label
from asyncz.timeutil import utc

if TYPE_CHECKING:
    from asyncz.abc import RunReporter
    from asyncz.settings import AsynczSettings

__all__ = ["BaseScheduler", "ClassicLogging", "SchedulerState"]

T = TypeVar("T")


class BaseScheduler(AddingMixin, ManagementMixin, HistoryMixin):
    """The scheduler core, shared by :class:`~asyncz.schedulers.asyncio.AsyncIOScheduler`
    and :class:`~asyncz.schedulers.asyncio.NativeAsyncIOScheduler`.

    Adding tasks lives in :mod:`asyncz.schedulers._adding`, task management and inspection
    in :mod:`asyncz.schedulers._management` (mixins); this class keeps construction,
    properties, stores and executors, events, lifecycle and processing."""

    def __init__(
        self,
        global_config: Mapping[str, Any] | None = None,
        *,
        prefix: str = "asyncz.",
        config_file: str | None = None,
        stores: Mapping[str, Any] | None = None,
        executors: Mapping[str, Any] | None = None,
        task_defaults: Mapping[str, Any] | None = None,
        timezone: tzinfo | str | None = None,
        logger_name: str | None = None,
        loggers_class: type[ClassicLogging] | str | None = None,
        lock_path: str | None = None,
        startup_delay: float | None = None,
        shutdown_timeout: float | None | UnsetType = UNSET,
        event_loop: asyncio.AbstractEventLoop | None = None,
        isolated_event_loop: bool = False,
        **options: Any,
    ) -> None:
        self._state = SchedulerState.STATE_STOPPED
        self._start_count = 0
        self._lock = threading.RLock()
        self._stores: dict[str, BaseStore] = {}
        self._executors: dict[str, BaseExecutor] = {}
        # Tasks added before start(), by id (insertion order is commit order).
        self._pending: dict[str, Task] = {}
        #: Listeners, the event mask and the hook cache; the run reporter of the executors.
        self._dispatcher = dispatcher = Dispatcher(self)
        # Asked on every add and run: the dispatcher's own bound methods, no extra call.
        self._wants = dispatcher.wants
        self._dispatch = dispatcher.dispatch
        self._portal: LoopThread | None = None
        self._loop_thread: LoopThread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._requested_loop = event_loop
        self._isolated = isolated_event_loop
        self._main_task: asyncio.Task[None] | None = None
        # The run path: wake-up, sleep, passes, submission, write-back, store locks.
        self._processor = Processor(self)
        # Nodes: this scheduler's record and heartbeats in the stores it shares.
        self._coordinator = Coordinator(self)
        # (kind, alias) -> the component that STORE_ADDED / EXECUTOR_ADDED announced.
        self._announced: dict[tuple[str, str], object] = {}
        self._started_at: datetime | None = None
        # Stores whose start() was called by this start (closed again if it fails).
        self._started_stores: list[BaseStore] = []
        self.prefix = prefix
        if shutdown_timeout is not UNSET:
            # None is a value here ("no limit"); the settings loader reads None as "not given".
            options["shutdown_timeout"] = "none" if shutdown_timeout is None else shutdown_timeout
        self._configure(
            global_config,
            prefix=prefix,
            config_file=config_file,
            stores=stores,
            executors=executors,
            task_defaults=task_defaults,
            timezone=timezone,
            logger_name=logger_name,
            loggers_class=loggers_class,
            lock_path=lock_path,
            startup_delay=startup_delay,
            **options,
        )
        self._refresh_hooks()

    # =====================================================================================
    # configuration
    # =====================================================================================
    def _configure(self, global_config: Mapping[str, Any] | None, **kwargs: Any) -> None:
        from asyncz.registry import create, import_ref
        from asyncz.settings import load_settings

        prefix = kwargs.pop("prefix", self.prefix) or "asyncz."
        overrides = {k: v for k, v in kwargs.items() if v is not None}
        settings = load_settings(global_config, prefix=prefix, **overrides)
        self.settings: AsynczSettings = settings
        #: The name of this scheduler instance (``identity=``; default ``host:pid:random``).
        self.identity: str = (
            settings.identity or getattr(self, "identity", None) or default_identity()
        )
        self.timezone: tzinfo = settings.timezone
        #: The zone triggers without their own zone use (``task_defaults.timezone``).
        self.trigger_timezone: tzinfo = settings.task_defaults.timezone or settings.timezone
        defaults = settings.task_defaults
        from asyncz.tasks.options import DEFAULTABLE

        self.task_defaults: dict[str, Any] = {name: getattr(defaults, name) for name in DEFAULTABLE}
        # History records and retries of runs (asyncz.history.*).
        self._runs = runs = RunKeeper(self)
        self._dispatcher._runs = runs
        self._processor._runs = runs
        loggers_class: Any = settings.loggers_class or ClassicLogging
        if isinstance(loggers_class, str):
            loggers_class = import_ref(loggers_class)
        self.loggers: ClassicLogging = loggers_class()
        name = "asyncz.schedulers"
        if settings.logger_name:
            name = f"{name}.{settings.logger_name}"
        self.logger = self.loggers[name]
        self.lock_path: str | None = settings.lock_path
        if self.lock_path:
            from asyncz.locks import format_lock_path

            try:
                format_lock_path(self.lock_path, "default")
            except ValueError as exc:
                raise ConfigurationError([(f"{prefix}lock_path", str(exc))]) from None
        self.startup_delay: float = settings.effective_startup_delay
        self.wakeup_spin: float = settings.wakeup_spin
        #: Seconds a shutdown may take (``asyncz.shutdown_timeout``); ``None``: no limit.
        self.shutdown_timeout: float | None = settings.shutdown_timeout
        self.precise_wakeup: bool = settings.precise_wakeup
        #: Seconds a store call may take (``asyncz.store_timeout``); ``None``: no limit.
        self.store_timeout: float | None = settings.store_timeout or None

        stores: dict[str, BaseStore] = {}
        from asyncz.serializers.pickle import configured_secret_key

        secret = settings.secret_key.get_secret_value() if settings.secret_key else None
        with configured_secret_key(secret):  # signs for stores with serializer="pickle"
            for alias, spec in settings.stores.items():
                if isinstance(spec, BaseStore):
                    stores[alias] = spec
                else:
                    stores[alias] = create("store", spec, key=f"{prefix}stores.{alias}")
        executors: dict[str, BaseExecutor] = {}
        for alias, spec in settings.executors.items():
            if isinstance(spec, BaseExecutor):
                executors[alias] = spec
            else:
                executors[alias] = create("executor", spec, key=f"{prefix}executors.{alias}")
        self._stores = stores
        self._executors = executors

    def setup(self, global_config: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Reconfigure a stopped scheduler; tasks added before are kept (and stay pending)."""
        if self._state != SchedulerState.STATE_STOPPED:
            raise SchedulerAlreadyRunningError("calling setup()")
        self._configure(global_config, **kwargs)

    @property
    def stores(self) -> dict[str, BaseStore]:
        return self._stores

    @property
    def executors(self) -> dict[str, BaseExecutor]:
        return self._executors

    @property
    def state(self) -> SchedulerState:
        return self._state

    @property
    def running(self) -> bool:
        return self._state != SchedulerState.STATE_STOPPED

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the scheduler processes tasks on (``None`` while stopped)."""
        return self._loop

    def asgi(self, app: Any = None, handle_lifespan: bool = False, wait: bool = False) -> Any:
        """Wrap an ASGI application so that its lifespan starts and stops this scheduler;
        without ``app``, a decorator. See :mod:`asyncz.asgi`."""
        from asyncz.asgi import wrap

        return wrap(self, app, handle_lifespan=handle_lifespan, wait=wait)

    # =====================================================================================
    # sync <-> async bridge
    # =====================================================================================
    def _block_on(self, coro: Coroutine[Any, Any, T], store: BaseStore | None = None) -> T:
        """Run a management coroutine to completion from synchronous code on any thread.

        ``store``: the coroutine touches only this store, so it runs right on the store's
        I/O loop (one thread hop instead of two).
        """
        if store is not None:
            loop = store.io_loop
            if loop is None:
                return run_inline(coro)
            return asyncio.run_coroutine_threadsafe(coro, loop).result()
        if all(store.io_loop is None for store in self._stores.values()):
            return run_inline(coro)
        return asyncio.run_coroutine_threadsafe(coro, self._io_loop()).result()

    def _io_loop(self) -> asyncio.AbstractEventLoop:
        """The loop of the scheduler's I/O thread, started on first use: the I/O loop of
        every store that does I/O, and the portal of the synchronous API."""
        with self._lock:
            if self._portal is None:
                self._portal = LoopThread("asyncz-io")
            return self._portal.start()

    def _attach_io_loops(self, stores: Iterable[BaseStore] | None = None) -> None:
        """Give the stores that do I/O the I/O loop, and every store its call timeout
        (before their start(), so that the first call already goes where it belongs)."""
        for store in self._stores.values() if stores is None else stores:
            store.call_timeout = self.store_timeout
            if store.uses_io_loop and store.io_loop is None:
                attach_io_loop(store, self._io_loop())

    # =====================================================================================
    # stores and executors
    # =====================================================================================
    def _ensure_defaults(self) -> None:
        from asyncz.registry import resolve

        if "default" not in self._stores:
            self._stores["default"] = resolve("store", "memory")()
        if "default" not in self._executors:
            self._executors["default"] = resolve("executor", "asyncio")()

    def _component(self, kind: str, obj: Any, options: dict[str, Any], alias: str) -> Any:
        from asyncz.registry import create

        if isinstance(obj, str):
            return create(kind, {"type": obj, **options}, key=f"{self.prefix}{kind}s.{alias}")
        if isinstance(obj, type) and issubclass(obj, (BaseStore, BaseExecutor)):
            return obj(**options)  # a class, as in Asyncz's custom-store example
        if options:
            raise TypeError(f"options are only accepted with a {kind} alias, not an instance")
        return obj

    def add_store(self, store: BaseStore | str, alias: str = "default", **options: Any) -> None:
        """Add a store (instance, or alias plus its options) under ``alias``."""
        store = self._component("store", store, options, alias)
        if not isinstance(store, BaseStore):
            raise TypeError(f"expected a store, got {store!r}")
        with self._lock:
            if alias in self._stores:
                raise ValueError(f"This scheduler already has a store named {alias!r}")
            self._stores[alias] = store
        if self.running:
            self._attach_io_loops([store])
            self._block_on(self._start_store(alias, store))
        self._announce("store", alias, store)
        if self.running:
            self.wakeup()

    def _announce(self, kind: str, alias: str, component: object) -> None:
        """Dispatch STORE_ADDED / EXECUTOR_ADDED once per component and alias."""
        if self._announced.get((kind, alias)) is component:
            return
        self._announced[(kind, alias)] = component
        code = ev.STORE_ADDED if kind == "store" else ev.EXECUTOR_ADDED
        self._dispatch(ev.SchedulerEvent(code, alias))

    def remove_store(self, alias: str, shutdown: bool = True) -> None:
        """Remove the store ``alias`` (its tasks stay in the backend)."""
        with self._lock:
            store = self.lookup_store(alias)
            del self._stores[alias]
            self._announced.pop(("store", alias), None)
        if shutdown and self.running:
            try:
                self._block_on(call(store, store.shutdown()))
            finally:
                detach_io_loop(store)
        self._dispatch(ev.SchedulerEvent(ev.STORE_REMOVED, alias))

    def lookup_store(self, alias: str) -> BaseStore:
        try:
            return self._stores[alias]
        except KeyError:
            raise ComponentLookupError("store", alias, self._stores) from None

    def add_executor(
        self, executor: BaseExecutor | str, alias: str = "default", **options: Any
    ) -> None:
        """Add an executor (instance, or alias plus its options) under ``alias``."""
        executor = self._component("executor", executor, options, alias)
        if not isinstance(executor, BaseExecutor):
            raise TypeError(f"expected an executor, got {executor!r}")
        with self._lock:
            if alias in self._executors:
                raise ValueError(f"This scheduler already has an executor named {alias!r}")
            self._executors[alias] = executor
        if self.running:
            executor.start(self, alias)
        self._announce("executor", alias, executor)

    def remove_executor(self, alias: str, shutdown: bool = True) -> None:
        with self._lock:
            executor = self.lookup_executor(alias)
            del self._executors[alias]
            self._announced.pop(("executor", alias), None)
        if shutdown:
            executor.shutdown()
        self._dispatch(ev.SchedulerEvent(ev.EXECUTOR_REMOVED, alias))

    def lookup_executor(self, alias: str) -> BaseExecutor:
        try:
            return self._executors[alias]
        except KeyError:
            raise ComponentLookupError("executor", alias, self._executors) from None

    def _check_executor(self, task: Task) -> None:
        """Refuse a task whose executor this scheduler does not have, or which that executor
        cannot run (``BaseExecutor.check_task``). Called when the task reaches a started
        scheduler: at add, and for pending tasks at start."""
        executor = self._executors.get(task.executor)
        if executor is None:
            raise ComponentLookupError(
                "executor", task.executor, self._executors, task=task_label(task)
            )
        if executor.checks_tasks:
            executor.check_task(task)

    # =====================================================================================
    # events and hooks: held by the Dispatcher (schedulers/_dispatch.py)
    # =====================================================================================
    def add_listener(
        self, callback: Callable[[ev.SchedulerEvent], Any], mask: int = ev.ALL_EVENTS
    ) -> None:
        """Call ``callback(event)`` for every event whose code is in ``mask``."""
        self._dispatcher.add_listener(callback, mask)

    def remove_listener(self, callback: Callable[[ev.SchedulerEvent], Any]) -> None:
        """Stop calling ``callback`` (every registration of a callable equal to it)."""
        self._dispatcher.remove_listener(callback)

    def _call_hook(self, name: str, **kwargs: Any) -> None:
        self._dispatcher.call_hook(name, **kwargs)

    def _refresh_hooks(self) -> None:
        self._dispatcher.refresh_hooks()

    @property
    def reporter(self) -> RunReporter:
        """Where executors report each run (:class:`asyncz.abc.RunReporter`)."""
        return self._dispatcher

    def report_unrestorable(self, task_id: str, store: str | None, reason: str) -> None:
        """Dispatch ``TASK_RESTORE_FAILED``: ``store`` keeps a task it cannot restore. Called
        by the store, once per occurrence (:meth:`PersistentStore.report_unrestorable`)."""
        self._dispatcher.task_unrestorable(task_id, store, reason)

    def report_wiped(self, store: str | None, detail: str) -> None:
        """Dispatch ``STORE_WIPED``: the backend of ``store`` lost its data. Called by the
        store, once per loss (:meth:`PersistentStore.report_wiped`)."""
        self._dispatcher.store_wiped(store, detail)

    def bind_task(self, task: Task, store: str) -> Task:
        """Make a task that came out of store ``store`` belong to this scheduler (stored,
        not pending); returns it. Stores call it for every task they restore."""
        task._scheduler = self
        task.store_alias = store
        task._submitted = True
        return task

    # =====================================================================================
    # lifecycle (the loop-specific parts live in the subclasses)
    # =====================================================================================
    async def _start_components(self) -> None:
        """Start stores and executors, then commit the pending tasks. Never suspends for
        in-memory stores."""
        self._refresh_hooks()
        self._ensure_defaults()
        self._started_at = datetime.now(utc)
        self._check_lock_path()
        self._check_pending()
        self._started_stores = []
        for alias, store in list(self._stores.items()):
            await self._start_store(alias, store)
        for alias, executor in list(self._executors.items()):
            executor.start(self, alias)
        # Listeners added before start() hear of every component, configured or default.
        for alias, executor in list(self._executors.items()):
            self._announce("executor", alias, executor)
        for alias, store in list(self._stores.items()):
            self._announce("store", alias, store)
        await self._coordinator.beat()  # this node's record, before its first pass
        await self._commit_all_pending()

    def _check_lock_path(self) -> None:
        """With ``lock_path``: create every shared store's lock file now, so that a path that
        cannot be used is a configuration error at start, not a failure of the first pass."""
        for alias in list(self._stores):
            lock = self._processor.store_lock(alias)
            if lock is None:
                continue
            try:
                lock.prepare()
            except OSError as exc:
                self._processor.forget_lock(alias)
                message = (
                    f"cannot create the lock file {str(lock.path)!r} of store {alias!r}: "
                    f"{exc.strerror or exc} (choose a writable directory)"
                )
                raise ConfigurationError([(f"{self.prefix}lock_path", message)]) from exc

    async def _start_store(self, alias: str, store: BaseStore) -> None:
        """Start one store; a server that cannot be reached is a
        :class:`~asyncz.exceptions.StoreUnavailableError` naming the store and its address."""
        self._started_stores.append(store)
        try:
            await call(store, store.start(self, alias))
        except Exception as exc:
            if isinstance(exc, StoreUnavailableError):
                raise
            if not isinstance(exc, (OSError, *store.connection_errors)):
                raise
            raise unavailable(store, exc) from exc
        self._coordinator.store_added(store)

    async def _stop_components(self, wait: bool) -> None:
        for executor in self._executors.values():
            executor.shutdown(wait=wait)
        try:
            await self._runs.close()  # retries written, history flushed, before the stores stop
        except Exception:
            self.logger.exception("Writing the last history records failed")
        await self._stop_stores(list(self._stores.values()))

    async def _stop_stores(self, stores: list[BaseStore]) -> None:
        """Shut the stores down, then the I/O thread they shared, and the store locks."""
        try:
            for store in stores:
                try:
                    await call(store, store.shutdown())
                except Exception:
                    self.logger.exception("Store %r failed to shut down", store)
                finally:
                    detach_io_loop(store)
        finally:
            self._started_stores = []
            portal = self._portal
            if portal is not None and portal.loop is not asyncio.get_running_loop():
                self._stop_io_thread()  # else the caller, back on its own thread, does
            self._processor.close_locks()

    def _close_failed_start(self) -> None:
        """After a start() that failed: close what it opened (executors, the stores it
        started, their connections, the I/O thread, store locks)."""
        for executor in self._executors.values():
            try:
                executor.shutdown(wait=False)
            except Exception:
                self.logger.exception("Executor %r failed to shut down", executor)
        started = self._started_stores
        try:
            self._block_on(self._stop_stores(started))
        except Exception:
            self.logger.exception("Closing the stores after a failed start failed")
        for store in self._stores.values():
            detach_io_loop(store)
        self._stop_io_thread()

    def _stop_io_thread(self) -> None:
        with self._lock:
            portal, self._portal = self._portal, None
        if portal is not None:
            portal.stop()

    def _count_start(self) -> bool:
        """Count a start(); True when this call must really start the scheduler."""
        with self._lock:
            self._start_count += 1
            return self._start_count == 1

    def _count_shutdown(self) -> bool:
        """Count a shutdown(); True when this call must really stop the scheduler."""
        with self._lock:
            if self._start_count == 0:
                raise SchedulerNotRunningError("shutting it down")
            self._start_count -= 1
            return self._start_count == 0

    def start(self, paused: bool = False) -> Any:
        """Start processing tasks: implemented by the concrete schedulers."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot start; derive from AsyncIOScheduler or "
            "NativeAsyncIOScheduler, which implement the lifecycle"
        )

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> Any:
        """Stop processing tasks: implemented by the concrete schedulers."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot shut down; derive from AsyncIOScheduler or "
            "NativeAsyncIOScheduler, which implement the lifecycle"
        )

    def pause(self) -> None:
        """Stop processing due tasks until :meth:`resume` (tasks stay scheduled)."""
        if not self.running:
            raise SchedulerNotRunningError("pausing it")
        if self._state == SchedulerState.STATE_RUNNING:
            self._state = SchedulerState.STATE_PAUSED
            self.logger.info("Scheduler paused")
            self._dispatch(ev.SchedulerEvent(ev.SCHEDULER_PAUSED))

    def resume(self) -> None:
        """Resume processing after :meth:`pause` (or ``start(paused=True)``)."""
        if not self.running:
            raise SchedulerNotRunningError("resuming it")
        if self._state == SchedulerState.STATE_PAUSED:
            self._state = SchedulerState.STATE_RUNNING
            self.logger.info("Scheduler resumed")
            self._dispatch(ev.SchedulerEvent(ev.SCHEDULER_RESUMED))
            self.wakeup()

    # -- the processing loop (schedulers/_processing.py) -------------------------------------
    def wakeup(self) -> None:
        """Ask the processing loop for a pass now (coalesced; safe from any thread)."""
        self._processor.wakeup()

    def _wakeup_if_sooner(self, when: datetime | None | UnsetType) -> None:
        self._processor.wakeup_if_sooner(when)

    def wake(self, when: datetime | None = None) -> None:
        """A store heard that another process changed its tasks (``when``: the earliest new
        next run time, if known): wake up if it is sooner than planned (``None``: now)."""
        if when is None:
            self._processor.wakeup()
        else:
            self._processor.wakeup_if_sooner(when)

    def _submit(
        self, task: Task, store_alias: str, run_times: list[datetime], source: str, folded: int
    ) -> bool:
        return self._processor.submit(task, store_alias, run_times, source, folded)
