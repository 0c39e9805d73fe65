"""The contracts of asyncz on one page: what a store, an executor, a trigger and a serializer
must do, and the two small things they get from the scheduler.

Data path: a :class:`Trigger` decides when a task runs next; a :class:`Store` keeps tasks
between runs (a persistent one turns them into bytes with a :class:`Serializer`); the
scheduler fetches due tasks from the store and hands each to an :class:`Executor`, which
runs the callable and reports the run to the scheduler's :class:`RunReporter`. Stores and
executors see the scheduler only as a :class:`SchedulerHandle`.

Write a component by subclassing its base class, which implements the interface here and
adds the shared machinery: :class:`asyncz.stores.base.BaseStore` (or ``PersistentStore``),
:class:`asyncz.executors.base.BaseExecutor`, :class:`asyncz.triggers.base.BaseTrigger`,
:class:`asyncz.serializers.base.BaseSerializer`. The scheduler accepts only subclasses of
those base classes. Everything a component needs is named here or in those modules; nothing
private of the scheduler or of :class:`~asyncz.tasks.Task` is.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, runtime_checkable

if TYPE_CHECKING:
    import asyncio

    from asyncz.nodes import NodeInfo
    from asyncz.tasks import Task
    from asyncz.tasks.runs import RunRecord

__all__ = [
    "Executor",
    "RunReporter",
    "SchedulerHandle",
    "Serializer",
    "Store",
    "TaskPage",
    "Trigger",
]


# =========================================================================================
# what the scheduler gives its components
# =========================================================================================
@runtime_checkable
class RunReporter(Protocol):
    """Where an executor reports each run: :attr:`SchedulerHandle.reporter`.

    For every run time of a submission an executor calls :meth:`started` right before the
    task's callable and :meth:`finished` right after it, on whatever thread or loop the run
    happened (both are thread safe and never raise: a failing listener or plugin is logged).
    :meth:`asyncz.executors.base.BaseExecutor.run_finished` logs the outcome and calls
    :meth:`finished`; ``run_sync`` and ``run_coroutine`` make both calls.
    """

    def started(self, task: Task, run_time: datetime) -> None:
        """The callable of ``task`` is about to be called for ``run_time`` (the scheduled
        time, not the clock): runs the ``asyncz_task_before_run`` hooks."""

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
        """The run of ``task`` for ``run_time`` ended.

        It returned ``value`` (``exception`` is ``None``), or it raised ``exception``;
        ``traceback`` is the formatted traceback (pass it when the exception crossed a
        process boundary and lost its ``__traceback__``). ``started_at`` is when the callable
        was called (``time.time()``), ``submission`` the ``run_times`` the executor was given
        (a :class:`~asyncz.tasks.runs.Submission` carries the attempt and source): both for
        the history record. A run that exceeded the task's ``timeout`` is reported with a
        :class:`~asyncz.exceptions.TaskTimeoutError` (``TASK_TIMEOUT``). Dispatches
        ``TASK_EXECUTED`` or ``TASK_ERROR`` (a :class:`~asyncz.events.TaskExecutionEvent`,
        built only when a listener or plugin hears it), then runs the
        ``asyncz_task_after_run`` hooks.
        """


@runtime_checkable
class SchedulerHandle(Protocol):
    """The scheduler as its stores and executors see it: given to ``start(scheduler,
    alias)`` and kept as ``component.scheduler``.

    A store or executor reads what it needs from here and never touches anything else of
    the scheduler.
    """

    @property
    def loggers(self) -> Mapping[str, logging.Logger]:
        """Loggers by name: a component logs on ``loggers[f"asyncz.stores.{alias}"]`` or
        ``loggers[f"asyncz.executors.{alias}"]``."""

    @property
    def prefix(self) -> str:
        """The key prefix of the scheduler's settings (``"asyncz."``), for messages that
        name a setting (``asyncz.stores.default.url``)."""

    @property
    def timezone(self) -> tzinfo:
        """The scheduler's zone."""

    @property
    def identity(self) -> str:
        """The name of this scheduler instance (``host:pid:random`` unless configured);
        nodes that share a store tell each other apart by it."""

    @property
    def event_loop(self) -> asyncio.AbstractEventLoop | None:
        """The loop the scheduler processes tasks on (``None`` while stopped). An executor
        that runs coroutines starts them there."""

    @property
    def reporter(self) -> RunReporter:
        """Where executors report each run."""

    def bind_task(self, task: Task, store: str) -> Task:
        """Make a task that came out of store ``store`` (restored, or returned by a query)
        belong to the scheduler: its ``store_alias`` is ``store``, it is not pending, and
        ``task.scheduler`` is this scheduler. Returns the task."""

    def report_unrestorable(self, task_id: str, store: str | None, reason: str) -> None:
        """Store ``store`` keeps task ``task_id`` but cannot restore it (``reason`` says
        why): dispatches ``TASK_RESTORE_FAILED``. Call it once per occurrence
        (:meth:`asyncz.stores.base.PersistentStore.report_unrestorable` does, and logs)."""

    def report_wiped(self, store: str | None, detail: str) -> None:
        """The backend of store ``store`` lost its data: dispatches ``STORE_WIPED``. Call it
        once per loss (:meth:`asyncz.stores.base.PersistentStore.report_wiped` does)."""

    def wake(self, when: datetime | None = None) -> None:
        """Another process changed the store's tasks (a store learned it from its backend's
        notifications: Redis pub/sub, PostgreSQL ``LISTEN``...): ``when`` is the earliest new
        next run time when known (the scheduler wakes up only if it comes before its planned
        wake-up), ``None`` to make it look at its stores now. Thread safe, never raises."""


# =========================================================================================
# the components
# =========================================================================================
class Trigger(abc.ABC):
    """Decides when a task runs next. Implemented by
    :class:`asyncz.triggers.base.BaseTrigger`.

    A trigger is plain data: its state (``__getstate__``, a dict) is what a persistent
    store keeps, and ``__setstate__`` on an object made with ``cls.__new__(cls)`` restores
    it. Two triggers with the same class and state are equal.
    """

    __slots__ = ()

    @abc.abstractmethod
    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        """The next fire time strictly after ``previous_time``, or ``None`` when the trigger
        will not fire again.

        ``timezone`` is the zone to use when the trigger has none of its own (the task's or
        the scheduler's); ``previous_time`` is the previous fire time (``None`` before the
        first one); ``now`` is the current time. All datetimes are aware, and so is the
        result. Must not raise for a valid trigger; pure (no I/O, no clock reads besides
        ``now``).
        """


class Serializer(abc.ABC):
    """Turns a task's state (:meth:`asyncz.tasks.Task.__getstate__`, a dict) into bytes and
    back. Implemented by :class:`asyncz.serializers.base.BaseSerializer`."""

    @abc.abstractmethod
    def dumps(self, state: dict[str, Any]) -> bytes:
        """Encode ``state``. Raises ``TypeError`` or ``ValueError`` for a value the format
        cannot carry."""

    @abc.abstractmethod
    def loads(self, payload: bytes) -> dict[str, Any]:
        """Decode a payload :meth:`dumps` produced. Raises ``ValueError`` (or a subclass)
        for one it cannot or must not decode (corrupt, unknown version, bad signature);
        never executes anything from the payload."""


class TaskPage(NamedTuple):
    """One page of a store's listing (:meth:`Store.get_task_page`)."""

    #: The restorable tasks of the page, in any order.
    tasks: list[Task]
    #: The page's stored tasks that cannot be restored: id -> reason.
    unrestorable: dict[str, str]
    #: What to pass to get the next page; ``None`` when this page is the last.
    cursor: str | None


class Store(abc.ABC):
    """Where tasks live between runs. Implemented by :class:`asyncz.stores.base.BaseStore`.

    Every method that touches tasks is a coroutine. The scheduler calls them through
    :func:`asyncz.stores.base.call`, on the store's ``io_loop`` when it has one. A store that
    does network I/O sets ``uses_io_loop = True`` and gets its I/O loop from the scheduler;
    it never manages a loop or a thread itself.

    Tasks a store returns belong to the scheduler: the store passes each one it restores to
    :meth:`SchedulerHandle.bind_task` (``PersistentStore.decode_task`` does). Ordering: "by
    next run time" is ascending, ties in any stable order, paused tasks (no next run time)
    after every scheduled one. The suite :class:`asyncz.testing.StoreContract` checks all of
    this against a real backend.
    """

    @abc.abstractmethod
    def start(self, scheduler: SchedulerHandle, alias: str) -> Awaitable[None]:
        """Called when the scheduler starts, or when the store is added to a running one,
        before any other method. Connect here; a server that cannot be reached raises an
        :class:`OSError` or one of the store's ``connection_errors``."""

    @abc.abstractmethod
    def shutdown(self) -> Awaitable[None]:
        """Release connections and threads; called once when the scheduler stops or the
        store is removed. Tasks stay in the backend."""

    @abc.abstractmethod
    async def lookup_task(self, task_id: str) -> Task | None:
        """The task with id ``task_id``, or ``None`` when there is none (or it cannot be
        restored: it is then reported, not raised)."""

    @abc.abstractmethod
    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        """The tasks whose next run time is ``<= now``, earliest first, at most ``limit``
        (``None``: all). Paused and unrestorable tasks never appear."""

    @abc.abstractmethod
    async def get_next_run_time(self) -> datetime | None:
        """The earliest next run time of any task that is not paused; ``None`` when there
        is none. The scheduler sleeps until then."""

    @abc.abstractmethod
    async def get_all_tasks(self) -> list[Task]:
        """Every restorable task, by next run time, paused tasks last."""

    @abc.abstractmethod
    async def get_task_page(self, cursor: str | None, limit: int) -> TaskPage:
        """One page of every stored task, restorable or not, for listings that must not
        read a large store in one call (each page is one call, under ``store_timeout``).

        ``cursor`` is ``None`` for the first page, then the ``cursor`` of the page before.
        A page holds about ``limit`` tasks (a backend that can only approximate it, like a
        Redis ``HSCAN``, may give somewhat more), in any order; the scheduler orders the
        whole listing. Over all pages every task stored for the whole listing appears at
        least once (a task may appear twice: the scheduler keeps one); a task added or
        removed meanwhile may appear or not. A store that cannot page returns everything
        in one page (``BaseStore`` does: ``get_all_tasks()`` and ``get_unrestorable()``)."""

    @abc.abstractmethod
    async def add_task(self, task: Task) -> None:
        """Store a new task. Raises :class:`~asyncz.exceptions.ConflictingIdError` when a
        task with its id exists (the stored one is left as it was)."""

    @abc.abstractmethod
    async def update_task(self, task: Task) -> None:
        """Replace the stored task with the same id. Raises
        :class:`~asyncz.exceptions.TaskLookupError` when there is none.

        A coordinated store makes it a compare-and-set: when ``task.revision`` is not 0 (the
        task was read from the store) and the stored revision differs, nothing is written
        and :class:`~asyncz.exceptions.StaleTaskError` is raised. A write ends any claim on
        the task (the claimer's write-back is then refused) and sets ``task.revision`` to
        the new revision."""

    @abc.abstractmethod
    async def delete_task(self, task_id: str) -> None:
        """Remove a task. Raises :class:`~asyncz.exceptions.TaskLookupError` when there is
        none."""

    @abc.abstractmethod
    async def remove_all_tasks(self) -> None:
        """Remove every task of this store (unrestorable ones too)."""

    @abc.abstractmethod
    async def add_tasks(self, tasks: Sequence[Task], replace_existing: bool = False) -> None:
        """Store many tasks, in one round trip where the backend allows it. With
        ``replace_existing`` a task whose id exists replaces it; otherwise the first
        conflicting id raises :class:`~asyncz.exceptions.ConflictingIdError` (tasks before it
        may or may not be stored)."""

    @abc.abstractmethod
    async def update_tasks(self, tasks: Sequence[Task]) -> None:
        """Write back the tasks of a processing pass (new next run times); a task deleted
        meanwhile is skipped, not an error."""

    @abc.abstractmethod
    async def delete_tasks(self, task_ids: Sequence[str]) -> None:
        """Remove many tasks; ids that are already gone are ignored."""

    @abc.abstractmethod
    async def get_unrestorable(self) -> dict[str, str]:
        """Ids of stored tasks that cannot be restored, each with the reason; they are kept
        in the backend, not deleted."""

    async def unrestorable_reason(self, task_id: str) -> str | None:
        """Why the stored task ``task_id`` cannot be restored; ``None`` when it is absent or
        restorable. Asked when ``lookup_task`` found nothing, so a store whose
        :meth:`get_unrestorable` decodes every task overrides it with a check of that one
        task (a lookup of a missing id must not read a large store in one call)."""
        return (await self.get_unrestorable()).get(task_id)

    # -- coordination: several schedulers (nodes) on one store ---------------------------------
    #
    # A store that other processes share (``coordinated = True``) hands out due tasks under a
    # *lease* owned by a node, and accepts the write-back of a claimed task only from the node
    # that still holds it, at the revision it was claimed at (the fencing token). Every write
    # of a task moves its ``revision``; a stale write is refused. The scheduler writes back
    # *before* it submits the runs, so a run is submitted only by the node whose write-back
    # was accepted: a fire time is never run twice, and runs claimed by a node that dies are
    # claimed again by another when the lease lapses. ``BaseStore`` implements these methods
    # for a store that is not shared (``coordinated = False``) on top of the methods above.

    @abc.abstractmethod
    async def acquire_due_tasks(
        self, node: str, now: datetime, lease: float, limit: int
    ) -> list[Task]:
        """Claim for ``node`` the tasks whose next run time is ``<= now`` and that no node
        holds (or whose holder's lease ended before ``now``), earliest first, at most
        ``limit``; hold them until ``now + lease`` seconds. Atomic: two nodes claiming at
        once never get the same task. Paused and unrestorable tasks never appear. Each task
        returned carries the ``revision`` it was claimed at.

        While claimed, a task's next run time counts as the end of its lease for
        :meth:`get_next_run_time` (so that other nodes wake up when an abandoned claim
        lapses, and do not spin on a due task they cannot take)."""

    @abc.abstractmethod
    async def release_tasks(self, node: str, tasks: Sequence[Task]) -> list[Task]:
        """Write back tasks claimed by ``node`` and end their claims, in one round trip where
        the backend allows it: a task is stored as given (its revision moves), except one
        that is finished (:func:`asyncz.stores.base.is_finished`: no next run time and not
        paused), which is deleted. A task is
        written only while ``node`` still holds it at the revision it was claimed at;
        returns the tasks that were written, in the given order (a refused one was changed
        by a management call, or claimed by another node after the lease lapsed: its runs
        must not be submitted)."""

    @abc.abstractmethod
    async def heartbeat(self, node: NodeInfo, extend_claims: bool = True) -> None:
        """Record ``node`` (its :class:`~asyncz.nodes.NodeInfo`, ``last_heartbeat`` = now)
        and, with ``extend_claims``, extend every claim it holds to ``last_heartbeat +
        node.lease``. Prunes records of nodes that ended more than
        :data:`~asyncz.nodes.NODE_RETENTION` seconds ago.

        The scheduler asks for the extension only while a pass of this store is between
        claim and write-back. At any other time a claim the node holds is one it does not
        know of (the reply to a claim was lost: a timeout, a dropped connection, while the
        server carried the claim out) and must lapse with its lease, or heartbeats would
        keep the task from every node for as long as this one lives."""

    @abc.abstractmethod
    async def remove_node(self, node: NodeInfo) -> None:
        """``node`` stops cleanly: store its record as given (``stopped_at`` set) and release
        every claim it still holds, so other nodes take its due tasks at once."""

    @abc.abstractmethod
    async def get_nodes(self) -> list[NodeInfo]:
        """Every node recorded (alive, dead or stopped), by identity."""

    # -- run history (docs/history.md) ---------------------------------------------------------
    #
    # One immutable :class:`~asyncz.tasks.runs.RunRecord` per run of a task of this store,
    # written in batches by the scheduler's history recorder and pruned by retention.
    # ``BaseStore`` keeps them in a bounded ring in memory (``keeps_history = False``); a
    # persistent store keeps them in its backend (a stream, a table, a collection) and says
    # so with ``keeps_history = True``, so that history survives a restart.

    @abc.abstractmethod
    async def add_runs(self, records: Sequence[RunRecord]) -> None:
        """Keep ``records`` (a batch: one round trip where the backend allows it). Records
        are never updated; one whose ``run_id`` is already kept may be kept twice."""

    @abc.abstractmethod
    async def get_runs(
        self,
        task_id: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        outcome: str | Sequence[str] | None = None,
    ) -> list[RunRecord]:
        """Records newest first (by :attr:`RunRecord.time`): of task ``task_id`` (``None``:
        every task), whose time is ``>= since``, whose outcome is ``outcome`` (or one of
        them), at most ``limit`` (``None``: all)."""

    @abc.abstractmethod
    async def get_last_runs(
        self, task_ids: Sequence[str], outcomes: Sequence[str]
    ) -> dict[str, RunRecord]:
        """The newest record with one of ``outcomes`` of each of ``task_ids`` that has one
        (for ``TaskInfo.last_run``; one round trip where the backend allows it)."""

    @abc.abstractmethod
    async def prune_runs(self, now: datetime, max_age: float, max_per_task: int) -> None:
        """Drop the records older than ``max_age`` seconds before ``now`` and, per task, all
        but the newest ``max_per_task``. Cheap enough to run every minute."""


class Executor(abc.ABC):
    """Runs a task's callable for one or more run times. Implemented by
    :class:`asyncz.executors.base.BaseExecutor`, whose ``submit`` counts instances and whose
    ``run_sync`` / ``run_coroutine`` run and report; a new executor implements only
    ``do_submit``.

    Every run is reported to ``scheduler.reporter`` (:class:`RunReporter`): ``started``
    before the callable, ``finished`` after it, in the order of the run times.
    """

    @abc.abstractmethod
    def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        """Called on the scheduler's loop when the scheduler starts, or when the executor is
        added to a running one, before any :meth:`submit`."""

    @abc.abstractmethod
    def shutdown(self, wait: bool = True) -> None:
        """Stop accepting work; with ``wait``, block until the runs in progress ended,
        otherwise cancel what can be cancelled."""

    @abc.abstractmethod
    def submit(self, task: Task, run_times: list[datetime]) -> None:
        """Run ``task`` once for each of ``run_times``, in order, without blocking the
        caller (the scheduler's loop). Raises
        :class:`~asyncz.exceptions.MaxInstancesReachedError` when the task already runs
        ``task.max_instances`` times; nothing is run then."""

    @abc.abstractmethod
    def running_instances(self, task_id: str) -> int:
        """How many submissions of ``task_id`` are in progress."""
