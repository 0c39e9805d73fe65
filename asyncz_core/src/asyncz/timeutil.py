"""Time zone and datetime helpers shared by triggers, tasks, settings and stores."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "datetime_repr",
    "from_timestamp",
    "local_timezone",
    "plain_datetime",
    "plain_zone",
    "timestamp",
    "timezone_name",
    "to_datetime",
    "to_timezone",
    "utc",
]

utc = timezone.utc


@lru_cache(maxsize=1)
def local_timezone() -> tzinfo:
    """The machine's local zone (via tzlocal), as a zoneinfo object when it has a name."""
    from tzlocal import get_localzone

    zone: tzinfo = get_localzone()
    return zone


# "+02:00", "-0530", "+2": a bare ISO-8601 style offset, east of UTC when positive.
_OFFSET = re.compile(r"^([+-])(\d{1,2})(?::?(\d{2}))?$")
# "UTC+02:00", "GMT-05:30": a label and an offset written with minutes.
_LABELLED_OFFSET = re.compile(r"^(?:UTC|GMT)([+-])(\d{1,2}):(\d{2})$", re.IGNORECASE)
# "GMT+2", "UTC-5", "GMT+0530": POSIX and IANA ("Etc/GMT+2" = UTC-02:00) read the sign the
# other way round from most people, so these are refused rather than guessed.
_AMBIGUOUS_OFFSET = re.compile(r"^(UTC|GMT)([+-])(\d{1,4})$", re.IGNORECASE)


def _fixed(name: str, sign: str, hours: str, minutes: str | None) -> tzinfo:
    delta = timedelta(hours=int(hours), minutes=int(minutes or 0))
    if delta >= timedelta(hours=24) or int(minutes or 0) >= 60:
        raise ValueError(f"time zone offset {name!r} is out of range")
    return timezone(-delta if sign == "-" else delta) if delta else utc


def _ambiguous_offset(name: str, sign: str, digits: str) -> tzinfo:
    """``GMT+2`` and the like: UTC for a zero offset, else a ``ValueError`` with the fix."""
    hours, minutes = (digits[:-2], digits[-2:]) if len(digits) > 2 else (digits, "00")
    opposite = "-" if sign == "+" else "+"
    meant = _fixed(name, sign, hours, minutes)  # checks the range too
    if meant is utc:
        return utc
    east, west = f"{sign}{int(hours):02d}:{minutes}", f"{opposite}{int(hours):02d}:{minutes}"
    whole_hours = minutes == "00"
    etc = f" (or 'Etc/GMT{opposite}{int(hours)}')" if whole_hours else ""
    iana = f" and IANA's 'Etc/GMT{sign}{int(hours)}'" if whole_hours else ""
    raise ValueError(
        f"time zone {name!r} is ambiguous: POSIX time zone strings{iana} read it as "
        f"UTC{west}, most people mean UTC{east}; write {east!r}{etc} for UTC{east}, "
        f"or {west!r} for UTC{west}"
    )


@lru_cache(maxsize=512)
def _zone(name: str) -> tzinfo:
    if name.upper() in ("UTC", "Z", "ETC/UTC", "GMT"):
        return utc
    match = _OFFSET.match(name) or _LABELLED_OFFSET.match(name)
    if match:
        return _fixed(name, *match.groups())
    ambiguous = _AMBIGUOUS_OFFSET.match(name)
    if ambiguous:
        return _ambiguous_offset(name, ambiguous.group(2), ambiguous.group(3))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (expected an IANA name like 'Europe/Paris')"
        ) from exc


def _is_pytz(zone: tzinfo) -> bool:
    # Duck-typed: asyncz does not depend on pytz (and must not import it).
    module = type(zone).__module__ or ""
    return module.split(".", 1)[0] == "pytz" or (
        hasattr(zone, "localize") and hasattr(zone, "normalize")
    )


def plain_zone(zone: tzinfo) -> tzinfo:
    """``zone``, or for a pytz zone its zoneinfo equivalent (by name; a fixed offset for
    pytz's ``FixedOffset``). pytz zones give wrong offsets with ``datetime.replace`` and
    ``datetime(..., tzinfo=)``, which wall-clock arithmetic relies on."""
    if isinstance(zone, (ZoneInfo, timezone)) or not _is_pytz(zone):
        return zone
    name = getattr(zone, "zone", None)
    if isinstance(name, str):
        return _zone(name)
    offset = zone.utcoffset(None)
    if offset is not None:
        return timezone(offset) if offset else utc
    return zone


def plain_datetime(value: datetime) -> datetime:
    """The same instant, with a pytz ``tzinfo`` swapped for its :func:`plain_zone`."""
    zone = value.tzinfo
    if zone is None or isinstance(zone, (ZoneInfo, timezone)) or not _is_pytz(zone):
        return value
    return value.astimezone(plain_zone(zone))


def to_timezone(value: tzinfo | str | None) -> tzinfo:
    """Return a tzinfo for a zone name or tzinfo; ``None`` means the local zone.

    A pytz zone is turned into its zoneinfo equivalent (:func:`plain_zone`).
    """
    if value is None:
        return local_timezone()
    if isinstance(value, tzinfo):
        return plain_zone(value)
    if isinstance(value, str):
        return _zone(value.strip())
    raise TypeError(f"expected a time zone name or a tzinfo, not {type(value).__name__}")


def timezone_name(zone: tzinfo) -> str:
    """A name that :func:`to_timezone` turns back into an equivalent zone."""
    if zone is utc:
        return "UTC"
    if isinstance(zone, timezone):
        # A fixed offset: name it by its offset, which _zone() parses back.
        offset = zone.utcoffset(None)
        if not offset:
            return "UTC"
        sign = "-" if offset < timedelta(0) else "+"
        minutes = abs(offset) // timedelta(minutes=1)
        return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"
    key = getattr(zone, "key", None) or getattr(zone, "zone", None)
    if isinstance(key, str):
        return key
    name = zone.tzname(None)
    if name:
        return name
    raise ValueError(f"time zone {zone!r} has no name; use a zoneinfo zone")


# Asyncz also reads one-digit months, days and hours: "2022-11-3", "2022-1-5 9:30:00".
_SHORT_DATE = re.compile(r"(\d{4})-(\d{1,2})-(\d{1,2})(?:([ T])(\d{1,2})(:.*)?)?")


# Python 3.10's fromisoformat takes only 3 or 6 fraction digits and offsets with a colon.
_FRACTION = re.compile(r"\.(\d+)")
_COLONLESS_OFFSET = re.compile(r"([+-])(\d{2})(\d{2})$")


def _padded(text: str) -> str:
    match = _SHORT_DATE.fullmatch(text)
    if match is None:
        return text
    year, month, day, sep, hour, rest = match.groups()
    padded = f"{year}-{int(month):02d}-{int(day):02d}"
    if sep:
        rest = _FRACTION.sub(lambda m: "." + m.group(1)[:6].ljust(6, "0"), rest or "", 1)
        rest = _COLONLESS_OFFSET.sub(r"\1\2:\3", rest)
        padded += f"{sep}{int(hour):02d}{rest}"
    return padded


def to_datetime(value: Any, zone: tzinfo, name: str) -> datetime | None:
    """Turn ``value`` (datetime, date, ISO-8601 string or None) into an aware datetime.

    A naive value is read as wall-clock time in ``zone``. ``name`` is used in error messages.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:  # what isoformat() wrote (a stored trigger's bounds) parses as it is
            value = datetime.fromisoformat(value)
        except ValueError:
            text = value.strip().replace("Z", "+00:00")
            try:
                value = datetime.fromisoformat(_padded(text))
            except ValueError as exc:
                raise ValueError(f"{name}: {value!r} is not an ISO-8601 date/time") from exc
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if not isinstance(value, datetime):
        raise TypeError(f"{name}: expected a datetime, a date or an ISO string, not {value!r}")
    if value.tzinfo is None or value.tzinfo.utcoffset(value) is None:
        return localize(value, zone)
    return plain_datetime(value)


def localize(naive: datetime, zone: tzinfo) -> datetime:
    """Attach ``zone`` to a naive wall-clock time (the first of two in an overlap)."""
    zone = plain_zone(zone)
    if hasattr(zone, "localize"):  # other zones with pytz's interface
        localized: datetime = zone.localize(naive)
        return localized
    return naive.replace(tzinfo=zone, fold=0)


def timestamp(value: datetime) -> float:
    """POSIX timestamp of an aware datetime."""
    return value.timestamp()


def from_timestamp(value: float, zone: tzinfo = utc) -> datetime:
    return datetime.fromtimestamp(value, zone)


def datetime_repr(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S %Z") if value else "None"


def timedelta_seconds(delta: timedelta) -> float:
    return delta.total_seconds()
