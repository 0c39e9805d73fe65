"""asyncio schedulers: :class:`AsyncIOScheduler` and :class:`NativeAsyncIOScheduler`.

Data path: ``start()`` here starts stores and executors and launches the processing
loop (wake-up -> pass -> executor -> event) on the chosen asyncio loop; ``shutdown()``
ends it.

Lifecycle contract (both schedulers):

* ``start()`` and ``shutdown()`` are reference counted: every ``start()`` must be paired
  with one ``shutdown()`` (or ``stop()``), and only the outermost pair really starts and
  stops the scheduler. Each call returns ``True`` exactly when *that call* really started /
  stopped it, ``False`` when it only counted a nested scope. (Asyncz 0.17 returns the
  opposite from its asyncio schedulers; asyncz follows the natural reading: "did this call
  start it?".) ``shutdown()`` of a scheduler that is not running raises
  :class:`~asyncz.exceptions.SchedulerNotRunningError`.
* ``running`` and ``state`` are up to date as soon as the call returns.
* ``shutdown(wait=True, timeout=None)`` runs the ``shutdown``-trigger tasks (not when the
  scheduler is paused), then returns once the running tasks finished; ``wait=False``
  cancels what runs. All within ``timeout`` seconds (default ``asyncz.shutdown_timeout``):
  then running coroutines are cancelled (``TASK_ERROR`` with
  :class:`asyncio.CancelledError`), plain functions on a worker thread are abandoned, and a
  warning names each task and since when it ran.
* A synchronous ``shutdown()`` on the scheduler's own loop cannot block it: the clean-up
  runs in a :class:`_Finishing` task, which the loop's teardown waits for.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Coroutine
from typing import Any, NoReturn

from asyncz import events as ev
from asyncz.schedulers._shutdown import report_unfinished, run_shutdown_tasks
from asyncz.schedulers.base import BaseScheduler, SchedulerState
from asyncz.stores.base import LoopThread

__all__ = ["AsyncIOScheduler", "NativeAsyncIOScheduler"]

_FINISHING: set[asyncio.Task[None]] = set()

#: Seconds a synchronous start() waits for the scheduler loop to accept the processing loop.
_LAUNCH_TIMEOUT = 10.0
#: Seconds shutdown lets a processing pass in progress complete before cancelling it.
_PASS_GRACE = 5.0
#: Seconds cancelled coroutines get, after the shutdown timeout, to end before the rest is
#: reported as abandoned.
_CANCEL_GRACE = 1.0


class _Finishing(asyncio.Task[None]):
    """The clean-up of a shutdown on the scheduler's own loop, as a task the loop's teardown
    cannot cancel.

    ``asyncio.run()`` and ``asyncio.Runner`` (so uvicorn, hypercorn, ...) end by cancelling
    every task still pending, with the loop stopped, and then run the loop until those tasks
    are done. This task declines a cancellation that comes while its loop is stopped: the
    teardown then keeps the loop running until the shutdown tasks ran and the running tasks
    ended, within the shutdown timeout. Cancelled while its loop runs (``asyncio.timeout``,
    the shutdown timeout, an explicit ``cancel()``), it is cancelled as any task.
    """

    def cancel(self, msg: Any = None) -> bool:
        if not self.get_loop().is_running():
            return False
        return super().cancel(msg)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AsyncIOScheduler(BaseScheduler):
    """The default scheduler, with synchronous ``start()`` / ``shutdown()``.

    Where it runs:

    * started inside a running event loop, it processes tasks on that loop;
    * started from plain synchronous code, or with ``isolated_event_loop=True``, it runs an
      event loop of its own on a daemon thread, which ``shutdown()`` stops and joins;
    * with ``event_loop=`` it uses that loop: as it is when the loop is running, else on a
      thread of its own (the loop is stopped at shutdown, never closed: it is yours).

    Context managers: ``with scheduler:`` and ``async with scheduler:`` start on entry and
    shut down (waiting for running tasks) on exit, and nest like ``start()``/``shutdown()``.
    Inside a coroutine on the scheduler's own loop, prefer ``async with`` or
    :meth:`shutdown_async`: a synchronous ``shutdown()`` there cannot wait for coroutines
    without blocking the very loop they run on, so it stops the scheduler at once and runs
    the clean-up (shutdown tasks, waiting, closing stores) in a task on that loop, which
    ``asyncio.run()`` (and every server built on it) lets complete before the loop closes.
    """

    # -- loop selection ----------------------------------------------------------------------
    def _choose_loop(self) -> asyncio.AbstractEventLoop:
        requested = self._requested_loop
        if requested is not None:
            if requested.is_closed():
                raise RuntimeError("The event_loop given to the scheduler is closed")
            if requested.is_running():
                return requested
            self._loop_thread = LoopThread("asyncz-scheduler", loop=requested)
            return self._loop_thread.start()
        if not self._isolated:
            running = _running_loop()
            if running is not None:
                return running
        self._loop_thread = LoopThread("asyncz-scheduler")
        return self._loop_thread.start()

    def _on_loop(self) -> bool:
        """Whether the caller runs on the scheduler's loop (in one of its coroutines)."""
        return self._loop is not None and _running_loop() is self._loop

    # -- start -------------------------------------------------------------------------------
    def _begin(self, paused: bool) -> asyncio.AbstractEventLoop:
        loop = self._choose_loop()
        self._loop = loop
        self._attach_io_loops()
        self._state = SchedulerState.STATE_PAUSED if paused else SchedulerState.STATE_RUNNING
        return loop

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        def create() -> None:
            # Plugins and listeners hear about the start before the first task is submitted.
            self.logger.info("Scheduler started")
            self._call_hook("asyncz_scheduler_started", scheduler=self)
            self._dispatch(ev.SchedulerEvent(ev.SCHEDULER_START))
            self._main_task = loop.create_task(self._processor.run(), name="asyncz-scheduler")

        if _running_loop() is loop:
            create()
            return
        done = threading.Event()
        failure: list[BaseException] = []

        def create_there() -> None:
            try:
                create()
            except BaseException as exc:  # reported to the caller of start()
                failure.append(exc)
            finally:
                done.set()

        loop.call_soon_threadsafe(create_there)
        if not done.wait(_LAUNCH_TIMEOUT):
            raise RuntimeError(
                f"The scheduler's event loop did not respond within {_LAUNCH_TIMEOUT:g} s"
            )
        if failure:
            raise failure[0]

    def _abort(self) -> None:
        """Undo a start() that failed half-way, so that a later start() begins afresh."""
        self._close_failed_start()
        self._state = SchedulerState.STATE_STOPPED
        self._loop = None
        with self._lock:
            self._start_count = max(0, self._start_count - 1)
        if self._loop_thread is not None:
            self._loop_thread.stop()
            self._loop_thread = None

    def start(self, paused: bool = False) -> bool:
        """Start processing tasks; ``paused=True`` starts without running anything until
        :meth:`resume`. Returns ``True`` when this call really started the scheduler,
        ``False`` when it was already running (the call is then only counted)."""
        if not self._count_start():
            return False
        try:
            loop = self._begin(paused)
            self._block_on(self._start_components())
            self._launch(loop)
        except BaseException:
            self._abort()
            raise
        return True

    # -- shutdown ----------------------------------------------------------------------------
    def _timeout(self, timeout: float | None) -> float | None:
        """The seconds a shutdown may take: ``timeout``, else ``asyncz.shutdown_timeout``."""
        if timeout is None:
            return self.shutdown_timeout
        return None if math.isinf(timeout) else max(0.0, timeout)

    async def _finish(self, wait: bool, timeout: float | None, paused: bool = False) -> None:
        """On the scheduler loop: stop processing, run the shutdown tasks (not when the
        scheduler was paused), wait for (or cancel) the running tasks, stop the components.
        All of it within ``timeout`` seconds (``None``: no limit)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout

        def remaining(cap: float | None = None) -> float | None:
            left = None if deadline is None else max(0.0, deadline - loop.time())
            if cap is None:
                return left
            return cap if left is None else min(cap, left)

        main = self._main_task
        self._main_task = None
        if main is not None and not main.done() and main.get_loop() is loop:
            # The state is already STOPPED: woken up, the processing loop ends after the
            # pass in progress, so no pass is cut between submitting and storing.
            self._processor.end_sleep()
            finished, _ = await asyncio.wait({main}, timeout=remaining(_PASS_GRACE))
            if not finished:
                main.cancel()
            try:
                await main
            except (asyncio.CancelledError, Exception):
                pass
        if paused:
            # Started paused (an operator inspecting a shared store) or paused since: a
            # paused scheduler runs nothing, and removes nothing.
            self.logger.info("The scheduler is paused: its shutdown tasks did not run")
        else:
            try:
                await run_shutdown_tasks(self, deadline)
            except Exception:
                self.logger.exception("Running the shutdown tasks failed")
        timed_out = False
        for executor in self._executors.values():
            if not wait:
                executor.cancel_running()
            elif not await executor.join(remaining()):
                timed_out = True
                before = executor.running()
                self.logger.warning(
                    "Shutdown timed out after %s s with %d task(s) still running on executor "
                    "%r; coroutines are cancelled, threads and processes abandoned",
                    timeout,
                    len(before),
                    executor.alias,
                )
                executor.cancel_running()
                await executor.settle(_CANCEL_GRACE)  # cancelled coroutines end and report
                report_unfinished(self, executor, before)
        await self._stop_components(wait and not timed_out)

    def _end(self) -> None:
        self._loop = None
        self._processor.next_wakeup = None
        # The I/O thread (self._portal) stops with the stores, in _stop_components: a
        # shutdown finishing in the background still needs it.
        self.logger.info("Scheduler has been shut down")
        self._dispatch(ev.SchedulerEvent(ev.SCHEDULER_SHUTDOWN))
        self._call_hook("asyncz_scheduler_shutdown", scheduler=self)

    def _shutdown_sync(self, wait: bool, timeout: float | None) -> bool:
        if not self._count_shutdown():
            return False
        loop = self._loop
        paused = self._state == SchedulerState.STATE_PAUSED
        self._state = SchedulerState.STATE_STOPPED
        finishing = self._finish(wait, self._timeout(timeout), paused)
        if loop is not None and _running_loop() is loop:
            # Cannot block the loop the tasks run on: finish in a task that the loop's
            # teardown waits for (see _Finishing).
            self._finishing(loop, finishing)
        elif loop is not None and loop.is_running():
            asyncio.run_coroutine_threadsafe(finishing, loop).result()
        else:
            # The loop is gone (e.g. asyncio.run() returned): clean up on a fresh one.
            _run_elsewhere(finishing)
        if self._loop_thread is not None:
            self._loop_thread.stop()
            self._loop_thread = None
        self._end()
        return True

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Stop the scheduler (the outermost call does). Returns ``True`` when this call
        really stopped it, ``False`` when it only closed a nested scope.

        Runs the ``shutdown``-trigger tasks, then ``wait=True`` returns after the running
        tasks finished, ``wait=False`` cancels them. All within ``timeout`` seconds (default
        ``asyncz.shutdown_timeout``, 30; ``math.inf`` for no limit): then running coroutines
        are cancelled, and what still runs is reported and abandoned.
        Called from a coroutine on the scheduler's own loop it cannot block: it returns at
        once and the clean-up runs in a task the loop's teardown waits for (see
        docs/lifecycle.md); ``await shutdown_async()`` there waits for it.
        """
        return self._shutdown_sync(wait, timeout)

    def stop(self, wait: bool = True, timeout: float | None = None) -> bool:
        """The reference-counted twin of :meth:`shutdown` (the Asyncz spelling)."""
        return self._shutdown_sync(wait, timeout)

    async def shutdown_async(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Awaitable :meth:`shutdown`: waits for the running tasks without blocking the loop.

        On the scheduler's own loop the clean-up is awaited here; from another loop, it is
        done on a worker thread.
        """
        if self._on_loop():
            if not self._count_shutdown():
                return False
            paused = self._state == SchedulerState.STATE_PAUSED
            self._state = SchedulerState.STATE_STOPPED
            assert self._loop is not None
            finishing = self._finishing(
                self._loop, self._finish(wait, self._timeout(timeout), paused), report=False
            )
            try:
                # Shielded: should this caller be cancelled, the clean-up still completes.
                await asyncio.shield(finishing)
            finally:
                self._end()
            return True
        return await asyncio.to_thread(self._shutdown_sync, wait, timeout)

    def _finishing(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, None],
        report: bool = True,
    ) -> asyncio.Task[None]:
        """Run the clean-up ``coro`` as a :class:`_Finishing` task; ``report``: log its
        failure (nobody awaits it)."""
        task = _Finishing(coro, loop=loop, name="asyncz-shutdown")
        # The loop keeps only weak references to its tasks.
        _FINISHING.add(task)
        task.add_done_callback(_FINISHING.discard)
        if report:
            task.add_done_callback(self._report_finish)
        return task

    def _report_finish(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.logger.error("Shutting the scheduler down failed", exc_info=task.exception())

    # -- context managers -------------------------------------------------------------------
    def __enter__(self) -> AsyncIOScheduler:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._shutdown_sync(True, None)

    async def __aenter__(self) -> AsyncIOScheduler:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown_async()


class NativeAsyncIOScheduler(AsyncIOScheduler):
    """For applications that own the running loop: ``await start()`` / ``await shutdown()``.

    Always runs on the loop that awaits :meth:`start` (``event_loop=`` and
    ``isolated_event_loop`` do not apply); :meth:`shutdown` awaits the running tasks and the
    ``shutdown``-trigger tasks. Use it as ``async with scheduler:``.
    """

    def _choose_loop(self) -> asyncio.AbstractEventLoop:
        running = _running_loop()
        if running is None:  # pragma: no cover - an awaited start() always has a loop
            raise RuntimeError("NativeAsyncIOScheduler.start() must be awaited in a running loop")
        return running

    async def start(self, paused: bool = False) -> bool:  # type: ignore[override]
        """Start on the running loop; ``True`` when this call really started it."""
        if not self._count_start():
            return False
        try:
            loop = self._begin(paused)
            await self._start_components()
            self._launch(loop)
        except BaseException:
            self._abort()
            raise
        return True

    async def shutdown(  # type: ignore[override]
        self, wait: bool = True, timeout: float | None = None
    ) -> bool:
        """Stop (the outermost call does) and await the clean-up; ``True`` when this call
        really stopped the scheduler."""
        return await self.shutdown_async(wait, timeout)

    async def stop(  # type: ignore[override]
        self, wait: bool = True, timeout: float | None = None
    ) -> bool:
        """The reference-counted twin of :meth:`shutdown`."""
        return await self.shutdown_async(wait, timeout)

    async def __aenter__(self) -> NativeAsyncIOScheduler:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown_async()

    def __enter__(self) -> NoReturn:
        raise TypeError(
            "NativeAsyncIOScheduler starts by being awaited: use 'async with scheduler:' "
            "(or AsyncIOScheduler for 'with scheduler:')"
        )

    def __exit__(self, *exc_info: object) -> None:  # pragma: no cover - __enter__ raises
        return None


def _run_elsewhere(coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to the end on a fresh event loop (on a helper thread if this thread
    already runs one)."""
    if _running_loop() is None:
        asyncio.run(coro)
        return
    failure: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name="asyncz-shutdown")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
