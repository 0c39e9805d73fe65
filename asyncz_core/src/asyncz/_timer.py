"""A one-shot timer on an event loop that is good to a few microseconds, at no CPU cost.

asyncio's own timers sleep in the selector's poll, whose timeout Linux's ``epoll_wait`` takes
in whole milliseconds (asyncio rounds it up): a ``call_later`` fires 0-1 ms late. A Linux
``timerfd`` watched with ``loop.add_reader`` wakes the same poll at the instant the kernel's
high-resolution timer expires (within the thread's timer slack, 50 µs by default): no thread,
no busy waiting, one ``timerfd_settime`` per arm and one ``read`` per expiry.

:func:`precise_timer` returns ``None`` where this is not available (not Linux, a loop without
``add_reader`` such as the Windows proactor, no file descriptor left); the caller then uses the
loop's own timer. ``os.timerfd_*`` (Python 3.13) is used when present, ``libc`` through
``ctypes`` otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["PreciseTimer", "precise_timer"]

_CLOCK_MONOTONIC = 1
_TFD_NONBLOCK = 0o4000
_TFD_CLOEXEC = 0o2000000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


class _Timerfd:
    """``timerfd_create`` / ``timerfd_settime``: from ``os`` (3.13+) or from libc."""

    def __init__(self) -> None:
        create: Any = getattr(os, "timerfd_create", None)
        self._settime_ns: Any = getattr(os, "timerfd_settime_ns", None)
        if create is not None and self._settime_ns is not None:
            flags = getattr(os, "TFD_NONBLOCK", _TFD_NONBLOCK) | getattr(
                os, "TFD_CLOEXEC", _TFD_CLOEXEC
            )
            self.fd: int = create(_CLOCK_MONOTONIC, flags=flags)
            self._libc: Any = None
            return
        self._settime_ns = None
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        fd = libc.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
        self.fd = fd
        settime = libc.timerfd_settime
        settime.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
        settime.restype = ctypes.c_int
        self._libc = settime
        self._spec = _Itimerspec()
        self._spec_ref = ctypes.addressof(self._spec)

    def set(self, ns: int) -> None:
        """Expire once in ``ns`` nanoseconds; 0 disarms."""
        if self._settime_ns is not None:
            self._settime_ns(self.fd, initial=ns)
            return
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = divmod(ns, 1_000_000_000)
        if self._libc(self.fd, 0, self._spec_ref, None) < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))


class PreciseTimer:
    """One pending expiry at a time on ``loop``: :meth:`arm` replaces the previous one."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._timerfd = _Timerfd()
        self._callback: Callable[[Any], None] | None = None
        self._arg: Any = None
        try:
            loop.add_reader(self._timerfd.fd, self._expired)
        except BaseException:
            os.close(self._timerfd.fd)
            raise

    def arm(self, seconds: float, callback: Callable[[Any], None], arg: Any) -> None:
        """Call ``callback(arg)`` on the loop ``seconds`` from now (never earlier)."""
        self._callback = callback
        self._arg = arg
        # At least 1 ns: an expiry of 0 would disarm the timer instead.
        self._timerfd.set(max(1, int(seconds * 1e9) + 1))

    def cancel(self) -> None:
        """Forget the pending expiry, if any (its callback will not be called)."""
        if self._callback is None:
            return
        self._callback = self._arg = None
        self._timerfd.set(0)
        self._drain()

    def close(self) -> None:
        self._callback = self._arg = None
        with contextlib.suppress(Exception):  # a closed loop: the descriptor goes anyway
            self._loop.remove_reader(self._timerfd.fd)
        os.close(self._timerfd.fd)

    def _drain(self) -> bool:
        try:
            os.read(self._timerfd.fd, 8)
        except (BlockingIOError, InterruptedError):
            return False
        return True

    def _expired(self) -> None:
        if not self._drain():
            return
        callback, self._callback = self._callback, None
        if callback is not None:
            arg, self._arg = self._arg, None
            callback(arg)


def precise_timer(loop: asyncio.AbstractEventLoop) -> PreciseTimer | None:
    """A :class:`PreciseTimer` on ``loop``, or ``None`` where there is none to be had."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return PreciseTimer(loop)
    except (OSError, AttributeError, NotImplementedError, RuntimeError, ValueError):
        return None


def resolve(future: asyncio.Future[Any]) -> None:
    """A timer's callback: end a sleep (resolve its future with ``None``) unless it ended."""
    if not future.done():
        future.set_result(None)


#: What :func:`time_is_up` resolves a sleep with (the spin's last stretch begins).
TIME_IS_UP = object()


def time_is_up(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(TIME_IS_UP)
