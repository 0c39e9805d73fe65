"""How a run happens: the scheduler's processing loop, from wake-up to write-back.

Data path, top to bottom in this file:

* **Wake-up.** :meth:`Processor.wakeup` (any thread) resolves the future the loop sleeps on;
  many wake-ups before the next pass are one. ``add_task`` and friends call
  :meth:`Processor.wakeup_if_sooner`, which wakes the loop only when the new run time comes
  before the planned wake-up.
* **Sleep.** :meth:`Processor.run` sleeps until the earliest next run time of all stores (a
  ``timerfd`` from :mod:`asyncz._timer` with ``precise_wakeup``; ``wakeup_spin`` yields to
  the loop for the last stretch), or until woken, or a store's poll interval.
* **Pass.** :meth:`Processor.process` visits each store (with ``lock_path``: under the store's
  inter-process :class:`~asyncz.locks.FileLock`), fetches its due tasks in batches
  (:meth:`Processor._process_store`), computes each task's due run times from its trigger,
  applies ``coalesce`` and ``misfire_grace_time`` (:meth:`Processor._submit_due`, reporting
  the runs it drops), submits the rest to the task's executor (:meth:`Processor.submit`),
  and writes the next run times back in one call per batch.
* A store that cannot be reached fails the pass; the loop retries with backoff and records
  the outage (``get_scheduler_info()["store_status"]``) until a pass reaches it again.

The scheduler owns one :class:`Processor` (``scheduler._processor``) and reads its state
(``next_wakeup``, ``outages``); events go out through the scheduler's
:class:`~asyncz.schedulers._dispatch.Dispatcher`.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from asyncz import events as ev
from asyncz._timer import TIME_IS_UP, resolve, time_is_up
from asyncz.exceptions import MaxInstancesReachedError, StoreUnavailableError
from asyncz.schedulers._coordination import report_refused
from asyncz.schedulers._state import SchedulerState
from asyncz.stores.base import BaseStore, PersistentStore, call, unavailable
from asyncz.tasks.runs import PendingRun, Submission, reschedule, take_due
from asyncz.tasks.task import Task, task_label
from asyncz.timeutil import utc

if TYPE_CHECKING:
    from asyncz._timer import PreciseTimer
    from asyncz.locks import FileLock
    from asyncz.schedulers._runs import RunKeeper
    from asyncz.schedulers.base import BaseScheduler

__all__ = ["BATCH_SIZE", "LOCK_POLL_INTERVAL", "LOCK_RETRY", "LOCK_WAIT", "Processor"]

#: Due tasks fetched per store round trip; small enough that the first run starts within
#: milliseconds when thousands are due at once (the loop yields between batches).
BATCH_SIZE = 256

#: With ``lock_path``: seconds before a store whose lock another process holds is tried
#: again (plus up to as much random jitter, so waiting processes do not collide again) ...
LOCK_RETRY = 0.05
#: ... how often a shared store is looked at for tasks other processes added ...
LOCK_POLL_INTERVAL = 1.0
#: ... and how long starting and stopping wait for a store's lock before giving up.
LOCK_WAIT = 10.0

# Module-level names for the states the loop compares with on every pass.
_STOPPED = SchedulerState.STATE_STOPPED
_RUNNING = SchedulerState.STATE_RUNNING


class Processor:
    """The processing loop of one scheduler: wake-up, sleep, passes, due runs, submission."""

    #: History records of runs that do not start (schedulers/_runs.py); set by the scheduler
    #: with its settings.
    _runs: RunKeeper

    def __init__(self, scheduler: BaseScheduler) -> None:
        self._scheduler = scheduler
        # Who hears about runs: listeners and plugin hooks (schedulers/_dispatch.py).
        self._events = scheduler._dispatcher
        #: When the loop plans its next pass (``None``: no run is due, or a pass is running).
        self.next_wakeup: datetime | None = None
        #: Store alias -> (since, reason) while passes find the store unreachable.
        self.outages: dict[str, tuple[datetime, str]] = {}
        #: Aliases of the stores a pass is processing: only their claims are extended by
        #: heartbeats (any other claim of this node is one whose reply was lost: it lapses).
        self.passing: set[str] = set()
        self._locks: dict[str, FileLock] = {}
        self._timer: PreciseTimer | None = None
        self._sleep_future: asyncio.Future[Any] | None = None
        self._wakeup_requested = False
        self._wakeup_missed = False

    # -- wake-up -------------------------------------------------------------------------------
    def wakeup(self) -> None:
        """Ask the processing loop for a pass now (coalesced; safe from any thread)."""
        loop = self._scheduler._loop
        if loop is None or self._wakeup_requested:
            return
        self._wakeup_requested = True
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.end_sleep()
        else:
            try:
                loop.call_soon_threadsafe(self.end_sleep)
            except RuntimeError:  # the loop closed under us
                self._wakeup_requested = False

    def end_sleep(self) -> None:
        """On the scheduler's loop: end the sleep now (or the next one before it begins)."""
        # _wakeup_requested stays set until the next pass begins: later wake-ups are no-ops.
        future = self._sleep_future
        if future is None or future.done():
            # A pass is in progress (awaiting a store), or the sleep is in its last, yielding
            # stretch: the change may have come too late for either, so the sleep ends and
            # the next one must not happen.
            self._wakeup_missed = True
        else:
            future.set_result(None)

    def wakeup_if_sooner(self, when: Any) -> None:
        """Wake the loop if ``when`` (a run time, or anything else: ignored) comes before the
        planned wake-up."""
        if self._scheduler._loop is None or not isinstance(when, datetime):
            return
        planned = self.next_wakeup
        if planned is None or when < planned:
            self.wakeup()

    # -- the loop ------------------------------------------------------------------------------
    async def run(self) -> None:
        """The processing loop: runs on the scheduler's event loop until shutdown."""
        loop = asyncio.get_running_loop()
        if self._scheduler.precise_wakeup:
            from asyncz._timer import precise_timer

            self._timer = precise_timer(loop)
        coordinator = self._scheduler._coordinator
        # Registered at start (_start_components); heartbeats extend the claims of every pass.
        heartbeats = loop.create_task(coordinator.run(first=False), name="asyncz-heartbeat")
        try:
            await self._run_on(loop)
        finally:
            timer, self._timer = self._timer, None
            if timer is not None:
                timer.close()
            heartbeats.cancel()
            await asyncio.gather(heartbeats, return_exceptions=True)
            await coordinator.leave()

    async def _run_on(self, loop: asyncio.AbstractEventLoop) -> None:
        scheduler = self._scheduler
        if scheduler.startup_delay > 0:
            # Not interruptible by wake-ups: no pass starts before the delay (shutdown
            # cancels this task).
            await asyncio.sleep(scheduler.startup_delay)
        failures = 0
        while scheduler.state != _STOPPED:
            wait: float | None = None
            if scheduler.state == _RUNNING:
                try:
                    self.next_wakeup = None
                    self._events.refresh_hooks()
                    next_wakeup = await self.process()
                except Exception as exc:
                    failures += 1
                    wait = min(30.0, 0.5 * 2 ** min(failures, 6))
                    if failures == 1 and isinstance(exc, StoreUnavailableError):
                        # Says all there is to say in one line (a traceback would not).
                        scheduler.logger.error(
                            "Processing tasks failed; retrying with backoff: %s", exc
                        )
                    elif failures == 1:
                        scheduler.logger.exception("Processing tasks failed; retrying with backoff")
                    self.next_wakeup = datetime.now(utc) + timedelta(seconds=wait)
                else:
                    if failures:
                        scheduler.logger.warning(
                            "Processing recovered after %d failure(s)", failures
                        )
                    failures = 0
                    self.next_wakeup = next_wakeup
                    if next_wakeup is not None:
                        wait = max(0.0, (next_wakeup - datetime.now(utc)).total_seconds())
                    poll = self._poll_interval()
                    if poll is not None:
                        wait = poll if wait is None else min(wait, poll)
            # The state changes while the loop awaits (shutdown stops it mid-pass).
            if scheduler.state == _STOPPED:
                break
            await self._sleep(loop, wait)

    def _poll_interval(self) -> float | None:
        intervals = []
        lock_path = self._scheduler.lock_path
        for store in self._scheduler.stores.values():
            poll = getattr(store, "poll_interval", None)
            if not poll and lock_path and isinstance(store, PersistentStore):
                # Shared with other processes, which may add tasks: look again regularly.
                poll = LOCK_POLL_INTERVAL
            if poll:
                intervals.append(poll)
        return min(intervals) if intervals else None

    async def _sleep(self, loop: asyncio.AbstractEventLoop, seconds: float | None) -> None:
        if self._wakeup_missed:
            self._wakeup_missed = False
            self._wakeup_requested = False
            return
        future: asyncio.Future[Any] = loop.create_future()
        self._sleep_future = future
        handle = None
        timer = None
        deadline = None
        if seconds is not None:
            spin = self._scheduler.wakeup_spin
            if spin and seconds > 0:
                # Sleep until ``spin`` seconds before the due instant, then yield to the loop
                # until that instant (precise to microseconds, at the cost of the CPU).
                deadline = loop.time() + seconds
                seconds, done = max(0.0, seconds - spin), time_is_up
            else:
                done = resolve
            timer = self._timer
            if timer is not None and seconds > 0:
                # The loop's own timer is only good to a millisecond (Linux's poll takes its
                # timeout in whole milliseconds, rounded up): a timerfd is good to microseconds.
                timer.arm(seconds, done, future)
            else:
                timer = None
                handle = loop.call_later(seconds, done, future)
        try:
            # A wake-up resolves the future with None, the spin timer with TIME_IS_UP.
            if await future is TIME_IS_UP and deadline is not None:
                while not self._wakeup_missed and loop.time() < deadline:
                    await asyncio.sleep(0)
                self._wakeup_missed = False
        finally:
            self._sleep_future = None
            self._wakeup_requested = False
            if handle is not None:
                handle.cancel()
            elif timer is not None:
                timer.cancel()

    # -- one pass ------------------------------------------------------------------------------
    async def process(self) -> datetime | None:
        """One pass: submit every due task of every store; return the next wake-up time.

        With ``lock_path``, a shared (persistent) store is processed only while this process
        holds its inter-process lock; when another process holds it, the store is skipped
        for this pass and retried shortly.
        """
        scheduler = self._scheduler
        next_wakeup: datetime | None = None
        for alias, store in list(scheduler.stores.items()):
            lock = self.store_lock(alias)
            if lock is not None and not lock.try_acquire():
                retry = LOCK_RETRY * (1.0 + random.random())
                when: datetime | None = datetime.now(utc) + timedelta(seconds=retry)
            else:
                self.passing.add(alias)
                try:
                    when = await self._process_store(
                        alias, store, write_back_first=lock is not None
                    )
                except Exception as exc:
                    error: StoreUnavailableError | None = None
                    if isinstance(exc, StoreUnavailableError):
                        error = exc
                    elif isinstance(exc, (OSError, *store.connection_errors)):
                        error = unavailable(store, exc)
                    if error is None:
                        raise
                    self.outages.setdefault(alias, (datetime.now(utc), str(error)))
                    if error is exc:
                        raise
                    raise error from exc
                else:
                    self.outages.pop(alias, None)
                finally:
                    self.passing.discard(alias)
                    if lock is not None:
                        lock.release()
            if scheduler.state != _RUNNING:
                return None
            if when is not None and (next_wakeup is None or when < next_wakeup):
                next_wakeup = when
        return next_wakeup

    async def _process_store(
        self, alias: str, store: BaseStore, write_back_first: bool = False
    ) -> datetime | None:
        """Submit the due tasks of one store; return its next run time.

        A coordinated store (shared by nodes) is claimed from under a lease and written back
        with the fencing check *before* the runs are submitted: only the runs of the tasks
        whose write-back the store accepted are submitted, so no fire time is run by two
        nodes, and a node that dies between claim and write-back leaves its claims to lapse
        and be taken over. ``write_back_first`` (``lock_path``) orders a private store's pass
        the same way, so that a process killed mid-pass never leaves a run behind for another
        process to run a second time.
        """
        scheduler = self._scheduler
        coordinated = store.coordinated
        node = scheduler.identity
        lease = scheduler.settings.coordination.lease
        while True:
            now = datetime.now(utc)
            if coordinated:
                due = await call(store, store.acquire_due_tasks(node, now, lease, BATCH_SIZE))
            else:
                due = await call(store, store.get_due_tasks(now, BATCH_SIZE))
            if not due:
                break
            # Lateness is judged when the runs are submitted, not when the query was sent:
            # a store slow to answer (frozen, overloaded) makes them late.
            now = datetime.now(utc)
            updates: list[Task] = []
            finished: list[Task] = []
            first = coordinated or write_back_first
            deferred: list[tuple[Task, list[datetime]]] | None = [] if first else None
            for task in due:
                self._process_task(task, alias, now, updates, finished, deferred)
            if coordinated:
                written = await call(store, store.release_tasks(node, due))
                if len(written) < len(due):
                    report_refused(self._scheduler.logger, alias, due, written)
                    kept = {id(task) for task in written}
                    finished = [task for task in finished if id(task) in kept]
                    if deferred:
                        deferred = [item for item in deferred if id(item[0]) in kept]
            else:
                if deferred is None:
                    # Let the runs just created start before the store round trips.
                    await asyncio.sleep(0)
                if updates:
                    await call(store, store.update_tasks(updates))
                if finished:
                    await call(store, store.delete_tasks([t.id for t in finished]))
            if finished and self._events.wants(ev.TASK_REMOVED):
                for task in finished:
                    self._events.dispatch(ev.TaskEvent(ev.TASK_REMOVED, task.id, alias))
            if deferred:
                submitted = datetime.now(utc)  # after the write-back round trips
                for task, run_times in deferred:
                    self._submit_runs(task, alias, run_times, submitted)
            if len(due) < BATCH_SIZE or scheduler.state != _RUNNING:
                break
        if scheduler.state != _RUNNING:
            return None
        return await call(store, store.get_next_run_time())

    def _process_task(
        self,
        task: Task,
        store_alias: str,
        now: datetime,
        updates: list[Task],
        finished: list[Task],
        deferred: list[tuple[Task, list[datetime]]] | None = None,
    ) -> None:
        if task.pending_runs:
            # Runs the task owes (retries): due ones are submitted with their attempt and
            # source, the rest stay stored; the trigger's schedule is kept in scheduled_next.
            start = task.scheduled_next
            owed = take_due(task, now)
        else:
            start = task.next_run_time if isinstance(task.next_run_time, datetime) else None
            owed = None
        run_times, next_time = self._run_times(task, now, start)
        if owed:
            for run in owed:
                submission = Submission([run.run_time], now, run.source, run.attempt)
                if deferred is not None:
                    deferred.append((task, submission))
                else:
                    self._submit_runs(task, store_alias, submission, now)
        if run_times:
            if deferred is not None:
                deferred.append((task, run_times))
            else:
                self._submit_due(task, store_alias, run_times, now)
            if next_time is None and not task.pending_runs and task.retries:
                self._guard(task, run_times[-1], now)
        elif owed and next_time is None and not task.pending_runs:
            last = owed[-1]
            if isinstance(task.retries, int) and last.attempt <= task.retries:
                self._guard(task, last.run_time, now, last.attempt)
        if task.pending_runs:
            reschedule(task, next_time)
        else:
            task.scheduled_next = None
            task.next_run_time = next_time
        if task.next_run_time is None and task.paused_at is None:
            finished.append(task)  # no fire time left, nothing owed: done
        else:
            updates.append(task)  # scheduled, or paused (a run was asked of a paused task)

    def _guard(self, task: Task, run_time: datetime, now: datetime, attempt: int = 1) -> None:
        """A task whose trigger has no fire time left, submitted with retries left, stays
        stored until its run ends: a *guard* retry is kept pending (due after the run's
        ``timeout``, or an hour, plus the lease). The node that ran it replaces the guard by
        the real retry, or removes it (and the task) when the run succeeded; if that node
        dies, the guard comes due and another node runs the next attempt."""
        timeout = task.timeout if isinstance(task.timeout, float) else 3600.0
        guard = timeout + self._scheduler.settings.coordination.lease
        task.pending_runs = (
            PendingRun(run_time, now + timedelta(seconds=guard), attempt + 1, "retry"),
        )

    def _submit_runs(
        self, task: Task, store_alias: str, run_times: list[datetime], now: datetime
    ) -> None:
        """Submit runs of a pass: owed runs (retries) as they are, the trigger's due run
        times through coalesce and misfire (:meth:`_submit_due`)."""
        if type(run_times) is Submission and run_times.source != "scheduler":
            self.submit(task, store_alias, run_times, run_times.source, 0)
        else:
            self._submit_due(task, store_alias, run_times, now)

    def _run_times(
        self, task: Task, now: datetime, start: datetime | None
    ) -> tuple[list[datetime], datetime | None]:
        """Every due run time of ``task``'s trigger from ``start`` up to ``now`` and the first
        one after it."""
        run_times: list[datetime] = []
        trigger = task.trigger
        when = start
        tz = self._scheduler.trigger_timezone
        while when is not None and when <= now:
            # A task that missed many runs keeps only the latest ones; older ones are folded.
            if len(run_times) >= 1000:
                del run_times[:500]
            run_times.append(when)
            when = trigger.get_next_trigger_time(tz, when, now) if trigger is not None else None
        return run_times, when

    # -- due runs: coalesce, misfire, submission -----------------------------------------------
    def _submit_due(
        self, task: Task, store_alias: str, run_times: list[datetime], now: datetime
    ) -> None:
        """Fold the due runs (``coalesce``: the latest stands for all), drop those later than
        ``misfire_grace_time``, report what was dropped, submit the rest."""
        grace = task.misfire_grace_time
        folded = len(run_times) - 1 if task.coalesce else 0
        runnable = run_times[folded:] if folded else run_times
        if isinstance(grace, float) and (now - runnable[0]).total_seconds() > grace:
            # Run times ascend, so the late ones are the first ones (the common case, the
            # first one on time, is settled by the one comparison above).
            missed = [t for t in runnable if (now - t).total_seconds() > grace]
            runnable = runnable[len(missed) :]
            if self._events.wants(ev.TASK_MISSED):
                for run_time in missed:
                    self._events.dispatch(
                        ev.TaskExecutionEvent(
                            ev.TASK_MISSED, task.id, store_alias, run_time, outcome="missed"
                        )
                    )
            self._runs.not_run(task, store_alias, missed, "missed")
            self._report_dropped(task, store_alias, run_times, missed, folded, now)
        elif folded:
            self._report_dropped(task, store_alias, run_times, [], folded, now)
        if folded:
            self._runs.not_run(task, store_alias, run_times[:folded], "coalesced")
        if runnable:
            self.submit(task, store_alias, runnable, "scheduler", folded, now)

    def _report_dropped(
        self,
        task: Task,
        store_alias: str,
        run_times: list[datetime],
        missed: list[datetime],
        folded: int,
        now: datetime,
    ) -> None:
        """One log line and one ``TASK_RUNS_DROPPED`` per task and pass (so per outage: the
        runs that came due while a store was away are all found by the pass after it)."""
        scheduler = self._scheduler
        dropped = sorted(missed + run_times[: max(folded, 0)])
        parts = []
        if missed:
            late = (now - missed[0]).total_seconds()
            parts.append(
                f"{len(missed)} run(s) missed (up to {late:.3f} s late; misfire_grace_time="
                f"{task.misfire_grace_time} s)"
            )
        if folded:
            parts.append(f"{folded} run(s) folded into one by coalesce")
        scheduler.logger.warning(
            "Task %s in store %r: %s", task_label(task), store_alias, " and ".join(parts)
        )
        if self._events.wants(ev.TASK_RUNS_DROPPED):
            self._events.dispatch(
                ev.TaskRunsDroppedEvent(
                    ev.TASK_RUNS_DROPPED,
                    task.id,
                    store_alias,
                    len(missed),
                    folded,
                    dropped[0],
                    dropped[-1],
                )
            )

    def submit(
        self,
        task: Task,
        store_alias: str,
        run_times: list[datetime],
        source: str,
        folded: int,
        submitted: datetime | None = None,
    ) -> bool:
        """Hand ``run_times`` of ``task`` to its executor; ``TASK_SUBMITTED`` (True) or
        ``TASK_MAX_INSTANCES``; an unknown executor or a failing submission is logged.
        ``submitted`` is the submission time its history records (a pass's time; default
        now)."""
        scheduler = self._scheduler
        try:
            executor = scheduler._executors[task.executor]
        except KeyError:
            scheduler.logger.error(
                "Task %s names the executor %r, which this scheduler does not have",
                task_label(task),
                task.executor,
            )
            return False
        if type(run_times) is not Submission and (self._runs.enabled or task.retries):
            # Carries the attempt, source and submission time to the run's history record.
            when = submitted or datetime.now(utc)
            if source == "scheduler":
                run_times = Submission.of(run_times, when)
            else:
                run_times = Submission(run_times, when, source)
        try:
            executor.submit(task, run_times)
        except MaxInstancesReachedError:
            scheduler.logger.warning(
                "Task %s is still running %s time(s); this run is skipped",
                task_label(task),
                task.max_instances,
            )
            code = ev.TASK_MAX_INSTANCES
            attempt = run_times.attempt if type(run_times) is Submission else 1
            self._runs.not_run(task, store_alias, run_times, "skipped", source, attempt)
        except Exception:
            scheduler.logger.exception(
                "Submitting task %s to executor %r failed", task_label(task), task.executor
            )
            return False
        else:
            code = ev.TASK_SUBMITTED
        if self._events.wants(code):
            self._events.dispatch(
                ev.TaskSubmissionEvent(code, task.id, store_alias, list(run_times), source, folded)
            )
        return code == ev.TASK_SUBMITTED

    # -- store locks (lock_path) ---------------------------------------------------------------
    def store_lock(self, alias: str) -> FileLock | None:
        """The inter-process lock of store ``alias``: only with ``lock_path``, and only for
        stores other processes can share (persistent ones; a memory store is private)."""
        lock_path = self._scheduler.lock_path
        if not lock_path:
            return None
        lock = self._locks.get(alias)
        if lock is None:
            if not isinstance(self._scheduler.stores.get(alias), PersistentStore):
                return None
            from asyncz.locks import FileLock, format_lock_path

            lock = FileLock(format_lock_path(lock_path, alias))
            self._locks[alias] = lock
        return lock

    def forget_lock(self, alias: str) -> None:
        """Drop the lock of store ``alias`` (its file could not be created)."""
        self._locks.pop(alias, None)

    def close_locks(self) -> None:
        """At shutdown: close every store lock and remove its file."""
        locks, self._locks = self._locks, {}
        for lock in locks.values():
            lock.close(remove=True)
