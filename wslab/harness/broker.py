"""Message brokers for fan-out across worker processes: in memory, or Redis pub/sub.

What lives here: the :class:`Broker` protocol (``publish(channel, data)``,
``subscribe(channel, callback)``, ``close()``), :class:`MemoryBroker` for a single worker
(same interface, delivery on the next turn of the event loop, as a network broker would),
:class:`RedisBroker` on ``redis.asyncio`` pub/sub, and :func:`connect_broker`, which checks
that Redis answers before a run starts (a clear one-line error naming the URL otherwise).
What must not live here: starting ``redis-server`` (``cluster.py``), the connection
registry (``registry.py``), anything about WebSocket connections.

Redis pub/sub is fire-and-forget: a message published while a subscriber is not yet
subscribed is lost. :meth:`RedisBroker.subscribe` therefore returns only once Redis has
confirmed the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol
from urllib.parse import urlparse

from wslab.errors import WslabError

Callback = Callable[[bytes], None]


class Broker(Protocol):
    """Publish bytes on named channels; every subscriber of a channel gets them."""

    async def publish(self, channel: str, data: bytes) -> None:
        """Send ``data`` to every subscriber of ``channel`` (including this process)."""
        ...

    async def subscribe(self, channel: str, callback: Callback) -> None:
        """Call ``callback(data)`` for every message on ``channel`` from now on."""
        ...

    async def close(self) -> None:
        """Stop delivering and release connections."""
        ...


class MemoryBroker:
    """The single-process broker: callbacks run on the event loop's next turn."""

    def __init__(self) -> None:
        self._subs: dict[str, list[Callback]] = {}
        self.published = 0

    async def publish(self, channel: str, data: bytes) -> None:
        """Schedule every subscriber's callback."""
        self.published += 1
        loop = asyncio.get_running_loop()
        for callback in self._subs.get(channel, ()):
            loop.call_soon(callback, data)

    async def subscribe(self, channel: str, callback: Callback) -> None:
        """Register ``callback`` for ``channel``."""
        self._subs.setdefault(channel, []).append(callback)

    async def close(self) -> None:
        """Forget every subscriber."""
        self._subs.clear()


def _describe_url(url: str) -> str:
    """The URL without a password, for error messages."""
    parsed = urlparse(url)
    if parsed.password:
        netloc = f"{parsed.username or ''}:***@{parsed.hostname}:{parsed.port or 6379}"
        return parsed._replace(netloc=netloc).geturl()
    return url


class RedisBroker:
    """Redis pub/sub: one connection publishes, one subscribes and dispatches.

    Args:
        url: ``redis://HOST:PORT/DB``.
    """

    def __init__(self, url: str) -> None:
        import redis.asyncio as aioredis

        self.url = url
        self.redis: Any = aioredis.Redis.from_url(url)
        self._pubsub: Any = None
        self._subs: dict[str, list[Callback]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._confirmed: dict[str, asyncio.Event] = {}
        self.published = 0
        self.delivered = 0

    async def check(self, timeout: float = 3.0) -> None:
        """Raise a one-line :class:`WslabError` naming the URL if Redis does not answer."""
        try:
            await asyncio.wait_for(self.redis.ping(), timeout)
        except Exception as exc:  # connection refused, DNS, auth, timeout
            await self.close()
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise WslabError(f"cannot reach Redis at {_describe_url(self.url)}: {reason}"
                             ) from None

    async def publish(self, channel: str, data: bytes) -> None:
        """PUBLISH ``data`` on ``channel``."""
        self.published += 1
        await self.redis.publish(channel, data)

    async def subscribe(self, channel: str, callback: Callback) -> None:
        """SUBSCRIBE (confirmed by Redis before returning) and dispatch to ``callback``."""
        first = channel not in self._subs
        self._subs.setdefault(channel, []).append(callback)
        if not first:
            return
        if self._pubsub is None:
            self._pubsub = self.redis.pubsub()
        confirmed = self._confirmed[channel] = asyncio.Event()
        await self._pubsub.subscribe(channel)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        # Wait for Redis to confirm, so nothing published after this call is missed.
        try:
            await asyncio.wait_for(confirmed.wait(), 5.0)
        except TimeoutError:
            raise WslabError(f"Redis at {_describe_url(self.url)} did not confirm the "
                             f"subscription to {channel}") from None

    def _dispatch(self, msg: dict[str, Any]) -> None:
        if msg.get("type") == "subscribe":
            event = self._confirmed.get(msg["channel"].decode())
            if event is not None:
                event.set()
            return
        if msg.get("type") != "message":
            return
        self.delivered += 1
        for callback in self._subs.get(msg["channel"].decode(), ()):
            callback(msg["data"])

    async def _read(self) -> None:
        assert self._pubsub is not None
        while True:
            msg = await self._pubsub.get_message(timeout=1.0)
            if msg is not None:
                self._dispatch(msg)

    async def close(self) -> None:
        """Stop the reader and close both connections."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        with contextlib.suppress(Exception):
            await self.redis.aclose()


async def connect_broker(kind: str, url: str | None = None) -> MemoryBroker | RedisBroker:
    """A ready broker: ``memory``, or ``redis`` at ``url`` (checked to answer).

    Raises:
        WslabError: Unknown kind, no URL for Redis, or Redis unreachable.
    """
    if kind == "memory":
        return MemoryBroker()
    if kind != "redis":
        raise WslabError(f"unknown broker {kind!r}; known: memory, redis")
    if not url:
        raise WslabError("the redis broker needs a URL (redis://HOST:PORT)")
    broker = RedisBroker(url)
    await broker.check()
    return broker
