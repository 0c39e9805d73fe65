"""asyncio schedulers: :class:`AsyncIOScheduler` and :class:`NativeAsyncIOScheduler`."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from asyncz import events as ev
from asyncz.schedulers.base import BaseScheduler, SchedulerState
from asyncz.stores.base import LoopThread

__all__ = ["AsyncIOScheduler", "NativeAsyncIOScheduler"]


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class AsyncIOScheduler(BaseScheduler):
    """The default scheduler, with synchronous ``start()`` / ``shutdown()``.

    Started inside a running event loop it processes tasks on that loop; started from plain
    synchronous code (or with ``isolated_event_loop=True``) it runs an event loop of its own
    on a daemon thread, which ``shutdown()`` stops and joins. An explicit ``event_loop=`` is
    used as given (run on a thread of its own if it is not running).

    ``start()`` and ``shutdown()`` are reference counted: only the outermost pair really
    starts and stops the scheduler, and each returns ``True`` exactly when that call did.
    """

    # -- loop selection ----------------------------------------------------------------------
    def _choose_loop(self) -> asyncio.AbstractEventLoop:
        requested = self._requested_loop
        if requested is not None and not requested.is_closed():
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

    def _on_loop_thread(self) -> bool:
        return self._loop is not None and _running_loop() is self._loop

    # -- start -------------------------------------------------------------------------------
    def _begin(self, paused: bool) -> asyncio.AbstractEventLoop:
        loop = self._choose_loop()
        self._loop = loop
        self._state = SchedulerState.STATE_PAUSED if paused else SchedulerState.STATE_RUNNING
        return loop

    def _launch(self, loop: asyncio.AbstractEventLoop) -> None:
        # Plugins and listeners hear about the start before the first task is submitted.
        self.logger.info("Scheduler started")
        self._call_hook("asyncz_scheduler_started", scheduler=self)
        self._dispatch(ev.SchedulerEvent(ev.SCHEDULER_START))
        if _running_loop() is loop:
            self._main_task = loop.create_task(self._run(), name="asyncz-scheduler")
        else:
            started = threading.Event()

            def create() -> None:
                self._main_task = loop.create_task(self._run(), name="asyncz-scheduler")
                started.set()

            loop.call_soon_threadsafe(create)
            started.wait(timeout=10)

    def _abort(self) -> None:
        self._state = SchedulerState.STATE_STOPPED
        self._loop = None
        with self._lock:
            self._ref_count = max(0, self._ref_count - 1)
        if self._loop_thread is not None:
            self._loop_thread.stop()
            self._loop_thread = None

    def start(self, paused: bool = False) -> bool:  # type: ignore[override]
        """Start processing (``paused=True``: start without running anything until
        :meth:`resume`). Returns ``True`` when this call really started the scheduler."""
        if not self._acquire():
            return False
        try:
            loop = self._begin(paused)
            self._sync(self._start_components())
            self._launch(loop)
        except BaseException:
            self._abort()
            raise
        return True

    # -- shutdown ----------------------------------------------------------------------------
    async def _finish(self, wait: bool, timeout: float | None = None) -> None:
        """On the scheduler loop: shutdown tasks, wait for (or cancel) runs, stop components."""
        main = self._main_task
        self._main_task = None
        if main is not None and not main.done():
            main.cancel()
            try:
                await main
            except (asyncio.CancelledError, Exception):
                pass
        await self._run_shutdown_tasks()
        for executor in self._executors.values():
            if not wait:
                executor.cancel_running()
            elif not await executor.join(timeout):
                cancelled = executor.cancel_running()
                self.logger.warning(
                    "Shutdown timed out after %s s; cancelled %d run(s) of executor %r",
                    timeout,
                    cancelled,
                    executor.alias,
                )
        await self._stop_components(wait)

    def _end(self) -> None:
        self._loop = None
        self._next_wakeup = None
        self.logger.info("Scheduler has been shut down")
        self._dispatch(ev.SchedulerEvent(ev.SCHEDULER_SHUTDOWN))
        self._call_hook("asyncz_scheduler_shutdown", scheduler=self)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:  # type: ignore[override]
        """Stop the scheduler (the outermost call does). Returns ``True`` when this call
        really stopped it.

        ``wait=True`` returns after the running tasks finished (after ``timeout`` seconds the
        rest are cancelled and reported); ``wait=False`` cancels what runs and returns. On
        the scheduler's own loop thread a synchronous call cannot wait for coroutines: they
        finish in the background (use :class:`NativeAsyncIOScheduler` to await them).
        """
        if not self._release():
            return False
        loop = self._loop
        self._state = SchedulerState.STATE_STOPPED
        if loop is not None:
            if _running_loop() is loop:
                finishing = loop.create_task(self._finish(wait, timeout))
                finishing.add_done_callback(_log_failure(self))
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(self._finish(wait, timeout), loop).result()
        if self._loop_thread is not None:
            self._loop_thread.stop()
            self._loop_thread = None
        if self._portal is not None:
            self._portal.stop()
            self._portal = None
        self._end()
        return True

    def stop(self, wait: bool = True) -> bool:
        """The reference-counted twin of :meth:`shutdown`."""
        return self.shutdown(wait=wait)

    # -- context managers -------------------------------------------------------------------
    def __enter__(self) -> AsyncIOScheduler:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    async def __aenter__(self) -> AsyncIOScheduler:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown_async()

    async def shutdown_async(self, wait: bool = True, timeout: float | None = None) -> bool:
        """Awaitable shutdown: on the scheduler's loop it awaits the running tasks."""
        if self._loop is not None and _running_loop() is self._loop:
            if not self._release():
                return False
            self._state = SchedulerState.STATE_STOPPED
            await self._finish(wait, timeout)
            if self._portal is not None:
                self._portal.stop()
                self._portal = None
            self._end()
            return True
        return await asyncio.to_thread(self.shutdown, wait, timeout)


class NativeAsyncIOScheduler(AsyncIOScheduler):
    """For applications that own the running loop: ``await start()`` / ``await shutdown()``.

    Always runs on the loop that awaits :meth:`start`; shutdown awaits the running tasks
    and the ``shutdown``-trigger tasks.
    """

    def _choose_loop(self) -> asyncio.AbstractEventLoop:
        running = _running_loop()
        if running is None:
            raise RuntimeError("NativeAsyncIOScheduler.start() must be awaited in a running loop")
        return running

    async def start(self, paused: bool = False) -> bool:  # type: ignore[override]
        if not self._acquire():
            return False
        try:
            loop = self._begin(paused)
            await self._start_components()
            self._launch(loop)
        except BaseException:
            self._abort()
            raise
        return True

    async def shutdown(self, wait: bool = True, timeout: float | None = None) -> bool:  # type: ignore[override]
        return await self.shutdown_async(wait, timeout)

    async def stop(self, wait: bool = True) -> bool:  # type: ignore[override]
        return await self.shutdown_async(wait)

    async def __aenter__(self) -> NativeAsyncIOScheduler:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown_async()

    def __enter__(self) -> Any:
        raise TypeError("NativeAsyncIOScheduler is an async context manager: use 'async with'")


def _log_failure(scheduler: BaseScheduler) -> Any:
    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            scheduler.logger.error("Shutdown failed", exc_info=task.exception())

    return done
