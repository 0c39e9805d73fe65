"""Nodes: this scheduler's record in the stores it shares with other schedulers.

Data path: when the scheduler starts, :meth:`Coordinator.beat` registers this node in every
store (a coordinated one, ``store.coordinated``, keeps the record in its backend for the
other nodes to see); then :meth:`Coordinator.run` heartbeats every
``asyncz.coordination.heartbeat_interval`` seconds in the *shared* stores, which also extends
the leases on the due tasks a pass in progress holds (:meth:`asyncz.abc.Store.heartbeat`; a
claim the node holds outside a pass is one whose reply was lost, and lapses). A store no
other process reads (the memory store) is not beaten on a timer, so an idle scheduler on
private stores never wakes up: its record there is brought up to date when it is read
(:meth:`Coordinator.get_nodes`, on the scheduler's loop, which is then alive). At shutdown
:meth:`Coordinator.leave` records the node as stopped and releases its claims.
``scheduler.get_nodes()`` reads every store's records (:meth:`Coordinator.get_nodes`).

A node that cannot heartbeat for longer than its lease has lost its claims: other nodes take
its due runs, and the fencing of write-backs refuses whatever it still tries to write back
(see :meth:`asyncz.schedulers._processing.Processor._process_store`). It logs the loss once
and the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from asyncz.nodes import NodeInfo
from asyncz.stores.base import BaseStore, call, run_inline
from asyncz.tasks.task import Task, task_label
from asyncz.timeutil import utc

if TYPE_CHECKING:
    from asyncz.schedulers.base import BaseScheduler

__all__ = ["Coordinator", "report_refused", "shares_nodes"]

#: Seconds :meth:`Coordinator.leave` may take per store (a store that cannot be reached at
#: shutdown: the claims lapse by themselves).
LEAVE_TIMEOUT = 5.0
#: Seconds ``get_nodes()`` called off the scheduler's loop waits for the loop to refresh
#: this node's record in the private stores (see :meth:`Coordinator.refresh`).
REFRESH_WAIT = 1.0


def shares_nodes(store: BaseStore) -> bool:
    """Whether other processes may read the node records of ``store``: a coordinated store,
    or one that keeps them anywhere but in this process's memory (its own ``heartbeat``)."""
    return store.coordinated or type(store).heartbeat is not BaseStore.heartbeat


class Coordinator:
    """The node record and heartbeats of one scheduler (``scheduler._coordinator``)."""

    def __init__(self, scheduler: BaseScheduler) -> None:
        self._scheduler = scheduler
        #: This node as last written (``None`` before the first heartbeat).
        self.node: NodeInfo | None = None
        #: Store alias -> when its last heartbeat succeeded.
        self.last_beat: dict[str, datetime] = {}
        self._lost: set[str] = set()
        self._failing: set[str] = set()
        #: While :meth:`run` waits for a shared store (it has none to beat): resolved by
        #: :meth:`store_added`.
        self._parked: asyncio.Future[None] | None = None

    def stores(self) -> list[tuple[str, BaseStore]]:
        """The stores this node records itself in: all of them (a store no other process
        shares keeps the record in memory, so ``get_nodes()`` shows this node there too)."""
        return list(self._scheduler.stores.items())

    def _record(self, now: datetime) -> NodeInfo:
        scheduler = self._scheduler
        lease = scheduler.settings.coordination.lease
        node = self.node
        if node is None or node.lease != lease:
            started = scheduler._started_at or now
            node = NodeInfo.for_this_process(scheduler.identity, lease, started)
        node = node.beat(now)
        self.node = node
        return node

    async def beat(self, shared_only: bool = False) -> None:
        """One heartbeat in every store, or (``shared_only``) in those other processes read
        (failures are logged, not raised)."""
        stores = self.stores()
        if shared_only:
            stores = [(alias, store) for alias, store in stores if shares_nodes(store)]
        if not stores:
            return
        node = self._record(datetime.now(utc))
        logger = self._scheduler.logger
        for alias, store in stores:
            try:
                extend = alias in self._scheduler._processor.passing
                await call(store, store.heartbeat(node, extend))
            except Exception as exc:
                if alias not in self._failing:
                    self._failing.add(alias)
                    logger.warning(
                        "Heartbeat of node %r in store %r failed: %s", node.identity, alias, exc
                    )
                last = self.last_beat.get(alias)
                lapsed = last is None or (datetime.now(utc) - last).total_seconds() > node.lease
                if lapsed and alias not in self._lost and last is not None:
                    self._lost.add(alias)
                    logger.error(
                        "Node %r has not reached store %r for more than its lease (%g s): its "
                        "claims lapsed and other nodes take its due tasks over; whatever it "
                        "still holds will be refused at write-back",
                        node.identity,
                        alias,
                        node.lease,
                    )
                continue
            if alias in self._failing:
                self._failing.discard(alias)
                self._lost.discard(alias)
                logger.warning("Heartbeat of node %r in store %r recovered", node.identity, alias)
            self.last_beat[alias] = node.last_heartbeat

    async def run(self, first: bool = True) -> None:
        """Heartbeat the shared stores until cancelled (a task beside the processing loop);
        ``first=False`` waits one interval first (the start already beat once). Without a
        shared store it sleeps, without a timer, until one is added (:meth:`store_added`)."""
        interval = self._scheduler.settings.coordination.interval
        due = first
        while True:
            if not any(shares_nodes(store) for _, store in self.stores()):
                self._parked = asyncio.get_running_loop().create_future()
                try:
                    await self._parked
                finally:
                    self._parked = None
                due = True  # the new store hears of this node at once
            if due:
                await self.beat(shared_only=True)
            await asyncio.sleep(interval)
            due = True

    def store_added(self, store: BaseStore) -> None:
        """A store was added to the running scheduler (any thread): heartbeats start if it
        is the first shared one."""
        parked = self._parked
        if parked is None or not shares_nodes(store):
            return
        try:
            parked.get_loop().call_soon_threadsafe(self._unpark, parked)
        except RuntimeError:  # the loop closed under us
            pass

    @staticmethod
    def _unpark(parked: asyncio.Future[None]) -> None:
        if not parked.done():
            parked.set_result(None)

    def refresh(self, stores: Sequence[tuple[str, BaseStore]]) -> None:
        """Bring this node's record in the private stores among ``stores`` up to date before
        they are read. The heartbeat is written by the scheduler's loop: called elsewhere,
        this waits for the loop (up to :data:`REFRESH_WAIT` seconds), so a loop that does not
        answer keeps its last heartbeat, and shows as dead once that is older than the lease.
        """
        private = [(alias, store) for alias, store in stores if not shares_nodes(store)]
        loop = self._scheduler._loop
        if not private or self.node is None or loop is None:
            return  # nothing to refresh, or stopped
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._beat_private(private)
            return
        done = threading.Event()

        def beat() -> None:
            try:
                self._beat_private(private)
            finally:
                done.set()

        try:
            loop.call_soon_threadsafe(beat)
        except RuntimeError:  # the loop closed under us
            return
        done.wait(REFRESH_WAIT)

    def _beat_private(self, stores: Sequence[tuple[str, BaseStore]]) -> None:
        if self.node is None:
            return
        node = self._record(datetime.now(utc))
        for alias, store in stores:
            # BaseStore.heartbeat (shares_nodes: not overridden) never suspends.
            run_inline(store.heartbeat(node, False))
            self.last_beat[alias] = node.last_heartbeat

    async def leave(self) -> None:
        """Record the node as stopped and release its claims (best effort)."""
        node = self.node
        if node is None:
            return
        stopped = node.stopped(datetime.now(utc))
        self.node = None
        for alias, store in self.stores():
            if alias not in self.last_beat:
                continue
            try:
                await asyncio.wait_for(call(store, store.remove_node(stopped)), LEAVE_TIMEOUT)
            except Exception as exc:
                self._scheduler.logger.warning(
                    "Could not record node %r as stopped in store %r (its claims lapse by "
                    "themselves): %s",
                    stopped.identity,
                    alias,
                    exc,
                )
        self.last_beat.clear()

    async def get_nodes(self, store: str | None = None) -> list[NodeInfo]:
        """The nodes recorded in ``store`` (or in every coordinated store: the newest record
        of each identity), by identity."""
        scheduler = self._scheduler
        if store is not None:
            targets = [(store, scheduler.lookup_store(store))]
        else:
            targets = list(scheduler.stores.items())
        found: dict[str, NodeInfo] = {}
        self.refresh(targets)
        for _, target in targets:
            for node in await call(target, target.get_nodes()):
                seen = found.get(node.identity)
                if seen is None or node.last_heartbeat > seen.last_heartbeat:
                    found[node.identity] = node
        return [found[identity] for identity in sorted(found)]


def report_refused(
    logger: logging.Logger, alias: str, due: Sequence[Task], written: Sequence[Task]
) -> None:
    """Log the claimed tasks whose write-back the store refused: changed by a management
    call, or taken by another node after this node's lease lapsed. Their runs are not
    submitted here (the task is processed again from what is stored now)."""
    if not logger.isEnabledFor(logging.INFO):
        return
    kept = {id(task) for task in written}
    refused = [task for task in due if id(task) not in kept]
    names = ", ".join(str(task_label(task)) for task in refused[:5])
    logger.info(
        "Store %r refused the write-back of %d claimed task(s) (%s%s): changed meanwhile or "
        "claimed by another node after the lease lapsed; their runs are not submitted by "
        "this node",
        alias,
        len(refused),
        names,
        ", ..." if len(refused) > 5 else "",
    )
