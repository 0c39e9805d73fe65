"""The harness of the store contract: the store author's hooks, the ``store`` fixture and the
driver loop store coroutines run on.

Data path: the fixture starts the store on a scheduler that is not running (the store's
step of ``start()``), and :meth:`StoreHarness.call` awaits store coroutines from the test
the way the scheduler's passes do.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Awaitable, Coroutine, Iterator
from datetime import datetime, timedelta
from typing import Any, ClassVar, TypeVar

import pytest

from asyncz import events as ev
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import (
    BaseStore,
    LoopThread,
    PersistentStore,
    attach_io_loop,
    call,
    detach_io_loop,
)
from asyncz.testing.helpers import (
    MISSING_FUNCTION,
    UTC,
    make_task,
)

__all__ = ["StoreHarness"]

T = TypeVar("T")


class StoreHarness:
    """What every part of the store contract stands on: the hooks a store author implements
    (:meth:`make_store`, :meth:`overwrite_payload`), the ``store`` fixture, and :meth:`call`,
    which runs a store coroutine on a driver loop through :func:`asyncz.stores.base.call`,
    as the scheduler calls it (a store that does I/O gets an I/O loop, as a scheduler gives
    it one).
    """

    #: Seconds one store call may take before the test fails.
    call_timeout: ClassVar[float] = 30.0

    _driver: LoopThread | None = None
    _io: LoopThread | None = None
    _store: BaseStore | None = None

    # -- hooks for store authors ----------------------------------------------------------
    def make_store(self) -> BaseStore:
        """A new, not yet started store instance.

        Point it at a clean backend location that depends only on :attr:`namespace` (a key
        prefix, a collection, a table, a directory): the suite calls it again within one
        test to check that a second instance sees what the first one stored.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement make_store()")

    def overwrite_payload(
        self, store: BaseStore, task_id: str, payload: bytes
    ) -> None | Coroutine[Any, Any, None]:
        """Replace the stored payload of the existing task ``task_id`` by ``payload``, raw,
        leaving its run-time index (next run time) as it is: the way a corrupt payload, a
        renamed function or a tampered signature looks to the store.

        May be a coroutine function; it then runs on the store's I/O loop. Leave it
        unimplemented to skip the unrestorable-task tests (persistent stores should not).
        """
        raise NotImplementedError

    # -- machinery ------------------------------------------------------------------------
    @property
    def namespace(self) -> str:
        """A name unique to the running test, for :meth:`make_store`."""
        value: str | None = self.__dict__.get("_namespace")
        if value is None:
            value = f"asyncz-contract-{uuid.uuid4().hex[:12]}"
            self.__dict__["_namespace"] = value
        return value

    def call(self, coro: Awaitable[T], store: BaseStore | None = None) -> T:
        """Run a store coroutine the way the scheduler does and return its result."""
        target = store or self._store
        driver = self._driver
        if target is None or driver is None or driver.loop is None:
            if isinstance(coro, Coroutine):
                coro.close()
            raise RuntimeError("call() needs the 'store' fixture")
        future = asyncio.run_coroutine_threadsafe(call(target, coro), driver.loop)
        return future.result(timeout=self.call_timeout)

    def start_store(self, store: BaseStore | None = None) -> BaseStore:
        """Make (or take) a store and start it on a scheduler that is not running; a store
        that does I/O gets an I/O loop first, as a scheduler gives it one."""
        store = store or self.make_store()
        scheduler = self.host_scheduler
        if self._io is not None and self._io.loop is not None:
            attach_io_loop(store, self._io.loop)
        self.call(store.start(scheduler, "default"), store)
        return store

    def stop_store(self, store: BaseStore) -> None:
        """Shut a store started by :meth:`start_store` down and take its I/O loop back."""
        try:
            self.call(store.shutdown(), store)
        finally:
            detach_io_loop(store)

    @pytest.fixture
    def store(self) -> Iterator[BaseStore]:
        """A started store on a clean backend; emptied and shut down afterwards."""
        driver = LoopThread("asyncz-contract-driver")
        driver.start()
        self._driver = driver
        io = LoopThread("asyncz-contract-io")
        io.start()
        self._io = io
        self.host_scheduler = AsyncIOScheduler()
        self.restore_events: list[ev.TaskRestoreFailedEvent] = []
        self.host_scheduler.add_listener(
            self.restore_events.append,  # type: ignore[arg-type]
            ev.TASK_RESTORE_FAILED,
        )
        store = self.make_store()
        self._store = store
        try:
            self.start_store(store)
            self.call(store.remove_all_tasks())
            yield store
        finally:
            try:
                self.call(store.remove_all_tasks())
            finally:
                try:
                    self.stop_store(store)
                finally:
                    self._store = None
                    self._driver = None
                    self._io = None
                    driver.stop()
                    io.stop()

    @property
    def persistent(self) -> bool:
        return isinstance(self._store, PersistentStore)

    def require_persistent(self) -> None:
        if not self.persistent:
            pytest.skip("the store does not serialize tasks (not a PersistentStore)")

    def corrupt(self, store: BaseStore, task_id: str, payload: bytes) -> None:
        """Call :meth:`overwrite_payload` (skipping the test when it is not implemented)."""
        try:
            result = self.overwrite_payload(store, task_id, payload)
        except NotImplementedError:
            pytest.skip(f"{type(self).__name__} does not implement overwrite_payload()")
        if inspect.iscoroutine(result):
            self.call(result, store)

    def _bad_payloads(self, store: BaseStore) -> dict[str, bytes]:
        assert isinstance(store, PersistentStore)
        good = store.encode_task(make_task("x", self.at(0)))
        state = store.serializer.loads(good)
        state["fn"] = MISSING_FUNCTION
        renamed = store.serializer.dumps(state)
        tampered = bytearray(good)
        tampered[len(tampered) // 2] ^= 0x01
        return {
            "garbage": b"\x80not a payload\x00",
            "renamed": renamed,
            "tampered": bytes(tampered),
        }

    @staticmethod
    def at(seconds: float) -> datetime:
        """A fixed instant ``seconds`` after 2030-01-01T00:00Z (far from now, both ways)."""
        return datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
