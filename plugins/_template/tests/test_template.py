from __future__ import annotations

import json
import pickle
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pluggy
import pytest

from asyncz import hookspecs
from asyncz_plugin_template import hooks
from asyncz_plugin_template.trigger import EveryTrigger

UTC = timezone.utc
START = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def test_fires_every_n_seconds_from_start() -> None:
    trigger = EveryTrigger(seconds=30, start_at=START)
    first = trigger.get_next_trigger_time(UTC, None, START - timedelta(hours=1))
    assert first == START
    assert trigger.get_next_trigger_time(UTC, first) == START + timedelta(seconds=30)


def test_late_previous_time_does_not_drift() -> None:
    trigger = EveryTrigger(seconds=10, start_at=START)
    late = START + timedelta(seconds=25)
    assert trigger.get_next_trigger_time(UTC, late) == START + timedelta(seconds=30)


def test_default_start_is_now() -> None:
    trigger = EveryTrigger(seconds=5)
    assert trigger.get_next_trigger_time(UTC, None, START) == START


def test_naive_start_is_read_in_the_scheduler_zone() -> None:
    trigger = EveryTrigger(seconds=5, start_at="2025-01-01T12:00:00")
    assert trigger.get_next_trigger_time(UTC, None) == START


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf")])
def test_rejects_bad_seconds(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds"):
        EveryTrigger(seconds=seconds)


def test_state_is_plain_json_and_round_trips() -> None:
    trigger = EveryTrigger(seconds=2.5, start_at=START)
    state = json.loads(json.dumps(trigger.__getstate__()))
    restored = EveryTrigger.__new__(EveryTrigger)
    restored.__setstate__(state)
    assert restored == trigger
    assert pickle.loads(pickle.dumps(trigger)) == trigger


def test_hook_counts_events() -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    pm.register(hooks, name="template")
    pm.check_pending()
    hooks.reset()
    try:
        for code in (1, 1, 2):
            pm.hook.asyncz_event_dispatched(scheduler=None, event=SimpleNamespace(code=code))
        assert hooks.counts() == {1: 2, 2: 1}
    finally:
        hooks.reset()
