"""Run history of the file store (:mod:`asyncz.stores.file`): JSON lines, one file per task.

Layout, under the store's directory::

    runs/.lock             flock'ed by every writer (appends and rewrites)
    runs/.retention        {"max_per_task": n}: the limit of the last prune (read-time trim)
    runs/<name>.jsonl      the records of one task, one JSON object a line, in append order

``<name>`` is :func:`~asyncz.stores._files.file_name` of the task id. A line holds the
record's fields (:data:`RunRecord._fields`) that are not ``None``; times are µs since the
epoch.

Data path: ``add_runs`` (one batch) groups the records by task and, under the exclusive lock,
appends each task's lines with one ``write`` (``O_APPEND``; a ``fsync`` per file when the
store's ``fsync`` option is on), then sets the file's mtime to at least its newest record's
time, so that ``mtime`` bounds every record of the file from above. Readers take no lock: a
line is complete once it ends with a newline (a half-written or crashed line does not parse
and is skipped; the next append starts on a new line).

``get_runs`` of one task reads its file backwards in :data:`CHUNK` blocks until it has enough
records (``limit``, ``since``); of every task, it visits the files newest ``mtime`` first and
stops when no file left can hold a newer record. Records are ordered by their time within what
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
from datetime import datetime
from pathlib import Path
from typing import ClassVar

from asyncz.stores._files import file_name, from_micros, sync_directory, to_micros
from asyncz.tasks.runs import RunRecord

__all__ = ["CHUNK", "SLACK", "FileHistory", "RunFiles", "decode_line", "encode_record"]

#: Bytes read at a time from the end of a history file.
CHUNK = 65536
#: A file is rewritten by pruning once it holds more than ``SLACK * max_per_task`` records.
SLACK = 2
_SUFFIX = ".jsonl"
_TIMES = frozenset(("scheduled_run_time", "submitted_at", "started_at", "finished_at"))
_FIELDS = RunRecord._fields
_dumps = json.JSONEncoder(separators=(",", ":")).encode
_loads = json.loads


def encode_record(record: RunRecord) -> bytes:
    """One JSON line (with its newline)."""
    data: dict[str, object] = {}
    for key, value in zip(_FIELDS, record, strict=True):
        if value is not None:
            data[key] = to_micros(value) if isinstance(value, datetime) else value
    return (_dumps(data) + "\n").encode()


def decode_line(line: bytes) -> RunRecord | None:
    """The record of one line; ``None`` when it does not parse (a torn or foreign line)."""
    try:
        data = _loads(line)
        for key in _TIMES.intersection(data):
            data[key] = from_micros(data[key])
        try:
            return RunRecord(**data)
        except TypeError:  # a field this version does not know: leave it out
            return RunRecord.from_data(data)
    except (ValueError, TypeError, OverflowError):
        return None


def _time_us(record: RunRecord) -> int:
    return to_micros(record.time)


def _time(record: RunRecord) -> datetime:
    return record.time


def _tail(fd: int, size: int) -> Iterator[list[RunRecord]]:
    """The records of a file, a block at a time from its end; each block in file order. An
    unterminated last line (an append in progress, or torn by a crash) is left out."""
    end = size
    carry = b""
    while end > 0:
        start = max(0, end - CHUNK)
        data = os.pread(fd, end - start, start) + carry
        if end == size:  # the last block: drop an unterminated line
            cut = data.rfind(b"\n") + 1
            data = data[:cut]
        if start > 0:
            first = data.find(b"\n")
            if first < 0:
                carry, end = data, start
                continue
            carry, data = data[: first + 1], data[first + 1 :]
        else:
            carry = b""
        end = start
        block = [r for r in map(decode_line, data.splitlines()) if r is not None]
        if block:
            yield block


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

    def close(self) -> None:
        with self._lock:
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                os.close(fd)
            self._counts.clear()

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
        with self._exclusive():
            for name, chunk in lines.items():
                created |= self._append(name, b"".join(chunk), len(chunk), newest[name])
            if created and self.fsync:
                sync_directory(self.directory)

    def _append(self, name: str, data: bytes, count: int, newest_ns: int) -> bool:
        """Append ``data`` (``count`` lines) to a task's file; ``True`` when it was created."""
        fd = os.open(self._path(name), os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            st = os.fstat(fd)
            if st.st_size and os.pread(fd, 1, st.st_size - 1) != b"\n":
                data = b"\n" + data  # a torn line (a crash mid-append) stays on its own
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            # mtime bounds every record of the file from above (readers rely on it).
            stamp = max(st.st_mtime_ns, newest_ns, time.time_ns())
            os.utime(fd, ns=(stamp, stamp))
            if self.fsync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        known = self._counts.get(name)
        if known is not None and known.ino == st.st_ino and known.size == st.st_size:
            known.size += len(data)
            known.lines += count
        return st.st_size == 0

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
        since: datetime | None,
        outcomes: Sequence[str] | None,
        keep: int | None,
    ) -> list[RunRecord]:
        """The matching records of one file, newest first, at most ``limit``."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return []
        seen = 0
        matches: list[RunRecord] = []
        try:
            for block in _tail(fd, os.fstat(fd).st_size):
                if keep is not None and seen + len(block) > keep:
                    block = block[len(block) - (keep - seen) :]
                seen += len(block)
                older = True
                for record in block:
                    if since is not None and record.time < since:
                        continue
                    older = False
                    if outcomes is None or record.outcome in outcomes:
                        matches.append(record)
                if (
                    (keep is not None and seen >= keep)
                    or (limit is not None and len(matches) >= limit)
                    or (since is not None and older)
                ):
                    break
        finally:
            os.close(fd)
        matches.sort(key=_time, reverse=True)
        return matches if limit is None else matches[:limit]

    def get(
        self,
        task_id: str | None,
        limit: int | None,
        since: datetime | None,
        outcome: str | Sequence[str] | None,
    ) -> list[RunRecord]:
        outcomes = (outcome,) if isinstance(outcome, str) else outcome
        keep = self._keep()
        if task_id is not None:
            found = self._read(self._path(file_name(task_id)), limit, since, outcomes, keep)
            return [r for r in found if r.task_id == task_id]
        # Every task: the files newest mtime first; mtime bounds each file's records.
        files: list[tuple[int, str]] = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.directory) as listing:
            for item in listing:
                if item.name.endswith(_SUFFIX) and not item.name.startswith("."):
                    with contextlib.suppress(FileNotFoundError):
                        files.append((item.stat().st_mtime_ns, item.path))
        files.sort(reverse=True)
        since_ns = None if since is None else to_micros(since) * 1000
        best: list[tuple[int, int, RunRecord]] = []  # a min-heap of the newest `limit`
        order = 0
        for mtime_ns, path in files:
            if since_ns is not None and mtime_ns < since_ns:
                break
            if limit is not None and len(best) >= limit and mtime_ns < best[0][0] * 1000:
                break
            for record in self._read(path, limit, since, outcomes, keep):
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
        cutoff_us = to_micros(now) - round(max_age * 1_000_000)
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
                if st.st_mtime_ns < cutoff_us * 1000:  # every record is older
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
        first = data.partition(b"\n")[0]
        head = decode_line(first) if first else None
        count = _Count(st.st_ino, len(data), lines, None if head is None else _time_us(head))
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
