"""Triggers that combine others: ``and`` (all agree) and ``or`` (any fires).

Data path: each pass asks the combined trigger, which asks each of its triggers for
the next run time and combines the answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, ClassVar

from asyncz.triggers._common import STATE_VERSION, check_version
from asyncz.triggers._data import trigger_from_data, trigger_to_data
from asyncz.triggers.base import BaseTrigger, check_options, validate_jitter

__all__ = ["AndTrigger", "BaseCombiningTrigger", "OrTrigger"]

logger = logging.getLogger("asyncz.triggers")
_TICK = timedelta(microseconds=1)
_UTC = timezone.utc


class BaseCombiningTrigger(BaseTrigger):
    """Shared parts of :class:`AndTrigger` and :class:`OrTrigger`.

    Children are asked for their first fire *at or after* an instant (``previous_time=None,
    now=instant``), so any trigger can be combined, a :class:`DateTrigger` included.
    """

    _OPTIONS: ClassVar[tuple[str, ...]] = ("triggers", "jitter")

    __slots__ = ("jitter", "triggers")

    def __init__(
        self, triggers: Sequence[BaseTrigger], jitter: float | None = None, **unknown: Any
    ) -> None:
        check_options(type(self).__name__, unknown, self._OPTIONS)
        self._setup(triggers, jitter)

    def _setup(self, triggers: Iterable[BaseTrigger], jitter: Any) -> None:
        children = list(triggers)
        if not children:
            raise ValueError(f"{type(self).__name__} needs at least one trigger")
        for child in children:
            if not isinstance(child, BaseTrigger):
                raise TypeError(f"{type(self).__name__}: {child!r} is not a trigger")
        self.triggers = children
        self.jitter = validate_jitter(jitter)

    def _at_or_after(self, timezone: tzinfo, instant: datetime) -> datetime | None:
        raise NotImplementedError

    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        if previous_time is not None:
            start = previous_time + _TICK
        else:
            start = now if now is not None else datetime.now(timezone)
        fire = self._at_or_after(timezone, start)
        if fire is None or not self.jitter:
            return fire
        following = self._at_or_after(timezone, fire + _TICK)
        return self.apply_jitter(fire, self.jitter, self.jitter_limit(following, None))

    def __getstate__(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "triggers": [trigger_to_data(child) for child in self.triggers],
            "jitter": self.jitter,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        check_version(type(self).__name__, state)
        self._setup((trigger_from_data(data) for data in state["triggers"]), state.get("jitter"))

    def __str__(self) -> str:
        inner = ", ".join(str(child) for child in self.triggers)
        return f"{self.alias}[{inner}]"

    def __repr__(self) -> str:
        jitter = f", jitter={self.jitter}" if self.jitter else ""
        inner = ", ".join(repr(child) for child in self.triggers)
        return f"<{type(self).__name__} ([{inner}]{jitter})>"


class AndTrigger(BaseCombiningTrigger):
    """Fires at the earliest time on which every child trigger agrees.

    The search is bounded: after ``max_rounds`` (10,000) rounds without agreement it gives
    up and returns ``None`` (logged as a warning), so children that never coincide cannot
    hang the scheduler.
    """

    alias: ClassVar[str] = "and"
    max_rounds: ClassVar[int] = 10_000

    __slots__ = ()

    def _at_or_after(self, timezone: tzinfo, instant: datetime) -> datetime | None:
        # Compare in UTC: datetimes sharing a tzinfo compare by wall time, ignoring fold.
        target = instant.astimezone(_UTC)
        for _ in range(self.max_rounds):
            times = []
            for child in self.triggers:
                fire = child.get_next_trigger_time(timezone, None, target)
                if fire is None or fire.astimezone(_UTC) < target:
                    return None  # a child is exhausted: they can never all agree again
                times.append(fire)
            instants = [fire.astimezone(_UTC) for fire in times]
            latest = max(instants)
            if min(instants) == latest:
                return times[0]
            target = latest
        logger.warning(
            "%s found no time all its triggers agree on within %d rounds; giving up",
            self,
            self.max_rounds,
        )
        return None


class OrTrigger(BaseCombiningTrigger):
    """Fires whenever any child trigger fires (the earliest of their next times)."""

    alias: ClassVar[str] = "or"

    __slots__ = ()

    def _at_or_after(self, timezone: tzinfo, instant: datetime) -> datetime | None:
        best: datetime | None = None
        best_utc: datetime | None = None
        start = instant.astimezone(_UTC)
        for child in self.triggers:
            fire = child.get_next_trigger_time(timezone, None, instant)
            if fire is None:
                continue
            fire_utc = fire.astimezone(_UTC)
            if fire_utc >= start and (best_utc is None or fire_utc < best_utc):
                best, best_utc = fire, fire_utc
        return best
