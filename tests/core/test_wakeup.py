"""The last stretch of a sleep: the scheduler stops sleeping on the event loop's timer
``wakeup_spin`` seconds before a due instant and yields to the loop until the instant."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import datetime, timedelta, timezone

import pytest

from asyncz.exceptions import ConfigurationError
from asyncz.schedulers.asyncio import AsyncIOScheduler

UTC = timezone.utc

runs: dict[str, float] = {}


def mark(name: str) -> None:
    runs[name] = time.time()


@pytest.fixture(autouse=True)
def _clear() -> None:
    runs.clear()


async def test_runs_are_never_early() -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, wakeup_spin=0.005)
    base = datetime.now(UTC) + timedelta(milliseconds=100)
    due = {f"t{i}": base + timedelta(milliseconds=7 * i) for i in range(30)}
    async with scheduler:
        for name, at in due.items():
            scheduler.add_task(mark, "date", run_at=at, args=[name], id=name)
        deadline = time.monotonic() + 5
        while len(runs) < len(due) and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    assert runs.keys() == due.keys()
    early = {
        name: due[name].timestamp() - at for name, at in runs.items() if at < due[name].timestamp()
    }
    assert early == {}


async def test_the_loop_keeps_running_and_a_wakeup_cuts_the_last_stretch_short() -> None:
    # A very long last stretch, to see inside it: other coroutines keep running, and a task
    # added for now runs at once rather than when the stretch ends.
    scheduler = AsyncIOScheduler(timezone=UTC, wakeup_spin=0.8)
    ticks: list[float] = []

    async def ticker() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    async with scheduler:
        scheduler.add_task(
            mark, "date", run_at=datetime.now(UTC) + timedelta(seconds=1), args=["late"]
        )
        ticking = asyncio.create_task(ticker())
        await asyncio.sleep(0.5)  # well inside the stretch (it began 0.2 s after the add)
        added = time.time()
        scheduler.add_task(mark, "date", args=["now"])
        while "now" not in runs and time.time() < added + 2:
            await asyncio.sleep(0.005)
        ticking.cancel()
        while "late" not in runs and time.time() < added + 3:
            await asyncio.sleep(0.01)
    assert runs["now"] - added < 0.2
    assert runs["now"] < runs["late"]
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert len(ticks) > 30 and max(gaps) < 0.1


@pytest.mark.parametrize("from_thread", [False, True])
async def test_a_wakeup_during_a_long_sleep_is_not_held_back_to_the_old_deadline(
    from_thread: bool,
) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    async with scheduler:
        scheduler.add_task(
            mark, "date", run_at=datetime.now(UTC) + timedelta(seconds=30), args=["far"]
        )
        await asyncio.sleep(0.2)  # asleep until 30 s from now
        added = time.time()
        if from_thread:
            await asyncio.to_thread(scheduler.add_task, mark, "date", args=["now"])
        else:
            scheduler.add_task(mark, "date", args=["now"])
        while "now" not in runs and time.time() < added + 3:
            await asyncio.sleep(0.005)
    assert runs["now"] - added < 0.5


def test_the_setting_is_validated_under_its_dotted_key() -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncIOScheduler(global_config={"asyncz.wakeup_spin": -1})
    assert [key for key, _ in info.value.errors] == ["asyncz.wakeup_spin"]
    assert AsyncIOScheduler(global_config={"asyncz.wakeup_spin": "0"}).wakeup_spin == 0
