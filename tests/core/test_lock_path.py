"""``lock_path``: the inter-process file lock, ``startup_delay``, and several worker
processes sharing one persistent store (each due run happens exactly once)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from asyncz.exceptions import ConfigurationError
from asyncz.locks import FileLock, LockTimeout, format_lock_path
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.file import FileStore
from asyncz.triggers import IntervalTrigger

UTC = timezone.utc
HERE = Path(__file__).resolve().parent

runs: list[datetime] = []


async def remember() -> None:
    runs.append(datetime.now(UTC))


async def remember_slowly() -> None:
    await asyncio.sleep(0.2)
    runs.append(datetime.now(UTC))


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    runs.clear()


async def wait_for(predicate, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


# -- placeholders and configuration -----------------------------------------------------------
def test_placeholders_are_filled() -> None:
    path = format_lock_path("/tmp/app_{store}_{ppid}_{pgrp}.pid", "mongo")
    assert path == f"/tmp/app_mongo_{os.getppid()}_{os.getpgrp()}.pid"


def test_an_unknown_placeholder_fails_at_construction_with_the_key() -> None:
    with pytest.raises(ConfigurationError, match=r"asyncz\.lock_path.*\{pid\}.*\{store\}"):
        AsyncIOScheduler(lock_path="/tmp/x_{pid}.lock")
    with pytest.raises(ConfigurationError, match="lock_path"):
        AsyncIOScheduler(global_config={"asyncz.lock_path": "/tmp/x_{store.lock"})


def test_startup_delay_defaults_to_one_second_with_lock_path_and_can_be_set(
    tmp_path: Path,
) -> None:
    assert AsyncIOScheduler().startup_delay == 0
    assert AsyncIOScheduler(lock_path=str(tmp_path / "{store}.lock")).startup_delay == 1.0
    locked = AsyncIOScheduler(lock_path=str(tmp_path / "{store}.lock"), startup_delay=0.25)
    assert locked.startup_delay == 0.25
    assert AsyncIOScheduler(global_config={"asyncz.startup_delay": "2"}).startup_delay == 2


@pytest.mark.parametrize("lock", [False, True])
async def test_pending_tasks_start_no_earlier_than_the_startup_delay(
    tmp_path: Path, lock: bool
) -> None:
    options = {"lock_path": str(tmp_path / "{store}.lock")} if lock else {"startup_delay": 0.6}
    scheduler = AsyncIOScheduler(
        stores={"default": FileStore(tmp_path / "store", fsync=False)}, timezone=UTC, **options
    )
    delay = 1.0 if lock else 0.6
    scheduler.add_task(remember, "date", run_at=datetime.now(UTC), misfire_grace_time=None)
    started = datetime.now(UTC)
    scheduler.start()
    try:
        await wait_for(lambda: runs, timeout=5)
        assert runs[0] - started >= timedelta(seconds=delay)
    finally:
        scheduler.shutdown()


# -- the lock itself -----------------------------------------------------------------------------
def test_two_locks_on_one_path_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "dir" / "a.lock"
    first, second = FileLock(path), FileLock(path)
    assert first.try_acquire() and first.held
    assert path.read_text() == f"{os.getpid()}\n"
    assert not second.try_acquire()
    with pytest.raises(LockTimeout, match=r"a\.lock"):
        second.acquire(timeout=0.05)
    with pytest.raises(RuntimeError, match="reentrant"):
        first.try_acquire()
    first.release()
    with second.hold(timeout=1):
        assert second.held and not first.try_acquire()
    assert first.try_acquire()
    first.close()
    second.close()


def test_the_file_is_removed_only_while_nobody_else_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    holder, leaver = FileLock(path), FileLock(path)
    assert holder.try_acquire()
    assert leaver.close(remove=True) is False  # another holder: the file stays
    assert path.exists() and holder.held
    holder.release()
    other = FileLock(path)
    assert other.try_acquire() is True
    other.release()
    # Free now: the last one out removes it.
    assert FileLock(path).close(remove=True) is True
    assert not path.exists()
    holder.close(remove=False)
    other.close(remove=False)


def test_a_removed_file_never_gives_two_holders(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    old = FileLock(path)
    assert old.try_acquire()
    old.release()  # keeps its descriptor to the original file open
    remover = FileLock(path)
    assert remover.close(remove=True) is True
    fresh = FileLock(path)
    assert fresh.try_acquire()  # locks a new file at the same path
    # The old descriptor points at the unlinked file: it must not count as holding it.
    assert not old.try_acquire()
    fresh.release()
    assert old.try_acquire()
    old.close()
    fresh.close()


def test_the_lock_excludes_another_process_and_dies_with_it(tmp_path: Path) -> None:
    path = tmp_path / "a.lock"
    code = (
        "import sys, time\n"
        "from asyncz.locks import FileLock\n"
        f"lock = FileLock({str(path)!r})\n"
        "assert lock.try_acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        mine = FileLock(path)
        assert not mine.try_acquire()
        assert path.read_text().strip() == str(child.pid)
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        mine.acquire(timeout=2)  # the kernel released it with the process
        assert mine.held
        mine.close()
    finally:
        child.kill()
        child.wait(5)


# -- the scheduler and the lock -------------------------------------------------------------------
async def test_a_store_locked_elsewhere_is_skipped_and_retried(tmp_path: Path) -> None:
    template = str(tmp_path / "app_{store}.lock")
    scheduler = AsyncIOScheduler(
        stores={"default": FileStore(tmp_path / "store", fsync=False)},
        lock_path=template,
        startup_delay=0,
        timezone=UTC,
    )
    other = FileLock(format_lock_path(template, "default"))
    other.acquire(timeout=1)
    scheduler.start()  # pending tasks are committed under the lock: none here
    try:
        scheduler.add_task(remember, "date", run_at=datetime.now(UTC))
        await asyncio.sleep(0.5)
        assert runs == []  # another "process" holds the store's lock
        other.release()
        await wait_for(lambda: len(runs) == 1, timeout=10)
    finally:
        await scheduler.shutdown_async()
        other.close(remove=False)
    # No other holder at shutdown: the lock file was removed.
    assert not Path(format_lock_path(template, "default")).exists()


async def test_memory_stores_are_private_and_never_locked(tmp_path: Path) -> None:
    template = str(tmp_path / "app_{store}.lock")
    other = FileLock(format_lock_path(template, "default"))
    other.acquire(timeout=1)
    try:
        scheduler = AsyncIOScheduler(lock_path=template, startup_delay=0, timezone=UTC)
        with scheduler:
            scheduler.add_task(remember, "date", run_at=datetime.now(UTC))
            await wait_for(lambda: len(runs) == 1, timeout=10)
    finally:
        other.close()


async def test_pending_tasks_are_committed_under_the_lock(tmp_path: Path) -> None:
    template = str(tmp_path / "app_{store}.lock")
    scheduler = AsyncIOScheduler(
        stores={"default": FileStore(tmp_path / "store", fsync=False)},
        lock_path=template,
        startup_delay=0,
        timezone=UTC,
    )
    scheduler.add_task(remember, "interval", seconds=10, id="t")
    other = FileLock(format_lock_path(template, "default"))
    other.acquire(timeout=1)
    started = time.monotonic()
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, other.release)
    # start() blocks its thread until the lock is free; run it off the loop so the
    # release above can happen.
    await asyncio.to_thread(scheduler.start)
    try:
        assert time.monotonic() - started >= 0.25
        assert scheduler.get_task("t") is not None
    finally:
        scheduler.shutdown()
        other.close()


async def test_a_shutdown_task_of_a_shared_store_runs_in_each_worker_and_stays(
    tmp_path: Path,
) -> None:
    template = str(tmp_path / "app_{store}.lock")

    def worker() -> AsyncIOScheduler:
        return AsyncIOScheduler(
            stores={"default": FileStore(tmp_path / "store", fsync=False)},
            lock_path=template,
            startup_delay=0,
            timezone=UTC,
        )

    schedulers = [worker() for _ in range(2)]
    for scheduler in schedulers:
        scheduler.start()
    schedulers[0].add_task(remember_slowly, "shutdown", id="bye")
    # Each worker's shutdown runs it (its own clean-up) and none removes it from the store.
    await schedulers[0].shutdown_async()
    assert len(runs) == 1
    await schedulers[1].shutdown_async()
    assert len(runs) == 2
    later = worker()
    later.start(paused=True)
    try:
        assert later.get_task("bye") is not None  # still there for the next start
    finally:
        later.shutdown()
    assert len(runs) == 2  # a paused scheduler runs none


# -- several processes ----------------------------------------------------------------------------
def expected_runs(start_at: datetime, end_at: datetime) -> set[tuple[str, datetime]]:
    sys.path.insert(0, str(HERE))
    try:
        from _lifecycle_worker import INTERVALS
    finally:
        sys.path.remove(str(HERE))
    expected = set()
    for task_id, seconds in INTERVALS.items():
        trigger = IntervalTrigger(seconds=seconds, start_at=start_at, end_at=end_at)
        when = trigger.get_next_trigger_time(UTC, None, start_at)
        while when is not None:
            expected.add((task_id, when.astimezone(UTC)))
            when = trigger.get_next_trigger_time(UTC, when, when)
    return expected


def read_runs(path: Path) -> list[tuple[str, datetime, int]]:
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    return [
        (task_id, datetime.fromisoformat(when).astimezone(UTC), int(pid))
        for task_id, when, pid in (line.split() for line in lines)
    ]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_four_worker_processes_run_every_due_run_exactly_once(tmp_path: Path) -> None:
    """4 workers like gunicorn's share one FileStore and one lock_path; one is SIGKILLed
    half-way; every (task, scheduled time) is still run exactly once."""
    out = tmp_path / "runs.log"
    lock_path = str(tmp_path / "locks" / "app_{store}_{ppid}.pid")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    command = [
        sys.executable,
        str(HERE / "_lifecycle_worker.py"),
        str(tmp_path / "store"),
        lock_path,
        str(out),
    ]
    workers = [
        subprocess.Popen(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().strip() == "booted"
        # All imported: the schedule starts once every worker has had time to start
        # (1 s startup delay included), with room for a loaded machine.
        now = time.time()
        start_epoch, end_epoch = round(now + 6.0, 3), round(now + 14.0, 3)
        start_at = datetime.fromtimestamp(start_epoch, UTC)
        end_at = datetime.fromtimestamp(end_epoch, UTC)
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write(f"{start_epoch} {end_epoch}\n")
            worker.stdin.flush()
        for worker in workers:
            assert worker.stdout is not None
            assert worker.stdout.readline().split()[0] == "ready"
        assert time.time() < start_epoch, "the workers took too long to start"
        # Half-way, kill the worker that has done the most runs so far (the lock holder,
        # most likely), without giving it any chance to clean up.
        time.sleep(start_epoch + 3.5 - time.time())
        done_by = Counter(pid for _, _, pid in read_runs(out))
        victim_pid = done_by.most_common(1)[0][0] if done_by else workers[0].pid
        victim = next(w for w in workers if w.pid == victim_pid)
        victim.send_signal(signal.SIGKILL)
        killed_at = datetime.now(UTC)
        victim.wait(5)
        time.sleep(max(0.0, end_epoch + 1.5 - time.time()))
        for worker in workers:
            if worker is not victim:
                worker.send_signal(signal.SIGTERM)
        for worker in workers:
            if worker is not victim:
                assert worker.wait(10) == 0
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait(5)

    recorded = read_runs(out)
    expected = expected_runs(start_at, end_at)
    counts = Counter((task_id, when) for task_id, when, _ in recorded)
    duplicates = {key: n for key, n in counts.items() if n > 1}
    missing = expected - set(counts)
    unexpected = set(counts) - expected
    by_pid = Counter(pid for _, _, pid in recorded)
    print(
        f"\nlock_path: checked {len(expected)} due runs of {len({t for t, _ in expected})} "
        f"tasks over {end_epoch - start_epoch:.0f} s in 4 processes (one SIGKILLed); "
        f"runs per pid: {dict(by_pid)}"
    )
    assert not duplicates, f"runs that happened more than once: {sorted(duplicates)[:10]}"
    # lock_path writes the next run times back before it submits the runs, so a worker killed
    # between the two loses the runs of the pass it was in (at most once, never twice). Only
    # runs due in the two seconds before the kill may be missing; every other run happened
    # exactly once. (Leases that let another node take such runs over are issue 16.)
    lost_window = (killed_at - timedelta(seconds=2), killed_at)
    outside = {(t, when) for t, when in missing if not lost_window[0] <= when <= lost_window[1]}
    assert not outside, f"{len(outside)} runs never happened: {sorted(outside)[:10]}"
    assert not unexpected, f"runs nobody scheduled: {sorted(unexpected)[:10]}"
    assert len(expected) > 100
    # The killed worker did work before it died, and the others carried on after.
    assert by_pid[victim_pid] > 0
    after_kill = {pid for _, when, pid in recorded if when > killed_at + timedelta(seconds=1)}
    assert after_kill and victim_pid not in after_kill
    # Nobody holds the lock any more: the last worker out removed the file.
    assert not list((tmp_path / "locks").glob("*.pid"))
