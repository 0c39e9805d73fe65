"""Cross-node wake-ups of :class:`asyncz_redis.RedisStore` over Redis pub/sub.

Data path: every write that may bring a next run time forward (an add, a management write, a
processing pass's write-back, a node releasing its claims) publishes ``"<score> <origin>"``
on the store's changes channel from inside its Lua script. :class:`ChangeListener` runs on
the store's I/O loop, subscribed from the store's ``start()`` on, and hands each message of
another node to ``wake(when)`` (the scheduler's :meth:`~asyncz.abc.SchedulerHandle.wake`).
When its connection drops it reconnects with backoff and asks for a pass (``wake(None)``):
what was published meanwhile was lost.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from redis.asyncio import Redis

__all__ = ["ChangeListener"]

#: Longest pause between two attempts to subscribe again, in seconds (short: until it is
#: subscribed again the node hears of no change, and an attempt costs one connection).
MAX_BACKOFF = 5.0


class ChangeListener:
    """Subscribed to ``channel``; calls ``wake`` for messages whose origin is not ``origin``."""

    def __init__(
        self,
        client: Redis,
        channel: str,
        origin: str,
        wake: Callable[[datetime | None], None],
        logger: logging.Logger,
    ) -> None:
        self.client = client
        self.channel = channel
        self.origin = origin
        self._wake = wake
        self._logger = logger
        self._pubsub: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe (before returning: nothing published afterwards is missed), then listen
        in a task of the running loop."""
        await self._subscribe()
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"asyncz-redis-changes:{self.channel}"
        )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._close()

    async def _subscribe(self) -> None:
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self._pubsub = pubsub
        await pubsub.subscribe(self.channel)
        connection: Any = pubsub.connection
        # redis-py reconnects (and subscribes again) by itself on a dropped connection:
        # hear of it, since messages sent in between are lost.
        connection.register_connect_callback(self._reconnected)

    def _reconnected(self, connection: Any) -> None:
        self._wake(None)

    async def _close(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            connection: Any = pubsub.connection
            if connection is not None:  # it goes back to the pool: not ours to hear of
                connection.deregister_connect_callback(self._reconnected)
            try:
                await pubsub.aclose()
            except Exception as exc:  # the connection is gone already
                self._logger.debug("Closing the subscription to %s: %s", self.channel, exc)

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                if self._pubsub is None:
                    await self._subscribe()
                    self._logger.info("Subscribed to %s again", self.channel)
                    self._wake(None)  # what was published meanwhile is lost: look now
                failures = 0
                async for message in self._pubsub.listen():
                    self._heard(message.get("data"))
                return  # unsubscribed: only when closing
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                backoff = min(MAX_BACKOFF, 0.25 * 2**failures)
                # Once per outage at INFO: the processing loop reports the outage itself.
                level = logging.INFO if failures == 1 else logging.DEBUG
                self._logger.log(
                    level,
                    "Subscription to %s lost (%s); subscribing again in %g s",
                    self.channel,
                    exc,
                    backoff,
                )
                await self._close()
                await asyncio.sleep(backoff)

    def _heard(self, data: Any) -> None:
        text = data.decode() if isinstance(data, bytes) else str(data)
        score, _, origin = text.partition(" ")
        if origin == self.origin:
            return  # this node's own write: it already knows
        try:
            when: datetime | None = datetime.fromtimestamp(float(score), timezone.utc)
        except (ValueError, OverflowError):
            when = None
        self._wake(when)
