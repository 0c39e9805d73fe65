"""Nodes: this scheduler's record in the stores it shares with other schedulers.

Data path: when the processing loop starts, :meth:`Coordinator.run` registers this node in
every store (a coordinated one, ``store.coordinated``, keeps the record in its backend for
the other nodes to see) and then heartbeats every
``asyncz.coordination.heartbeat_interval`` seconds, which also extends the leases on the due
tasks a pass in progress holds (:meth:`asyncz.abc.Store.heartbeat`; a claim the node holds
outside a pass is one whose reply was lost, and lapses). At shutdown :meth:`Coordinator.leave`
records the node as stopped and releases its claims. ``scheduler.get_nodes()`` reads every
coordinated store's records (:meth:`Coordinator.get_nodes`).

A node that cannot heartbeat for longer than its lease has lost its claims: other nodes take
its due runs, and the fencing of write-backs refuses whatever it still tries to write back
(see :meth:`asyncz.schedulers._processing.Processor._process_store`). It logs the loss once
and the recovery once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from asyncz.nodes import NodeInfo
from asyncz.stores.base import call
from asyncz.tasks.task import Task, task_label
from asyncz.timeutil import utc

if TYPE_CHECKING:
    from asyncz.schedulers.base import BaseScheduler
    from asyncz.stores.base import BaseStore

__all__ = ["Coordinator", "report_refused"]

#: Seconds :meth:`Coordinator.leave` may take per store (a store that cannot be reached at
#: shutdown: the claims lapse by themselves).
LEAVE_TIMEOUT = 5.0


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

    async def beat(self) -> None:
        """One heartbeat in every coordinated store (failures are logged, not raised)."""
        stores = self.stores()
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
        """Heartbeat until cancelled (a task beside the processing loop); ``first=False``
        waits one interval first (the start already beat once)."""
        interval = self._scheduler.settings.coordination.interval
        if not first:
            await asyncio.sleep(interval)
        while True:
            await self.beat()
            await asyncio.sleep(interval)

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
