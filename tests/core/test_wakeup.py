"""Waking up at due instants: on a precise timer (a Linux timerfd on the event loop) by
default, on the loop's own timer otherwise, and, opt-in, with ``wakeup_spin`` seconds of
yielding to the loop before the instant. Never early, never a busy loop by default."""

from __future__ import annotations

import asyncio
import os
import selectors
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from asyncz import _timer
from asyncz.exceptions import ConfigurationError
from asyncz.schedulers.asyncio import AsyncIOScheduler

UTC = timezone.utc
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")

runs: dict[str, float] = {}


def mark(name: str) -> None:
    runs[name] = time.time()


@pytest.fixture(autouse=True)
def _clear() -> None:
    runs.clear()


async def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def timerfds() -> int:
    """How many timerfds this process has open."""
    count = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            count += os.readlink(fd) == "anon_inode:[timerfd]"
        except OSError:  # the descriptor of the listing itself, closed meanwhile
            pass
    return count


@pytest.mark.parametrize(
    "options",
    [{}, {"precise_wakeup": False}, {"wakeup_spin": 0.005}],
    ids=["precise timer", "loop timer", "spin"],
)
async def test_runs_are_never_early(options: dict[str, Any]) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC, **options)
    base = datetime.now(UTC) + timedelta(milliseconds=100)
    due = {f"t{i}": base + timedelta(milliseconds=7 * i) for i in range(30)}
    async with scheduler:
        for name, at in due.items():
            scheduler.add_task(mark, "date", run_at=at, args=[name], id=name)
        await wait_until(lambda: len(runs) == len(due))
    early = {
        name: due[name].timestamp() - at for name, at in runs.items() if at < due[name].timestamp()
    }
    assert early == {}


class CountingSelector(selectors.DefaultSelector):
    """Counts the event loop's iterations (one poll each)."""

    polls = 0

    def select(self, timeout: float | None = None) -> Any:
        CountingSelector.polls += 1
        return super().select(timeout)


def test_waiting_for_due_instants_is_not_a_busy_loop() -> None:
    # The spin that used to be on by default yielded to the loop for 2 ms before every due
    # instant: hundreds of loop iterations per run. Sleeping until the instant takes a
    # handful per run: the wake-up, the pass, the run.
    async def main() -> int:
        done = asyncio.Event()

        async def amark(name: str) -> None:
            mark(name)
            if len(runs) == 20:
                done.set()

        async with AsyncIOScheduler(timezone=UTC) as scheduler:
            base = datetime.now(UTC) + timedelta(milliseconds=100)
            for i in range(20):
                at = base + timedelta(milliseconds=20 * i)
                scheduler.add_task(amark, "date", run_at=at, args=[f"t{i}"])
            await asyncio.sleep(0.05)
            before = CountingSelector.polls
            await asyncio.wait_for(done.wait(), 30)
            return CountingSelector.polls - before

    loop = asyncio.SelectorEventLoop(CountingSelector())
    try:
        polls = loop.run_until_complete(main())
    finally:
        loop.close()
    assert polls <= 10 * 20


async def test_spinning_is_opt_in_and_the_loop_keeps_running_while_it_spins() -> None:
    assert AsyncIOScheduler(timezone=UTC).wakeup_spin == 0
    # A very long last stretch, to see inside it: other coroutines keep running (this one
    # adds a task in the middle of it), and that task runs at once, in a pass of its own,
    # rather than with the one the stretch is waiting for.
    passes: list[set[str]] = []

    scheduler = AsyncIOScheduler(timezone=UTC, wakeup_spin=1.0)
    one_pass = scheduler._processor.process

    async def counting():  # type: ignore[no-untyped-def]
        passes.append(set(runs))
        return await one_pass()

    scheduler._processor.process = counting  # type: ignore[method-assign]
    async with scheduler:
        late_at = datetime.now(UTC) + timedelta(seconds=1.5)
        scheduler.add_task(mark, "date", run_at=late_at, args=["late"])
        await asyncio.sleep(0.8)  # inside the stretch, which began 0.5 s after the add
        added = time.time()
        scheduler.add_task(mark, "date", args=["now"])
        await wait_until(lambda: {"now", "late"} <= runs.keys())
    assert added < runs["now"] < runs["late"]
    # The pass that ran "late" began after "now" had run: the wake-up cut the stretch short.
    assert any(seen == {"now"} for seen in passes)


@pytest.mark.parametrize("from_thread", [False, True])
async def test_a_wakeup_during_a_long_sleep_is_not_held_back_to_the_old_deadline(
    from_thread: bool,
) -> None:
    scheduler = AsyncIOScheduler(timezone=UTC)
    async with scheduler:
        scheduler.add_task(
            mark, "date", run_at=datetime.now(UTC) + timedelta(seconds=60), args=["far"]
        )
        await asyncio.sleep(0.2)  # asleep until 60 s from now
        if from_thread:
            await asyncio.to_thread(scheduler.add_task, mark, "date", args=["now"])
        else:
            scheduler.add_task(mark, "date", args=["now"])
        await wait_until(lambda: "now" in runs)
    assert "far" not in runs


def test_the_settings_are_validated_under_their_dotted_keys() -> None:
    with pytest.raises(ConfigurationError) as info:
        AsyncIOScheduler(global_config={"asyncz.wakeup_spin": -1})
    assert [key for key, _ in info.value.errors] == ["asyncz.wakeup_spin"]
    assert AsyncIOScheduler(global_config={"asyncz.wakeup_spin": "0"}).wakeup_spin == 0
    with pytest.raises(ConfigurationError) as info:
        AsyncIOScheduler(global_config={"asyncz.precise_wakeup": "sometimes"})
    assert [key for key, _ in info.value.errors] == ["asyncz.precise_wakeup"]
    assert AsyncIOScheduler().precise_wakeup is True
    assert (
        AsyncIOScheduler(global_config={"asyncz.precise_wakeup": "false"}).precise_wakeup is False
    )


@linux_only
@pytest.mark.parametrize("precise", [True, False])
async def test_the_precise_timer_lives_as_long_as_the_scheduler_runs(precise: bool) -> None:
    before = timerfds()
    scheduler = AsyncIOScheduler(timezone=UTC, precise_wakeup=precise)
    async with scheduler:
        scheduler.add_task(
            mark, "date", run_at=datetime.now(UTC) + timedelta(seconds=0.05), args=["t"]
        )
        await wait_until(lambda: len(runs) == 1)
        assert timerfds() == before + (1 if precise else 0)
    assert timerfds() == before


async def test_without_a_precise_timer_the_loop_timer_is_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not Linux, or a loop that cannot watch a file descriptor (the Windows proactor).
    loop = asyncio.get_running_loop()

    def no_readers(*args: Any) -> None:
        raise NotImplementedError

    monkeypatch.setattr(loop, "add_reader", no_readers)
    assert _timer.precise_timer(loop) is None
    async with AsyncIOScheduler(timezone=UTC) as scheduler:
        scheduler.add_task(
            mark, "date", run_at=datetime.now(UTC) + timedelta(seconds=0.05), args=["t"]
        )
        await wait_until(lambda: len(runs) == 1)


# -- the timer itself ---------------------------------------------------------------------------
@pytest.fixture(params=["os", "libc"])
async def timer(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Any]:
    """A PreciseTimer on the running loop, from ``os.timerfd_*`` (Python 3.13+) or libc."""
    if not sys.platform.startswith("linux"):
        pytest.skip("timerfd is Linux's")
    if request.param == "os" and not hasattr(os, "timerfd_create"):
        pytest.skip("os.timerfd_create is Python 3.13+")
    if request.param == "libc":
        monkeypatch.delattr(os, "timerfd_create", raising=False)
    made = _timer.precise_timer(asyncio.get_running_loop())
    assert made is not None
    yield made
    made.close()


async def test_the_timer_fires_once_never_early(timer: Any) -> None:
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    started = loop.time()
    timer.arm(0.0123, fired.append, "x")
    await wait_until(lambda: fired)
    fired_at = loop.time()
    await asyncio.sleep(0.05)
    assert fired == ["x"]
    assert fired_at - started >= 0.0123


async def test_a_cancelled_or_replaced_expiry_is_not_called(timer: Any) -> None:
    fired: list[str] = []
    timer.arm(0.01, fired.append, "cancelled")
    timer.cancel()
    timer.arm(0.02, fired.append, "replaced")
    timer.arm(0.03, fired.append, "kept")
    await wait_until(lambda: fired)
    await asyncio.sleep(0.05)
    assert fired == ["kept"]
    # An expiry that happened but was not yet seen by the loop is forgotten too.
    timer.arm(0.000_001, fired.append, "expired unseen")
    time.sleep(0.01)
    timer.cancel()
    await asyncio.sleep(0.05)
    assert fired == ["kept"]
