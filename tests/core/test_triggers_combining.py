"""AndTrigger and OrTrigger."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from asyncz.triggers import AndTrigger, CronTrigger, DateTrigger, IntervalTrigger, OrTrigger

UTC = timezone.utc
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_and_earliest_agreement() -> None:
    trigger = AndTrigger(
        [CronTrigger(minute="*/10", timezone="UTC"), CronTrigger(minute="*/15", timezone="UTC")]
    )
    first = trigger.get_next_trigger_time(UTC, None, T0 + timedelta(minutes=1))
    assert first == T0 + timedelta(minutes=30)
    assert trigger.get_next_trigger_time(UTC, first) == T0 + timedelta(hours=1)


def test_and_with_interval() -> None:
    trigger = AndTrigger(
        [IntervalTrigger(minutes=7, start_at=T0), CronTrigger(minute="*/5", timezone="UTC")]
    )
    assert trigger.get_next_trigger_time(UTC, None, T0 + timedelta(seconds=1)) == T0 + timedelta(
        minutes=35
    )


def test_and_that_never_coincides_returns_none_after_a_bounded_search(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    never = AndTrigger(
        [
            CronTrigger(second=0, timezone="UTC"),
            IntervalTrigger(seconds=60, start_at=T0 + timedelta(seconds=30)),
        ]
    )
    asked = 0
    for cls in (CronTrigger, IntervalTrigger):
        real = cls.get_next_trigger_time

        def counting(self: Any, *args: Any, _real: Any = real) -> Any:
            nonlocal asked
            asked += 1
            return _real(self, *args)

        monkeypatch.setattr(cls, "get_next_trigger_time", counting)
    assert never.get_next_trigger_time(UTC, None, T0) is None
    assert 0 < asked <= 2 * AndTrigger.max_rounds  # each child asked once per round


def test_and_with_exhausted_child_is_none() -> None:
    trigger = AndTrigger([DateTrigger(T0), CronTrigger(hour=1, timezone="UTC")])
    assert trigger.get_next_trigger_time(UTC, None, T0) is None


def test_or_earliest() -> None:
    trigger = OrTrigger([CronTrigger(hour=9, timezone="UTC"), CronTrigger(hour=17, timezone="UTC")])
    fires, previous = [], None
    for _ in range(4):
        previous = trigger.get_next_trigger_time(UTC, previous, T0)
        fires.append(previous)
    assert fires == [
        T0 + timedelta(hours=9),
        T0 + timedelta(hours=17),
        T0 + timedelta(days=1, hours=9),
        T0 + timedelta(days=1, hours=17),
    ]


def test_or_with_date_child_fires_date_once() -> None:
    trigger = OrTrigger(
        [DateTrigger(T0 + timedelta(minutes=30)), CronTrigger(hour=1, timezone="UTC")]
    )
    first = trigger.get_next_trigger_time(UTC, None, T0)
    second = trigger.get_next_trigger_time(UTC, first, T0)
    third = trigger.get_next_trigger_time(UTC, second, T0)
    assert [first, second, third] == [
        T0 + timedelta(minutes=30),
        T0 + timedelta(hours=1),
        T0 + timedelta(days=1, hours=1),
    ]


def test_or_all_exhausted() -> None:
    assert OrTrigger([DateTrigger(T0)]).get_next_trigger_time(UTC, T0) is None


def test_combining_str_and_equality() -> None:
    trigger = OrTrigger([CronTrigger(hour=9), IntervalTrigger(minutes=2, start_at=T0)])
    assert str(trigger) == "or[cron[hour='9'], interval[0:02:00]]"
    assert trigger == OrTrigger([CronTrigger(hour=9), IntervalTrigger(minutes=2, start_at=T0)])
    assert trigger != AndTrigger([CronTrigger(hour=9), IntervalTrigger(minutes=2, start_at=T0)])


def test_combining_jitter_stays_before_next_fire() -> None:
    trigger = OrTrigger([CronTrigger(minute="*", timezone="UTC")], jitter=300)
    previous = None
    for index in range(50):
        fire = trigger.get_next_trigger_time(UTC, previous, T0)
        assert fire is not None
        slot = T0 + timedelta(minutes=index)
        assert slot <= fire < slot + timedelta(minutes=1)
        previous = fire
