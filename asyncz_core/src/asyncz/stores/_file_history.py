"""Run history of the file store (:mod:`asyncz.stores.file`): JSON lines, one file per task.

Data path: ``add_runs`` (one batch) groups the records by task and, under the exclusive lock,
appends each task's lines with one ``write`` (``O_APPEND``; a ``fsync`` per file when the
store's ``fsync`` option is on: the files of a batch are synced in parallel, which lets the
file system commit them together). ``mtime + MTIME_SLACK`` bounds every record of a file from
above: the write sets mtime to about now (the kernel's clock may lag by a tick), and an append
of records newer than that (clocks apart, tests) sets it to their time. Readers take no lock: a
line is complete once it ends with a newline (a half-written or crashed line does not parse
and is skipped; the next append starts on a new line).

Layout, under the store's directory::

    runs/.lock             flock'ed by every writer (appends and rewrites)
    runs/.retention        {"max_per_task": n}: the limit of the last prune (read-time trim)
    runs/<name>.jsonl      the records of one task, one JSON array a line, in append order

``<name>`` is :func:`~asyncz.stores._files.file_name` of the task id. A line is
``[<record time, µs>, <the record's fields in order>...]`` (times in µs since the epoch,
trailing ``null``s left out; see :func:`encode_record`), so a reader sorts and filters on
the leading time and decodes only the records it returns.

``get_runs`` of one task reads its file backwards (:data:`FIRST_BLOCK` bytes, then larger
blocks up to :data:`CHUNK`) until it has enough records (``limit``, ``since``); of every task,
it visits the files newest ``mtime`` first and stops when no file left can hold a newer
record. Records are ordered by their time within what
is read; a file is in append order, which is time order up to the flush delay between nodes.

``prune_runs`` is cheap when nothing is due: it stats each file and keeps, per file, its line
count and oldest record time (counted incrementally from the bytes appended since). A file
whose newest record is too old is removed; a file is rewritten (atomically, sorted by time)
only when its oldest record is too old or it has more than ``SLACK * max_per_task`` lines.
Between rewrites, readers hide all but each file's newest ``max_per_task`` (the limit of the
last prune, kept in ``.retention``), so what is seen is exact while the files stay lazy.
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar

from asyncz.stores._files import file_name, from_micros, sync_directory
from asyncz.tasks.runs import RunRecord

__all__ = [
    "CHUNK",
    "SLACK",
    "FileHistory",
    "RunFiles",
    "decode_line",
    "encode_record",
    "line_time",
]

#: Bytes read at a time from the end of a history file.
CHUNK = 65536
#: A file is rewritten by pruning once it holds more than ``SLACK * max_per_task`` records.
SLACK = 2
_SUFFIX = ".jsonl"
_FIELDS = RunRecord._fields
#: Positions of the datetime fields in a record.
_TIME_AT = tuple(i for i, f in enumerate(_FIELDS) if f.endswith(("_time", "_at")))
_FINISHED, _SUBMITTED, _SCHEDULED = (
    _FIELDS.index(f) for f in ("finished_at", "submitted_at", "scheduled_run_time")
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads
#: Nanoseconds by which a record may be newer than its file's mtime (see above).
MTIME_SLACK = 1_000_000_000
#: Files synced at once (in parallel) when ``fsync`` is on.
SYNC_GROUP = 256
#: Threads that sync a batch's files.
SYNC_WORKERS = 16
#: Bytes of the first block read from the end of a file; each next block is four times
#: larger, up to :data:`CHUNK`.
FIRST_BLOCK = 4096


def _us(when: datetime) -> int:
    delta = when - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def encode_record(record: RunRecord) -> bytes:
    """One line: a JSON array of the record's time (µs), then its fields in order (times in
    µs), trailing ``null``s left out."""
    values: list[object] = list(record)
    for at in _TIME_AT:
        value = values[at]
        if value is not None:
            values[at] = _us(value)  # type: ignore[arg-type]
    while values[-1] is None:
        values.pop()
    time_us = (
        values[_FINISHED] if len(values) > _FINISHED and values[_FINISHED] is not None else None
    )
    if time_us is None:
        time_us = values[_SUBMITTED] if values[_SUBMITTED] is not None else values[_SCHEDULED]
    return (_dumps([time_us, *values]) + "\n").encode()


def decode_line(line: bytes) -> RunRecord | None:
    """The record of one line; ``None`` when it does not parse (a torn or foreign line). A
    line with more fields than this version knows keeps the known ones."""
    try:
        values = _loads(line)
        if type(values) is not list or len(values) < 5 or type(values[1]) is not str:
            return None
        values = values[1 : 1 + len(_FIELDS)]
        for at in _TIME_AT:
            if at < len(values) and values[at] is not None:
                values[at] = from_micros(values[at])
        return RunRecord(*values)
    except (ValueError, TypeError, OverflowError):
        return None


def line_time(line: bytes) -> int | None:
    """The time (µs) at the head of a line, without decoding it; ``None`` for a torn line."""
    if not line.endswith(b"]"):
        return None
    try:
        return int(line[1 : line.index(b",")])
    except ValueError:
        return None


def _time_us(record: RunRecord) -> int:
    return _us(record.time)


def _time(record: RunRecord) -> datetime:
    return record.time


def _first(item: tuple[int, object]) -> int:
    return item[0]


def _tail(fd: int, size: int) -> Iterator[list[bytes]]:
    """The lines of a file, a block at a time from its end (:data:`FIRST_BLOCK` bytes, then
    larger); each block in file order. An unterminated last line (an append in progress, or
    torn by a crash) is left out."""
    end = size
    carry = b""
    step = FIRST_BLOCK
    last = True
    while end > 0:
        start = max(0, end - step)
        step = min(step * 4, CHUNK)
        data = os.pread(fd, end - start, start) + carry
        if last:  # drop an unterminated line
            data = data[: data.rfind(b"\n") + 1]
            last = False
        end = start
        if start > 0:
            first = data.find(b"\n")
            if first < 0:
                carry = data
                continue
            carry, data = data[: first + 1], data[first + 1 :]
        lines = data.splitlines()
        if lines:
            yield lines


class _Count:
    """What pruning knows of one file: its inode and size when last counted, its line count
    and the time of its first record (µs; ``None`` when unreadable)."""

    __slots__ = ("head_us", "ino", "lines", "size")

    def __init__(self, ino: int, size: int, lines: int, head_us: int | None) -> None:
        self.ino, self.size, self.lines, self.head_us = ino, size, lines, head_us


class RunFiles:
    """The history files of one file store (``directory`` is its ``runs/``)."""

    def __init__(self, directory: Path, fsync: bool) -> None:
        self.directory = directory
        self.fsync = fsync
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._counts: dict[str, _Count] = {}
        self._retention: tuple[tuple[int, int], int | None] = ((0, 0), None)
        self._pool: ThreadPoolExecutor | None = None

    def close(self) -> None:
        with self._lock:
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                os.close(fd)
            self._counts.clear()
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        with self._lock:
            if self._lock_fd is None:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._lock_fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            fd = self._lock_fd
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def _path(self, name: str) -> str:
        return os.path.join(self.directory, name + _SUFFIX)

    # -- writing ------------------------------------------------------------------------------
    def add(self, records: Sequence[RunRecord]) -> None:
        """Append a batch: one write per task file, under the exclusive lock."""
        if not records:
            return
        lines: dict[str, list[bytes]] = {}
        newest: dict[str, int] = {}
        for record in records:
            name = file_name(record.task_id)
            line = encode_record(record)
            at = _time_us(record) * 1000
            found = lines.get(name)
            if found is None:
                lines[name] = [line]
                newest[name] = at
            else:
                found.append(line)
                if at > newest[name]:
                    newest[name] = at
        created = False
        names = list(lines)
        with self._exclusive():
            for start in range(0, len(names), SYNC_GROUP):
                fds: list[int] = []
                try:
                    for name in names[start : start + SYNC_GROUP]:
                        chunk = lines[name]
                        fd, new = self._append(name, b"".join(chunk), len(chunk), newest[name])
                        fds.append(fd)
                        created |= new
                    if self.fsync:
                        self._sync(fds)
                finally:
                    for fd in fds:
                        os.close(fd)
            if created and self.fsync:
                sync_directory(self.directory)

    def _append(self, name: str, data: bytes, count: int, newest_ns: int) -> tuple[int, bool]:
        """Append ``data`` (``count`` lines) to a task's file; returns the open file and
        whether it was created."""
        fd = os.open(self._path(name), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            st = os.fstat(fd)
            if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
                data = b"\n" + data  # a torn line (a crash mid-append) stays on its own
            bound = max(st.st_mtime_ns, newest_ns)
            now_ns = time.time_ns()
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if bound > now_ns + MTIME_SLACK // 2:
                os.utime(fd, ns=(bound, bound))  # keep mtime an upper bound of the records
        except BaseException:
            os.close(fd)
            raise
        known = self._counts.get(name)
        if known is not None and known.ino == st.st_ino and known.size == st.st_size:
            known.size += len(data)
            known.lines += count
        return fd, st.st_size == 0

    def _sync(self, fds: list[int]) -> None:
        if len(fds) == 1:
            os.fdatasync(fds[0])
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(SYNC_WORKERS, thread_name_prefix="asyncz-history")
        for _ in self._pool.map(os.fdatasync, fds):
            pass

    # -- reading ------------------------------------------------------------------------------
    def _keep(self) -> int | None:
        """``max_per_task`` of the last prune (readers hide older records beyond it)."""
        path = os.path.join(self.directory, ".retention")
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        signature = (st.st_ino, st.st_mtime_ns)
        if signature != self._retention[0]:
            try:
                with open(path, "rb") as handle:
                    keep = json.loads(handle.read())["max_per_task"]
            except (OSError, ValueError, KeyError, TypeError):
                keep = None
            self._retention = (signature, keep if type(keep) is int and keep > 0 else None)
        return self._retention[1]

    def _read(
        self,
        path: str,
        limit: int | None,
        since_us: int | None,
        outcomes: Sequence[str] | None,
        keep: int | None,
        above_us: int | None = None,
    ) -> list[RunRecord]:
        """The matching records of one file, newest first, at most ``limit``; with
        ``above_us`` only those newer than that. Lines are decoded only when their time
        qualifies and (with ``outcomes``) to check the outcome, else only when returned."""
        low = -1 << 63
        if since_us is not None:
            low = since_us - 1
        if above_us is not None and above_us > low:
            low = above_us
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        seen = 0
        found: list[tuple[int, bytes | RunRecord]] = []
        try:
            for block in _tail(fd, os.fstat(fd).st_size):
                if keep is not None and seen + len(block) > keep:
                    block = block[len(block) - (keep - seen) :]
                seen += len(block)
                timed = [(t, line) for line in block if (t := line_time(line)) is not None]
                timed = [item for item in timed if item[0] > low]
                timed.sort(key=_first, reverse=True)
                for t, line in timed:
                    if outcomes is not None:
                        record = decode_line(line)
                        if record is None or record.outcome not in outcomes:
                            continue
                        found.append((t, record))
                    else:
                        found.append((t, line))
                    if limit is not None and len(found) >= limit:
                        break
                if (
                    (keep is not None and seen >= keep)
                    or (limit is not None and len(found) >= limit)
                    or (low >= 0 and not timed)
                ):
                    break
        finally:
            os.close(fd)
        found.sort(key=_first, reverse=True)
        records: list[RunRecord] = []
        for _, item in found:
            decoded = decode_line(item) if isinstance(item, bytes) else item
            if decoded is not None:
                records.append(decoded)
                if limit is not None and len(records) >= limit:
                    break
        return records

    def get(
        self,
        task_id: str | None,
        limit: int | None,
        since: datetime | None,
        outcome: str | Sequence[str] | None,
    ) -> list[RunRecord]:
        outcomes = (outcome,) if isinstance(outcome, str) else outcome
        keep = self._keep()
        since_us = None if since is None else _us(since)
        if task_id is not None:
            found = self._read(self._path(file_name(task_id)), limit, since_us, outcomes, keep)
            return [r for r in found if r.task_id == task_id]
        # Every task: the files newest mtime first; mtime (+ slack) bounds their records.
        files: list[tuple[int, str]] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.directory) as listing:
            for item in listing:
                if item.name.endswith(_SUFFIX) and not item.name.startswith("."):
                    with contextlib.suppress(FileNotFoundError):
                        files.append((item.stat().st_mtime_ns + MTIME_SLACK, item.path))
        files.sort(reverse=True)
        since_ns = None if since_us is None else since_us * 1000
        best: list[tuple[int, int, RunRecord]] = []  # a min-heap of the newest `limit`
        order = 0
        for bound_ns, path in files:
            if since_ns is not None and bound_ns < since_ns:
                break
            full = limit is not None and len(best) >= limit
            if full and bound_ns < best[0][0] * 1000:
                break
            above = best[0][0] if full else None
            for record in self._read(path, limit, since_us, outcomes, keep, above):
                order += 1
                entry = (_time_us(record), order, record)
                if limit is None or len(best) < limit:
                    heapq.heappush(best, entry)
                elif entry[0] > best[0][0]:
                    heapq.heapreplace(best, entry)
                else:
                    break  # the rest of this file is older still
        best.sort(reverse=True)
        return [record for _, _, record in best]

    def last(self, task_ids: Iterable[str], outcomes: Sequence[str]) -> dict[str, RunRecord]:
        keep = self._keep()
        found: dict[str, RunRecord] = {}
        for task_id in dict.fromkeys(task_ids):
            records = self._read(self._path(file_name(task_id)), 1, None, outcomes, keep)
            if records and records[0].task_id == task_id:
                found[task_id] = records[0]
        return found

    # -- pruning ------------------------------------------------------------------------------
    def prune(self, now: datetime, max_age: float, max_per_task: int) -> int:
        """Remove the files whose records are all older than ``max_age``; rewrite those that
        hold a record that old or more than ``SLACK * max_per_task`` records. Returns the
        number of files removed or rewritten."""
        cutoff_us = _us(now) - round(max_age * 1_000_000)
        changed = 0
        with self._exclusive():
            self._write_retention(max_per_task)
            with os.scandir(self.directory) as listing:
                items = [i for i in listing if i.name.endswith(_SUFFIX) and i.name[0] != "."]
            seen: set[str] = set()
            for item in items:
                name = item.name[: -len(_SUFFIX)]
                seen.add(name)
                try:
                    st = item.stat()
                except FileNotFoundError:
                    continue
                if st.st_mtime_ns + MTIME_SLACK < cutoff_us * 1000:  # every record is older
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(item.path)
                    changed += 1
                    continue
                count = self._count(name, item.path, st)
                if count is None:
                    continue
                too_many = count.lines > SLACK * max_per_task
                too_old = count.head_us is not None and count.head_us < cutoff_us
                if too_many or too_old:
                    self._rewrite(name, item.path, st, cutoff_us, max_per_task)
                    changed += 1
            for name in set(self._counts) - seen:
                del self._counts[name]
            if changed and self.fsync:
                sync_directory(self.directory)
        return changed

    def _count(self, name: str, path: str, st: os.stat_result) -> _Count | None:
        """The line count of a file, reading only what was appended since the last count."""
        known = self._counts.get(name)
        if known is not None and known.ino == st.st_ino and known.size == st.st_size:
            return known
        start = known.size if known is not None and known.ino == st.st_ino else 0
        if start > st.st_size:
            start = 0
        try:
            with open(path, "rb") as handle:
                handle.seek(start)
                data = handle.read(st.st_size - start)
        except FileNotFoundError:
            return None
        lines = data.count(b"\n")
        if start and known is not None:
            known.size, known.lines = start + len(data), known.lines + lines
            return known
        head = line_time(data.partition(b"\n")[0])
        count = _Count(st.st_ino, len(data), lines, head)
        self._counts[name] = count
        return count

    def _rewrite(
        self, name: str, path: str, st: os.stat_result, cutoff_us: int, max_per_task: int
    ) -> None:
        """Keep the newest ``max_per_task`` records not older than the cutoff, time-ordered."""
        with open(path, "rb") as handle:
            data = handle.read()
        records = [r for r in map(decode_line, data.splitlines()) if r is not None]
        kept = [r for r in records if _time_us(r) >= cutoff_us]
        kept.sort(key=_time)
        kept = kept[-max_per_task:] if max_per_task > 0 else []
        self._counts.pop(name, None)
        if not kept:
            os.unlink(path)
            return
        content = b"".join(map(encode_record, kept))
        stamp = max(st.st_mtime_ns, time.time_ns())
        ino = self._replace(path, content, stamp)
        self._counts[name] = _Count(ino, len(content), len(kept), _time_us(kept[0]))

    def _replace(self, path: str, content: bytes, stamp: int) -> int:
        temp = os.path.join(self.directory, f".tmp-{os.getpid()}-{uuid.uuid4().hex}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.utime(fd, ns=(stamp, stamp))
            if self.fsync:
                os.fsync(fd)
            ino = os.fstat(fd).st_ino
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        os.close(fd)
        os.replace(temp, path)
        return ino

    def _write_retention(self, max_per_task: int) -> None:
        if self._keep() == max_per_task:
            return
        content = json.dumps({"max_per_task": max_per_task}).encode()
        self._replace(os.path.join(self.directory, ".retention"), content, time.time_ns())


class FileHistory:
    """The run history methods of the file store (a mixin before ``PersistentStore``): the
    store sets ``_runs`` and ``fsync``."""

    keeps_history: ClassVar[bool] = True
    _runs: RunFiles
    fsync: bool

    async def add_runs(self, records: Sequence[RunRecord]) -> None:
        self._runs.fsync = self.fsync
        self._runs.add(records)

    async def get_runs(
        self,
        task_id: str | None = None,
        *,
        limit: int | None = 50,
        since: datetime | None = None,
        outcome: str | Sequence[str] | None = None,
    ) -> list[RunRecord]:
        return self._runs.get(task_id, limit, since, outcome)

    async def get_last_runs(
        self, task_ids: Sequence[str], outcomes: Sequence[str]
    ) -> dict[str, RunRecord]:
        return self._runs.last(task_ids, outcomes)

    async def prune_runs(self, now: datetime, max_age: float, max_per_task: int) -> None:
        self._runs.fsync = self.fsync
        self._runs.prune(now, max_age, max_per_task)
