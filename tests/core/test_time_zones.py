"""Zone names and naive datetimes: one reading everywhere (triggers, tasks, settings)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from asyncz.exceptions import ConfigurationError
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.timeutil import timezone_name, to_timezone
from asyncz.triggers import CronTrigger

UTC = timezone.utc


# -- zone names --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("GMT+2", "write '+02:00' (or 'Etc/GMT-2') for UTC+02:00, or '-02:00' for UTC-02:00"),
        ("gmt-5", "write '-05:00' (or 'Etc/GMT+5') for UTC-05:00, or '+05:00' for UTC+05:00"),
        ("UTC+3", "write '+03:00' (or 'Etc/GMT-3') for UTC+03:00"),
        ("GMT+0530", "write '+05:30' for UTC+05:30, or '-05:30' for UTC-05:30"),
    ],
)
def test_posix_style_offsets_are_refused_with_the_fix(name: str, hint: str) -> None:
    with pytest.raises(ValueError, match="is ambiguous") as info:
        to_timezone(name)
    assert hint in str(info.value)
    with pytest.raises(ValueError, match="is ambiguous"):
        CronTrigger(hour=1, timezone=name)
    with pytest.raises(ConfigurationError) as config_error:
        AsyncIOScheduler(timezone=name)
    assert "asyncz.timezone" in str(config_error.value)
    assert hint in str(config_error.value)


@pytest.mark.parametrize(
    ("name", "offset"),
    [
        ("+02:00", timedelta(hours=2)),
        ("-0530", -timedelta(hours=5, minutes=30)),
        ("+2", timedelta(hours=2)),
        ("UTC+02:00", timedelta(hours=2)),  # what timezone_name writes
        ("GMT-05:30", -timedelta(hours=5, minutes=30)),
        ("Etc/GMT+2", -timedelta(hours=2)),  # IANA's own meaning
        ("Etc/GMT-2", timedelta(hours=2)),
        ("GMT+0", timedelta(0)),
        ("GMT", timedelta(0)),
    ],
)
def test_unambiguous_offsets_and_iana_names(name: str, offset: timedelta) -> None:
    zone = to_timezone(name)
    assert datetime(2030, 1, 1, tzinfo=zone).utcoffset() == offset
    assert to_timezone(timezone_name(zone)).utcoffset(None) == zone.utcoffset(None)


def test_out_of_range_offsets() -> None:
    for name in ("+24:00", "GMT+99", "UTC+01:75"):
        with pytest.raises(ValueError, match="out of range"):
            to_timezone(name)
