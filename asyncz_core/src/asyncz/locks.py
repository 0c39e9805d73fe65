"""Inter-process file locks: how schedulers in several processes share one store.

With ``lock_path`` set, a scheduler holds the lock of a shared (persistent) store while it
fetches that store's due tasks, submits them and writes their next run times back, so two
processes on one host never process the same due run. The lock is an advisory ``flock``
(POSIX) on a lock file, tried without blocking: a process that does not get it skips the
store for this pass and retries shortly after.

A lock file can be removed safely at any time, because :meth:`FileLock.acquire` only
counts a lock as held when the locked file is still the one at ``path`` (same device and
inode); a process that locked a file which was unlinked meanwhile drops it and locks the
new one. :meth:`FileLock.close` therefore removes the file only while holding its lock,
never while another process holds it.

Supported on POSIX (``fcntl.flock``) and Windows (``msvcrt.locking`` on the first byte).
Local file systems only: ``flock`` is not reliable on every network file system.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["FileLock", "FileLockProtected", "LockTimeout", "format_lock_path"]

#: Placeholders a ``lock_path`` may use.
PLACEHOLDERS = ("store", "ppid", "pgrp")

_BUSY = {errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK}


class LockTimeout(TimeoutError):
    """A blocking :meth:`FileLock.acquire` did not get the lock within its timeout."""

    def __init__(self, path: str | os.PathLike[str], timeout: float) -> None:
        self.path = str(path)
        self.timeout = timeout
        super().__init__(f"Could not lock {self.path!r} within {timeout:g} s")


def _process_group() -> int:
    getpgrp = getattr(os, "getpgrp", None)
    return int(getpgrp()) if getpgrp is not None else os.getppid()


def format_lock_path(template: str, store: str) -> str:
    """Fill a ``lock_path`` template: ``{store}`` (the store alias), ``{ppid}`` (the parent
    process id: the same for all workers of one gunicorn/uvicorn master) and ``{pgrp}`` (the
    process group id; the parent id where process groups do not exist).

    Raises :class:`ValueError` naming the placeholder when the template uses another one.
    """
    values = {"store": store, "ppid": os.getppid(), "pgrp": _process_group()}
    try:
        return template.format_map(values)
    except KeyError as exc:
        raise ValueError(
            f"lock_path {template!r} uses the unknown placeholder {{{exc.args[0]}}}; "
            f"available: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}"
        ) from None
    except (ValueError, IndexError) as exc:
        raise ValueError(f"lock_path {template!r} is not a valid template: {exc}") from None


if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
    import msvcrt

    def _try_lock(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_lock(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in _BUSY:
                return False
            raise
        return True

    def _unlock(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)


class FileLock:
    """An exclusive, non-reentrant inter-process lock on the file ``path``.

    ``flock`` locks belong to an open file, so two :class:`FileLock` objects on one path
    exclude each other even inside one process. The file is created (with its parent
    directories) on first use and keeps the holder's pid as information for operators.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._held = False
        self._guard = threading.Lock()

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._held

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        return self._fd

    def prepare(self) -> None:
        """Create the lock file (and its directories) now, without locking it, so that a path
        that cannot be used fails early. Raises :class:`OSError`."""
        with self._guard:
            self._open()

    def _drop_fd(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _is_current(self, fd: int) -> bool:
        """Whether ``fd`` is still the file at ``path`` (it may have been replaced)."""
        try:
            on_disk = os.stat(self.path)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)

    def try_acquire(self) -> bool:
        """Take the lock if it is free; ``False`` at once when another holder has it."""
        with self._guard:
            if self._held:
                raise RuntimeError(f"{self!r} is already held (the lock is not reentrant)")
            for _ in range(10):
                fd = self._open()
                if not _try_lock(fd):
                    return False
                if self._is_current(fd):
                    self._held = True
                    self._write_pid(fd)
                    return True
                # We locked a file that was removed or replaced meanwhile: use the new one.
                _unlock(fd)
                self._drop_fd()
            return False  # pragma: no cover - the file keeps being replaced under us

    def acquire(self, timeout: float | None = None, interval: float = 0.01) -> None:
        """Wait (blocking this thread) for the lock; :class:`LockTimeout` after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.try_acquire():
            if deadline is not None and time.monotonic() >= deadline:
                raise LockTimeout(self.path, timeout or 0.0)
            time.sleep(interval)

    def release(self) -> None:
        """Give the lock up (the file stays open for the next acquire)."""
        with self._guard:
            if not self._held:
                return
            self._held = False
            if self._fd is not None:
                _unlock(self._fd)

    @contextlib.contextmanager
    def hold(self, timeout: float | None = None) -> Iterator[None]:
        """``with lock.hold(timeout):`` acquire, then release on exit."""
        self.acquire(timeout)
        try:
            yield
        finally:
            self.release()

    def close(self, remove: bool = True) -> bool:
        """Release and close. With ``remove``, delete the file, but only if no other process
        holds the lock at this moment (it is unlinked while this object holds it). Returns
        whether the file was removed."""
        removed = False
        if remove and (self._held or self.try_acquire()):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)
                removed = True
        self.release()
        with self._guard:
            self._drop_fd()
        return removed

    def _write_pid(self, fd: int) -> None:
        with contextlib.suppress(OSError):
            data = f"{os.getpid()}\n".encode()
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, data)

    def __repr__(self) -> str:
        return f"<FileLock {str(self.path)!r} held={self._held}>"

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._drop_fd()


class FileLockProtected:
    """Asyncz's inter-process guard, on :class:`FileLock`: ``with guard.protected() as
    got_it:`` runs the block in every process, ``got_it`` telling whether this one holds
    the lock.

    ``file_path`` may use the ``{ppid}`` and ``{pgrp}`` placeholders (and ``{store}``, left
    empty here). Every :meth:`protected` block is a holder of its own, so a nested block on
    the same path does not get the lock either.
    """

    def __init__(self, file_path: str | os.PathLike[str]) -> None:
        self.file_path = format_lock_path(os.fspath(file_path), "")

    @contextlib.contextmanager
    def protected(self, blocking: bool = False, timeout: float | None = None) -> Iterator[bool]:
        """Try the lock (``blocking``: wait for it, up to ``timeout`` seconds) and yield
        whether it was taken; it is released when the block ends."""
        lock = FileLock(self.file_path)
        if blocking:
            try:
                lock.acquire(timeout)
                locked = True
            except LockTimeout:
                locked = False
        else:
            locked = lock.try_acquire()
        try:
            yield locked
        finally:
            lock.close(remove=False)

    def shutdown(self) -> None:
        """Remove the lock file (unless another process holds the lock right now)."""
        FileLock(self.file_path).close(remove=True)
