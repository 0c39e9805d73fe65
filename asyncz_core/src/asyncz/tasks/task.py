"""The task: what to call, with what, when (its trigger), where (executor and store).

Data path: options (validated by the table in :mod:`asyncz.tasks.options`) -> a
:class:`Task` -> added to a scheduler, kept in a store (``__getstate__`` for persistent
ones), shown as a :class:`TaskInfo` snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from difflib import get_close_matches
from typing import TYPE_CHECKING, Any

from asyncz._util import (
    UNSET,
    CallableInfo,
    UnsetType,
    callable_info,
    new_task_id,
    ref_to_callable,
)
from asyncz.exceptions import closest
from asyncz.tasks import options as _options
from asyncz.tasks._fields import (
    NO_EXTRA,
    UNSET_POLICY,
    Field,
    RunPolicy,
    TaskExtra,
    extra_property,
    policy_of,
    policy_property,
)
from asyncz.tasks.info import ScheduleState, TaskInfo, TaskLabel, task_label
from asyncz.tasks.options import (
    NO_KWARGS,
    NO_TAGS,
    check_alias,
    check_args,
    check_coalesce,
    check_grace_time,
    check_kwargs,
    check_max_instances,
    check_next_run_time,
    check_overlap,
    check_retries,
    check_retry_backoff,
    check_retry_delay,
    check_retry_jitter,
    check_retry_max_delay,
    check_tags,
    check_timeout,
    fold_aliases,
)
from asyncz.triggers import create_trigger
from asyncz.triggers.base import BaseTrigger, UnknownOptionError

if TYPE_CHECKING:
    from asyncz.schedulers.base import BaseScheduler
    from asyncz.tasks.runs import PendingRun

__all__ = ["STATE_VERSION", "ScheduleState", "Task", "TaskInfo", "TaskLabel", "task_label"]

#: Version of the dict produced by :meth:`Task.__getstate__` (stored by persistent stores).
#: 2 added the run policies, pending runs and the pause note; states of version 1 restore
#: with the policies' defaults.
STATE_VERSION = 2


class Task:
    """A unit of scheduled work.

    ``Task(fn, trigger=..., ...)`` builds a task that ``scheduler.add_task(task)`` submits
    (once). Options left unset (``coalesce``, ``max_instances``, ``misfire_grace_time``) take
    the scheduler's ``task_defaults`` when the task is added. ``next_run_time=None`` adds the
    task paused. Without ``fn`` the task is a decorator: ``task(func)`` schedules ``func`` and
    returns it unchanged.
    """

    __slots__ = (
        "_extra",
        "_policy",
        "_scheduler",
        "_submitted",
        "args",
        "coalesce",
        "executor",
        "fn",
        "fn_reference",
        "id",
        "kwargs",
        "max_instances",
        "misfire_grace_time",
        "name",
        "next_run_time",
        "pending_runs",
        "retries",
        "store_alias",
        "tags",
        "timeout",
        "trigger",
    )

    fn: Callable[..., Any] | None
    fn_reference: str | None
    trigger: BaseTrigger | None
    next_run_time: datetime | None | UnsetType
    coalesce: bool | UnsetType
    max_instances: int | UnsetType
    misfire_grace_time: float | None | UnsetType
    tags: frozenset[str]
    timeout: float | None | UnsetType
    retries: int | UnsetType
    #: The other run policies, shared by the tasks with the same values (asyncz.tasks._fields)
    _policy: RunPolicy
    retry_delay: Field[float | UnsetType] = policy_property("retry_delay")
    retry_backoff: Field[float | UnsetType] = policy_property("retry_backoff")
    retry_max_delay: Field[float | None | UnsetType] = policy_property("retry_max_delay")
    retry_jitter: Field[float | UnsetType] = policy_property("retry_jitter")
    overlap: Field[str | UnsetType] = policy_property("overlap")
    #: Runs the task owes (retries), kept in its stored state until submitted; while there
    #: are some, ``next_run_time`` is the earliest of their ``due`` and ``scheduled_next``
    #: (the trigger's own next fire time). See :mod:`asyncz.tasks.runs`.
    pending_runs: tuple[PendingRun, ...]
    #: The rarely set fields, with their defaults (asyncz.tasks._fields.NO_EXTRA) shared
    _extra: TaskExtra
    scheduled_next: Field[datetime | None] = extra_property("scheduled_next")
    #: Set by ``pause_task(..., note=...)``; cleared on resume.
    pause_note: Field[str | None] = extra_property("pause_note")
    paused_at: Field[datetime | None] = extra_property("paused_at")
    #: The stored task's revision when it was read from a coordinated store (0: not read from
    #: one); every write moves it, and a write at an old revision is refused. Not part of
    #: the task's state: the store keeps it beside the payload.
    revision: Field[int] = extra_property("revision")
    replace_existing: Field[bool] = extra_property("replace_existing")

    def __init__(
        self,
        fn: Callable[..., Any] | str | None = None,
        *,
        id: str | None = None,
        name: str | None = None,
        args: Iterable[Any] | None = None,
        kwargs: Mapping[str, Any] | None = None,
        trigger: BaseTrigger | str | None = None,
        executor: str | None = None,
        store: str | None = None,
        next_run_time: datetime | None | UnsetType = UNSET,
        coalesce: bool | UnsetType = UNSET,
        max_instances: int | UnsetType = UNSET,
        misfire_grace_time: float | None | UnsetType = UNSET,
        mistrigger_grace_time: float | None | UnsetType = UNSET,
        timeout: float | None | UnsetType = UNSET,
        retries: int | UnsetType = UNSET,
        retry_delay: float | UnsetType = UNSET,
        retry_backoff: float | UnsetType = UNSET,
        retry_max_delay: float | None | UnsetType = UNSET,
        retry_jitter: float | UnsetType = UNSET,
        overlap: str | UnsetType = UNSET,
        replace_existing: bool = False,
        scheduler: BaseScheduler | None = None,
        tags: Iterable[str] | None = None,
        **trigger_args: Any,
    ) -> None:
        self._init(
            fn,
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
            scheduler,
            tags,
            trigger_args,
        )

    def _init(
        self,
        fn: Callable[..., Any] | str | None,
        id: str | None,
        name: str | None,
        args: Iterable[Any] | None,
        kwargs: Mapping[str, Any] | None,
        trigger: BaseTrigger | str | None,
        executor: str | None,
        store: str | None,
        next_run_time: datetime | None | UnsetType,
        coalesce: bool | UnsetType,
        max_instances: int | UnsetType,
        misfire_grace_time: float | None | UnsetType,
        mistrigger_grace_time: float | None | UnsetType,
        timeout: float | None | UnsetType,
        retries: int | UnsetType,
        retry_delay: float | UnsetType,
        retry_backoff: float | UnsetType,
        retry_max_delay: float | None | UnsetType,
        retry_jitter: float | UnsetType,
        overlap: str | UnsetType,
        replace_existing: bool,
        scheduler: BaseScheduler | None,
        tags: Iterable[str] | None,
        trigger_args: dict[str, Any],
    ) -> None:
        """``__init__``'s body, its parameters in the same order and all positional:
        ``add_task`` builds its tasks through it (``Task.__new__`` then ``_init``), as
        matching two dozen keywords costs about a microsecond per call."""
        self._scheduler = scheduler
        self._submitted = False
        self._extra = NO_EXTRA
        self.pending_runs = ()
        self.fn = None
        self.fn_reference = None
        self.id = str(id) if id is not None else new_task_id()
        self.name = name
        # Each option through its check in the table (asyncz.tasks.options); written out
        # rather than looped over, as this is the hot path of add_task.
        self.args: tuple[Any, ...] = check_args(args) if args else ()
        # Most tasks take no keyword arguments: they share one read-only empty mapping.
        self.kwargs: Mapping[str, Any] = check_kwargs(kwargs) if kwargs else NO_KWARGS
        self.executor = check_alias(executor)
        self.store_alias = check_alias(store)
        if replace_existing:
            self.replace_existing = True
        self.tags = check_tags(tags) if tags else NO_TAGS
        if mistrigger_grace_time is not UNSET:
            misfire_grace_time = fold_aliases(
                {
                    "misfire_grace_time": misfire_grace_time,
                    "mistrigger_grace_time": mistrigger_grace_time,
                }
            )["misfire_grace_time"]
        self.next_run_time = UNSET if next_run_time is UNSET else check_next_run_time(next_run_time)
        self.coalesce = UNSET if coalesce is UNSET else check_coalesce(coalesce)
        self.max_instances = UNSET if max_instances is UNSET else check_max_instances(max_instances)
        self.misfire_grace_time = (
            UNSET if misfire_grace_time is UNSET else check_grace_time(misfire_grace_time)
        )
        self.timeout = UNSET if timeout is UNSET else check_timeout(timeout)
        self.retries = UNSET if retries is UNSET else check_retries(retries)
        if (
            retry_delay is UNSET
            and retry_backoff is UNSET
            and retry_max_delay is UNSET
            and retry_jitter is UNSET
            and overlap is UNSET
        ):
            self._policy = UNSET_POLICY
        else:
            self._policy = policy_of(
                (
                    UNSET if retry_delay is UNSET else check_retry_delay(retry_delay),
                    UNSET if retry_backoff is UNSET else check_retry_backoff(retry_backoff),
                    UNSET if retry_max_delay is UNSET else check_retry_max_delay(retry_max_delay),
                    UNSET if retry_jitter is UNSET else check_retry_jitter(retry_jitter),
                    UNSET if overlap is UNSET else check_overlap(overlap),
                )
            )
        self.trigger = None
        if trigger is not None or trigger_args:
            self.trigger = _make_trigger(trigger, trigger_args)
        if fn is not None:
            self._check_arguments(self._set_fn(fn))

    # -- validation ------------------------------------------------------------------------
    def _set_fn(self, fn: Callable[..., Any] | str) -> CallableInfo:
        if isinstance(fn, str):
            self.fn = ref_to_callable(fn)
            info = callable_info(self.fn)
            self.fn_reference = fn if ":" in fn else info.reference
        elif callable(fn):
            self.fn = fn
            info = callable_info(fn)
            self.fn_reference = info.reference
        else:
            raise TypeError(f"fn must be a callable or a 'module:qualname' string, not {fn!r}")
        if self.name is None:
            self.name = getattr(self.fn, "__qualname__", None) or repr(self.fn)
        return info

    def _check_arguments(self, info: CallableInfo | None = None) -> None:
        if self.fn is None:
            return
        if info is None:
            info = callable_info(self.fn)
        signature = info.signature
        if signature is None:
            return  # builtins without a signature: nothing to check against
        if not self.args and not self.kwargs and info.takes_no_arguments:
            return
        try:
            signature.bind(*self.args, **self.kwargs)
        except TypeError as exc:
            raise TypeError(
                f"The arguments of task {self.id!r} do not match the signature of "
                f"{self.name}{signature}: {exc}"
            ) from None

    def _modify(self, **changes: Any) -> None:
        """Apply validated changes (used by ``update`` and by the scheduler)."""
        unknown = [k for k in changes if k not in _options.BY_NAME and k not in _options.ALIASES]
        if unknown:
            key = unknown[0]
            guess = closest(key, _options.NAMES)
            hint = f"; did you mean {guess!r}?" if guess else ""
            raise TypeError(f"Task has no option {key!r}{hint}")
        if "id" in changes and changes["id"] != self.id:
            raise ValueError("The id of a task cannot be changed")
        fold_aliases(changes)
        if "fn" in changes:
            self._set_fn(changes["fn"])
        if "trigger" in changes:
            self.trigger = _make_trigger(changes["trigger"], {})
        for option in _options.CHECKED:
            value = changes.get(option.name, UNSET)
            if value is not UNSET:
                setattr(self, option.attr, option.check(value) if option.check else value)
        if {"fn", "args", "kwargs"} & changes.keys():
            self._check_arguments()
        if "next_run_time" in changes and self.pending_runs:
            when = self.next_run_time
            if when is None:  # paused: the runs it owed are dropped (docs/tasks.md)
                self.pending_runs = ()
                self.scheduled_next = None
            elif isinstance(when, datetime) and when.tzinfo is not None:
                from asyncz.tasks.runs import reschedule

                reschedule(self, when)

    # -- decorator mode ---------------------------------------------------------------------
    def __call__(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Decorator mode: schedule ``fn`` with this task's options and return ``fn``."""
        if self.fn is not None:
            raise TypeError("This task already has a callable; only an empty task decorates")
        task = self.copy_with(fn=fn)
        if self._scheduler is not None:
            task = self._scheduler.add_task(task)
        tasks = getattr(fn, "asyncz_tasks", None)
        if tasks is None:
            tasks = []
            try:
                fn.asyncz_tasks = tasks  # type: ignore[attr-defined]
            except AttributeError:
                pass
        tasks.append(task)
        return fn

    def copy_with(self, **changes: Any) -> Task:
        """A new, unsubmitted task with this task's options and ``changes`` applied."""
        clone = Task.__new__(Task)
        _copy_fields(self, clone)
        clone.args = tuple(self.args)
        clone.kwargs = dict(self.kwargs) if self.kwargs else NO_KWARGS
        clone._submitted = False
        clone._scheduler = None
        if "id" not in changes:
            clone.id = new_task_id() if self.fn is None else self.id
        else:
            clone.id = changes.pop("id")
        clone._modify(**changes)
        return clone

    def _take_defaults(self, defaults: Mapping[str, Any], policy: RunPolicy) -> None:
        """Fill what the task left ``UNSET`` from a scheduler's ``task_defaults`` (``policy``:
        the run policies among them)."""
        if self.coalesce is UNSET:
            self.coalesce = defaults["coalesce"]
        if self.max_instances is UNSET:
            self.max_instances = defaults["max_instances"]
        if self.misfire_grace_time is UNSET:
            self.misfire_grace_time = defaults["misfire_grace_time"]
        if self.timeout is UNSET:
            self.timeout = defaults["timeout"]
        if self.retries is UNSET:
            self.retries = defaults["retries"]
        self._policy = self._policy.filled(policy)

    # -- operations through the scheduler --------------------------------------------------
    def _require_scheduler(self, operation: str) -> BaseScheduler:
        if self._scheduler is None:
            raise RuntimeError(f"Task {self.id!r} was not added to a scheduler; cannot {operation}")
        return self._scheduler

    def _refresh(self, other: Task) -> None:
        if other is not self:
            scheduler, submitted = self._scheduler, self._submitted
            _copy_fields(other, self)
            self._scheduler, self._submitted = scheduler, submitted

    def update(self, **changes: Any) -> Task:
        """Change options of this task (``coalesce=False``, ``trigger=...``, ...)."""
        if self._scheduler is None:
            self._modify(**changes)
            return self
        self._refresh(self._scheduler.update_task(self.id, self.store_alias, **changes))
        return self

    def reschedule(self, trigger: BaseTrigger | str, **trigger_args: Any) -> Task:
        """Give this task a new trigger (instance, or alias plus its options)."""
        scheduler = self._require_scheduler("reschedule it")
        self._refresh(scheduler.reschedule_task(self.id, self.store_alias, trigger, **trigger_args))
        return self

    def pause(self) -> Task:
        """Stop this task from running until :meth:`resume` (kept in its store)."""
        if self._scheduler is None:
            self.next_run_time = None
            return self
        self._refresh(self._scheduler.pause_task(self.id, self.store_alias))
        return self

    def resume(self) -> Task:
        """Let a paused task run again from its trigger's next fire time."""
        if self._scheduler is None:
            self.next_run_time = UNSET
            return self
        resumed = self._scheduler.resume_task(self.id, self.store_alias)
        if resumed is not None:
            self._refresh(resumed)
        return self

    def delete(self) -> None:
        """Remove this task from its scheduler."""
        self._require_scheduler("delete it").delete_task(self.id, self.store_alias)

    def snapshot(self, state: ScheduleState | None = None) -> TaskInfo:
        """An immutable :class:`TaskInfo` of this task as it is now."""
        from asyncz.tasks.info import snapshot

        return snapshot(self, state)

    # -- Asyncz spelling ---------------------------------------------------------------------
    @property
    def scheduler(self) -> BaseScheduler | None:
        """The scheduler this task belongs to (``None`` until it is added to one)."""
        return self._scheduler

    @scheduler.setter
    def scheduler(self, scheduler: BaseScheduler | None) -> None:
        # Read-only, except that a task that has none may be given one (Asyncz's stores bind
        # the tasks they restore this way) and the same one may be assigned again.
        if scheduler is not self._scheduler and self._scheduler is not None:
            raise AttributeError(
                f"Task {self.id!r} already belongs to a scheduler; task.scheduler is read-only"
            )
        self._scheduler = scheduler

    def get_run_times(self, *args: Any) -> list[datetime]:
        """The run times due from ``next_run_time`` up to ``now``, inclusive (nothing runs).

        ``get_run_times(now)``, or Asyncz's ``get_run_times(timezone, now)``: ``timezone``
        is the zone of a trigger that has none of its own (default: the scheduler's zone
        for triggers, else the local zone).
        """
        if len(args) == 1:
            zone, now = None, args[0]
        elif len(args) == 2:
            zone, now = args
        else:
            raise TypeError("get_run_times() takes (now) or (timezone, now)")
        if not isinstance(now, datetime):
            raise TypeError(f"now must be a datetime, not {now!r}")
        from asyncz.timeutil import local_timezone, to_datetime, to_timezone

        if zone is not None:
            zone = to_timezone(zone)
        elif self._scheduler is not None:
            zone = self._scheduler.trigger_timezone
        else:
            zone = local_timezone()
        now = to_datetime(now, zone, "now")
        assert now is not None
        run_times: list[datetime] = []
        when = self.next_run_time if isinstance(self.next_run_time, datetime) else None
        while when is not None and when <= now:
            run_times.append(when)
            trigger = self.trigger
            when = trigger.get_next_trigger_time(zone, when, now) if trigger else None
        return run_times

    @property
    def mistrigger_grace_time(self) -> float | None | UnsetType:
        return self.misfire_grace_time

    @property
    def pending(self) -> bool:
        return not self._submitted

    @property
    def paused(self) -> bool:
        return self.next_run_time is None

    # -- persistence -------------------------------------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        """Plain data for persistent stores (:func:`asyncz.tasks._state.task_state`); the
        callable is stored by reference."""
        from asyncz.tasks._state import task_state

        return task_state(self)

    def __setstate__(self, state: dict[str, Any]) -> None:
        from asyncz.tasks._state import restore_state

        restore_state(self, state)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Task):
            return self.id == other.id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"<Task id={self.id!r} name={self.name!r}>"

    def __str__(self) -> str:
        when = self.next_run_time
        if when is UNSET:
            status = "pending"
        elif when is None:
            status = "paused"
        else:
            status = f"next run at: {when}"
        return f"{self.name} (trigger: {self.trigger}, {status})"


_SLOTS: tuple[str, ...] = tuple(slot for slot in Task.__slots__ if slot != "_extra")


def _copy_fields(source: Task, target: Task) -> None:
    """Every field of ``source`` onto ``target`` (the rarely set ones copied, not shared)."""
    for slot in _SLOTS:
        object.__setattr__(target, slot, getattr(source, slot))
    target._extra = source._extra.copy()


class UnknownTaskOptionError(UnknownOptionError):
    """A keyword given with a task is neither a task option nor one of its trigger's, and is
    closest to a task option (``max_instance`` -> ``max_instances``)."""

    def __init__(self, trigger: str, key: str, suggestion: str) -> None:
        TypeError.__init__(
            self,
            f"Unknown option {key!r}: it is neither a task option nor an option of {trigger}; "
            f"did you mean the task option {suggestion!r}?",
        )
        self.owner = "Task"
        self.key = key
        self.valid = sorted(_TASK_OPTIONS)
        self.suggestion = suggestion


#: The task options a misspelt keyword may have been meant to be (the trigger's own options
#: compete with them: whichever is closer is suggested).
_TASK_OPTIONS = _options.SUGGESTABLE


def _task_option_meant(key: str, trigger_options: Iterable[str]) -> str | None:
    """The task option ``key`` was probably meant to be, when one is closer than any of the
    trigger's options."""
    matches = get_close_matches(key, [*_TASK_OPTIONS, *trigger_options], n=1, cutoff=0.6)
    return matches[0] if matches and matches[0] in _TASK_OPTIONS else None


def _make_trigger(trigger: BaseTrigger | str | None, options: Mapping[str, Any]) -> BaseTrigger:
    try:
        return create_trigger(trigger, **options)
    except UnknownOptionError as exc:
        if type(exc) is UnknownOptionError:
            meant = _task_option_meant(exc.key, exc.valid)
            if meant is not None:
                raise UnknownTaskOptionError(exc.owner, exc.key, meant) from None
        raise
    except TypeError:
        if isinstance(trigger, BaseTrigger):
            for key in options:  # options given beside a trigger instance
                meant = _task_option_meant(key, ())
                if meant is not None:
                    raise UnknownTaskOptionError(type(trigger).__name__, key, meant) from None
        raise
