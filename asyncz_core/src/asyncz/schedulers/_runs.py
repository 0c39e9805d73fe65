"""After a run: its history record, and its retry.

Data path: an executor reports a finished run (``reporter.finished``, the scheduler's
:class:`~asyncz.schedulers._dispatch.Dispatcher`) -> :meth:`RunKeeper.finished` decides the
outcome, buffers the values of its :class:`~asyncz.tasks.runs.RunRecord` (a plain tuple)
and, for a failed run with attempts left, writes the retry into the task's stored state (a
:class:`~asyncz.tasks.runs.PendingRun`, compare-and-set on the task's revision). Runs that
never started (missed, skipped, coalesced) are recorded by the processing pass
(:meth:`RunKeeper.not_run`). The buffer is flushed to each task's store in batches: one
``add_runs`` call per store and flush, at most every :data:`FLUSH_INTERVAL` seconds or every
:data:`FLUSH_SIZE` records, and at shutdown; records are pruned every
:data:`PRUNE_INTERVAL` seconds. A store that keeps history in the in-memory ring of
:class:`~asyncz.stores.base.BaseStore` (the memory store) takes the tuples as they are
(``add_raw_runs``) and builds each record when it is first read; any other store gets
records (``add_runs``), built at flush time. So the run path of a finished run costs one
tuple and one ``time.time()``.

The scheduler owns one keeper (``scheduler._runs``); it is the only writer of history.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
from collections import deque
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from asyncz import events as ev
from asyncz.exceptions import StaleTaskError, TaskTimeoutError
from asyncz.stores.base import call
from asyncz.tasks.runs import (
    RUN_OUTCOMES,
    PendingRun,
    RunRecord,
    Submission,
    reschedule,
    trigger_next,
)
from asyncz.tasks.task import task_label

if TYPE_CHECKING:
    from asyncz.schedulers.base import BaseScheduler
    from asyncz.tasks import Task

__all__ = ["FLUSH_INTERVAL", "FLUSH_SIZE", "PRUNE_INTERVAL", "RunKeeper", "retry_delay"]

#: Seconds between flushes of the history buffer (at most).
FLUSH_INTERVAL = 0.1
#: Records that make a flush start at once.
FLUSH_SIZE = 256
#: Seconds between prunings of every store's history.
PRUNE_INTERVAL = 60.0
#: How much of a traceback and of a return value's repr a record keeps.
TRACEBACK_LIMIT = 4000
REPR_LIMIT = 200
#: Times a retry write reads the task again after a refused compare-and-set.
WRITE_ATTEMPTS = 20

_UTC = timezone.utc
_fromtimestamp = datetime.fromtimestamp


def retry_delay(task: Task, attempt: int) -> float:
    """Seconds before the retry that follows failed attempt ``attempt`` (1, 2, ...):
    ``min(retry_max_delay, retry_delay * retry_backoff ** (attempt - 1))`` plus up to
    ``retry_jitter`` seconds at random."""
    base = task.retry_delay if isinstance(task.retry_delay, float) else 1.0
    backoff = task.retry_backoff if isinstance(task.retry_backoff, float) else 2.0
    delay = base * backoff ** (attempt - 1)
    cap = task.retry_max_delay
    if isinstance(cap, float):
        delay = min(cap, delay)
    jitter = task.retry_jitter
    if isinstance(jitter, float) and jitter > 0:
        delay += random.uniform(0, jitter)
    return delay


def outcome_of(exception: BaseException | None) -> str:
    if exception is None:
        return "success"
    if isinstance(exception, TaskTimeoutError):
        return "timeout"
    if isinstance(exception, asyncio.CancelledError):
        return "cancelled"
    return "error"


class RunKeeper:
    """History records and retries of one scheduler's runs."""

    def __init__(self, scheduler: BaseScheduler) -> None:
        self._scheduler = scheduler
        settings = scheduler.settings.history
        #: ``asyncz.history.enabled``.
        self.enabled = settings.enabled
        self.max_age = settings.max_age
        self.max_per_task = settings.max_per_task
        #: Oldest first: the values of each finished run (a tuple whose item 0 is its store's
        #: alias: see _build) ...
        self._buffer: deque[tuple[Any, ...]] = deque()
        #: ... and (store alias, record) for the other records (runs that did not start).
        self._others: deque[tuple[str, RunRecord]] = deque()
        self._flush_planned = False
        self._flush_soon = False
        self._last_prune = time.monotonic()
        self._prefix = secrets.token_hex(4)
        self._ids = itertools.count(1)
        self._writes: set[asyncio.Future[Any]] = set()
        if self.enabled:
            # The in-memory ring's module, imported now rather than by the first flush (in
            # the middle of the first burst of runs).
            import asyncz.stores._history  # noqa: F401

    def new_run_id(self) -> str:
        return f"{self._prefix}-{next(self._ids):x}"

    # -- what executors report (any thread) --------------------------------------------------
    def finished(
        self,
        task: Task,
        run_time: datetime,
        value: Any,
        exception: BaseException | None,
        traceback: str | None,
        started_at: float | None,
        submission: Sequence[datetime] | None,
    ) -> tuple[str, int, str]:
        """Record a finished run, plan its retry; returns its (outcome, attempt, source)."""
        outcome = "success" if exception is None else outcome_of(exception)
        if type(submission) is Submission:
            attempt, source, submitted = (
                submission.attempt,
                submission.source,
                submission.submitted_at,
            )
        else:
            attempt, source, submitted = 1, "scheduler", None
        if self.enabled:
            end = time.time()
            error_type = error_message = return_repr = None
            if exception is not None:
                error_type = type(exception).__name__
                error_message = str(exception)[: REPR_LIMIT * 5]
                if traceback is not None and len(traceback) > TRACEBACK_LIMIT:
                    traceback = "...\n" + traceback[-TRACEBACK_LIMIT:]
            elif value is not None:
                return_repr = repr(value)[:REPR_LIMIT]
            # The record itself is built later (_build): the run path only keeps these values.
            buffer = self._buffer
            buffer.append(
                (
                    task.store_alias,
                    task.id,
                    task.executor,
                    run_time,
                    outcome,
                    submitted,
                    started_at,
                    end,
                    attempt,
                    source,
                    error_type,
                    error_message,
                    traceback,
                    return_repr,
                ),
            )
            if not self._flush_planned or (not self._flush_soon and len(buffer) >= FLUSH_SIZE):
                self._plan_flush(len(buffer))
        if task.retries or task.pending_runs:
            self._after(task, run_time, outcome, attempt, exception)
        return outcome, attempt, source

    def not_run(
        self,
        task: Task,
        store: str,
        run_times: Sequence[datetime],
        outcome: str,
        source: str = "scheduler",
        attempt: int = 1,
    ) -> None:
        """Runs of a pass that did not start: ``missed``, ``skipped`` or ``coalesced``."""
        if not self.enabled or not run_times:
            return
        now = datetime.now(_UTC)
        node = self._scheduler.identity
        for run_time in run_times:
            self._add_record(
                store,
                RunRecord(
                    task.id,
                    self.new_run_id(),
                    run_time,
                    outcome,
                    submitted_at=now,
                    lateness=(now - run_time).total_seconds(),
                    attempt=attempt,
                    node=node,
                    executor=task.executor,
                    source=source,
                ),
            )

    def note(self, task: Task, store: str, outcome: str, note: str | None) -> None:
        """A record that is not a run (``paused``, with the operator's note)."""
        if self.enabled:
            now = datetime.now(_UTC)
            record = RunRecord(
                task.id,
                self.new_run_id(),
                now,
                outcome,
                submitted_at=now,
                node=self._scheduler.identity,
                executor=task.executor,
                source="manual",
                note=note,
            )
            self._add_record(store, record)

    # -- the buffer ----------------------------------------------------------------------------
    def _build(self, raw: tuple[Any, ...]) -> RunRecord:
        """The record of a finished run from the values :meth:`finished` kept (item 1 is the
        task id and item 7 the end, epoch seconds: :class:`~asyncz.stores._history.RunRing`
        reads them). Its run id is given now."""
        (
            _alias,
            task_id,
            executor,
            run_time,
            outcome,
            submitted,
            started,
            end,
            attempt,
            source,
            error_type,
            error_message,
            traceback,
            return_repr,
        ) = raw
        return RunRecord(
            task_id,
            self.new_run_id(),
            run_time,
            outcome,
            submitted,
            None if started is None else _fromtimestamp(started, _UTC),
            _fromtimestamp(end, _UTC),
            None if started is None else end - started,
            None if started is None else started - run_time.timestamp(),
            attempt,
            self._scheduler.identity,
            executor,
            source,
            error_type,
            error_message,
            traceback,
            return_repr,
        )

    def _add_record(self, store: str, record: RunRecord) -> None:
        self._others.append((store, record))
        self._plan_flush(len(self._buffer) + len(self._others))

    def _plan_flush(self, waiting: int) -> None:
        if not self._flush_planned:
            self._flush_planned = True
            self._plan(FLUSH_INTERVAL)
        elif not self._flush_soon and waiting >= FLUSH_SIZE:
            self._flush_soon = True
            self._plan(0.0)

    def _plan(self, delay: float) -> None:
        loop = self._scheduler._loop
        if loop is None:
            return  # stopped: the shutdown flush, or the next one, takes the records
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        try:
            if running is loop:
                loop.call_later(delay, self._start_flush)
            else:
                loop.call_soon_threadsafe(loop.call_later, delay, self._start_flush)
        except RuntimeError:  # the loop closed under us
            pass

    def _start_flush(self) -> None:
        future = asyncio.ensure_future(self.flush())
        self._writes.add(future)
        future.add_done_callback(self._writes.discard)

    async def flush(self) -> None:
        """Write the buffered records to their stores (one ``add_runs`` per store), and
        prune every :data:`PRUNE_INTERVAL` seconds. A store that fails is logged; its
        records are dropped (history never stops the runs)."""
        self._flush_planned = self._flush_soon = False
        # (Executors on other threads may append meanwhile: those wait for the next flush.)
        popleft = self._buffer.popleft
        items = [popleft() for _ in range(len(self._buffer))]
        batches: dict[str, list[RunRecord | tuple[Any, ...]]] = {}
        if items:
            aliases = {item[0] for item in items}
            if len(aliases) == 1:  # the common case: one store
                batches[aliases.pop()] = items
            else:
                for item in items:
                    batches.setdefault(item[0], []).append(item)
        others = self._others
        for _ in range(len(others)):
            alias, record = others.popleft()
            batches.setdefault(alias, []).append(record)
        stores = self._scheduler._stores
        build = self._build
        for alias, items in batches.items():
            store = stores.get(alias)
            if store is None:
                continue
            try:
                add_raw = getattr(store, "add_raw_runs", None)
                if add_raw is not None and add_raw(items, build):
                    continue  # records built when read
                records = [build(i) if type(i) is tuple else cast(RunRecord, i) for i in items]
                await call(store, store.add_runs(records))
            except Exception as exc:
                self._scheduler.logger.warning(
                    "Writing %d history record(s) to store %r failed: %s", len(items), alias, exc
                )
        if time.monotonic() - self._last_prune >= PRUNE_INTERVAL:
            await self.prune()

    async def prune(self) -> None:
        self._last_prune = time.monotonic()
        now = datetime.now(_UTC)
        for alias, store in list(self._scheduler._stores.items()):
            try:
                await call(store, store.prune_runs(now, self.max_age, self.max_per_task))
            except Exception as exc:
                self._scheduler.logger.warning(
                    "Pruning the history of store %r failed: %s", alias, exc
                )

    async def close(self) -> None:
        """At shutdown, before the stores stop: finish the retry writes, flush."""
        if self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
        await self.flush()

    # -- retries --------------------------------------------------------------------------------
    def _after(
        self,
        task: Task,
        run_time: datetime,
        outcome: str,
        attempt: int,
        exception: BaseException | None,
    ) -> None:
        retries = task.retries if isinstance(task.retries, int) else 0
        retry = outcome in ("error", "timeout") and attempt <= retries
        guarded = any(
            p.run_time == run_time and p.attempt == attempt + 1 for p in task.pending_runs
        )
        if not retry and not guarded:
            return
        loop = self._scheduler._loop
        if loop is None:
            self._scheduler.logger.warning(
                "Task %s: the scheduler stopped; no retry of its failed run", task_label(task)
            )
            return
        coro = self._write_after(
            task, run_time, outcome, attempt, exception if retry else None, retry
        )
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        future: asyncio.Future[Any]
        if running is loop:
            future = loop.create_task(coro)
        else:
            future = asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop), loop=loop)
        self._writes.add(future)
        future.add_done_callback(self._writes.discard)

    async def _write_after(
        self,
        task: Task,
        run_time: datetime,
        outcome: str,
        attempt: int,
        exception: BaseException | None,
        retry: bool,
    ) -> None:
        """Store the retry as a pending run of the task (compare-and-set), or drop the guard
        the pass left for it (and the task, when it has nothing left to run)."""
        scheduler = self._scheduler
        alias = task.store_alias
        store = scheduler._stores.get(alias)
        if store is None:
            return
        due = datetime.now(_UTC) + timedelta(seconds=retry_delay(task, attempt)) if retry else None
        for _ in range(WRITE_ATTEMPTS):
            stored = await call(store, store.lookup_task(task.id))
            if stored is None or (stored.next_run_time is None and not stored.pending_runs):
                return  # deleted or paused meanwhile: no retry
            following = trigger_next(stored)
            kept = tuple(
                p
                for p in stored.pending_runs
                if not (p.run_time == run_time and p.attempt == attempt + 1)
            )
            if due is not None:
                kept += (PendingRun(run_time, due, attempt + 1, "retry"),)
            stored.pending_runs = kept
            reschedule(stored, following)
            try:
                if stored.next_run_time is None:
                    await call(store, store.delete_task(stored.id))
                    scheduler._dispatch(ev.TaskEvent(ev.TASK_REMOVED, stored.id, alias))
                    return
                await call(store, store.update_task(stored))
            except StaleTaskError:
                continue
            break
        else:
            scheduler.logger.error("Task %s: could not store its retry", task_label(task))
            return
        if due is None:
            return
        following_attempt = attempt + 1
        scheduler.logger.info(
            "Task %s: attempt %d ended with %s; attempt %d at %s",
            task_label(task),
            attempt,
            outcome,
            following_attempt,
            due,
        )
        if scheduler._wants(ev.TASK_RETRY_SCHEDULED):
            scheduler._dispatch(
                ev.TaskRetryEvent(
                    ev.TASK_RETRY_SCHEDULED,
                    task.id,
                    alias,
                    run_time,
                    attempt + 1,
                    due,
                    outcome,
                    exception,
                )
            )
        scheduler._wakeup_if_sooner(stored.next_run_time)

    # -- reading -------------------------------------------------------------------------------
    async def last_runs(self, alias: str, task_ids: Sequence[str]) -> dict[str, RunRecord]:
        store = self._scheduler._stores.get(alias)
        if store is None or not task_ids:
            return {}
        return await call(store, store.get_last_runs(list(task_ids), RUN_OUTCOMES))
