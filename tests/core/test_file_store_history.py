"""FileStore run history: JSON lines per task under runs/, appended by several processes,
read from the tail, pruned lazily."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path

from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.stores._file_history import CHUNK, SLACK
from asyncz.stores.base import call_sync
from asyncz.stores.file import FileStore, file_name
from asyncz.tasks.runs import RUN_OUTCOMES, RunRecord

UTC = timezone.utc
AT = datetime(2030, 1, 1, tzinfo=UTC)


def started(directory: Path, **options: object) -> FileStore:
    store = FileStore(directory, **options)  # type: ignore[arg-type]
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    return store


def record(task_id: str, seconds: float, outcome: str = "success", **extra: object) -> RunRecord:
    at = AT + timedelta(seconds=seconds)
    return RunRecord(
        task_id,
        f"{task_id}-{seconds:g}",
        at - timedelta(seconds=1),
        outcome,
        submitted_at=at - timedelta(seconds=1),
        finished_at=at,
        **extra,  # type: ignore[arg-type]
    )


def run_file(store: FileStore, task_id: str) -> Path:
    return store.directory / "runs" / (file_name(task_id) + ".jsonl")


def ids(records: list[RunRecord]) -> list[str]:
    return [r.run_id for r in records]


WRITER = """
    import sys
    from datetime import datetime, timedelta, timezone
    from asyncz.schedulers.asyncio import AsyncIOScheduler
    from asyncz.stores.base import call_sync
    from asyncz.stores.file import FileStore
    from asyncz.tasks.runs import RunRecord

    directory, prefix, batches = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = FileStore(directory, fsync=False)
    call_sync(store, store.start(AsyncIOScheduler(), "default"))
    at = datetime(2030, 1, 1, tzinfo=timezone.utc)
    for b in range(batches):
        batch = [
            RunRecord(task, f"{prefix}-{b}-{task}", at, "success", finished_at=at,
                      return_repr="x" * 300)
            for task in ("shared", "other")
        ]
        call_sync(store, store.add_runs(batch))
"""


def test_several_processes_append_without_losing_or_tearing_records(tmp_path: Path) -> None:
    started(tmp_path)
    children = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(WRITER), str(tmp_path), prefix, "200"],
            stderr=subprocess.PIPE,
        )
        for prefix in ("p", "q", "r")
    ]
    for child in children:
        assert child.wait(120) == 0, child.stderr.read() if child.stderr else ""
    store = started(tmp_path)
    shared = call_sync(store, store.get_runs("shared", limit=None))
    assert len(shared) == 600
    assert len(set(ids(shared))) == 600
    assert all(r.return_repr == "x" * 300 for r in shared)
    lines = run_file(store, "shared").read_bytes().splitlines()
    assert len(lines) == 600


def test_a_torn_line_is_skipped_and_the_next_append_starts_a_new_line(tmp_path: Path) -> None:
    store = started(tmp_path)
    call_sync(store, store.add_runs([record("a", 1)]))
    with open(run_file(store, "a"), "ab") as handle:
        handle.write(b'{"task_id":"a","run_id":"torn"')  # a crash mid-append
    assert ids(call_sync(store, store.get_runs("a", limit=None))) == ["a-1"]
    call_sync(store, store.add_runs([record("a", 2)]))
    assert ids(call_sync(store, store.get_runs("a", limit=None))) == ["a-2", "a-1"]
    assert len(run_file(store, "a").read_bytes().splitlines()) == 3


def test_one_write_per_task_per_batch_and_records_round_trip(tmp_path: Path) -> None:
    store = started(tmp_path)
    failed = record(
        "a",
        3,
        "error",
        started_at=AT,
        duration=0.25,
        lateness=0.125,
        attempt=2,
        node="n",
        executor="default",
        source="retry",
        error_type="ValueError",
        error_message="bö\udcff",
        traceback="Traceback\n  ...\nValueError",
    )
    call_sync(store, store.add_runs([record("a", 1), record("b", 2), failed]))
    assert sorted(p.name for p in (tmp_path / "runs").glob("*.jsonl")) == ["a.jsonl", "b.jsonl"]
    second = started(tmp_path)
    assert call_sync(second, second.get_runs("a", limit=None)) == [failed, record("a", 1)]


def test_reads_of_a_long_file_come_from_its_tail(tmp_path: Path) -> None:
    store = started(tmp_path, fsync=False)
    records = [record("a", i, return_repr="y" * 150) for i in range(3000)]
    call_sync(store, store.add_runs(records))
    assert run_file(store, "a").stat().st_size > 4 * CHUNK
    assert ids(call_sync(store, store.get_runs("a", limit=3))) == ["a-2999", "a-2998", "a-2997"]
    recent = call_sync(store, store.get_runs("a", limit=None, since=AT + timedelta(seconds=2990)))
    assert len(recent) == 10
    assert len(call_sync(store, store.get_runs("a", limit=None))) == 3000
    last = call_sync(store, store.get_last_runs(["a"], ("success",)))
    assert last["a"].run_id == "a-2999"


def test_every_task_newest_first_across_many_files(tmp_path: Path) -> None:
    store = started(tmp_path, fsync=False)
    # Written oldest task first, but task t0's records are the newest.
    for t in range(20):
        call_sync(store, store.add_runs([record(f"t{t}", 1000 - t * 10 + i) for i in range(5)]))
    got = call_sync(store, store.get_runs(limit=7))
    assert ids(got) == [f"t0-{1004 - i:g}" for i in range(5)] + ["t1-994", "t1-993"]
    assert len(call_sync(store, store.get_runs(limit=None))) == 100
    errors = call_sync(store, store.get_runs(limit=None, outcome="error"))
    assert errors == []


def test_pruning_rewrites_lazily_and_readers_see_the_limit_at_once(tmp_path: Path) -> None:
    store = started(tmp_path)
    path = run_file(store, "a")
    call_sync(store, store.add_runs([record("a", i) for i in range(8)]))
    inode = path.stat().st_ino
    call_sync(store, store.prune_runs(AT + timedelta(seconds=10), 3600.0, 5))
    # 8 lines <= SLACK * 5: the file stays, the readers hide the oldest three.
    assert SLACK * 5 >= 8
    assert path.stat().st_ino == inode
    assert ids(call_sync(store, store.get_runs("a", limit=None))) == [
        f"a-{i}" for i in range(7, 2, -1)
    ]
    # Another instance (a restart) applies the same limit.
    other = started(tmp_path)
    assert len(call_sync(other, other.get_runs(limit=None))) == 5
    call_sync(store, store.add_runs([record("a", i) for i in range(8, 11)]))
    call_sync(store, store.prune_runs(AT + timedelta(seconds=20), 3600.0, 5))
    # 11 lines > SLACK * 5: rewritten to the newest five, in time order.
    assert path.stat().st_ino != inode
    assert [r.run_id for r in map(_decode, path.read_bytes().splitlines())] == [
        f"a-{i}" for i in range(6, 11)
    ]


def test_pruning_by_age_removes_whole_files_and_old_heads(tmp_path: Path) -> None:
    store = started(tmp_path)
    call_sync(store, store.add_runs([record("old", 1), record("old", 2)]))
    call_sync(store, store.add_runs([record("mixed", 1), record("mixed", 50)]))
    # Record times are in 2030: the files' mtimes are set to at least their newest record.
    assert run_file(store, "old").stat().st_mtime_ns >= int((AT.timestamp() + 2) * 1e9)
    os.utime(run_file(store, "old"), (0, (AT + timedelta(seconds=2)).timestamp()))
    call_sync(store, store.prune_runs(AT + timedelta(seconds=60), 30.0, 100))
    assert not run_file(store, "old").exists()
    assert ids(call_sync(store, store.get_runs(limit=None))) == ["mixed-50"]
    last = call_sync(store, store.get_last_runs(["mixed", "old"], RUN_OUTCOMES))
    assert list(last) == ["mixed"]


def _decode(line: bytes) -> RunRecord:
    from asyncz.stores._file_history import decode_line

    found = decode_line(line)
    assert found is not None
    return found
