"""create_trigger, trigger_to_data / trigger_from_data, JSON round trips."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asyncz.exceptions import UnknownAliasError
from asyncz.registry import registry
from asyncz.triggers import (
    AndTrigger,
    BaseTrigger,
    CronTrigger,
    DateTrigger,
    IntervalTrigger,
    OrTrigger,
    ShutdownTrigger,
    UnknownOptionError,
    create_trigger,
    trigger_from_data,
    trigger_to_data,
)

UTC = timezone.utc
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("alias", "cls"),
    [
        ("date", DateTrigger),
        ("interval", IntervalTrigger),
        ("cron", CronTrigger),
        ("and", AndTrigger),
        ("or", OrTrigger),
        ("shutdown", ShutdownTrigger),
    ],
)
def test_entry_points_resolve_to_the_classes(alias: str, cls: type) -> None:
    assert registry.resolve("trigger", alias) is cls
    assert cls.alias == alias  # type: ignore[attr-defined]
    assert issubclass(cls, BaseTrigger)


def test_create_trigger() -> None:
    cron = create_trigger("cron", hour=9, timezone="UTC")
    assert cron == CronTrigger(hour=9, timezone="UTC")
    assert create_trigger(cron) is cron
    assert isinstance(create_trigger(None), DateTrigger)
    assert create_trigger(None, run_at=T0) == DateTrigger(T0)


def test_create_trigger_errors() -> None:
    with pytest.raises(TypeError, match="options"):
        create_trigger(CronTrigger(hour=9), minute=1)
    with pytest.raises(UnknownOptionError, match="did you mean 'seconds'"):
        create_trigger("interval", secnds=5)
    with pytest.raises(UnknownAliasError, match="cron"):
        create_trigger("cronn")
    with pytest.raises(TypeError):
        create_trigger(42)  # type: ignore[arg-type]


def test_create_trigger_checks_options_of_third_party_classes() -> None:
    class Every(BaseTrigger):
        alias = "every_test"

        def __init__(self, seconds: int) -> None:
            self.seconds = seconds

        def get_next_trigger_time(
            self, timezone: Any, previous_time: Any, now: Any = None
        ) -> datetime | None:
            return None

        def __getstate__(self) -> dict[str, Any]:
            return {"seconds": self.seconds}

        def __setstate__(self, state: dict[str, Any]) -> None:
            self.seconds = state["seconds"]

    registry.register("trigger", "every_test", Every)
    try:
        with pytest.raises(UnknownOptionError, match="did you mean 'seconds'"):
            create_trigger("every_test", secondz=1)
        trigger = create_trigger("every_test", seconds=3)
        data = trigger_to_data(trigger)
        assert data == {"type": "every_test", "state": {"seconds": 3}}
        assert trigger_from_data(data) == trigger
    finally:
        registry.deregister("trigger", "every_test")


def test_unregistered_class_is_stored_by_reference() -> None:
    class Local(ShutdownTrigger):
        alias = "not_installed_anywhere"

    data = trigger_to_data(Local())
    assert data["type"].endswith(":test_unregistered_class_is_stored_by_reference.<locals>.Local")


def test_from_data_rejects_malformed() -> None:
    with pytest.raises(ValueError):
        trigger_from_data({"state": {}})
    with pytest.raises(ValueError):
        trigger_from_data({"type": "cron", "state": "x"})


def test_nested_state_is_plain_data() -> None:
    trigger = AndTrigger([CronTrigger(hour=9), OrTrigger([DateTrigger(T0), ShutdownTrigger()])])
    data = trigger_to_data(trigger)
    assert data["type"] == "and"
    assert data["state"]["triggers"][1]["type"] == "or"
    assert trigger_from_data(json.loads(json.dumps(data))) == trigger


# -- hypothesis: every trigger type round-trips through JSON ------------------------------------
zones = st.sampled_from([None, "UTC", "Europe/Paris", "Asia/Kathmandu", "UTC+05:30"])
instants = st.integers(0, 2_000_000_000).map(lambda s: datetime.fromtimestamp(s, UTC))
jitters = st.one_of(st.none(), st.integers(0, 100), st.floats(0, 100, allow_nan=False))


@st.composite
def cron_triggers(draw: st.DrawFn) -> CronTrigger:
    zone = draw(zones)
    if draw(st.booleans()):
        expr = draw(st.sampled_from(["*/5 * * * *", "0 9 * * 1-5", "@daily", "0 0 13 * 5"]))
        return CronTrigger.from_crontab(expr, timezone=zone, jitter=draw(jitters))
    fields = draw(
        st.dictionaries(
            st.sampled_from(["month", "day", "day_of_week", "hour", "minute", "second"]),
            st.sampled_from(["*", "1", "*/2", "1-3"]),
            max_size=3,
        )
    )
    start = draw(st.one_of(st.none(), instants))
    return CronTrigger(timezone=zone, start_at=start, jitter=draw(jitters), **fields)


def simple_triggers() -> st.SearchStrategy[BaseTrigger]:
    return st.one_of(
        st.builds(DateTrigger, instants, zones),
        st.builds(
            IntervalTrigger,
            seconds=st.integers(1, 10**6),
            start_at=instants,
            timezone=zones,
            jitter=jitters,
        ),
        cron_triggers(),
        st.just(ShutdownTrigger()),
    )


any_trigger = st.recursive(
    simple_triggers(),
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=3).map(AndTrigger),
        st.lists(children, min_size=1, max_size=3).map(OrTrigger),
    ),
    max_leaves=6,
)


@settings(max_examples=300, derandomize=True, print_blob=True, deadline=None)
@given(trigger=any_trigger)
def test_state_round_trips_through_json(trigger: BaseTrigger) -> None:
    data = trigger_to_data(trigger)
    restored = trigger_from_data(json.loads(json.dumps(data)))
    assert type(restored) is type(trigger)
    assert restored == trigger
    assert str(restored) == str(trigger)
    now = T0 + timedelta(days=3)
    if not getattr(trigger, "jitter", None) and not _has_jitter(trigger):
        assert restored.get_next_trigger_time(UTC, None, now) == trigger.get_next_trigger_time(
            UTC, None, now
        )


def _has_jitter(trigger: BaseTrigger) -> bool:
    children = getattr(trigger, "triggers", [])
    return any(getattr(c, "jitter", None) or _has_jitter(c) for c in children)
