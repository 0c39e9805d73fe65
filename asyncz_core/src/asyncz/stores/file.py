"""The file store: embedded and persistent, one file per task, no server.

Data path: ``add_task`` writes a task file; each pass reads the due ones (from the
headers) and writes the next run times back; other processes see the changes through
the generation counter.

Layout of ``directory``::

    .lock            lock file; its first 8 bytes count every change (the generation)
    tasks/<name>     one file per task: a one-line JSON header, then the serialized task

``<name>`` is the task id when it is made only of ``[a-z0-9_-]`` (at most 64 characters),
else ``~`` and the SHA-256 of the id, so any id is a valid file name on any file system. The
header (``{"id": ..., "next": <µs since the epoch> | null}``) lets the store index run
times without decoding tasks.

Writes replace a file atomically (write a temporary file, ``fsync`` unless disabled, then
``rename`` over the old one) while holding an exclusive ``fcntl.flock`` on ``.lock`` and
then bump the generation. Readers keep an in-memory index of ``(next run, id)`` and revisit
the directory only when the generation moved, re-reading only files whose inode, size or
mtime changed; several processes can therefore share one directory safely and each sees
the others' changes on its next query. File I/O is local and short, so the store runs
inline (``io_loop is None``).
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncz.exceptions import ConflictingIdError, TaskLookupError, TaskRestoreError
from asyncz.stores.base import PersistentStore

if TYPE_CHECKING:
    from asyncz.abc import SchedulerHandle
    from asyncz.tasks import Task

__all__ = ["FileStore"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_SAFE_ID = re.compile(r"[a-z0-9_-]{1,64}")
_COUNTER = struct.Struct("<Q")
_STALE_TEMP_SECONDS = 3600.0
_NO_TIME = -1  # sorts nothing: paused tasks and unreadable headers are kept out of the order


def to_micros(when: datetime) -> int:
    """Exact microseconds since the Unix epoch (an aware datetime)."""
    return (when - _EPOCH) // _MICROSECOND


def file_name(task_id: str) -> str:
    """The file name of a task id (see the module documentation)."""
    if _SAFE_ID.fullmatch(task_id):
        return task_id
    return "~" + hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class _Entry:
    """What the index knows about one task file."""

    task_id: str
    next_us: int | None  # None: paused; _NO_TIME never appears here
    signature: tuple[int, int, int]  # (inode, size, mtime_ns) of the file it was read from
    header_ok: bool = True


class FileStore(PersistentStore):
    """Tasks in ``directory``, one file each, surviving restarts and shared by processes.

    ``serializer``: ``"json"`` (default), ``"pickle"`` or a serializer instance.
    ``fsync``: flush every written file (and the directory) to disk before it counts as
    stored (default ``True``); turn off for throw-away data on slow disks.
    ``poll_interval``: seconds between the scheduler's looks at the directory when nothing is
    due sooner, so that tasks added by other processes run on time (default 1; ``None``
    disables polling). A look costs one lock and an 8-byte read when nothing changed.
    ``cleanup_directory``: delete ``directory`` and its tasks at shutdown (default ``False``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        serializer: Any = None,
        fsync: bool = True,
        poll_interval: float | None = 1.0,
        cleanup_directory: bool = False,
    ) -> None:
        super().__init__(serializer=serializer)
        #: Remove ``directory`` with every task in it when the scheduler shuts down (for a
        #: throw-away directory, as in Asyncz).
        self.cleanup_directory = bool(cleanup_directory)
        if poll_interval is not None and poll_interval <= 0:
            raise ValueError(
                f"poll_interval must be a positive number of seconds or None, not {poll_interval!r}"
            )
        self.poll_interval = poll_interval
        self.directory = Path(directory)
        self.tasks_dir = self.directory / "tasks"
        self.fsync = bool(fsync)
        self._thread_lock = threading.RLock()
        self._lock_fd: int | None = None
        self._generation: int | None = None  # generation the index reflects; None = stale
        self._entries: dict[str, _Entry] = {}  # file name -> entry
        self._order: list[tuple[int, str]] = []  # sorted (next_us, file name), paused excluded
        self._broken: dict[str, tuple[tuple[int, int, int], str]] = {}  # name -> (sig, reason)

    # =====================================================================================
    # lifecycle
    # =====================================================================================
    async def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        await super().start(scheduler, alias)
        with self._thread_lock:
            self._open()
            self._remove_stale_temporaries()

    async def shutdown(self) -> None:
        with self._thread_lock:
            if self.cleanup_directory and self._lock_fd is not None:
                # Under the exclusive lock: no other process is halfway through a change.
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
                shutil.rmtree(self.directory, ignore_errors=True)
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                os.close(fd)
            self._generation = None
            self._entries.clear()
            self._order.clear()
            self._broken.clear()

    def _open(self) -> int:
        if self._lock_fd is None:
            self.tasks_dir.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        return self._lock_fd

    def _remove_stale_temporaries(self) -> None:
        horizon = time.time() - _STALE_TEMP_SECONDS
        with os.scandir(self.tasks_dir) as entries:
            for entry in entries:
                if entry.name.startswith(".tmp-"):
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime < horizon:
                            os.unlink(entry.path)

    # =====================================================================================
    # locking and the generation counter
    # =====================================================================================
    def _read_generation(self, fd: int) -> int:
        data = os.pread(fd, _COUNTER.size, 0)
        return int(_COUNTER.unpack(data)[0]) if len(data) == _COUNTER.size else 0

    @contextlib.contextmanager
    def _shared(self) -> Iterator[int]:
        """Hold the shared lock; yield the current generation."""
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            yield self._read_generation(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold the exclusive lock for a change; bump the generation when it is done.

        Changes made inside are applied to the index by the caller; when another process
        changed the directory since the index was built, the index is marked stale instead.
        """
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            before = self._read_generation(fd)
            if before != self._generation:
                self._generation = None
            yield
        finally:
            try:
                after = before + 1
                os.pwrite(fd, _COUNTER.pack(after), 0)
                if self._generation is not None:
                    self._generation = after
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    # =====================================================================================
    # files
    # =====================================================================================
    def _path(self, name: str) -> Path:
        return self.tasks_dir / name

    def _encode_file(self, task: Task) -> bytes:
        when = task.next_run_time
        header = {
            "id": task.id,
            "next": to_micros(when) if isinstance(when, datetime) else None,
        }
        payload = self.encode_task(task)
        return json.dumps(header, separators=(",", ":")).encode() + b"\n" + payload

    def _write(self, name: str, data: bytes) -> tuple[int, int, int]:
        """Atomically replace ``tasks/<name>``; return the new file's signature."""
        temp = self.tasks_dir / f".tmp-{os.getpid()}-{uuid.uuid4().hex}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        os.close(fd)
        try:
            os.replace(temp, self._path(name))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _sync_directory(self) -> None:
        if not self.fsync:
            return
        fd = os.open(self.tasks_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        except OSError as exc:  # some file systems cannot fsync a directory
            if exc.errno not in (errno.EINVAL, errno.EBADF):
                raise
        finally:
            os.close(fd)

    def _read(self, name: str) -> tuple[bytes, tuple[int, int, int]] | None:
        try:
            with open(self._path(name), "rb") as handle:
                st = os.fstat(handle.fileno())
                return handle.read(), (st.st_ino, st.st_size, st.st_mtime_ns)
        except FileNotFoundError:
            return None

    @staticmethod
    def _split(name: str, data: bytes) -> tuple[str, int | None, bytes, bool]:
        """``(task id, next µs, payload, header ok)`` of a file's content."""
        line, sep, payload = data.partition(b"\n")
        try:
            header = json.loads(line) if sep else None
            task_id = header["id"] if isinstance(header, dict) else None
            next_us = header.get("next") if isinstance(header, dict) else None
            if isinstance(task_id, str) and (next_us is None or type(next_us) is int):
                return task_id, next_us, payload, True
        except ValueError:
            pass
        return name, None, data, False

    # =====================================================================================
    # the index
    # =====================================================================================
    def _refresh(self) -> None:
        """Bring the index up to date with the directory (cheap when nothing changed)."""
        with self._shared() as generation:
            if generation == self._generation:
                return
            seen: dict[str, _Entry] = {}
            with os.scandir(self.tasks_dir) as listing:
                for item in listing:
                    name = item.name
                    if name.startswith("."):
                        continue
                    try:
                        st = item.stat()
                    except FileNotFoundError:
                        continue
                    signature = (st.st_ino, st.st_size, st.st_mtime_ns)
                    known = self._entries.get(name)
                    if known is not None and known.signature == signature:
                        seen[name] = known
                        continue
                    entry = self._read_entry(name)
                    if entry is not None:
                        seen[name] = entry
            self._entries = seen
            self._order = sorted(
                (e.next_us, name) for name, e in seen.items() if e.next_us is not None
            )
            for name in list(self._broken):
                current = seen.get(name)
                if current is None or current.signature != self._broken[name][0]:
                    del self._broken[name]
            self._generation = generation

    def _read_entry(self, name: str) -> _Entry | None:
        try:
            with open(self._path(name), "rb") as handle:
                st = os.fstat(handle.fileno())
                line = handle.readline(65536)
        except FileNotFoundError:
            return None
        signature = (st.st_ino, st.st_size, st.st_mtime_ns)
        task_id, next_us, _, ok = self._split(name, line if line.endswith(b"\n") else b"")
        if not ok:
            return _Entry(name, None, signature, header_ok=False)
        return _Entry(task_id, next_us, signature)

    def _index_put(self, name: str, entry: _Entry) -> None:
        self._broken.pop(name, None)
        if self._generation is None:
            return  # stale anyway: the next refresh rebuilds it
        self._index_drop(name)
        self._entries[name] = entry
        if entry.next_us is not None:
            bisect.insort(self._order, (entry.next_us, name))

    def _index_drop(self, name: str) -> None:
        self._broken.pop(name, None)
        old = self._entries.pop(name, None)
        if old is not None and old.next_us is not None:
            key = (old.next_us, name)
            at = bisect.bisect_left(self._order, key)
            if at < len(self._order) and self._order[at] == key:
                del self._order[at]

    def _forget_reports(self, task_id: str) -> None:
        # A new occurrence (the task was replaced or deleted) is reported anew.
        self._reported = {key for key in self._reported if key[0] != task_id}

    # =====================================================================================
    # decoding
    # =====================================================================================
    def _load(self, name: str) -> Task | None:
        """Decode one task file; ``None`` when it is gone or unrestorable (then reported)."""
        found = self._read(name)
        if found is None:
            return None
        data, signature = found
        task_id, _, payload, ok = self._split(name, data)
        broken = self._broken.get(name)
        if broken is not None and broken[0] == signature:
            return None
        try:
            if not ok:
                raise TaskRestoreError(task_id, "unreadable file header")
            task = self.decode_task(task_id, payload)
            if task.id != task_id:
                raise TaskRestoreError(task_id, f"payload holds task {task.id!r}")
        except TaskRestoreError as exc:
            self._broken[name] = (signature, exc.reason)
            self.report_unrestorable(task_id, exc.reason)
            return None
        return task

    # =====================================================================================
    # the contract
    # =====================================================================================
    async def lookup_task(self, task_id: str) -> Task | None:
        with self._thread_lock:
            return self._load(file_name(task_id))

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        horizon = to_micros(now)
        with self._thread_lock:
            self._refresh()
            due: list[Task] = []
            for next_us, name in self._order:
                if next_us > horizon or (limit is not None and len(due) >= limit):
                    break
                if name in self._broken:
                    continue
                task = self._load(name)
                if task is not None:
                    due.append(task)
            return due

    async def get_next_run_time(self) -> datetime | None:
        with self._thread_lock:
            self._refresh()
            for next_us, name in self._order:
                if name not in self._broken:
                    return _EPOCH + timedelta(microseconds=next_us)
            return None

    async def get_all_tasks(self) -> list[Task]:
        with self._thread_lock:
            self._refresh()
            ordered = [name for _, name in self._order]
            ordered += sorted(
                (name for name, e in self._entries.items() if e.next_us is None),
                key=lambda name: self._entries[name].task_id,
            )
            tasks = [self._load(name) for name in ordered]
            return [task for task in tasks if task is not None]

    async def get_unrestorable(self) -> dict[str, str]:
        """Decode every stored task (a full check) and return the ones that fail."""
        with self._thread_lock:
            self._refresh()
            result: dict[str, str] = {}
            for name in list(self._entries):
                self._broken.pop(name, None)  # re-check: a fixed deployment restores it
                self._load(name)
                if name in self._broken:
                    result[self._entries[name].task_id] = self._broken[name][1]
            return result

    def _entry_for(self, task: Task, signature: tuple[int, int, int]) -> _Entry:
        when = task.next_run_time
        return _Entry(task.id, to_micros(when) if isinstance(when, datetime) else None, signature)

    async def add_task(self, task: Task) -> None:
        await self.add_tasks([task])

    async def add_tasks(self, tasks: Sequence[Task], replace_existing: bool = False) -> None:
        """All or nothing: a conflicting id (without ``replace_existing``) stores none."""
        encoded = [(file_name(t.id), self._encode_file(t), t) for t in tasks]
        with self._thread_lock, self._exclusive():
            if not replace_existing:
                for name, _, task in encoded:
                    if self._path(name).exists():
                        raise ConflictingIdError(task.id, self.alias)
            written = [(name, self._write(name, data), task) for name, data, task in encoded]
            self._sync_directory()
            for name, signature, task in written:
                self._forget_reports(task.id)
                self._index_put(name, self._entry_for(task, signature))

    async def update_task(self, task: Task) -> None:
        name = file_name(task.id)
        data = self._encode_file(task)
        with self._thread_lock, self._exclusive():
            if not self._path(name).exists():
                raise TaskLookupError(task.id, self.alias)
            signature = self._write(name, data)
            self._sync_directory()
            self._forget_reports(task.id)
            self._index_put(name, self._entry_for(task, signature))

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        encoded = [(file_name(t.id), self._encode_file(t), t) for t in tasks]
        if not encoded:
            return
        with self._thread_lock, self._exclusive():
            for name, data, task in encoded:
                if not self._path(name).exists():
                    continue  # deleted while it was being processed
                signature = self._write(name, data)
                self._index_put(name, self._entry_for(task, signature))
            self._sync_directory()

    async def delete_task(self, task_id: str) -> None:
        name = file_name(task_id)
        with self._thread_lock, self._exclusive():
            try:
                os.unlink(self._path(name))
            except FileNotFoundError:
                raise TaskLookupError(task_id, self.alias) from None
            self._sync_directory()
            self._index_drop(name)
            self._forget_reports(task_id)

    async def delete_tasks(self, task_ids: Iterable[str]) -> None:
        ids = list(task_ids)
        if not ids:
            return
        with self._thread_lock, self._exclusive():
            for task_id in ids:
                name = file_name(task_id)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(name))
                self._index_drop(name)
                self._forget_reports(task_id)
            self._sync_directory()

    async def remove_all_tasks(self) -> None:
        with self._thread_lock, self._exclusive():
            with os.scandir(self.tasks_dir) as listing:
                names = [item.name for item in listing if not item.name.startswith(".")]
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._path(name))
            self._sync_directory()
            for name in names:
                self._index_drop(name)
            self._reported.clear()

    def __repr__(self) -> str:
        return f"<FileStore alias={self.alias!r} directory={str(self.directory)!r}>"
