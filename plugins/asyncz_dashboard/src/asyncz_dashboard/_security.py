"""Who is asking, and whether a form really came from one of our pages.

* **Auth** (:meth:`Guard.authenticate`): ``Authorization: Bearer <token>``, HTTP basic auth,
  or the signed session cookie the login form sets. Secrets are compared with
  :func:`hmac.compare_digest` (constant time). With ``disable_auth`` only loopback clients
  are served.
* **Sessions**: the cookie is ``<payload>.<signature>``; the payload is JSON (session id,
  user, expiry) in base64, the signature an HMAC-SHA256 under ``session_secret`` (a random
  key per process when unset). Never unpickled, never evaluated. Every visitor gets a
  session (anonymous until login), so that the login form has a CSRF token too; login
  starts a new session id (no fixation).
* **CSRF** (:meth:`Guard.csrf_token`, :meth:`Guard.check_csrf`): the token is the HMAC of
  the session id, checked on every POST (403 without it). The cookie is ``SameSite=Strict``
  and ``HttpOnly`` as a second line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import secrets
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from asyncz.settings.models import DashboardSettings
    from asyncz_dashboard._http import Request

__all__ = ["COOKIE", "Guard", "is_loopback"]

COOKIE = "asyncz_dashboard_session"


def is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _equal(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class Guard:
    """Auth, sessions and CSRF for one dashboard, from its settings."""

    def __init__(self, settings: DashboardSettings) -> None:
        self.settings = settings
        secret = settings.session_secret
        self._key = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
        self.token = settings.token.get_secret_value() if settings.token else None
        self.username = settings.username
        self.password = settings.password.get_secret_value() if settings.password else None
        self.disabled = settings.disable_auth and not settings.auth_configured

    # -- credentials -----------------------------------------------------------------------
    def check_credentials(
        self, token: str = "", username: str = "", password: str = ""
    ) -> str | None:
        """The user these credentials are (``"token"`` for the token), else ``None``."""
        if token and self.token is not None and _equal(token, self.token):
            return "token"
        if (
            username
            and self.username is not None
            and self.password is not None
            and _equal(username, self.username) & _equal(password, self.password)
        ):
            return self.username
        return None

    def _from_header(self, value: str) -> str | None:
        scheme, _, credentials = value.partition(" ")
        scheme = scheme.lower()
        if scheme == "bearer":
            return self.check_credentials(token=credentials.strip())
        if scheme == "basic":
            try:
                decoded = base64.b64decode(credentials.strip(), validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                return None
            username, _, password = decoded.partition(":")
            return self.check_credentials(username=username, password=password)
        return None

    def authenticate(self, request: Request) -> bool:
        """Set ``request.user`` and ``request.session_id``; whether the request may go on."""
        session = self._read_session(request.cookies.get(COOKIE, ""))
        if session is None:
            session = {"sid": secrets.token_urlsafe(18), "user": None}
            request.new_cookie = self._cookie(request, session)
        request.session_id = str(session["sid"])
        if self.disabled:
            if is_loopback(request.client_host):
                request.user = "local"
                return True
            return False
        header = request.headers.get("authorization")
        if header:
            request.user = self._from_header(header)
        elif session.get("user"):
            request.user = str(session["user"])
        return request.user is not None

    # -- sessions --------------------------------------------------------------------------
    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._key, payload.encode(), hashlib.sha256).digest())

    def _read_session(self, cookie: str) -> dict[str, object] | None:
        payload, _, signature = cookie.partition(".")
        if not payload or not signature or not _equal(signature, self._sign(payload)):
            return None
        try:
            data = json.loads(_unb64(payload))
        except (ValueError, binascii.Error):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        expires = data.get("exp")
        if not isinstance(expires, (int, float)) or expires < time.time():
            return None
        return data

    def _cookie(self, request: Request, session: Mapping[str, object]) -> str:
        lifetime = int(self.settings.session_lifetime)
        data = {**session, "exp": int(time.time()) + lifetime}
        payload = _b64(json.dumps(data, separators=(",", ":")).encode())
        value = f"{payload}.{self._sign(payload)}"
        attributes = [
            f"{COOKIE}={value}",
            f"Path={request.root_path or '/'}",
            "HttpOnly",
            "SameSite=Strict",
            f"Max-Age={lifetime}",
        ]
        if request.secure:
            attributes.append("Secure")
        return "; ".join(attributes)

    def login(self, request: Request, user: str) -> None:
        """A new session for ``user`` (a new id: a session fixed before login is dropped)."""
        session = {"sid": secrets.token_urlsafe(18), "user": user}
        request.session_id = str(session["sid"])
        request.user = user
        request.new_cookie = self._cookie(request, session)

    def logout(self, request: Request) -> None:
        session = {"sid": secrets.token_urlsafe(18), "user": None}
        request.session_id = str(session["sid"])
        request.user = None
        request.new_cookie = self._cookie(request, session)

    # -- CSRF ------------------------------------------------------------------------------
    def csrf_token(self, request: Request) -> str:
        return self._sign(f"csrf:{request.session_id}")

    def check_csrf(self, request: Request, form: dict[str, str]) -> bool:
        given = form.get("csrf", "")
        return (
            bool(given)
            and request.session_id is not None
            and _equal(given, self.csrf_token(request))
        )
