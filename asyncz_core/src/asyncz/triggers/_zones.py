"""Fast wall-clock arithmetic on time zones, and the DST rule of the wall-clock triggers.

Data path: each pass asks a wall-clock trigger (cron) for its next
run time; the zone arithmetic of that search is here.

Wall-clock times are handled as integer "wall seconds": seconds since 1970-01-01 00:00:00 *on
the local clock*. For each zone the timeline is cut into windows of constant UTC offset (found
once by probing the zone and cached), so that in the common case converting between an
instant and its wall time is one addition. Only near a transition does a trigger fall back to
:func:`resolve_wall`, which applies the documented DST rule:

* a wall time that does not exist (a spring-forward gap) resolves to the first instant after
  the gap (the transition itself);
* a wall time that exists twice (a fall-back overlap) resolves to its first occurrence.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from datetime import datetime, timedelta, timezone, tzinfo
from operator import itemgetter
from typing import NamedTuple

__all__ = ["Window", "ZoneClock", "clock_for", "resolve_wall", "wall_of"]

EPOCH_ORDINAL = datetime(1970, 1, 1).toordinal()
_EPOCH_NAIVE = datetime(1970, 1, 1)
_DAY = 86_400
# Timestamps that every platform can turn into a datetime in any zone.
MIN_TS = int((datetime(1, 1, 3) - _EPOCH_NAIVE).total_seconds())
MAX_TS = int((datetime(9999, 12, 29) - _EPOCH_NAIVE).total_seconds())
_PROBE_SPAN = 200 * _DAY  # how far a window is explored around the asked instant
_ARTIFICIAL_MARGIN = 2 * _DAY  # unknown transition just beyond an artificial bound


class Window(NamedTuple):
    """Instants ``lo <= ts < hi`` all have the UTC offset ``offset`` (seconds).

    Every wall time ``w`` with ``safe_lo <= w < hi_wall`` exists exactly once in the zone, or
    first occurs inside this window, so it maps to the instant ``w - offset``. ``first_wall``
    is the first wall time whose first occurrence lies in this window.
    """

    lo: int
    hi: int
    offset: int
    safe_lo: int
    hi_wall: int
    first_wall: int


def _offset(zone: tzinfo, ts: int) -> int:
    delta = datetime.fromtimestamp(ts, zone).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


def wall_of(zone: tzinfo, ts: int) -> int:
    """The wall second of the instant ``ts`` (an integer POSIX timestamp) in ``zone``."""
    local = datetime.fromtimestamp(ts, zone)
    return (
        (local.toordinal() - EPOCH_ORDINAL) * _DAY
        + local.hour * 3600
        + local.minute * 60
        + local.second
    )


class ZoneClock:
    """The cached offset windows of one zone."""

    __slots__ = ("_lock", "_windows", "fixed", "zone")

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._windows: list[Window] = []
        self._lock = threading.Lock()
        self.fixed: Window | None = None
        if isinstance(zone, timezone):
            offset = int(zone.utcoffset(None).total_seconds())
            self.fixed = Window(MIN_TS, MAX_TS, offset, MIN_TS + offset, MAX_TS + offset, MIN_TS)

    def window(self, ts: int) -> Window:
        """The window holding the instant ``ts``."""
        if self.fixed is not None:
            return self.fixed
        windows = self._windows
        index = bisect_right(windows, ts, key=itemgetter(0)) - 1
        if index >= 0 and ts < windows[index].hi:
            return windows[index]
        found = self._probe(ts)
        with self._lock:
            if len(windows) > 1024:
                windows.clear()
            position = bisect_right(windows, found.lo, key=itemgetter(0))
            if not (position > 0 and windows[position - 1].lo == found.lo):
                windows.insert(position, found)
        return found

    def _transition(self, before: int, after: int, offset: int) -> int:
        """The first instant in ``(before, after]`` whose offset is not ``offset``."""
        zone = self.zone
        while after - before > 1:
            middle = (before + after) // 2
            if _offset(zone, middle) == offset:
                before = middle
            else:
                after = middle
        return after

    def _probe(self, ts: int) -> Window:
        zone = self.zone
        ts = min(max(ts, MIN_TS), MAX_TS - 1)
        offset = _offset(zone, ts)
        # Walk forward a day at a time: no real zone has two transitions within a day.
        hi, hi_real, t = MAX_TS, False, ts
        limit = min(ts + _PROBE_SPAN, MAX_TS)
        while t < limit:
            step = min(t + _DAY, limit)
            if _offset(zone, step) != offset:
                hi, hi_real = self._transition(t, step, offset), True
                break
            t = step
        else:
            hi = limit
        lo, lo_real, t = MIN_TS, False, ts
        limit = max(ts - _PROBE_SPAN, MIN_TS)
        previous_offset = offset
        while t > limit:
            step = max(t - _DAY, limit)
            step_offset = _offset(zone, step)
            if step_offset != offset:
                lo, lo_real = self._transition(step, t, step_offset), True
                previous_offset = step_offset
                break
            t = step
        else:
            lo = limit
        if lo_real:
            first_wall = lo + offset + max(0, previous_offset - offset)
            safe_lo = first_wall + 1
        else:
            first_wall = lo + offset
            safe_lo = first_wall + _ARTIFICIAL_MARGIN
        hi_wall = hi + offset if hi_real else hi + offset - _ARTIFICIAL_MARGIN
        return Window(lo, hi, offset, safe_lo, hi_wall, first_wall)


_clocks: dict[tzinfo, ZoneClock] = {}
_clocks_lock = threading.Lock()


def clock_for(zone: tzinfo) -> ZoneClock:
    """The shared :class:`ZoneClock` of ``zone``."""
    try:
        return _clocks[zone]
    except (KeyError, TypeError):
        pass
    clock = ZoneClock(zone)
    try:
        with _clocks_lock:
            if len(_clocks) > 256:
                _clocks.clear()
            return _clocks.setdefault(zone, clock)
    except TypeError:  # an unhashable tzinfo: no sharing
        return clock


def wall_to_naive(wall: int) -> datetime:
    return _EPOCH_NAIVE + timedelta(seconds=wall)


def resolve_wall(zone: tzinfo, wall: int) -> int:
    """The instant (POSIX seconds) at which the wall time ``wall`` fires, by the DST rule."""
    naive = wall_to_naive(wall)
    first = int(naive.replace(tzinfo=zone, fold=0).timestamp())
    if wall_of(zone, first) == wall:
        second = int(naive.replace(tzinfo=zone, fold=1).timestamp())
        # fold=0 is the first occurrence for PEP 495 zones; be safe with others.
        if second < first and wall_of(zone, second) == wall:
            return second
        return first
    # In a gap: the transition lies between the two readings of the wall time.
    other = int(naive.replace(tzinfo=zone, fold=1).timestamp())
    before, after = min(first, other), max(first, other)
    if wall_of(zone, before) > wall:  # not a gap after all (odd tzinfo); keep fold=0
        return first
    while after - before > 1:
        middle = (before + after) // 2
        if wall_of(zone, middle) > wall:
            after = middle
        else:
            before = middle
    return after
