"""Pieces of the file store (:mod:`asyncz.stores.file`): file names, the header line of a task
file, atomic writes and the node records.

Data path: every task file starts with a one-line JSON header that the store reads without
decoding the task::

    {"id": "<task id>", "next": <µs since the epoch> | null, "rev": <revision>,
     "owner": "<node>", "lease": <µs since the epoch>}

``owner`` and ``lease`` are present only while a node holds the task (claimed by
``acquire_due_tasks``, until its write-back or the end of the lease). A header written before
the store was coordinated has no ``rev``: it counts as revision 1, unclaimed, and the next
write of the task gives it revision 2 (a task read from such a file carries revision 1, so
compare-and-set works on it at once).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

from asyncz.nodes import NodeInfo

__all__ = [
    "Change",
    "Entry",
    "Header",
    "Signature",
    "file_name",
    "from_micros",
    "next_revision",
    "read_entry",
    "read_nodes",
    "read_task",
    "remove_stale_temporaries",
    "scan",
    "sync_directory",
    "to_micros",
    "write_atomic",
    "write_node",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_SAFE_ID = re.compile(r"[a-z0-9_-]{1,64}")
#: The revision of a task whose header predates revisions (see the module documentation).
LEGACY_REVISION = 1

#: (inode, size, mtime_ns) of a file as it was read.
Signature = tuple[int, int, int]


def to_micros(when: datetime) -> int:
    """Exact microseconds since the Unix epoch (an aware datetime)."""
    return (when - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def file_name(task_id: str) -> str:
    """The file name of a task id: the id itself when it is made only of ``[a-z0-9_-]`` (at
    most 64 characters), else ``~`` and the SHA-256 of the id, so any id is a valid file name
    on any file system."""
    if _SAFE_ID.fullmatch(task_id):
        return task_id
    return "~" + hashlib.sha256(task_id.encode("utf-8", "surrogatepass")).hexdigest()


class Header(NamedTuple):
    """The header line of a task file."""

    task_id: str
    next_us: int | None  # None: paused
    rev: int
    owner: str | None = None  # the node holding the task, or None
    lease_us: int | None = None  # end of the owner's lease

    @property
    def due_us(self) -> int | None:
        """When the task is next due for a claim: the end of the lease while it is held (a
        lapsed claim is due at once), else its next run time (``None``: never)."""
        return self.lease_us if self.owner is not None else self.next_us

    def encode(self) -> bytes:
        data: dict[str, object] = {"id": self.task_id, "next": self.next_us, "rev": self.rev}
        if self.owner is not None:
            data["owner"] = self.owner
            data["lease"] = self.lease_us
        return json.dumps(data, separators=(",", ":")).encode() + b"\n"

    @classmethod
    def parse(cls, line: bytes) -> Header | None:
        """The header in ``line`` (which ends with a newline), ``None`` when it is unreadable."""
        if not line.endswith(b"\n"):
            return None
        try:
            data = json.loads(line)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        task_id = data.get("id")
        next_us = data.get("next")
        rev = data.get("rev", LEGACY_REVISION)
        owner = data.get("owner")
        lease_us = data.get("lease")
        if not isinstance(task_id, str) or type(rev) is not int or rev < 0:
            return None
        if next_us is not None and type(next_us) is not int:
            return None
        if owner is not None and (not isinstance(owner, str) or type(lease_us) is not int):
            return None
        return cls(task_id, next_us, rev, owner, lease_us if owner is not None else None)


@dataclass(frozen=True)
class Entry:
    """What the in-memory index knows about one task file."""

    task_id: str
    header: Header | None  # None: the header is unreadable (the file is kept and reported)
    signature: Signature  # of the file it was read from

    @property
    def due_us(self) -> int | None:
        return self.header.due_us if self.header is not None else None


def write_atomic(directory: Path, target: Path, data: bytes, fsync: bool) -> Signature:
    """Replace ``target`` with ``data`` atomically (a temporary file in ``directory``,
    ``fsync`` unless disabled, ``rename``); return the new file's signature."""
    temp = directory / f".tmp-{os.getpid()}-{uuid.uuid4().hex}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        # The file system's own mtime is only as fine as its clock tick (milliseconds): a file
        # rewritten within one tick, on a reused inode, at the same size, would look unchanged
        # to the other processes' indexes. A nanosecond stamp of our own tells them apart.
        stamp = time.time_ns()
        os.utime(fd, ns=(stamp, stamp))
        if fsync:
            os.fsync(fd)
        st = os.fstat(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    os.close(fd)
    try:
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def sync_directory(directory: Path) -> None:
    """Make the renames and deletions in ``directory`` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:  # some file systems cannot fsync a directory
        if exc.errno not in (errno.EINVAL, errno.EBADF):
            raise
    finally:
        os.close(fd)


# -- node records: nodes/<file name of the identity>.json ----------------------------------------
def write_node(directory: Path, node: NodeInfo, fsync: bool) -> None:
    data = json.dumps(node.to_dict(), separators=(",", ":")).encode()
    write_atomic(directory, directory / (file_name(node.identity) + ".json"), data, fsync)


def read_nodes(directory: Path) -> dict[str, tuple[Path, NodeInfo]]:
    """Every readable node record in ``directory``, by identity (unreadable ones are skipped:
    a record is rewritten at every heartbeat of its node)."""
    found: dict[str, tuple[Path, NodeInfo]] = {}
    with os.scandir(directory) as listing:
        for item in listing:
            if item.name.startswith(".") or not item.name.endswith(".json"):
                continue
            try:
                with open(item.path, "rb") as handle:
                    node = NodeInfo.from_dict(json.loads(handle.read()))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            found[node.identity] = (Path(item.path), node)
    return found


# -- task files -------------------------------------------------------------------------------
class Change:
    """Whether a change under the exclusive lock wrote anything (then the generation moves)."""

    __slots__ = ("made",)

    def __init__(self) -> None:
        self.made = True


def read_task(path: Path) -> tuple[Header | None, bytes, Signature] | None:
    """``(header, payload, signature)`` of a task file (``header`` None when unreadable, then
    ``payload`` is the whole content); ``None`` when it is gone."""
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            data = handle.read()
    except FileNotFoundError:
        return None
    line, sep, payload = data.partition(b"\n")
    header = Header.parse(line + sep)
    return (header, payload if header else data, (st.st_ino, st.st_size, st.st_mtime_ns))


def read_entry(path: Path, name: str) -> Entry | None:
    """The entry of a task file from its first line only; ``None`` when it is gone."""
    try:
        with open(path, "rb") as handle:
            st = os.fstat(handle.fileno())
            line = handle.readline(65536)
    except FileNotFoundError:
        return None
    header = Header.parse(line)
    return Entry(
        header.task_id if header else name, header, (st.st_ino, st.st_size, st.st_mtime_ns)
    )


def scan(directory: Path, known: dict[str, Entry]) -> dict[str, Entry]:
    """The entries of every task file in ``directory``, re-reading only the files whose
    signature is not the one in ``known``."""
    seen: dict[str, Entry] = {}
    with os.scandir(directory) as listing:
        for item in listing:
            name = item.name
            if name.startswith("."):
                continue
            try:
                st = item.stat()
            except FileNotFoundError:
                continue
            entry = known.get(name)
            if entry is None or entry.signature != (st.st_ino, st.st_size, st.st_mtime_ns):
                entry = read_entry(directory / name, name)
            if entry is not None:
                seen[name] = entry
    return seen


def next_revision(stored: Entry | None) -> int:
    """The revision of the next write of a task file (1 for a new one)."""
    if stored is None or stored.header is None:
        return 1
    return stored.header.rev + 1


def remove_stale_temporaries(directories: Iterable[Path], max_age: float) -> None:
    """Delete the ``.tmp-*`` files older than ``max_age`` seconds that a writer killed
    mid-write left in ``directories`` (those that exist)."""
    horizon = time.time() - max_age
    for directory in directories:
        if not directory.is_dir():
            continue
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.name.startswith(".tmp-"):
                    with contextlib.suppress(OSError):
                        if entry.stat().st_mtime < horizon:
                            os.unlink(entry.path)
