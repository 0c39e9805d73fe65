"""The file store: embedded and persistent, one file per task, no server; shared safely by
several schedulers (nodes) on one host.

Data path: ``add_task`` writes a task file; each pass claims the due ones (rewriting their
headers with the claim), then writes the next run times back; other processes see the changes
through the generation counter.

Layout of ``directory``::

    .lock            lock file; its first 8 bytes count every change (the generation)
    tasks/<name>     one file per task: a one-line JSON header, then the serialized task
    nodes/<name>.json  one record per node (scheduler) that heartbeats here
    runs/<name>.jsonl  run history: the records of one task, a JSON line each
                     (:mod:`asyncz.stores._file_history`)

``<name>`` is :func:`file_name` of the task id (or node identity). The header (see
:mod:`asyncz.stores._files`: next run time, revision, and the claim while a node holds the
task) lets the store index due times and check revisions without decoding tasks.

Writes replace a file atomically (write a temporary file, ``fsync`` unless disabled, then
``rename`` over the old one) while holding an exclusive ``fcntl.flock`` on ``.lock`` and
then bump the generation. Readers keep an in-memory index of ``(due time, name)`` (the due
time is the end of the lease while a node holds the task, else its next run time) and
revisit the directory only when the generation moved, re-reading only files whose inode,
size or mtime changed. Claims, fenced write-backs and compare-and-set updates all re-read the
header of each file they change under the exclusive lock, so the check and the write are one
atomic step for every process on the host. ``flock`` does not protect a directory shared
over NFS by several hosts: use a server store for that. File I/O is local and short, so the
store runs inline (``io_loop is None``).

There are no notifications between processes: a scheduler sees a change made by another
process at its next pass, at the latest ``poll_interval`` seconds later (each look costs a
shared lock and an 8-byte read when nothing changed).
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import os
import shutil
import struct
import threading
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from asyncz.abc import TaskPage
from asyncz.exceptions import (
    ConflictingIdError,
    StaleTaskError,
    TaskLookupError,
    TaskRestoreError,
)
from asyncz.stores._file_history import FileHistory, RunFiles
from asyncz.stores._files import (
    Change,
    Entry,
    Header,
    Signature,
    file_name,
    from_micros,
    next_revision,
    read_entry,
    read_nodes,
    read_task,
    remove_stale_temporaries,
    scan,
    sync_directory,
    to_micros,
    write_atomic,
    write_node,
)
from asyncz.stores.base import PersistentStore, is_finished

if TYPE_CHECKING:
    from asyncz.abc import SchedulerHandle
    from asyncz.nodes import NodeInfo
    from asyncz.tasks import Task

__all__ = ["FileStore", "file_name", "to_micros"]

_COUNTER = struct.Struct("<Q")
_STALE_TEMP_SECONDS = 3600.0
_LAST_NAME = "\U0010ffff"  # sorts after every file name


class FileStore(FileHistory, PersistentStore):
    """Tasks in ``directory``, one file each, surviving restarts and shared by processes.

    ``serializer``: ``"json"`` (default), ``"pickle"`` or a serializer instance.
    ``fsync``: flush every written file (and the directory) to disk before it counts as
    stored (default ``True``); turn off for throw-away data on slow disks.
    ``poll_interval``: seconds between the scheduler's looks at the directory when nothing is
    due sooner, so that tasks added or changed by other processes run on time (default 1;
    ``None`` disables polling). A look costs one shared lock and an 8-byte read when nothing
    changed.
    ``cleanup_directory``: delete ``directory`` and its tasks at shutdown (default ``False``).

    Coordinated: several schedulers on one host may share ``directory``; each fire time runs
    on exactly one of them (claims under a lease, fenced write-backs, see
    :class:`asyncz.abc.Store`). A claim does not move the revision; every write of a task does.
    """

    coordinated = True

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
        self.nodes_dir = self.directory / "nodes"
        self.fsync = bool(fsync)
        self._runs = RunFiles(self.directory / "runs", self.fsync)
        self._thread_lock = threading.RLock()
        self._lock_fd: int | None = None
        self._generation: int | None = None  # generation the index reflects; None = stale
        self._entries: dict[str, Entry] = {}  # file name -> entry
        self._order: list[tuple[int, str]] = []  # sorted (due µs, file name); never due: left out
        self._broken: dict[str, tuple[Signature, str]] = {}  # name -> (signature, reason)

    # =====================================================================================
    # lifecycle
    # =====================================================================================
    async def start(self, scheduler: SchedulerHandle, alias: str) -> None:
        await super().start(scheduler, alias)
        with self._thread_lock:
            self._open()
            dirs = (self.tasks_dir, self.nodes_dir, self._runs.directory)
            remove_stale_temporaries(dirs, _STALE_TEMP_SECONDS)

    async def shutdown(self) -> None:
        with self._thread_lock:
            if self.cleanup_directory and self._lock_fd is not None:
                # Under the exclusive lock: no other process is halfway through a change.
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
                shutil.rmtree(self.directory, ignore_errors=True)
            fd, self._lock_fd = self._lock_fd, None
            if fd is not None:
                os.close(fd)
            self._runs.close()
            self._generation = None
            self._entries.clear()
            self._order.clear()
            self._broken.clear()

    def _open(self) -> int:
        if self._lock_fd is None:
            self.tasks_dir.mkdir(parents=True, exist_ok=True)
            self.nodes_dir.mkdir(exist_ok=True)
            self._lock_fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        return self._lock_fd

    # =====================================================================================
    # locking and the generation counter
    # =====================================================================================
    def _read_generation(self, fd: int) -> int:
        data = os.pread(fd, _COUNTER.size, 0)
        return int(_COUNTER.unpack(data)[0]) if len(data) == _COUNTER.size else 0

    @contextlib.contextmanager
    def _exclusive(self, refresh: bool = False) -> Iterator[Change]:
        """Hold the exclusive lock for a change; bump the generation when it is done (unless
        the change says it wrote nothing).

        With ``refresh`` the index is brought up to date first (under the lock, so it is
        exact until the lock is released); otherwise, when another process changed the
        directory since the index was built, the index is marked stale and the caller's
        changes are applied to it by the next refresh.
        """
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_EX)
        change = Change()
        try:
            before = self._read_generation(fd)
            if before != self._generation:
                if refresh:
                    self._rescan(before)
                else:
                    self._generation = None
            yield change
        finally:
            try:
                if change.made:
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

    def _header_for(self, task: Task, rev: int, owner: str | None = None) -> Header:
        when = task.next_run_time
        next_us = to_micros(when) if isinstance(when, datetime) else None
        return Header(task.id, next_us, rev, owner)

    def _write(self, name: str, header: Header, payload: bytes) -> Signature:
        """Atomically replace ``tasks/<name>`` and index it; return the file's signature."""
        signature = write_atomic(
            self.tasks_dir, self._path(name), header.encode() + payload, self.fsync
        )
        self._index_put(name, Entry(header.task_id, header, signature))
        return signature

    def _sync_directory(self) -> None:
        if self.fsync:
            sync_directory(self.tasks_dir)

    # =====================================================================================
    # the index
    # =====================================================================================
    def _refresh(self) -> None:
        """Bring the index up to date with the directory (cheap when nothing changed)."""
        fd = self._open()
        fcntl.flock(fd, fcntl.LOCK_SH)
        try:
            generation = self._read_generation(fd)
            if generation != self._generation:
                self._rescan(generation)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _rescan(self, generation: int) -> None:
        """Rebuild the index from the directory (under either lock), re-reading only the
        files whose signature changed."""
        seen = scan(self.tasks_dir, self._entries)
        self._entries = seen
        self._order = sorted((e.due_us, n) for n, e in seen.items() if e.due_us is not None)
        for name in list(self._broken):
            current = seen.get(name)
            if current is None or current.signature != self._broken[name][0]:
                del self._broken[name]
        self._generation = generation

    def _index_put(self, name: str, entry: Entry) -> None:
        self._broken.pop(name, None)
        if self._generation is None:
            return  # stale anyway: the next refresh rebuilds it
        self._index_drop(name)
        self._entries[name] = entry
        if entry.due_us is not None:
            bisect.insort(self._order, (entry.due_us, name))

    def _index_drop(self, name: str) -> None:
        self._broken.pop(name, None)
        old = self._entries.pop(name, None)
        if old is not None and old.due_us is not None:
            key = (old.due_us, name)
            at = bisect.bisect_left(self._order, key)
            if at < len(self._order) and self._order[at] == key:
                del self._order[at]

    def _due_names(self, horizon: int) -> list[str]:
        """Names of the indexed tasks due at ``horizon`` (µs), earliest first."""
        end = bisect.bisect_right(self._order, (horizon, _LAST_NAME))
        return [name for _, name in self._order[:end] if name not in self._broken]

    def _forget_reports(self, task_id: str) -> None:
        # A new occurrence (the task was replaced or deleted) is reported anew.
        self._reported = {key for key in self._reported if key[0] != task_id}

    # =====================================================================================
    # decoding
    # =====================================================================================
    def _decode(
        self, name: str, header: Header | None, payload: bytes, signature: Signature
    ) -> Task | None:
        """The task of a file's content, carrying its revision; ``None`` when it cannot be
        restored (then reported once and kept out of due queries)."""
        task_id = header.task_id if header is not None else name
        broken = self._broken.get(name)
        if broken is not None and broken[0] == signature:
            return None
        try:
            if header is None:
                raise TaskRestoreError(task_id, "unreadable file header")
            task = self.decode_task(task_id, payload)
            if task.id != task_id:
                raise TaskRestoreError(task_id, f"payload holds task {task.id!r}")
        except TaskRestoreError as exc:
            self._broken[name] = (signature, exc.reason)
            self.report_unrestorable(task_id, exc.reason)
            return None
        task.revision = header.rev
        return task

    def _load(self, name: str) -> Task | None:
        """Decode one task file; ``None`` when it is gone or unrestorable."""
        found = read_task(self._path(name))
        return None if found is None else self._decode(name, *found)

    # =====================================================================================
    # the contract
    # =====================================================================================
    async def lookup_task(self, task_id: str) -> Task | None:
        with self._thread_lock:
            return self._load(file_name(task_id))

    async def get_due_tasks(self, now: datetime, limit: int | None = None) -> list[Task]:
        with self._thread_lock:
            self._refresh()
            due: list[Task] = []
            for name in self._due_names(to_micros(now)):
                if limit is not None and len(due) >= limit:
                    break
                task = self._load(name)
                if task is not None:
                    due.append(task)
            return due

    async def get_next_run_time(self) -> datetime | None:
        """The earliest due time: the end of the lease of a claimed task, else the next run
        time."""
        with self._thread_lock:
            self._refresh()
            for due_us, name in self._order:
                if name not in self._broken:
                    return from_micros(due_us)
            return None

    async def get_all_tasks(self) -> list[Task]:
        with self._thread_lock:
            self._refresh()

            def key(name: str) -> tuple[bool, int, str]:
                entry = self._entries[name]
                when = entry.header.next_us if entry.header is not None else None
                return (when is None, when or 0, entry.task_id if when is None else name)

            tasks = [self._load(name) for name in sorted(self._entries, key=key)]
            return [task for task in tasks if task is not None]

    async def get_task_page(self, cursor: str | None, limit: int) -> TaskPage:
        """The whole store in one page, each file decoded once (a full check, as in
        :meth:`get_unrestorable`)."""
        with self._thread_lock:
            self._broken.clear()
        tasks = await self.get_all_tasks()
        with self._thread_lock:
            entries = self._entries
            broken = {entries[n].task_id: r for n, (_, r) in self._broken.items() if n in entries}
        return TaskPage(tasks, broken, None)

    async def get_unrestorable(self) -> dict[str, str]:
        """Decode every stored task (a full check) and return the ones that fail."""
        with self._thread_lock:
            self._refresh()
            result: dict[str, str] = {}
            for name, entry in list(self._entries.items()):
                reason = self._recheck(name)
                if reason is not None:
                    result[entry.task_id] = reason
            return result

    async def unrestorable_reason(self, task_id: str) -> str | None:
        """Decode that one file (``get_unrestorable`` decodes them all)."""
        name = file_name(task_id)
        with self._thread_lock:
            self._refresh()
            return self._recheck(name) if name in self._entries else None

    def _recheck(self, name: str) -> str | None:
        """Decode the file again (a fixed deployment restores it): why it fails, or None."""
        self._broken.pop(name, None)
        self._load(name)
        entry = self._broken.get(name)
        return None if entry is None else entry[1]

    async def add_task(self, task: Task) -> None:
        await self.add_tasks([task])

    async def add_tasks(self, tasks: Sequence[Task], replace_existing: bool = False) -> None:
        """All or nothing: a conflicting id (without ``replace_existing``) stores none. A new
        task gets revision 1, a replaced one the stored revision + 1."""
        encoded = [(file_name(t.id), self.encode_task(t), t) for t in tasks]
        with self._thread_lock, self._exclusive():
            revisions: list[int] = []
            for name, _, task in encoded:
                stored = read_entry(self._path(name), name)
                if stored is not None and not replace_existing:
                    raise ConflictingIdError(task.id, self.alias)
                revisions.append(next_revision(stored))
            for (name, payload, task), rev in zip(encoded, revisions, strict=True):
                self._write(name, self._header_for(task, rev), payload)
                task.revision = rev
                self._forget_reports(task.id)
            self._sync_directory()

    async def update_task(self, task: Task) -> None:
        """Compare-and-set when ``task.revision`` is not 0 (:class:`StaleTaskError` when the
        stored revision differs); ends any claim on the task."""
        name = file_name(task.id)
        payload = self.encode_task(task)
        with self._thread_lock, self._exclusive() as change:
            stored = read_entry(self._path(name), name)
            if stored is None:
                change.made = False
                raise TaskLookupError(task.id, self.alias)
            found = stored.header.rev if stored.header is not None else None
            if task.revision and found != task.revision:
                change.made = False
                raise StaleTaskError(task.id, self.alias, task.revision, found)
            rev = next_revision(stored)
            self._write(name, self._header_for(task, rev), payload)
            task.revision = rev
            self._sync_directory()
            self._forget_reports(task.id)

    async def update_tasks(self, tasks: Iterable[Task]) -> None:
        """Write tasks back unconditionally (no revision check; each revision moves)."""
        encoded = [(file_name(t.id), self.encode_task(t), t) for t in tasks]
        if not encoded:
            return
        with self._thread_lock, self._exclusive():
            for name, payload, task in encoded:
                stored = read_entry(self._path(name), name)
                if stored is None:
                    continue  # deleted while it was being processed
                task.revision = next_revision(stored)
                self._write(name, self._header_for(task, task.revision), payload)
            self._sync_directory()

    async def delete_task(self, task_id: str) -> None:
        name = file_name(task_id)
        with self._thread_lock, self._exclusive() as change:
            try:
                os.unlink(self._path(name))
            except FileNotFoundError:
                change.made = False
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

    # =====================================================================================
    # coordination
    # =====================================================================================
    async def acquire_due_tasks(
        self, node: str, now: datetime, lease: float, limit: int
    ) -> list[Task]:
        """Claim due tasks: under the exclusive lock, each header is re-read and rewritten
        with the claim (owner, lease end; the payload and revision stay). A pass that finds
        nothing due takes only the shared lock and writes nothing."""
        horizon = to_micros(now)
        until = horizon + round(lease * 1_000_000)
        with self._thread_lock:
            self._refresh()
            if not self._due_names(horizon):
                return []
            claimed: list[Task] = []
            with self._exclusive(refresh=True) as change:
                change.made = False
                for name in self._due_names(horizon):
                    if len(claimed) >= limit:
                        break
                    found = read_task(self._path(name))
                    if found is None:
                        self._index_drop(name)
                        continue
                    header, payload, signature = found
                    if header is None or header.due_us is None or header.due_us > horizon:
                        # The index missed a change (an equal signature): correct it.
                        task_id = header.task_id if header is not None else name
                        self._index_put(name, Entry(task_id, header, signature))
                        continue
                    task = self._decode(name, header, payload, signature)
                    if task is None:
                        continue
                    change.made = True
                    claim = header._replace(owner=node, lease_us=until)
                    self._write(name, claim, payload)
                    claimed.append(task)
                if change.made:
                    self._sync_directory()
            return claimed

    async def release_tasks(self, node: str, tasks: Sequence[Task]) -> list[Task]:
        """Fenced write-back: a task is written (or deleted when finished) only while its
        header still names ``node`` as the owner at the revision it was claimed at."""
        if not tasks:
            return []
        encoded = [
            (file_name(t.id), None if is_finished(t) else self.encode_task(t), t) for t in tasks
        ]
        written: list[Task] = []
        with self._thread_lock, self._exclusive() as change:
            change.made = False
            for name, payload, task in encoded:
                stored = read_entry(self._path(name), name)
                header = stored.header if stored is not None else None
                if header is None or header.owner != node or header.rev != task.revision:
                    continue
                change.made = True
                if payload is None:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(self._path(name))
                    self._index_drop(name)
                    self._forget_reports(task.id)
                else:
                    self._write(name, self._header_for(task, header.rev + 1), payload)
                    task.revision = header.rev + 1
                written.append(task)
            if change.made:
                self._sync_directory()
        return written

    def _reclaim(self, owner: str, lease_us: int | None) -> bool:
        """Set the lease end of every claim ``owner`` holds (``None``: end the claims), under
        the exclusive lock with a fresh index; ``True`` when a file was written."""
        made = False
        for name, entry in list(self._entries.items()):
            if entry.header is None or entry.header.owner != owner:
                continue
            found = read_task(self._path(name))
            header = found[0] if found is not None else None
            if found is None or header is None or header.owner != owner:
                continue
            if header.lease_us == lease_us:
                continue
            made = True
            if lease_us is None:
                self._write(name, header._replace(owner=None, lease_us=None), found[1])
            else:
                self._write(name, header._replace(lease_us=lease_us), found[1])
        if made:
            self._sync_directory()
        return made

    async def heartbeat(self, node: NodeInfo, extend_claims: bool = True) -> None:
        until = to_micros(node.last_heartbeat) + round(node.lease * 1_000_000)
        with self._thread_lock, self._exclusive(refresh=extend_claims) as change:
            write_node(self.nodes_dir, node, self.fsync)
            if extend_claims:
                change.made = self._reclaim(node.identity, until)
            for path, record in read_nodes(self.nodes_dir).values():
                if record.expired_for(node.last_heartbeat):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)

    async def remove_node(self, node: NodeInfo) -> None:
        with self._thread_lock, self._exclusive(refresh=True) as change:
            write_node(self.nodes_dir, node, self.fsync)
            change.made = self._reclaim(node.identity, None)

    async def get_nodes(self) -> list[NodeInfo]:
        with self._thread_lock:
            self._open()
            records = read_nodes(self.nodes_dir)
        return [records[identity][1] for identity in sorted(records)]

    def __repr__(self) -> str:
        return f"<FileStore alias={self.alias!r} directory={str(self.directory)!r}>"
