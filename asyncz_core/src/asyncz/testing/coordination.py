"""The store contract, part four: coordination of several schedulers (nodes) on one store.

Data path: a node's pass claims due tasks under a lease (``acquire_due_tasks``), writes them
back with the fencing check (``release_tasks``) and only then submits their runs; management
writes are compare-and-set on the task's ``revision``; heartbeats record a node and extend
the claims of its pass in progress (``heartbeat``, ``get_nodes``, ``remove_node``).

Every test runs only for a store that says it is shared (``coordinated = True``); each uses
two store instances on one backend (the second from :meth:`StoreHarness.make_store`), the way
two processes see it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from asyncz.exceptions import StaleTaskError
from asyncz.nodes import NodeInfo, NodeState
from asyncz.stores.base import BaseStore
from asyncz.testing.harness import StoreHarness
from asyncz.testing.helpers import make_task

__all__ = ["CoordinationContract"]


def _node(identity: str, at: datetime, lease: float = 10.0) -> NodeInfo:
    return NodeInfo(
        identity=identity,
        host="host-" + identity,
        pid=1000,
        version="test",
        started_at=at,
        last_heartbeat=at,
        lease=lease,
    )


class CoordinationContract(StoreHarness):
    """Claims under a lease, fenced write-backs, compare-and-set updates, node records."""

    @pytest.fixture
    def other(self, store: BaseStore) -> Iterator[BaseStore]:
        """A second instance on the same backend (another node's view); the ``store``
        fixture is required first, and skips stores that are not coordinated."""
        if not store.coordinated:
            pytest.skip("the store is not shared between processes (coordinated = False)")
        second = self.start_store(self.make_store())
        try:
            yield second
        finally:
            self.stop_store(second)

    def _add_due(self, store: BaseStore, count: int, start: float = 0.0) -> list[str]:
        ids = [f"due-{i:03d}" for i in range(count)]
        tasks = [make_task(task_id, self.at(start + i * 0.001)) for i, task_id in enumerate(ids)]
        self.call(store.add_tasks(tasks))
        return ids

    # -- claiming ------------------------------------------------------------------------------
    def test_a_claimed_task_is_not_handed_to_another_node(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        ids = self._add_due(store, 10)
        now = self.at(60)
        first = self.call(store.acquire_due_tasks("node-a", now, 30.0, 4))
        assert [t.id for t in first] == ids[:4]  # earliest first
        assert all(t.revision > 0 for t in first)
        second = self.call(other.acquire_due_tasks("node-b", now, 30.0, 100), other)
        assert [t.id for t in second] == ids[4:]
        assert self.call(store.acquire_due_tasks("node-a", now, 30.0, 100)) == []

    def test_claims_made_at_the_same_time_never_overlap(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        ids = self._add_due(store, 60)
        now = self.at(60)
        results: dict[str, list[str]] = {"a": [], "b": []}
        barrier = threading.Barrier(2)

        def claim(name: str, target: BaseStore) -> None:
            barrier.wait()
            while True:
                got = self.call(target.acquire_due_tasks(name, now, 30.0, 7), target)
                if not got:
                    return
                results[name].extend(t.id for t in got)

        threads = [
            threading.Thread(target=claim, args=("a", store)),
            threading.Thread(target=claim, args=("b", other)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not set(results["a"]) & set(results["b"])
        assert sorted(results["a"] + results["b"]) == ids

    def test_paused_and_future_tasks_are_not_claimed(self, store: BaseStore) -> None:
        self.call(store.add_task(make_task("paused", None)))
        self.call(store.add_task(make_task("later", self.at(100))))
        self.call(store.add_task(make_task("due", self.at(1))))
        claimed = self.call(store.acquire_due_tasks("node-a", self.at(50), 30.0, 10))
        assert [t.id for t in claimed] == ["due"]

    def test_a_lapsed_claim_is_taken_by_another_node(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        self._add_due(store, 3)
        now = self.at(60)
        assert len(self.call(store.acquire_due_tasks("node-a", now, 5.0, 10))) == 3
        held = self.call(
            other.acquire_due_tasks("node-b", now + timedelta(seconds=4), 5.0, 10), other
        )
        assert held == []
        later = now + timedelta(seconds=6)
        taken = self.call(other.acquire_due_tasks("node-b", later, 5.0, 10), other)
        assert len(taken) == 3

    def test_a_claim_counts_as_its_lease_end_for_the_next_run_time(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        # Real time here (the lease end is compared with it): due a second ago, not in 2030.
        now = datetime.now(self.at(0).tzinfo)
        self.call(store.add_task(make_task("due", now - timedelta(seconds=1))))
        self.call(store.add_task(make_task("far", self.at(10_000))))
        claimed = self.call(store.acquire_due_tasks("node-a", now, 120.0, 10))
        assert len(claimed) == 1
        # Another node must neither spin on the due task it cannot take nor sleep past the
        # moment the claim lapses.
        nxt = self.call(other.get_next_run_time(), other)
        assert nxt is not None
        assert now + timedelta(seconds=119) <= nxt <= now + timedelta(seconds=121)

    # -- write-back ----------------------------------------------------------------------------
    def test_release_writes_back_and_ends_the_claim(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        self._add_due(store, 2)
        now = self.at(60)
        claimed = self.call(store.acquire_due_tasks("node-a", now, 30.0, 10))
        claimed[0].next_run_time = self.at(120)
        claimed[1].next_run_time = None  # finished: deleted
        written = self.call(store.release_tasks("node-a", claimed))
        assert [t.id for t in written] == [t.id for t in claimed]
        found = self.call(other.lookup_task(claimed[0].id), other)
        assert found is not None
        assert found.next_run_time == self.at(120)
        assert found.revision > claimed[0].revision - 1
        assert self.call(other.lookup_task(claimed[1].id), other) is None
        # Written back, the task is free: due again at its new time, for any node.
        again = self.call(other.acquire_due_tasks("node-b", self.at(121), 30.0, 10), other)
        assert [t.id for t in again] == [claimed[0].id]

    def test_a_paused_task_written_back_stays_paused(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        # A node ran a paused task on an operator's request: the write-back keeps it paused.
        self._add_due(store, 1)
        now = self.at(60)
        [claimed] = self.call(store.acquire_due_tasks("node-a", now, 30.0, 10))
        claimed.next_run_time = None
        claimed.paused_at = now
        assert len(self.call(store.release_tasks("node-a", [claimed]))) == 1
        found = self.call(other.lookup_task(claimed.id), other)
        assert found is not None
        assert found.next_run_time is None
        assert found.paused_at == now
        later = now + timedelta(days=1)
        assert self.call(other.acquire_due_tasks("node-b", later, 30.0, 10), other) == []

    def test_a_stale_write_back_is_refused(self, store: BaseStore, other: BaseStore) -> None:
        self._add_due(store, 1)
        now = self.at(60)
        mine = self.call(store.acquire_due_tasks("node-a", now, 5.0, 10))
        # node-a stalls past its lease; node-b takes the task over and writes it back.
        later = now + timedelta(seconds=6)
        theirs = self.call(other.acquire_due_tasks("node-b", later, 5.0, 10), other)
        assert len(theirs) == 1
        theirs[0].next_run_time = self.at(200)
        assert len(self.call(other.release_tasks("node-b", theirs), other)) == 1
        # node-a comes back: its write-back (and so its runs) must be refused.
        mine[0].next_run_time = self.at(100)
        assert self.call(store.release_tasks("node-a", mine)) == []
        found = self.call(store.lookup_task(mine[0].id))
        assert found is not None
        assert found.next_run_time == self.at(200)

    def test_a_write_back_while_another_node_holds_the_task_is_refused(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        self._add_due(store, 1)
        now = self.at(60)
        mine = self.call(store.acquire_due_tasks("node-a", now, 5.0, 10))
        later = now + timedelta(seconds=6)
        assert len(self.call(other.acquire_due_tasks("node-b", later, 5.0, 10), other)) == 1
        mine[0].next_run_time = self.at(100)
        assert self.call(store.release_tasks("node-a", mine)) == []

    def test_a_management_write_beats_the_claim(self, store: BaseStore, other: BaseStore) -> None:
        self._add_due(store, 1)
        now = self.at(60)
        mine = self.call(store.acquire_due_tasks("node-a", now, 30.0, 10))
        # An operator pauses the task while node-a holds it.
        task = self.call(other.lookup_task(mine[0].id), other)
        assert task is not None
        task.next_run_time = None
        self.call(other.update_task(task), other)
        mine[0].next_run_time = self.at(100)
        assert self.call(store.release_tasks("node-a", mine)) == []
        found = self.call(store.lookup_task(mine[0].id))
        assert found is not None
        assert found.next_run_time is None

    def test_update_is_compare_and_set_on_the_revision(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        self.call(store.add_task(make_task("cas", self.at(10))))
        first = self.call(store.lookup_task("cas"))
        second = self.call(other.lookup_task("cas"), other)
        assert first is not None
        assert second is not None
        assert first.revision == second.revision > 0
        first.next_run_time = self.at(20)
        self.call(store.update_task(first))
        assert first.revision > second.revision
        second.next_run_time = self.at(30)
        with pytest.raises(StaleTaskError) as caught:
            self.call(other.update_task(second), other)
        assert caught.value.task_id == "cas"
        found = self.call(other.lookup_task("cas"), other)
        assert found is not None
        assert found.next_run_time == self.at(20)
        assert found.revision == first.revision

    # -- nodes ---------------------------------------------------------------------------------
    def test_nodes_are_recorded_and_seen_by_every_node(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        now = datetime.now(self.at(0).tzinfo)
        self.call(store.heartbeat(_node("node-a", now)))
        self.call(other.heartbeat(_node("node-b", now)), other)
        nodes = self.call(store.get_nodes())
        assert [n.identity for n in nodes] == ["node-a", "node-b"]
        assert nodes[0].host == "host-node-a"
        assert all(n.state == NodeState.ALIVE for n in nodes)
        self.call(other.remove_node(_node("node-b", now).stopped(now)), other)
        states = {n.identity: n.state for n in self.call(store.get_nodes())}
        assert states == {"node-a": NodeState.ALIVE, "node-b": NodeState.STOPPED}

    def test_a_node_whose_heartbeat_lapsed_is_dead(self, store: BaseStore) -> None:
        long_ago = datetime.now(self.at(0).tzinfo) - timedelta(seconds=60)
        self.call(store.heartbeat(_node("node-a", long_ago, lease=10.0)))
        [node] = self.call(store.get_nodes())
        assert node.state == NodeState.DEAD

    def test_heartbeat_extends_the_claims_of_the_node(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        self._add_due(store, 2)
        now = self.at(60)
        assert len(self.call(store.acquire_due_tasks("node-a", now, 5.0, 10))) == 2
        # Four seconds later node-a heartbeats: its claims now last until now + 4 + 5.
        self.call(store.heartbeat(_node("node-a", now + timedelta(seconds=4), lease=5.0)))
        probe = now + timedelta(seconds=7)
        assert self.call(other.acquire_due_tasks("node-b", probe, 5.0, 10), other) == []
        after = now + timedelta(seconds=10)
        assert len(self.call(other.acquire_due_tasks("node-b", after, 5.0, 10), other)) == 2

    def test_a_heartbeat_outside_a_pass_lets_the_claims_lapse(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        # node-a's claim reply was lost (it does not know it holds the tasks): its
        # heartbeats, sent with extend_claims=False, must not keep them from node-b.
        self._add_due(store, 2)
        now = self.at(60)
        assert len(self.call(store.acquire_due_tasks("node-a", now, 5.0, 10))) == 2
        beat = _node("node-a", now + timedelta(seconds=4), lease=5.0)
        self.call(store.heartbeat(beat, extend_claims=False))
        assert [n.identity for n in self.call(store.get_nodes())] == ["node-a"]
        probe = now + timedelta(seconds=3)
        assert self.call(other.acquire_due_tasks("node-b", probe, 5.0, 10), other) == []
        after = now + timedelta(seconds=6)  # the first lease's end, not the heartbeat's
        assert len(self.call(other.acquire_due_tasks("node-b", after, 5.0, 10), other)) == 2

    def test_a_node_that_stops_releases_its_claims(
        self, store: BaseStore, other: BaseStore
    ) -> None:
        self._add_due(store, 2)
        now = self.at(60)
        assert len(self.call(store.acquire_due_tasks("node-a", now, 30.0, 10))) == 2
        self.call(store.remove_node(_node("node-a", now).stopped(now)))
        taken = self.call(other.acquire_due_tasks("node-b", now, 30.0, 10), other)
        assert len(taken) == 2
