"""The little HTTP the dashboard needs, on plain ASGI: a request (path under the mount point,
query, cookies, a size-limited urlencoded form), responses with the security headers.

No framework: the dashboard mounts under Starlette, FastAPI or Lilya as any ASGI app, and
depends on none of them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import CookieError, SimpleCookie
from typing import Any
from urllib.parse import parse_qs

__all__ = ["MAX_FORM_BYTES", "SECURITY_HEADERS", "Request", "Response"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: A form is a few short fields (a note, trigger options): anything larger is refused (413).
MAX_FORM_BYTES = 16 * 1024

#: On every response. Scripts and styles only from the dashboard's own files (no inline
#: script, no inline style), no framing, no referrer leaking ids to other sites.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "content-security-policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
)


class FormTooLarge(ValueError):
    pass


class Request:
    """One HTTP request as the dashboard sees it."""

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self._receive = receive
        self.method: str = scope["method"].upper()
        #: Where the dashboard is mounted ("" standalone, "/scheduler" under a Mount).
        self.root_path: str = scope.get("root_path", "").rstrip("/")
        path: str = scope["path"]
        if self.root_path and path.startswith(self.root_path):
            path = path[len(self.root_path) :]  # Starlette keeps the mount prefix in path
        self.path = path or "/"
        raw_query = scope.get("query_string", b"").decode("latin-1")
        self.query = {k: v[-1] for k, v in parse_qs(raw_query).items()}
        self.headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]
        }
        self.cookies: dict[str, str] = {}
        try:
            for name, morsel in SimpleCookie(self.headers.get("cookie", "")).items():
                self.cookies[name] = morsel.value
        except CookieError:
            pass
        client = scope.get("client")
        self.client_host: str | None = client[0] if client else None
        self.secure = scope.get("scheme") == "https"
        #: Set by the auth layer: the name of who is logged in.
        self.user: str | None = None
        #: Set by the auth layer: the session id the CSRF token is bound to.
        self.session_id: str | None = None
        self.new_cookie: str | None = None

    def url(self, path: str) -> str:
        return self.root_path + path

    async def form(self) -> dict[str, str]:
        """The urlencoded body (``FormTooLarge`` beyond :data:`MAX_FORM_BYTES`)."""
        content_type = self.headers.get("content-type", "").split(";")[0].strip()
        body = bytearray()
        more = True
        while more:
            message = await self._receive()
            body += message.get("body", b"")
            if len(body) > MAX_FORM_BYTES:
                raise FormTooLarge(len(body))
            more = message.get("more_body", False)
        if content_type != "application/x-www-form-urlencoded":
            return {}
        parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return {k: v[-1] for k, v in parsed.items()}


class Response:
    """A complete response; :meth:`send` adds the security headers."""

    def __init__(
        self,
        body: bytes | str = b"",
        status: int = 200,
        content_type: str = "text/html; charset=utf-8",
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.headers = [("content-type", content_type), *(headers or [])]

    @classmethod
    def json(cls, data: Any, status: int = 200) -> Response:
        text = json.dumps(data, indent=2, sort_keys=False)
        return cls(text, status, "application/json")

    @classmethod
    def redirect(cls, location: str) -> Response:
        # 303: after a POST, the browser GETs the page (reloading it does not repeat the action).
        return cls(b"", 303, "text/plain; charset=utf-8", [("location", location)])

    async def send(self, send: Send, cache: bool = False) -> None:
        headers = [*self.headers, *SECURITY_HEADERS]
        if not cache:
            headers.append(("cache-control", "no-store"))
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )
        await send({"type": "http.response.body", "body": self.body})
