"""The I/O home of stores: an event loop running forever on a daemon thread.

Data path: the scheduler starts one :class:`LoopThread` (its I/O thread and portal) and gives
its loop to every store that does I/O (``asyncz.stores.base.attach_io_loop``); store calls
run there through :func:`asyncz.stores.base.call`.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future

__all__ = ["LoopThread"]


class LoopThread:
    """An event loop running forever on a daemon thread: the I/O home of a network store."""

    def __init__(self, name: str, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self.name = name
        self.loop: asyncio.AbstractEventLoop | None = None
        self._given = loop
        self._thread: threading.Thread | None = None

    def start(self) -> asyncio.AbstractEventLoop:
        if self.loop is not None:
            return self.loop
        ready: Future[asyncio.AbstractEventLoop] = Future()

        given = self._given

        def run() -> None:
            loop = given or asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            ready.set_result(loop)
            try:
                loop.run_forever()
            finally:
                if given is None:  # a loop handed to us belongs to its owner
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.close()

        self._thread = threading.Thread(target=run, name=self.name, daemon=True)
        self._thread.start()
        self.loop = ready.result()
        return self.loop

    def stop(self) -> None:
        loop, thread = self.loop, self._thread
        self.loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            if thread is not threading.current_thread():
                thread.join(timeout=10)
