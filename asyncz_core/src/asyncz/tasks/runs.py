"""Runs of a task: what is owed (:class:`PendingRun`), what happened (:class:`RunRecord`), and
how a submission carries its attempt and source to the executor (:class:`Submission`).

Data path: a failed run with retries left becomes a :class:`PendingRun` in its task's stored
state (``task.pending_runs``); the task's stored ``next_run_time`` is then the earliest of
its trigger's next fire time (``task.scheduled_next``) and the pending runs' ``due`` times,
so every store indexes and claims it unchanged (:func:`reschedule`). A processing pass turns
due pending runs and trigger fire times into a :class:`Submission` (a list of run times that
also says the attempt, the source and when it was submitted); the executor passes it to the
scheduler's run reporter with each outcome, and the scheduler's history recorder turns that
into a :class:`RunRecord` kept in the task's store.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from asyncz.tasks.task import Task

__all__ = [
    "OUTCOMES",
    "RUN_OUTCOMES",
    "SOURCES",
    "PendingRun",
    "RunRecord",
    "Submission",
    "reschedule",
    "take_due",
]

#: How a run ended (``RunRecord.outcome``). ``skipped``: not started because earlier runs of
#: the task were still running (``max_instances`` / ``overlap``); ``missed``: later than
#: ``misfire_grace_time``; ``coalesced``: folded into a later run by ``coalesce``.
RUN_OUTCOMES: tuple[str, ...] = (
    "success",
    "error",
    "timeout",
    "cancelled",
    "missed",
    "skipped",
    "coalesced",
)
#: Every outcome a history record may have: the run outcomes, and ``paused`` for the record
#: ``pause_task(..., note=...)`` leaves (not a run: ``last_run`` ignores it).
OUTCOMES: tuple[str, ...] = (*RUN_OUTCOMES, "paused")
#: Where a run came from: its trigger, an operator's ``run_task``, a retry, a backfill.
SOURCES: tuple[str, ...] = ("scheduler", "manual", "retry", "backfill")


class PendingRun(NamedTuple):
    """A run the task owes, kept in its stored state until it is submitted: a retry (or an
    operator's request). ``run_time`` is the scheduled time it stands for (a retry keeps the
    original's), ``due`` when it may be submitted, ``attempt`` 2, 3, ... for retries."""

    run_time: datetime
    due: datetime
    attempt: int = 1
    source: str = "retry"

    def to_data(self) -> list[Any]:
        return [self.run_time, self.due, self.attempt, self.source]

    @classmethod
    def from_data(cls, data: Any) -> PendingRun:
        run_time, due, attempt, source = data
        return cls(run_time, due, int(attempt), str(source))


class Submission(list[datetime]):
    """The run times of one submission to an executor (a ``list`` of datetimes, as the
    executor contract says), carrying the attempt, the source and the time of submission.

    Executors pass it on unchanged to ``run_sync`` / ``run_coroutine`` (and the reporter);
    one written before it existed sees a plain list, and its runs are recorded as first
    attempts from the scheduler. Slotted (no ``__dict__`` per submission); built with
    :meth:`of` on the hot path (a trigger's due runs).
    """

    __slots__ = ("attempt", "source", "submitted_at")

    #: 1 for a first run, 2, 3, ... for retries.
    attempt: int
    #: ``scheduler``, ``manual``, ``retry`` or ``backfill``.
    source: str
    submitted_at: datetime | None

    def __init__(
        self,
        run_times: Iterable[datetime],
        submitted_at: datetime,
        source: str = "scheduler",
        attempt: int = 1,
    ) -> None:
        super().__init__(run_times)
        self.submitted_at = submitted_at
        self.source = source
        self.attempt = attempt

    @classmethod
    def of(cls, run_times: Iterable[datetime], submitted_at: datetime) -> Submission:
        """A trigger's due runs (first attempts from the scheduler), cheaply."""
        submission = list.__new__(cls)
        list.extend(submission, run_times)
        submission.submitted_at = submitted_at
        submission.source = "scheduler"
        submission.attempt = 1
        return submission

    def __reduce__(self) -> Any:
        return (Submission, (list(self), self.submitted_at, self.source, self.attempt))


class RunRecord(NamedTuple):
    """One run of a task, as history keeps it (immutable; newest first from
    ``scheduler.get_task_runs``). Times are aware datetimes (UTC); ``duration`` and
    ``lateness`` are seconds. A run that never started (``missed``, ``skipped``,
    ``coalesced``) has no ``started_at`` / ``finished_at``. ``traceback`` and
    ``return_repr`` are truncated. ``note`` is the operator's note of a ``paused`` record."""

    task_id: str
    run_id: str
    scheduled_run_time: datetime
    outcome: str
    submitted_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration: float | None = None
    lateness: float | None = None
    attempt: int = 1
    node: str | None = None
    executor: str | None = None
    source: str = "scheduler"
    error_type: str | None = None
    error_message: str | None = None
    traceback: str | None = None
    return_repr: str | None = None
    note: str | None = None

    @property
    def time(self) -> datetime:
        """When it ended (or was decided): ``finished_at``, else ``submitted_at``, else the
        scheduled time. History is ordered by it."""
        return self.finished_at or self.submitted_at or self.scheduled_run_time

    def to_data(self) -> dict[str, Any]:
        """Plain data (for stores that serialize records)."""
        return self._asdict()

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> RunRecord:
        return cls(**{k: v for k, v in data.items() if k in cls._fields})


def reschedule(task: Task, trigger_next: datetime | None) -> None:
    """Set the task's schedule from its trigger's next fire time and its pending runs: the
    stored ``next_run_time`` is the earlier of the two, and ``scheduled_next`` remembers the
    trigger's while runs are pending."""
    pending = task.pending_runs
    if not pending:
        task.scheduled_next = None
        task.next_run_time = trigger_next
        return
    task.scheduled_next = trigger_next
    due = min(p.due for p in pending)
    task.next_run_time = due if trigger_next is None or due < trigger_next else trigger_next


def trigger_next(task: Task) -> datetime | None:
    """The trigger's next fire time as the task stores it (``next_run_time`` unless runs are
    pending)."""
    if task.pending_runs:
        return task.scheduled_next
    when = task.next_run_time
    return when if isinstance(when, datetime) else None


def take_due(task: Task, now: datetime) -> list[PendingRun]:
    """Remove and return the pending runs of ``task`` due by ``now`` (earliest first); the
    caller sets the schedule again (:func:`reschedule`)."""
    due = sorted((p for p in task.pending_runs if p.due <= now), key=lambda p: p.due)
    if due:
        task.pending_runs = tuple(p for p in task.pending_runs if p.due > now)
    return due
