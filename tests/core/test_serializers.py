"""Serializers: round trips (hypothesis), format versions, signing and tamper refusal."""

from __future__ import annotations

import math
import pickle
import uuid
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from asyncz.registry import resolve
from asyncz.schedulers.asyncio import AsyncIOScheduler
from asyncz.serializers import BaseSerializer, JSONSerializer, PickleSerializer
from asyncz.serializers.json import FORMAT_VERSION
from asyncz.stores.base import PersistentStore
from asyncz.stores.file import FileStore
from asyncz.tasks import Task
from asyncz.testing import assert_same_task, functions, make_task
from asyncz.triggers import CronTrigger, DateTrigger, IntervalTrigger

KEY = "test-secret-key"
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]


def all_serializers() -> list[BaseSerializer]:
    return [JSONSerializer(), PickleSerializer(secret_key=KEY)]


# -- strategies -----------------------------------------------------------------------------
aware_datetimes = st.builds(
    lambda dt, zone, fold: dt.replace(tzinfo=ZoneInfo(zone), fold=fold),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.sampled_from(ZONES),
    st.integers(0, 1),
)
fixed_offsets = st.builds(
    lambda dt, minutes: dt.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1)),
    st.integers(-23 * 60, 23 * 60),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(),
    st.binary(),
    st.datetimes(),
    aware_datetimes,
    fixed_offsets,
    st.dates(),
    st.times(),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
)
hashables = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.dates(), st.uuids())
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
        st.dictionaries(st.text(), inner, max_size=4),
        st.dictionaries(hashables, inner, max_size=4),
    ),
    max_leaves=12,
)
triggers = st.one_of(
    st.builds(
        lambda s, zone: IntervalTrigger(
            seconds=s, start_at=datetime(2030, 1, 1, tzinfo=timezone.utc), timezone=zone
        ),
        st.integers(1, 10**6),
        st.sampled_from(ZONES),
    ),
    st.builds(
        lambda h, m, zone: CronTrigger(hour=h, minute=m, timezone=zone),
        st.integers(0, 23),
        st.integers(0, 59),
        st.sampled_from(ZONES),
    ),
    st.builds(lambda when: DateTrigger(run_at=when), aware_datetimes),
)


def same(a: Any, b: Any) -> bool:
    """Equality that also checks types, zone offsets and float signs all the way down."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=False))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, datetime):
        return (
            a == b
            and a.fold == b.fold
            and a.utcoffset() == b.utcoffset()
            and a.replace(tzinfo=None) == b.replace(tzinfo=None)
        )
    if isinstance(a, time):
        return a == b and a.tzinfo == b.tzinfo and a.fold == b.fold
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if isinstance(a, Decimal):
        return a.as_tuple() == b.as_tuple()
    return bool(a == b)


# -- round trips ------------------------------------------------------------------------------
@pytest.mark.parametrize("serializer", all_serializers(), ids=["json", "pickle"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    args=st.lists(values, max_size=4).map(tuple),
    kwargs=st.dictionaries(st.text(), values, max_size=3),
)
def test_arguments_round_trip(
    serializer: BaseSerializer, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    state = {"args": args, "kwargs": kwargs}
    assert same(serializer.loads(serializer.dumps(state)), state)


@pytest.mark.parametrize("serializer", all_serializers(), ids=["json", "pickle"])
@settings(max_examples=60, deadline=None)
@given(
    args=st.lists(values, max_size=3).map(tuple),
    trigger=triggers,
    when=st.one_of(st.none(), aware_datetimes),
    coalesce=st.booleans(),
    grace=st.one_of(st.none(), st.floats(0, 1e6)),
)
def test_tasks_round_trip_through_a_store_codec(
    serializer: BaseSerializer,
    args: tuple[Any, ...],
    trigger: Any,
    when: datetime | None,
    coalesce: bool,
    grace: float | None,
) -> None:
    store = FileStore("unused", serializer=serializer)
    task = make_task(
        "t", when, args=args, trigger=trigger, coalesce=coalesce, misfire_grace_time=grace
    )
    restored = store.decode_task("t", store.encode_task(task))
    assert_same_task(restored, task)
    assert same(restored.args, task.args)


def test_json_payload_is_plain_versioned_json() -> None:
    import json

    task = make_task("v", datetime(2030, 1, 1, tzinfo=ZoneInfo("Europe/Paris")), args=(b"x", {1}))
    payload = JSONSerializer().dumps(task.__getstate__())
    document = json.loads(payload)
    assert document["format"] == "asyncz-json"
    assert document["version"] == FORMAT_VERSION
    assert document["state"]["fn"] == "asyncz.testing.functions:noop"
    assert document["state"]["trigger"]["type"] == "interval"
    assert document["state"]["next_run_time"] == {
        "__t": "datetime",
        "v": "2030-01-01T00:00:00+01:00",
        "tz": "Europe/Paris",
    }


def test_json_refuses_unknown_types_when_storing() -> None:
    class Custom:
        pass

    with pytest.raises(TypeError, match="serializer='pickle'"):
        JSONSerializer().dumps({"args": (Custom(),)})


def test_json_carries_zones_by_name() -> None:
    zones = [ZoneInfo("Europe/Paris"), timezone.utc, timezone(timedelta(hours=5, minutes=30))]
    payload = JSONSerializer().dumps({"zones": zones})
    assert b'{"__t":"zone","v":"Europe/Paris"}' in payload
    assert JSONSerializer().loads(payload) == {"zones": zones}


def test_json_refuses_a_zone_without_a_name() -> None:
    class Nameless(tzinfo):
        def utcoffset(self, dt: datetime | None) -> timedelta:
            return timedelta(0)

        def tzname(self, dt: datetime | None) -> None:
            return None

    with pytest.raises(TypeError, match=r"^zone: the json serializer cannot store the time zone"):
        JSONSerializer().dumps({"zone": Nameless()})


def test_json_names_the_key_of_a_value_it_cannot_store() -> None:
    class Holder:
        pass

    state = {"trigger": {"type": "x", "state": {"when": Holder()}}}
    with pytest.raises(TypeError, match=r"^trigger\.state\.when: a value of type .*Holder"):
        JSONSerializer().dumps(state)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=st.lists(values, max_size=4).map(tuple), kwargs=st.dictionaries(st.text(), values))
def test_json_one_pass_decoding_matches_the_step_by_step_one(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    serializer = JSONSerializer()
    payload = serializer.dumps({"args": args, "kwargs": kwargs})
    assert same(serializer.loads(payload), serializer._checked_loads(payload))


def test_json_dicts_that_look_like_tags_survive() -> None:
    state = {"kwargs": {"x": {"__t": "datetime", "v": "not a date"}}, "k": {1: "a", "1": "b"}}
    assert JSONSerializer().loads(JSONSerializer().dumps(state)) == state


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        (b"\xff\xfe", "not a json"),
        (b"[1, 2]", "not an asyncz-json"),
        (b'{"format": "asyncz-json", "state": {}}', "format version"),
        (b'{"format": "asyncz-json", "version": 99, "state": {}}', "newer than this asyncz"),
        (
            b'{"format": "asyncz-json", "version": 1, "state": {"a": {"__t": "nope", "v": 1}}}',
            "tag",
        ),
        (
            b'{"format": "asyncz-json", "version": 1, "state": {"a": {"__t": "timedelta"}}}',
            "malformed",
        ),
        (b'{"format": "asyncz-json", "version": 1, "state": [1]}', "not an object"),
        (b'{"format": "asyncz-json", "version": true, "state": {}}', "format version"),
        (
            b'{"format": "asyncz-json", "version": 2, "state": {"a": {"__t": "new", "v": 1}}}',
            "newer than this asyncz",
        ),
    ],
)
def test_json_refuses_bad_payloads_with_a_value_error(payload: bytes, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        JSONSerializer().loads(payload)


# -- pickle: signing ------------------------------------------------------------------------------
class Boom:
    """Unpickling this runs code: what a malicious payload does."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (functions.record, ("unpickled!",))


def test_pickle_needs_a_secret_key_and_says_how_to_set_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ASYNCZ_SECRET_KEY", raising=False)
    with pytest.raises(ValueError, match="ASYNCZ_SECRET_KEY"):
        PickleSerializer()
    monkeypatch.setenv("ASYNCZ_SECRET_KEY", "from-env")
    assert PickleSerializer().loads(PickleSerializer(secret_key="from-env").dumps({"a": 1})) == {
        "a": 1
    }


def test_pickle_key_from_the_asyncz_secret_key_setting() -> None:
    scheduler = AsyncIOScheduler(
        global_config={
            "asyncz.secret_key": "configured",
            "asyncz.stores.default": {"type": "file", "directory": "tasks", "serializer": "pickle"},
        }
    )
    store = scheduler.stores["default"]
    assert isinstance(store, PersistentStore)
    payload = store.serializer.dumps({"a": 1})
    assert PickleSerializer(secret_key="configured").loads(payload) == {"a": 1}


def test_unsigned_and_tampered_pickles_are_refused_without_unpickling() -> None:
    functions.reset("unpickled!")
    serializer = PickleSerializer(secret_key=KEY)
    evil = pickle.dumps({"args": (Boom(),)})
    good = serializer.dumps({"args": (1, 2)})
    forged = good[:5] + bytes(32) + evil
    flipped = bytearray(good)
    flipped[-3] ^= 0x40
    other_key = PickleSerializer(secret_key="another").dumps({"args": (Boom(),)})
    for payload, match in [
        (evil, "not a signed"),
        (forged, "bad signature"),
        (bytes(flipped), "bad signature"),
        (other_key, "bad signature"),
        (b"AZPK\x09" + bytes(40), "version 9"),
        (b"AZPK", "not a signed"),
    ]:
        with pytest.raises(ValueError, match=match):
            serializer.loads(payload)
    assert functions.calls("unpickled!") == 0


def test_pickle_previous_keys_verify_old_payloads() -> None:
    old = PickleSerializer(secret_key="old").dumps({"a": 1})
    rotated = PickleSerializer(secret_key="new", previous_keys=["old"])
    assert rotated.loads(old) == {"a": 1}
    assert PickleSerializer(secret_key="new").loads(rotated.dumps({"b": 2})) == {"b": 2}


def test_pickle_carries_what_json_cannot() -> None:
    serializer = PickleSerializer(secret_key=b"bytes key")
    state = {"args": (Decimal("1.5"), range(3), complex(1, 2))}
    assert serializer.loads(serializer.dumps(state)) == state


def test_serializers_are_entry_points() -> None:
    assert resolve("serializer", "json") is JSONSerializer
    assert resolve("serializer", "pickle") is PickleSerializer


def test_a_restored_task_keeps_its_callable_reference() -> None:
    store = FileStore("unused")
    task = Task(
        "asyncz.testing.functions:record",
        id="r",
        args=("x",),
        next_run_time=None,
        coalesce=True,
        max_instances=1,
        misfire_grace_time=None,
        trigger="interval",
        hours=1,
    )
    restored = store.decode_task("r", store.encode_task(task))
    assert restored.fn is functions.record
    assert restored.fn_reference == "asyncz.testing.functions:record"


def test_misc_values() -> None:
    state = {
        "v": [
            uuid.UUID(int=1),
            date(2020, 2, 29),
            time(1, 2, 3, 4, tzinfo=ZoneInfo("UTC")),
            float("inf"),
            float("-inf"),
            bytearray(b"ab"),
        ]
    }
    for serializer in all_serializers():
        restored = serializer.loads(serializer.dumps(state))
        assert same(restored, state)
    nan = JSONSerializer().loads(JSONSerializer().dumps({"x": float("nan")}))["x"]
    assert math.isnan(nan)


@pytest.mark.parametrize("serializer", all_serializers(), ids=["json", "pickle"])
@pytest.mark.parametrize(
    "when",
    [
        datetime(2030, 3, 31, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),  # in the spring gap
        datetime(2030, 10, 27, 2, 30, tzinfo=ZoneInfo("Europe/Paris")),  # overlap, first
        datetime(2030, 10, 27, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris")),  # second
    ],
)
def test_dst_edge_datetimes_keep_wall_time_zone_and_fold(
    serializer: BaseSerializer, when: datetime
) -> None:
    restored = serializer.loads(serializer.dumps({"when": when}))["when"]
    assert same(restored, when)
    assert restored.replace(tzinfo=None) == when.replace(tzinfo=None)
    assert restored.utcoffset() == when.utcoffset()
