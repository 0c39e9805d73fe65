"""Who hears about it: listeners, the event mask and the pluggy hook cache of a scheduler.

Data path: the scheduler and its processing loop build an event only when
:meth:`Dispatcher.wants` says it has an audience, then :meth:`Dispatcher.dispatch` hands it
to every listener whose mask matches and to the ``asyncz_event_dispatched`` hook. Executors
report each run through the :class:`~asyncz.abc.RunReporter` this dispatcher implements:
:meth:`Dispatcher.started` (``asyncz_task_before_run``) before the callable, and
:meth:`Dispatcher.finished` (``TASK_EXECUTED`` / ``TASK_ERROR``, then
``asyncz_task_after_run``) after it. Stores report an unrestorable task or a wiped backend
through :meth:`Dispatcher.task_unrestorable` and :meth:`Dispatcher.store_wiped`.

A failing listener or plugin is logged on the scheduler's logger, never raised: one broken
audience does not stop the others, nor the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from asyncz import events as ev

if TYPE_CHECKING:
    import pluggy

    from asyncz.schedulers._runs import RunKeeper
    from asyncz.schedulers.base import BaseScheduler
    from asyncz.tasks import Task

__all__ = ["Dispatcher"]

_EVENT_HOOK = "asyncz_event_dispatched"
_BEFORE_HOOK = "asyncz_task_before_run"
_AFTER_HOOK = "asyncz_task_after_run"
#: Hooks looked at per run or per event: whether each has an implementation is cached.
_HOT_HOOKS = (_EVENT_HOOK, _BEFORE_HOOK, _AFTER_HOOK)

Listener = Callable[[ev.SchedulerEvent], Any]


class Dispatcher:
    """The listeners and plugin hooks of one scheduler; its run reporter.

    Thread safe: listeners may be added or removed from any thread, and executors report
    from worker threads.
    """

    __slots__ = (
        "_active",
        "_callers",
        "_listeners",
        "_lock",
        "_mask",
        "_pm",
        "_runs",
        "_scheduler",
    )

    def __init__(self, scheduler: BaseScheduler) -> None:
        self._scheduler = scheduler
        self._lock = threading.Lock()
        self._listeners: tuple[tuple[Listener, int], ...] = ()
        #: The union of every listener's mask.
        self._mask = 0
        self._pm: pluggy.PluginManager | None = None
        self._callers: dict[str, Any] = {}
        #: The hot hooks that have at least one implementation (see :meth:`refresh_hooks`).
        self._active: frozenset[str] = frozenset()
        #: History and retries (schedulers/_runs.py), set by the scheduler once it has its
        #: settings.
        self._runs: RunKeeper | None = None

    # -- listeners -------------------------------------------------------------------------
    def add_listener(self, callback: Listener, mask: int = ev.ALL_EVENTS) -> None:
        """Call ``callback(event)`` for every event whose code is in ``mask``."""
        with self._lock:
            self._listeners = (*self._listeners, (callback, mask))
            self._mask |= mask

    def remove_listener(self, callback: Listener) -> None:
        """Stop calling ``callback`` (every registration of a callable equal to it)."""
        with self._lock:
            # Equality, not identity: ``obj.method`` is a new bound method object each time.
            self._listeners = tuple((cb, m) for cb, m in self._listeners if cb != callback)
            mask = 0
            for _, m in self._listeners:
                mask |= m
            self._mask = mask

    # -- plugin hooks ----------------------------------------------------------------------
    def plugin_manager(self) -> pluggy.PluginManager:
        """The process's plugin manager (loaded on first use)."""
        if self._pm is None:
            from asyncz.plugins import get_plugin_manager

            self._pm = get_plugin_manager()
        return self._pm

    def hook(self, name: str) -> Any:
        """The hook caller ``name`` (cached)."""
        callers = self._callers
        caller = callers.get(name)
        if caller is None:
            caller = callers[name] = getattr(self.plugin_manager().hook, name)
        return caller

    def refresh_hooks(self) -> None:
        """Note which per-run and per-event hooks have implementations (checked on the hot
        path). The scheduler refreshes at start and before every processing pass."""
        self._active = frozenset(name for name in _HOT_HOOKS if self.hook(name).get_hookimpls())

    def call_hook(self, name: str, **kwargs: Any) -> None:
        """Call hook ``name`` if a plugin implements it; a plugin's exception is logged."""
        caller = self.hook(name)
        if caller.get_hookimpls():
            try:
                caller(**kwargs)
            except Exception:
                self._scheduler.logger.exception("A plugin failed in %s", name)

    # -- events ----------------------------------------------------------------------------
    def wants(self, code: int) -> bool:
        """Whether an event with ``code`` has an audience (so it is worth building)."""
        return bool(code & self._mask) or _EVENT_HOOK in self._active

    def dispatch(self, event: ev.SchedulerEvent) -> None:
        """Hand ``event`` to the listeners whose mask matches, then to the plugins."""
        for callback, mask in self._listeners:
            if event.code & mask:
                try:
                    callback(event)
                except Exception:
                    self._scheduler.logger.exception("Listener %r failed on %r", callback, event)
        if _EVENT_HOOK in self._active:
            try:
                self.hook(_EVENT_HOOK)(scheduler=self._scheduler, event=event)
            except Exception:
                self._scheduler.logger.exception(
                    "A plugin failed in asyncz_event_dispatched(%r)", event
                )

    # -- the run reporter ------------------------------------------------------------------
    def started(self, task: Task, run_time: datetime) -> None:
        """A run of ``task`` for ``run_time`` is about to call the task's callable."""
        if _BEFORE_HOOK in self._active:
            self.call_hook(_BEFORE_HOOK, scheduler=self._scheduler, task=task, run_time=run_time)

    def finished(
        self,
        task: Task,
        run_time: datetime,
        value: Any = None,
        exception: BaseException | None = None,
        traceback: str | None = None,
        *,
        started_at: float | None = None,
        submission: Sequence[datetime] | None = None,
    ) -> None:
        """The run of ``task`` for ``run_time`` ended: its history record and retry
        (schedulers/_runs.py), then ``TASK_EXECUTED`` with ``value``, ``TASK_TIMEOUT`` or
        ``TASK_ERROR`` with ``exception`` and its formatted ``traceback``; then the
        ``asyncz_task_after_run`` hook (with the outcome)."""
        runs = self._runs
        if runs is not None:
            outcome, attempt, source = runs.finished(
                task, run_time, value, exception, traceback, started_at, submission
            )
        else:
            from asyncz.schedulers._runs import outcome_of

            outcome, attempt, source = outcome_of(exception), 1, "scheduler"
        if exception is None:
            code = ev.TASK_EXECUTED
        else:
            code = ev.TASK_TIMEOUT if outcome == "timeout" else ev.TASK_ERROR
        if code & self._mask or _EVENT_HOOK in self._active:
            self.dispatch(
                ev.TaskExecutionEvent(
                    code,
                    task.id,
                    task.store_alias,
                    run_time,
                    value,
                    exception,
                    traceback,
                    outcome,
                    attempt,
                    source,
                )
            )
        if _AFTER_HOOK in self._active:
            self.call_hook(
                _AFTER_HOOK,
                scheduler=self._scheduler,
                task=task,
                run_time=run_time,
                return_value=value,
                exception=exception,
                outcome=outcome,
            )

    # -- what stores report ----------------------------------------------------------------
    def task_unrestorable(self, task_id: str, store: str | None, reason: str) -> None:
        """A store keeps a task it cannot restore (called once per occurrence)."""
        if self.wants(ev.TASK_RESTORE_FAILED):
            self.dispatch(ev.TaskRestoreFailedEvent(ev.TASK_RESTORE_FAILED, task_id, store, reason))

    def store_wiped(self, store: str | None, detail: str) -> None:
        """A store's backend lost its data (called once per loss)."""
        if self.wants(ev.STORE_WIPED):
            self.dispatch(ev.StoreWipedEvent(ev.STORE_WIPED, store, detail))
