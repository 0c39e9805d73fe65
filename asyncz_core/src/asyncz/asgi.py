"""ASGI integration: tie a scheduler's life to an application's lifespan.

``scheduler.asgi(app)`` (or ``@scheduler.asgi`` / ``@scheduler.asgi(handle_lifespan=True)``)
returns an ASGI application that behaves like ``app`` and additionally

* starts the scheduler when the server sends ``lifespan.startup`` (before ``app`` sees it,
  so the scheduler runs while the application starts up), and
* stops it when the server sends ``lifespan.shutdown`` (before ``app`` sees it, so tasks
  finish while the application's resources still exist), with ``shutdown(wait=wait)``.

A scheduler that fails to start is reported to the server as ``lifespan.startup.failed``
(and one that fails to stop as ``lifespan.shutdown.failed``) with the error as message, in
place of the application's own ``.complete`` message; the server then refuses to serve.

With ``handle_lifespan=True`` (or without an application to pass the lifespan on to) the
wrapper answers the lifespan protocol itself and the application never sees it; use this
for applications that do not implement lifespan.

Works with :class:`~asyncz.schedulers.asyncio.AsyncIOScheduler` (started on the server's
loop) and :class:`~asyncz.schedulers.asyncio.NativeAsyncIOScheduler`.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:
    from asyncz.schedulers.base import BaseScheduler

__all__ = ["ASGIApp", "Message", "Receive", "SchedulerLifespan", "Scope", "Send", "wrap"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _start(scheduler: Any) -> None:
    result = scheduler.start()
    if inspect.isawaitable(result):
        await result


async def _stop(scheduler: Any, wait: bool) -> None:
    await scheduler.shutdown_async(wait=wait)


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


class SchedulerLifespan:
    """The ASGI application returned by :meth:`BaseScheduler.asgi`."""

    def __init__(
        self,
        scheduler: BaseScheduler,
        app: ASGIApp | None = None,
        *,
        handle_lifespan: bool = False,
        wait: bool = False,
    ) -> None:
        self.scheduler = scheduler
        self.app = app
        self.handle_lifespan = handle_lifespan or app is None
        self.wait = wait

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            if self.handle_lifespan:
                await self._answer_lifespan(receive, send)
            else:
                await self._pass_lifespan(scope, receive, send)
            return
        if self.app is None:
            await _not_found(scope, send)
            return
        await self.app(scope, receive, send)

    async def _answer_lifespan(self, receive: Receive, send: Send) -> None:
        """Speak the lifespan protocol ourselves."""
        started = False
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "lifespan.startup":
                try:
                    await _start(self.scheduler)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": _describe(exc)})
                    return
                started = True
                await send({"type": "lifespan.startup.complete"})
            elif kind == "lifespan.shutdown":
                try:
                    if started:
                        await _stop(self.scheduler, self.wait)
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": _describe(exc)})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                return

    async def _pass_lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start/stop around the application's own lifespan handling."""
        assert self.app is not None
        errors: dict[str, str] = {}
        started = False

        async def receive_wrapper() -> Message:
            nonlocal started
            message = await receive()
            kind = message["type"]
            if kind == "lifespan.startup":
                try:
                    await _start(self.scheduler)
                    started = True
                except Exception as exc:
                    errors["startup"] = _describe(exc)
            elif kind == "lifespan.shutdown" and started:
                started = False
                try:
                    await _stop(self.scheduler, self.wait)
                except Exception as exc:
                    errors["shutdown"] = _describe(exc)
            return message

        async def send_wrapper(message: Message) -> None:
            kind = message["type"]
            for phase in ("startup", "shutdown"):
                if kind == f"lifespan.{phase}.complete" and phase in errors:
                    message = {"type": f"lifespan.{phase}.failed", "message": errors.pop(phase)}
            await send(message)

        try:
            await self.app(scope, receive_wrapper, send_wrapper)
        finally:
            # The application left the lifespan early (it does not support it, or failed):
            # do not leave the scheduler running behind the server's back.
            if started:
                await _stop(self.scheduler, self.wait)


async def _not_found(scope: Scope, send: Send) -> None:
    if scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 404,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")],
            }
        )
        await send({"type": "http.response.body", "body": b"Not Found"})
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})


Decorator = Callable[[ASGIApp], SchedulerLifespan]


@overload
def wrap(
    scheduler: BaseScheduler, app: ASGIApp, *, handle_lifespan: bool = ..., wait: bool = ...
) -> SchedulerLifespan: ...
@overload
def wrap(
    scheduler: BaseScheduler, app: None = ..., *, handle_lifespan: bool = ..., wait: bool = ...
) -> Decorator: ...
def wrap(
    scheduler: BaseScheduler,
    app: ASGIApp | None = None,
    *,
    handle_lifespan: bool = False,
    wait: bool = False,
) -> SchedulerLifespan | Decorator:
    """Wrap ``app``; without it, return a decorator that wraps the application it gets."""
    if app is None:

        def decorator(application: ASGIApp) -> SchedulerLifespan:
            return SchedulerLifespan(
                scheduler, application, handle_lifespan=handle_lifespan, wait=wait
            )

        return decorator
    return SchedulerLifespan(scheduler, app, handle_lifespan=handle_lifespan, wait=wait)
