"""The public base class of every trigger, built-in or third-party.

Data path: ``add_task`` binds a trigger to its task; each pass asks it for the next run
time (``get_next_trigger_time``) until it returns ``None``; stores persist its state.
"""

from __future__ import annotations

import abc
import random
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any, ClassVar

from asyncz.abc import Trigger
from asyncz.exceptions import AsynczError, closest
from asyncz.timeutil import timezone_name, to_timezone

__all__ = [
    "BaseTrigger",
    "UnknownOptionError",
    "check_options",
    "zone_from_state",
    "zone_to_state",
]

_ONE_MICROSECOND = timedelta(microseconds=1)
_UTC = timezone.utc


class UnknownOptionError(AsynczError, TypeError):
    """A trigger was given a keyword argument it does not know.

    The message names the key and, when one is close, the valid option it was probably meant
    to be (``secnds`` -> ``seconds``).
    """

    def __init__(self, owner: str, key: str, valid: Iterable[str]) -> None:
        self.owner = owner
        self.key = key
        self.valid = sorted(valid)
        self.suggestion = closest(key, self.valid)
        hint = f"; did you mean {self.suggestion!r}?" if self.suggestion else ""
        super().__init__(
            f"{owner} got an unknown option {key!r}{hint} (valid options: {', '.join(self.valid)})"
        )

    def __str__(self) -> str:
        return str(self.args[0])


def check_options(owner: str, unknown: Mapping[str, Any], valid: Iterable[str]) -> None:
    """Raise :class:`UnknownOptionError` for the first key of ``unknown``, if any."""
    for key in unknown:
        raise UnknownOptionError(owner, key, valid)


class BaseTrigger(Trigger):
    """Decides when a task runs next (the interface: :class:`asyncz.abc.Trigger`).

    Subclasses implement :meth:`get_next_trigger_time`; that and an ``__init__`` are all a
    trigger needs. Its state (what a persistent store keeps) is by default its public
    attributes (those not starting with ``_``, in ``__dict__`` or ``__slots__``); with the
    JSON serializer their values may be JSON types, datetimes, dates, timedeltas, zones
    (``tzinfo``), tuples, sets, ... (see :mod:`asyncz.serializers.json`). A trigger whose state
    is something else overrides :meth:`__getstate__` / :meth:`__setstate__` (the built-ins
    do, to keep a versioned, plain-JSON state). Publish a subclass through the
    ``asyncz.triggers`` entry-point group; the entry-point name is its alias.

    Two triggers are equal when they are of the same class and have equal state. ``str()``
    gives a short description (``cron[hour='9']``); subclasses override :meth:`__str__`.
    """

    __slots__ = ()

    #: The alias this trigger is registered under (``"cron"``); set by each subclass.
    alias: ClassVar[str | None] = None

    @abc.abstractmethod
    def get_next_trigger_time(
        self, timezone: tzinfo, previous_time: datetime | None, now: datetime | None = None
    ) -> datetime | None:
        """Return the next fire time strictly after ``previous_time``, or ``None`` when done.

        ``timezone`` is the scheduler's zone, used when the trigger has none of its own.
        ``previous_time`` is the previous fire time (``None`` before the first fire) and
        ``now`` the current time (aware datetimes). The result is an aware datetime.
        """

    def __getstate__(self) -> dict[str, Any]:
        """The trigger's state: by default a dict of its public attributes.

        Attributes whose name starts with ``_`` (caches, compiled forms) are left out; a
        trigger that needs them after a restore recomputes them in :meth:`__setstate__`.
        """
        return {name: getattr(self, name) for name in _public_attributes(self)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore the state produced by :meth:`__getstate__` (by default: set each key).

        The object was created with ``cls.__new__(cls)``: ``__init__`` is not called.
        """
        for name, value in state.items():
            object.__setattr__(self, name, value)

    # -- conveniences shared by the built-ins (and usable by third parties) ------------------
    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        assert isinstance(other, BaseTrigger)
        return self.__getstate__() == other.__getstate__()

    __hash__ = None  # type: ignore[assignment]  # triggers are compared by value, not hashed

    def __str__(self) -> str:
        return f"{self.alias or type(self).__name__}[]"

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self}>"

    @staticmethod
    def apply_jitter(
        fire_time: datetime,
        jitter: float | None,
        limit: datetime | None = None,
    ) -> datetime:
        """Delay ``fire_time`` by a uniformly random amount in ``[0, jitter]`` seconds.

        ``limit`` is the latest acceptable instant: pass the trigger's ``end_at`` and/or its
        next grid slot (the delay then stays strictly before that slot, so that asking the
        trigger for the next time after the jittered one lands on the next slot: jitter never
        accumulates). Without jitter ``fire_time`` is returned unchanged.
        """
        if not jitter:
            return fire_time
        # Work in UTC: aware datetimes sharing a tzinfo compare by wall time, ignoring fold.
        base = fire_time.astimezone(_UTC)
        delayed = base + timedelta(seconds=random.uniform(0, jitter))
        if limit is not None:
            bound = limit.astimezone(_UTC)
            if delayed > bound:
                delayed = max(base, bound)
        return delayed.astimezone(fire_time.tzinfo)

    @staticmethod
    def jitter_limit(next_slot: datetime | None, end_at: datetime | None) -> datetime | None:
        """The latest instant a jittered fire may take: before ``next_slot``, by ``end_at``."""
        limit = next_slot.astimezone(_UTC) - _ONE_MICROSECOND if next_slot is not None else None
        if end_at is not None and (limit is None or end_at.astimezone(_UTC) < limit):
            limit = end_at.astimezone(_UTC)
        return limit


def _slot_names(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        if isinstance(slots, str):
            slots = (slots,)
        names.extend(name for name in slots if name not in names)
    return tuple(names)


def _public_attributes(trigger: BaseTrigger) -> list[str]:
    """Names of the trigger's public instance attributes that are set, in a stable order."""
    names = [
        name
        for name in _slot_names(type(trigger))
        if not name.startswith("_") and name != "__dict__" and hasattr(trigger, name)
    ]
    names.extend(
        name
        for name in getattr(trigger, "__dict__", {})
        if not name.startswith("_") and name not in names
    )
    return names


def zone_to_state(zone: tzinfo | None) -> str | None:
    """A zone as text for a trigger's state: its IANA name (``"Europe/Paris"``), ``"UTC"``,
    or a fixed offset (``"UTC+02:00"``); ``None`` stays ``None``.

    :func:`zone_from_state` turns it back into an equivalent zone. A zone without a name
    raises ``ValueError``.
    """
    return timezone_name(zone) if zone is not None else None


def zone_from_state(value: str | None) -> tzinfo | None:
    """The zone written by :func:`zone_to_state` (``None`` stays ``None``)."""
    return to_timezone(value) if value is not None else None


def validate_jitter(jitter: Any) -> float | None:
    """Check a ``jitter`` option: ``None`` or a non-negative number of seconds."""
    if jitter is None:
        return None
    if isinstance(jitter, bool) or not isinstance(jitter, (int, float)):
        raise TypeError(f"jitter: expected a number of seconds or None, not {jitter!r}")
    if jitter < 0 or jitter != jitter:
        raise ValueError(f"jitter: must be a non-negative number of seconds, not {jitter!r}")
    return int(jitter) if float(jitter).is_integer() else float(jitter)
