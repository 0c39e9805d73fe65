"""The serializer contract: turns a task's state (a dict) into bytes and back."""

from __future__ import annotations

import abc
from typing import Any, ClassVar

from asyncz.abc import Serializer

__all__ = ["BaseSerializer"]


class BaseSerializer(Serializer):
    """Encodes the state dict of a task (:meth:`asyncz.tasks.Task.__getstate__`); the
    interface is :class:`asyncz.abc.Serializer`.

    ``loads`` raises ``ValueError`` (or a subclass) for a payload it cannot or must not
    decode: corrupt data, an unknown format version, a bad signature. It never executes
    anything from the payload. Publish a serializer through the ``asyncz.serializers``
    entry-point group.
    """

    #: The alias it is registered under.
    alias: ClassVar[str | None] = None

    @abc.abstractmethod
    def dumps(self, state: dict[str, Any]) -> bytes:
        """Encode ``state``."""

    @abc.abstractmethod
    def loads(self, payload: bytes) -> dict[str, Any]:
        """Decode a payload produced by :meth:`dumps`; ``ValueError`` when it cannot."""
