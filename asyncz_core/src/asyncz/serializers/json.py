"""The ``json`` serializer: the default of persistent stores.

A payload is one compact JSON object::

    {"format": "asyncz-json", "version": 1, "state": {...}}

Inside ``state`` JSON's own types (str, int, float, bool, None, lists and objects with string
keys) stand for themselves. Every other supported value is a *tagged* object
``{"__t": tag, "v": value}``:

=============  ================================================================
tag            value
=============  ================================================================
``datetime``   ISO 8601 text; ``"tz"`` holds the IANA key of a ``ZoneInfo``
               zone, ``"fold": 1`` the second of two repeated wall times
``date``       ISO 8601 text
``time``       ISO 8601 text (``"tz"`` / ``"fold"`` as for datetime)
``timedelta``  ``[days, seconds, microseconds]``
``zone``       a ``tzinfo``: its IANA name, ``"UTC"`` or a fixed offset
               (``"UTC+02:00"``), as :func:`asyncz.triggers.zone_to_state` writes it
``decimal``    ``str(value)``
``uuid``       the canonical hex form
``bytes``      base64 text (``bytearray`` values use the tag ``bytearray``)
``tuple``      a list
``set``        a list (``frozenset`` values use the tag ``frozenset``)
``float``      ``"nan"``, ``"inf"`` or ``"-inf"`` (kept out of strict JSON)
``dict``       ``[[key, value], ...]`` for a dict whose keys are not all strings, or
               that has a ``"__t"`` key of its own
=============  ================================================================

The callable of a task is already a ``"module:qualname"`` string and its trigger plain data
(:func:`asyncz.triggers.trigger_to_data`), so a payload never names a class to import:
decoding executes nothing. A value of any other type makes :meth:`JSONSerializer.dumps` raise
``TypeError`` naming the type, when the task is added, not when it is restored.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from asyncz.serializers.base import BaseSerializer

__all__ = ["FORMAT", "FORMAT_VERSION", "JSONSerializer"]

#: Name written into every payload.
FORMAT = "asyncz-json"
#: Version of the payload layout; payloads with a higher version are refused by name.
FORMAT_VERSION = 1

_TAG = "__t"
_PLAIN = (str, int, bool, type(None))


def _zone_fields(out: dict[str, Any], value: datetime | time) -> None:
    tz = value.tzinfo
    if isinstance(tz, ZoneInfo) and tz.key:
        out["tz"] = tz.key
    if value.fold:
        out["fold"] = 1


def _enc_datetime(value: datetime) -> dict[str, Any]:
    # The offset in the text is informative; with a zone key, wall time + key + fold rule.
    out: dict[str, Any] = {_TAG: "datetime", "v": value.isoformat()}
    _zone_fields(out, value)
    return out


def _enc_time(value: time) -> dict[str, Any]:
    out: dict[str, Any] = {_TAG: "time", "v": value.isoformat()}
    _zone_fields(out, value)
    return out


def _enc_float(value: float) -> Any:
    if math.isfinite(value):
        return value
    return {_TAG: "float", "v": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}


def _enc_list(value: list[Any]) -> list[Any]:
    return [_encode(item) for item in value]


def _enc_dict(value: dict[Any, Any]) -> Any:
    out: dict[str, Any] = {}
    for key, item in value.items():
        if type(key) is not str or key == _TAG:
            return {_TAG: "dict", "v": [[_encode(k), _encode(v)] for k, v in value.items()]}
        try:
            out[key] = _encode(item)
        except _Unstorable as exc:
            exc.path.insert(0, key)
            raise
    return out


_ENCODERS: dict[type, Callable[[Any], Any]] = {
    float: _enc_float,
    list: _enc_list,
    dict: _enc_dict,
    tuple: lambda v: {_TAG: "tuple", "v": [_encode(item) for item in v]},
    set: lambda v: {_TAG: "set", "v": [_encode(item) for item in v]},
    frozenset: lambda v: {_TAG: "frozenset", "v": [_encode(item) for item in v]},
    datetime: _enc_datetime,
    date: lambda v: {_TAG: "date", "v": v.isoformat()},
    time: _enc_time,
    timedelta: lambda v: {_TAG: "timedelta", "v": [v.days, v.seconds, v.microseconds]},
    Decimal: lambda v: {_TAG: "decimal", "v": str(v)},
    UUID: lambda v: {_TAG: "uuid", "v": v.hex},
    bytes: lambda v: {_TAG: "bytes", "v": base64.b64encode(v).decode("ascii")},
    bytearray: lambda v: {_TAG: "bytearray", "v": base64.b64encode(v).decode("ascii")},
    ZoneInfo: lambda v: _enc_zone(v),
    timezone: lambda v: _enc_zone(v),
}


def _enc_zone(value: tzinfo) -> dict[str, Any]:
    from asyncz.timeutil import timezone_name

    try:
        return {_TAG: "zone", "v": timezone_name(value)}
    except ValueError as exc:
        raise _Unstorable(
            f"the json serializer cannot store the time zone {value!r}: {exc}"
        ) from None


def _dec_zone(name: Any) -> tzinfo:
    from asyncz.timeutil import to_timezone

    if not isinstance(name, str):
        raise ValueError(f"bad tagged zone {name!r}")
    return to_timezone(name)


class _Unstorable(TypeError):
    """A value JSON cannot carry; ``path`` collects the keys leading to it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.path: list[str] = []

    def __str__(self) -> str:
        where = ".".join(self.path)
        return f"{where}: {self.message}" if where else self.message


def _encode(value: Any) -> Any:
    kind = type(value)
    if kind in _PLAIN:
        return value
    encoder = _ENCODERS.get(kind)
    if encoder is None and isinstance(value, tzinfo):
        encoder = _enc_zone
    if encoder is None:
        raise _Unstorable(
            f"a value of type {kind.__module__}.{kind.__qualname__} cannot be stored by the json "
            "serializer (supported: JSON types, datetime, date, time, timedelta, tzinfo, Decimal, "
            "UUID, bytes, tuple, set); pass plain data, or use serializer='pickle'"
        )
    return encoder(value)


def _with_zone(value: Any, obj: dict[str, Any]) -> Any:
    key = obj.get("tz")
    if key is not None:
        try:
            zone = ZoneInfo(key)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {key!r} in payload") from exc
        # Same wall time, zone and fold as written: exact even inside a DST gap or overlap.
        value = value.replace(tzinfo=zone)
    if obj.get("fold"):
        value = value.replace(fold=1)
    return value


def _dec_float(text: Any) -> float:
    if text not in ("nan", "inf", "-inf"):
        raise ValueError(f"bad tagged float {text!r}")
    return float(text)


_DECODERS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    "datetime": lambda v, o: _with_zone(datetime.fromisoformat(v), o),
    "date": lambda v, o: date.fromisoformat(v),
    "time": lambda v, o: _with_zone(time.fromisoformat(v), o),
    "timedelta": lambda v, o: timedelta(days=v[0], seconds=v[1], microseconds=v[2]),
    "decimal": lambda v, o: Decimal(v),
    "uuid": lambda v, o: UUID(hex=v),
    "bytes": lambda v, o: base64.b64decode(v, validate=True),
    "bytearray": lambda v, o: bytearray(base64.b64decode(v, validate=True)),
    "tuple": lambda v, o: tuple(_decode(item) for item in v),
    "set": lambda v, o: {_decode(item) for item in v},
    "frozenset": lambda v, o: frozenset(_decode(item) for item in v),
    "float": lambda v, o: _dec_float(v),
    "zone": lambda v, o: _dec_zone(v),
    "dict": lambda v, o: {_decode(k): _decode(item) for k, item in v},
}


def _decode(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        return [_decode(item) for item in value]
    if kind is not dict:
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {key: _decode(item) for key, item in value.items()}
    decoder = _DECODERS.get(tag)
    if decoder is None:
        raise ValueError(f"unknown value tag {tag!r} in payload")
    return decoder(value["v"], value)


# The same decoders for json.loads(object_hook=...), which calls the hook for every object
# from the innermost out: the values inside a tagged object are already decoded, and values
# outside objects (lists, scalars) are never visited in Python at all.
_HOOK_DECODERS: dict[str, Callable[[Any, dict[str, Any]], Any]] = {
    **_DECODERS,
    "tuple": lambda v, o: tuple(v),
    "set": lambda v, o: set(v),
    "frozenset": lambda v, o: frozenset(v),
    "dict": lambda v, o: dict(v),
}


class _Undecodable(Exception):
    """Raised out of :func:`_hook`: the payload goes the slow way, for the exact error."""


def _hook(obj: dict[str, Any]) -> Any:
    tag = obj.get(_TAG)
    if tag is None:
        return obj
    decoder = _HOOK_DECODERS.get(tag)
    if decoder is None:
        raise _Undecodable
    try:
        return decoder(obj["v"], obj)
    except Exception as exc:
        raise _Undecodable from exc


_ONE_PASS = json.JSONDecoder(object_hook=_hook)


class JSONSerializer(BaseSerializer):
    """Tagged JSON (see the module documentation for the format). Takes no options."""

    alias: ClassVar[str | None] = "json"

    def dumps(self, state: dict[str, Any]) -> bytes:
        """Encode ``state``; ``TypeError`` names a value JSON cannot carry."""
        try:
            encoded = _encode(state)
        except _Unstorable as exc:  # "trigger.state.when: a value of type ..."
            raise TypeError(str(exc)) from None
        document = {"format": FORMAT, "version": FORMAT_VERSION, "state": encoded}
        return json.dumps(
            document, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode()

    def loads(self, payload: bytes) -> dict[str, Any]:
        """Decode a payload; ``ValueError`` for anything corrupt, foreign or too new."""
        try:
            # One pass in the C decoder, tags decoded by the hook as objects are parsed.
            document = _ONE_PASS.decode(payload.decode())
        except (_Undecodable, ValueError, TypeError, AttributeError):
            pass
        else:
            if (
                type(document) is dict
                and document.get("format") == FORMAT
                and type(document.get("version")) is int
                and document["version"] == FORMAT_VERSION
                and type(document.get("state")) is dict
            ):
                return document["state"]  # type: ignore[no-any-return]
        return self._checked_loads(payload)

    def _checked_loads(self, payload: bytes) -> dict[str, Any]:
        """The step by step path, which names what is wrong with a payload."""
        try:
            document = json.loads(payload)
        except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError
            raise ValueError(f"not a json task payload: {exc}") from exc
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise ValueError(f"not an {FORMAT} payload")
        version = document.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValueError(f"{FORMAT} payload without a valid format version: {version!r}")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"{FORMAT} payload format version {version} is newer than this asyncz "
                f"understands ({FORMAT_VERSION}); upgrade asyncz"
            )
        try:
            state = _decode(document.get("state"))
        except ValueError:
            raise
        except (KeyError, TypeError, IndexError, ArithmeticError) as exc:
            raise ValueError(f"malformed {FORMAT} payload: {type(exc).__name__}: {exc}") from exc
        if not isinstance(state, dict):
            raise ValueError(f"{FORMAT} payload state is not an object")
        return state

    def __repr__(self) -> str:
        return "JSONSerializer()"
