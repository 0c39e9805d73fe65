"""Small helpers shared by the built-in triggers (state encoding, zones, bounds).

Data path: triggers are stored with their task (state encoding here) and asked for
run times in each pass (zone and bound helpers here).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from asyncz.timeutil import localize, plain_zone, to_datetime, to_timezone
from asyncz.triggers.base import zone_from_state, zone_to_state

__all__ = [
    "STATE_VERSION",
    "check_version",
    "derive_zone",
    "dt_from_state",
    "dt_to_state",
    "in_zone",
    "normalize_zone",
    "zone_from_state",
    "zone_to_state",
]

STATE_VERSION = 1


def normalize_zone(value: tzinfo | str | None) -> tzinfo | None:
    """A zone the wall-clock arithmetic can trust: zoneinfo, a fixed offset, or ``None``.

    pytz-style zones (which misbehave with ``datetime.replace``) are swapped for the zoneinfo
    zone of the same name.
    """
    if value is None:
        return None
    zone = to_timezone(value)
    if hasattr(zone, "localize") and not isinstance(zone, (ZoneInfo, timezone)):
        name = getattr(zone, "zone", None)
        if isinstance(name, str):
            return to_timezone(name)
    return zone


def derive_zone(zone: tzinfo | str | None, *bounds: Any) -> tzinfo | None:
    """The trigger's own zone: the one given, else that of an aware zoneinfo bound."""
    normalized = normalize_zone(zone)
    if normalized is not None:
        return normalized
    for bound in bounds:
        if isinstance(bound, datetime) and bound.tzinfo is not None:
            bound_zone = plain_zone(bound.tzinfo)  # a pytz zone counts by its name
            if isinstance(bound_zone, ZoneInfo):
                return bound_zone
    return None


class _Floating(tzinfo):
    """Marks a wall time that has no zone yet, while ``to_datetime`` parses it."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "floating"


_FLOATING = _Floating()


def to_bound(value: Any, zone: tzinfo | None, name: str) -> datetime | None:
    """A datetime bound: aware, in ``zone``; a naive one is wall time in ``zone``.

    Without a zone a naive value stays naive: it is wall time in the zone the trigger is
    asked about (the ``timezone`` argument of ``get_next_trigger_time``, which is the
    scheduler's), resolved by :func:`in_zone` on every use.
    """
    result = to_datetime(value, zone or _FLOATING, name)
    if result is None:
        return None
    if result.tzinfo is _FLOATING:
        return result.replace(tzinfo=None)
    if zone is not None:
        result = result.astimezone(zone)
    return result


def in_zone(value: datetime, zone: tzinfo) -> datetime:
    """``value`` if aware; a naive (floating) bound read as wall time in ``zone``."""
    return value if value.tzinfo is not None else localize(value, zone)


def dt_to_state(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def dt_from_state(value: Any, zone: tzinfo | None, name: str) -> datetime | None:
    return to_bound(value, zone, name)


def check_version(owner: str, state: dict[str, Any]) -> None:
    version = state.get("version", STATE_VERSION)
    if not isinstance(version, int) or version > STATE_VERSION:
        raise ValueError(
            f"{owner}: state version {version!r} is newer than this asyncz understands "
            f"({STATE_VERSION}); upgrade asyncz"
        )
