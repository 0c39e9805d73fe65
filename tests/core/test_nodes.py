"""Nodes: a scheduler records itself in its stores and heartbeats; coordination settings."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from asyncz.exceptions import ConfigurationError, SchedulerNotRunningError, StoreUnavailableError
from asyncz.nodes import NodeInfo, NodeState
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.file import FileStore
from asyncz.stores.memory import MemoryStore
from asyncz.tasks import Task
from asyncz.testing import functions, wait_until

UTC = timezone.utc


def test_a_running_scheduler_is_a_node_of_its_stores() -> None:
    scheduler = AsyncIOScheduler(
        identity="node-one",
        stores={"default": MemoryStore(), "other": MemoryStore()},
        global_config={"asyncz.coordination.lease": "0.4"},
    )
    with pytest.raises(SchedulerNotRunningError):
        scheduler.get_nodes()
    scheduler.start()
    try:
        [node] = scheduler.get_nodes()
        assert node.identity == "node-one"
        assert node.host == socket.gethostname()
        assert node.pid == os.getpid()
        assert node.lease == 0.4
        assert node.state == NodeState.ALIVE
        assert [n.identity for n in scheduler.get_nodes("other")] == ["node-one"]
        first = node.last_heartbeat
        # Heartbeats every lease / 4 keep it alive beyond its lease.
        wait_until(
            lambda: scheduler.get_nodes()[0].last_heartbeat > first, what="a second heartbeat"
        )
        time.sleep(0.5)
        assert scheduler.get_nodes()[0].state == NodeState.ALIVE
        store = scheduler.stores["default"]
    finally:
        scheduler.shutdown()
    # At shutdown the node is recorded as stopped.
    [stopped] = store._node_records().values()
    assert stopped.state == NodeState.STOPPED
    assert stopped.stopped_at is not None


def test_node_records_round_trip_and_judge_liveness() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    node = NodeInfo.for_this_process("n", 10.0, now)
    assert NodeInfo.from_dict(node.to_dict()) == node
    assert node.state_at(now + timedelta(seconds=9)) == NodeState.ALIVE
    assert node.state_at(now + timedelta(seconds=11)) == NodeState.DEAD
    assert node.beat(now + timedelta(seconds=5)).state_at(now + timedelta(seconds=11)) == "alive"
    stopped = node.stopped(now)
    assert NodeInfo.from_dict(stopped.to_dict()).state_at(now) == NodeState.STOPPED
    assert not stopped.expired_for(now + timedelta(minutes=59))
    assert stopped.expired_for(now + timedelta(minutes=61))


@pytest.mark.parametrize(
    ("config", "key", "words"),
    [
        ({"asyncz.coordination.lease": "-1"}, "asyncz.coordination.lease", "greater than 0"),
        (
            {"asyncz.coordination.lease": "2", "asyncz.coordination.heartbeat_interval": "3"},
            "asyncz.coordination",
            "must be shorter than lease",
        ),
        ({"asyncz.coordination.leese": "2"}, "asyncz.coordination.leese", "did you mean 'lease'"),
    ],
)
def test_bad_coordination_settings_name_their_key(
    config: dict[str, str], key: str, words: str
) -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncIOScheduler(global_config=config)
    assert key in info.value.keys
    assert words in str(info.value)


def test_heartbeat_interval_defaults_to_a_quarter_of_the_lease() -> None:
    scheduler = AsyncIOScheduler(global_config={"asyncz.coordination.lease": "8"})
    assert scheduler.settings.coordination.lease == 8.0
    assert scheduler.settings.coordination.interval == 2.0


class LostReplyStore(FileStore):
    """A file store whose first claim is carried out but its reply lost (as when a server
    frozen past the store timeout answers after the client gave up)."""

    lost = 0

    async def acquire_due_tasks(
        self, node: str, now: datetime, lease: float, limit: int
    ) -> list[Task]:
        claimed = await super().acquire_due_tasks(node, now, lease, limit)
        if claimed and not self.lost:
            self.lost = len(claimed)
            raise StoreUnavailableError(self.alias, "file", None, None, "reply lost")
        return claimed


def test_a_claim_whose_reply_was_lost_lapses_and_the_task_runs(tmp_path: Path) -> None:
    # Heartbeats extend only the claims of a pass in progress: before, they kept a claim
    # this node did not know it held for as long as the node lived, and the task never ran.
    functions.reset("lost-reply")
    store = LostReplyStore(directory=str(tmp_path / "tasks"))
    scheduler = AsyncIOScheduler(
        stores={"default": store},
        global_config={"asyncz.coordination.lease": "1"},
        isolated_event_loop=True,
    )
    scheduler.start()
    try:
        scheduler.add_task(
            functions.record,
            "interval",
            seconds=3600,
            args=("lost-reply",),
            id="t",
            next_run_time=datetime.now(UTC),
            misfire_grace_time=None,
        )
        wait_until(lambda: store.lost == 1, what="the claim whose reply was lost")
        wait_until(
            lambda: functions.calls("lost-reply") == 1,
            timeout=10,
            what="the run once the claim lapsed",
        )
    finally:
        scheduler.shutdown()


def test_an_idle_scheduler_on_private_stores_does_not_wake_up_to_heartbeat() -> None:
    # No other process reads a memory store's node records: the record is brought up to
    # date when get_nodes() reads it, not on a timer that wakes an idle scheduler up.
    store = MemoryStore()
    scheduler = AsyncIOScheduler(
        identity="idle-node",
        stores={"default": store},
        global_config={"asyncz.coordination.lease": "0.4"},
    )
    scheduler.start()
    try:
        [first] = store._node_records().values()
        time.sleep(0.5)  # five heartbeat intervals
        [record] = store._node_records().values()
        assert record.last_heartbeat == first.last_heartbeat
        [node] = scheduler.get_nodes()
        assert node.last_heartbeat > first.last_heartbeat
        assert node.state == NodeState.ALIVE
        assert store._node_records()["idle-node"] == node
    finally:
        scheduler.shutdown()
    [stopped] = store._node_records().values()
    assert stopped.state == NodeState.STOPPED


def test_get_nodes_off_the_loop_shows_a_blocked_loop_as_dead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The refresh of a private store's record is done by the scheduler's loop: one that does
    # not answer keeps its last heartbeat, as it did when the heartbeats ran on a timer.
    from asyncz.schedulers import _coordination

    monkeypatch.setattr(_coordination, "REFRESH_WAIT", 0.2)
    scheduler = AsyncIOScheduler(
        global_config={"asyncz.coordination.lease": "0.4"}, isolated_event_loop=True
    )
    scheduler.start()
    try:
        assert scheduler.get_nodes()[0].state == NodeState.ALIVE
        loop = scheduler.event_loop
        assert loop is not None
        loop.call_soon_threadsafe(time.sleep, 1.5)  # the loop hangs
        time.sleep(0.6)
        [node] = scheduler.get_nodes()
        assert node.state == NodeState.DEAD
        time.sleep(1.0)  # the loop answers again
        assert scheduler.get_nodes()[0].state == NodeState.ALIVE
    finally:
        scheduler.shutdown()


def test_a_shared_store_added_to_a_running_scheduler_gets_heartbeats(tmp_path: Path) -> None:
    # Without a shared store the heartbeats sleep without a timer; adding one starts them.
    scheduler = AsyncIOScheduler(
        identity="late-node",
        global_config={"asyncz.coordination.lease": "0.4"},
        isolated_event_loop=True,
    )
    scheduler.start()
    try:
        shared = FileStore(directory=str(tmp_path / "tasks"))
        scheduler.add_store(shared, "shared")

        def beats() -> list[datetime]:
            return [n.last_heartbeat for n in asyncio.run(shared.get_nodes())]

        wait_until(lambda: len(beats()) == 1, what="the node's record in the added store")
        first = beats()[0]
        wait_until(lambda: beats()[0] > first, what="a heartbeat in the added store")
    finally:
        scheduler.shutdown()
