"""FileStore specifics: several processes on one directory, file names, atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from asyncz.exceptions import ConflictingIdError, StaleTaskError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores.base import call_sync
from asyncz.stores.file import FileStore, file_name, to_micros
from asyncz.testing import functions, make_task, wait_until
from asyncz.triggers import IntervalTrigger

UTC = timezone.utc
AT = datetime(2030, 1, 1, tzinfo=UTC)


def started(directory: Path, **options: object) -> FileStore:
    store = FileStore(directory, **options)  # type: ignore[arg-type]
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    return store


def run_python(code: str, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


ADDER = """
    import sys
    from datetime import datetime, timedelta, timezone
    from asyncz.exceptions import ConflictingIdError
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.stores.base import call_sync
    from asyncz.stores.file import FileStore
    from asyncz.testing import make_task

    directory, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = FileStore(directory)
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    at = datetime(2030, 1, 1, tzinfo=timezone.utc)
    conflicts = 0
    for i in range(count):
        try:
            call_sync(store, store.add_task(make_task(f"{prefix}{i}", at + timedelta(seconds=i))))
        except ConflictingIdError:
            conflicts += 1
    print(conflicts)
"""


def test_changes_of_another_process_are_seen_on_the_next_query(tmp_path: Path) -> None:
    store = started(tmp_path)
    call_sync(store, store.add_task(make_task("mine", AT + timedelta(hours=1))))
    assert call_sync(store, store.get_next_run_time()) == AT + timedelta(hours=1)
    child = run_python(ADDER, str(tmp_path), "theirs", "3")
    assert child.wait(60) == 0, child.stderr.read() if child.stderr else ""
    assert call_sync(store, store.get_next_run_time()) == AT
    due = call_sync(store, store.get_due_tasks(AT + timedelta(seconds=1)))
    assert [t.id for t in due] == ["theirs0", "theirs1"]


def test_concurrent_processes_add_without_losing_or_duplicating(tmp_path: Path) -> None:
    started(tmp_path)  # creates the directory
    children = [run_python(ADDER, str(tmp_path), prefix, "60") for prefix in ("a", "b", "a")]
    outputs = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
        outputs.append(int(out))
    store = started(tmp_path)
    ids = [t.id for t in call_sync(store, store.get_all_tasks())]
    assert sorted(ids) == sorted({f"{p}{i}" for p in "ab" for i in range(60)})
    # The two processes adding the same ids: each id went to exactly one of them.
    assert outputs[0] + outputs[2] == 60
    assert outputs[1] == 0
    assert not [p for p in (tmp_path / "tasks").iterdir() if p.name.startswith(".")]


def test_any_id_maps_to_a_safe_distinct_file_name(tmp_path: Path) -> None:
    store = started(tmp_path)
    ids = ["plain-id_1", "Upper", "upper", "a/b", "../escape", "ünï", "x" * 300, ".hidden", ""]
    for i, task_id in enumerate(ids):
        call_sync(store, store.add_task(make_task(task_id, AT + timedelta(seconds=i))))
    assert [t.id for t in call_sync(store, store.get_all_tasks())] == ids
    names = {file_name(i) for i in ids}
    assert len(names) == len(ids)
    assert all("/" not in n and not n.startswith(".") and len(n) < 100 for n in names)
    assert {p.name for p in (tmp_path / "tasks").iterdir()} == names
    with pytest.raises(ConflictingIdError):
        call_sync(store, store.add_task(make_task("a/b", AT)))


def test_a_file_with_an_unreadable_header_is_kept_and_reported(tmp_path: Path) -> None:
    store = started(tmp_path)
    call_sync(store, store.add_task(make_task("fine", AT)))
    call_sync(store, store.add_task(make_task("mangled", AT)))
    (tmp_path / "tasks" / "mangled").write_bytes(b"\x00\x01 disk garbage")
    fresh = started(tmp_path)
    assert [t.id for t in call_sync(fresh, fresh.get_due_tasks(AT))] == ["fine"]
    broken = call_sync(fresh, fresh.get_unrestorable())
    assert list(broken) == ["mangled"]
    assert "header" in broken["mangled"]
    assert (tmp_path / "tasks" / "mangled").exists()
    call_sync(fresh, fresh.delete_task("mangled"))
    assert call_sync(fresh, fresh.get_unrestorable()) == {}


def test_stale_temporary_files_are_cleaned_at_start(tmp_path: Path) -> None:
    store = started(tmp_path)
    old = tmp_path / "tasks" / ".tmp-1-dead"
    new = tmp_path / "tasks" / ".tmp-2-writing"
    old.write_bytes(b"half")
    new.write_bytes(b"half")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    call_sync(store, store.shutdown())
    started(tmp_path)
    assert not old.exists()
    assert new.exists()  # may belong to a live writer


def test_configuration_alone_and_a_scheduler_that_picks_up_other_writers(tmp_path: Path) -> None:
    key = f"file-poll-{time.monotonic_ns()}"
    functions.reset(key)
    scheduler = AsyncIOScheduler(
        global_config={
            "asyncz.stores.default": {
                "type": "file",
                "directory": str(tmp_path),
                "poll_interval": "0.1",
                "fsync": "false",
            }
        }
    )
    store = scheduler.stores["default"]
    assert isinstance(store, FileStore)
    assert store.poll_interval == 0.1
    assert store.fsync is False
    scheduler.start()
    try:
        other = started(tmp_path)  # another writer, as another process would be
        task = make_task("external", datetime.now(UTC), fn=functions.record, args=(key,))
        call_sync(other, other.add_task(task))
        wait_until(lambda: functions.calls(key) == 1, what="the polled task ran")
    finally:
        scheduler.shutdown()


def test_index_is_not_rebuilt_when_nothing_changed(tmp_path: Path) -> None:
    store = started(tmp_path)
    call_sync(store, store.add_tasks([make_task(f"i{i}", AT + timedelta(i)) for i in range(200)]))
    call_sync(store, store.get_next_run_time())
    entries = dict(store._entries)
    generation = store._generation
    for _ in range(50):
        call_sync(store, store.get_next_run_time())
    assert store._generation == generation
    assert all(store._entries[name] is entry for name, entry in entries.items())
    # A change by another instance moves the generation; only the changed file is re-read.
    other = started(tmp_path)
    call_sync(other, other.update_task(make_task("i5", None)))
    call_sync(store, store.get_next_run_time())
    assert store._generation != generation
    changed = [name for name, entry in store._entries.items() if entries[name] is not entry]
    assert changed == ["i5"]


# -- coordination ---------------------------------------------------------------------------------
def test_a_claim_counts_as_its_lease_end_for_another_instance(tmp_path: Path) -> None:
    """What CoordinationContract.test_a_claim_counts_as_its_lease_end_for_the_next_run_time
    means to check, with a task that is due at the real ``now`` it claims at."""
    store, other = started(tmp_path), started(tmp_path)
    now = datetime.now(UTC)
    call_sync(store, store.add_task(make_task("due", now - timedelta(seconds=1))))
    call_sync(store, store.add_task(make_task("far", AT)))
    assert len(call_sync(store, store.acquire_due_tasks("node-a", now, 120.0, 10))) == 1
    assert call_sync(other, other.get_next_run_time()) == now + timedelta(seconds=120)
    assert call_sync(other, other.acquire_due_tasks("node-b", now, 120.0, 10)) == []


def test_headers_without_a_revision_are_read_as_revision_1(tmp_path: Path) -> None:
    """Task files written before the store was coordinated (header ``{"id", "next"}``)."""
    store = started(tmp_path)
    call_sync(store, store.add_task(make_task("old", AT)))
    path = tmp_path / "tasks" / "old"
    payload = path.read_bytes().partition(b"\n")[2]
    path.write_bytes(b'{"id":"old","next":%d}\n' % to_micros(AT) + payload)
    fresh = started(tmp_path)
    task = call_sync(fresh, fresh.lookup_task("old"))
    assert task is not None
    assert task.revision == 1
    [claimed] = call_sync(fresh, fresh.acquire_due_tasks("node-a", AT, 10.0, 10))
    assert claimed.revision == 1
    claimed.next_run_time = AT + timedelta(hours=1)
    assert call_sync(fresh, fresh.release_tasks("node-a", [claimed])) == [claimed]
    assert claimed.revision == 2
    with pytest.raises(StaleTaskError):
        call_sync(fresh, fresh.update_task(task))  # read at revision 1


def test_an_idle_look_neither_locks_exclusively_nor_moves_the_generation(tmp_path: Path) -> None:
    store = started(tmp_path)
    call_sync(store, store.add_task(make_task("later", AT)))
    before = (tmp_path / ".lock").read_bytes()
    now = datetime.now(UTC)
    assert call_sync(store, store.acquire_due_tasks("node-a", now, 10.0, 10)) == []
    assert call_sync(store, store.get_next_run_time()) == AT
    assert (tmp_path / ".lock").read_bytes() == before


def read_node_runs(path: Path) -> list[tuple[str, datetime]]:
    if not path.exists():
        return []
    return [
        (task_id, datetime.fromisoformat(when).astimezone(UTC))
        for task_id, when in (line.split() for line in path.read_text().splitlines())
    ]


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_two_processes_run_each_fire_time_exactly_once(tmp_path: Path) -> None:
    """Two schedulers (own processes, own identities, no lock_path) on one directory: every
    fire time of 0.2 s interval tasks runs exactly once, on one node or the other."""
    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here), *sys.path])}
    outs = [tmp_path / "runs-1.log", tmp_path / "runs-2.log"]
    nodes = [
        subprocess.Popen(
            [
                sys.executable,
                str(here / "_file_node_worker.py"),
                str(tmp_path / "store"),
                f"n{i}",
                str(out),
            ],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i, out in enumerate(outs)
    ]
    try:
        for node in nodes:
            assert node.stdout is not None
            assert node.stdout.readline().strip() == "booted"
        now = time.time()
        start_epoch, end_epoch = round(now + 4.0, 3), round(now + 7.0, 3)
        for node in nodes:
            assert node.stdin is not None
            node.stdin.write(f"{start_epoch} {end_epoch}\n")
            node.stdin.flush()
        for node in nodes:
            assert node.stdout is not None
            assert node.stdout.readline().strip() == "ready"
        assert time.time() < start_epoch, "the nodes took too long to start"
        time.sleep(max(0.0, end_epoch + 2.0 - time.time()))
        for node in nodes:
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            assert node.wait(10) == 0
    finally:
        for node in nodes:
            if node.poll() is None:
                node.kill()
                node.wait(5)

    sys.path.insert(0, str(here))
    try:
        from _file_node_worker import INTERVAL, OFFSETS
    finally:
        sys.path.remove(str(here))
    start_at, end_at = (datetime.fromtimestamp(e, UTC) for e in (start_epoch, end_epoch))
    expected = set()
    for task_id, offset in OFFSETS.items():
        trigger = IntervalTrigger(
            seconds=INTERVAL, start_at=start_at + timedelta(seconds=offset), end_at=end_at
        )
        when = trigger.get_next_trigger_time(UTC, None, start_at)
        while when is not None:
            expected.add((task_id, when.astimezone(UTC)))
            when = trigger.get_next_trigger_time(UTC, when, when)
    runs = [read_node_runs(out) for out in outs]
    counts = Counter(run for node_runs in runs for run in node_runs)
    print(
        f"\ntwo file store nodes: {len(expected)} fire times, runs per node {[len(r) for r in runs]}"
    )
    assert len(expected) >= 4 * 14
    assert not {run: n for run, n in counts.items() if n > 1}, "fire times run twice"
    assert set(counts) == expected
