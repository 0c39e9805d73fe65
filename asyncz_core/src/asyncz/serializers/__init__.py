"""Serializers: how persistent stores turn a task's state into bytes and back.

Serializers are plugins of the ``asyncz.serializers`` entry-point group. The core ships two:

* ``json`` (:class:`~asyncz.serializers.json.JSONSerializer`), the default of every
  persistent store: plain JSON with tagged values for the types JSON lacks (datetime, date,
  time, timedelta, Decimal, UUID, bytes, tuple, set, ...). It never executes anything from
  a payload.
* ``pickle`` (:class:`~asyncz.serializers.pickle.PickleSerializer`), opt-in, for arguments
  JSON cannot carry. Every payload is signed with HMAC-SHA256 under a secret key
  (``secret_key=``, the ``asyncz.secret_key`` setting or ``ASYNCZ_SECRET_KEY``); an unsigned
  or tampered payload is refused and never unpickled.

Every payload carries a format version, so a newer asyncz can read what an older one wrote
and an older one refuses, by name, what it does not understand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncz._lazy import lazy_exports
from asyncz.serializers.base import BaseSerializer

if TYPE_CHECKING:
    from asyncz.serializers.json import JSONSerializer
    from asyncz.serializers.pickle import PickleSerializer, configured_secret_key

__all__ = ["BaseSerializer", "JSONSerializer", "PickleSerializer", "configured_secret_key"]

_LAZY = {
    "JSONSerializer": "asyncz.serializers.json",
    "PickleSerializer": "asyncz.serializers.pickle",
    "configured_secret_key": "asyncz.serializers.pickle",
}


__getattr__ = lazy_exports(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(__all__)
