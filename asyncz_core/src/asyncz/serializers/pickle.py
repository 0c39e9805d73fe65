"""The ``pickle`` serializer: opt-in, for task arguments JSON cannot carry, always signed.

Unpickling runs code named by the payload, so a payload is only unpickled after its
HMAC-SHA256 signature checks out under the configured secret key. Layout::

    b"AZPK" | format version (1 byte) | HMAC-SHA256(key, header + body) (32 bytes) | body

The key comes from, in order: the ``secret_key`` argument, the ``asyncz.secret_key`` setting
of the scheduler being configured (see :func:`configured_secret_key`), the
``ASYNCZ_SECRET_KEY`` environment variable. Without one, constructing the serializer is an
error that says how to set one. ``previous_keys`` verifies payloads signed before a key
rotation (new payloads are always signed with the current key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, ClassVar

from asyncz.serializers.base import BaseSerializer

__all__ = ["FORMAT_VERSION", "MAGIC", "PickleSerializer", "configured_secret_key"]

MAGIC = b"AZPK"
#: Version of the payload layout (the byte after :data:`MAGIC`).
FORMAT_VERSION = 1
_DIGEST_SIZE = hashlib.sha256().digest_size
_HEADER = MAGIC + bytes([FORMAT_VERSION])
_PROTOCOL = 5

_configured: ContextVar[str | bytes | None] = ContextVar("asyncz_secret_key", default=None)


@contextmanager
def configured_secret_key(key: str | bytes | None) -> Iterator[None]:
    """Make ``key`` the fallback secret of pickle serializers built inside the block.

    The scheduler wraps the construction of its stores in it, so that a store configured
    with ``serializer="pickle"`` signs with the ``asyncz.secret_key`` setting.
    """
    token = _configured.set(key)
    try:
        yield
    finally:
        _configured.reset(token)


def _as_key(key: str | bytes | Any) -> bytes:
    if hasattr(key, "get_secret_value"):  # pydantic SecretStr / SecretBytes
        key = key.get_secret_value()
    if isinstance(key, str):
        key = key.encode()
    if not isinstance(key, bytes):
        raise TypeError(f"secret_key must be str or bytes, not {type(key).__name__}")
    if not key:
        raise ValueError("secret_key must not be empty")
    return key


class PickleSerializer(BaseSerializer):
    """Signed pickle. ``secret_key``: str or bytes (see the module documentation)."""

    alias: ClassVar[str | None] = "pickle"

    def __init__(
        self,
        secret_key: str | bytes | None = None,
        previous_keys: Iterable[str | bytes] = (),
    ) -> None:
        if secret_key is None:
            secret_key = _configured.get()
        if secret_key is None:
            secret_key = os.environ.get("ASYNCZ_SECRET_KEY") or None
        if secret_key is None:
            raise ValueError(
                "The pickle serializer signs every payload and needs a secret key: pass "
                "secret_key=..., set the asyncz.secret_key setting, or set the "
                "ASYNCZ_SECRET_KEY environment variable (e.g. to the output of "
                "`python -c 'import secrets; print(secrets.token_hex(32))'`)"
            )
        self._key = _as_key(secret_key)
        self._previous = tuple(_as_key(k) for k in previous_keys)

    def _sign(self, key: bytes, data: bytes) -> bytes:
        return hmac.new(key, data, hashlib.sha256).digest()

    def dumps(self, state: dict[str, Any]) -> bytes:
        body = pickle.dumps(state, protocol=_PROTOCOL)
        return _HEADER + self._sign(self._key, _HEADER + body) + body

    def loads(self, payload: bytes) -> dict[str, Any]:
        """Verify, then unpickle; ``ValueError`` (and nothing unpickled) when unsigned,
        tampered, signed with another key, or of an unknown format version."""
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise ValueError(f"a pickle payload must be bytes, not {type(payload).__name__}")
        payload = bytes(payload)
        if not payload.startswith(MAGIC) or len(payload) < len(_HEADER) + _DIGEST_SIZE:
            raise ValueError("not a signed asyncz pickle payload; refused without unpickling")
        version = payload[len(MAGIC)]
        if version != FORMAT_VERSION:
            raise ValueError(
                f"asyncz pickle payload format version {version} is not supported "
                f"(this asyncz writes and reads version {FORMAT_VERSION})"
            )
        header = payload[: len(_HEADER)]
        signature = payload[len(_HEADER) : len(_HEADER) + _DIGEST_SIZE]
        body = payload[len(_HEADER) + _DIGEST_SIZE :]
        if not any(
            hmac.compare_digest(signature, self._sign(key, header + body))
            for key in (self._key, *self._previous)
        ):
            raise ValueError(
                "bad signature on a pickle payload (tampered, or signed with another secret "
                "key); refused without unpickling"
            )
        try:
            state = pickle.loads(body)
        except Exception as exc:
            raise ValueError(f"signed pickle payload failed to unpickle: {exc!r}") from exc
        if not isinstance(state, dict):
            raise ValueError("signed pickle payload does not hold a task state")
        return state

    def __repr__(self) -> str:
        return "PickleSerializer(secret_key=***)"
