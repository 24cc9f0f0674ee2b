"""Message brokers for fan-out across worker processes: in memory, or Redis pub/sub.

What lives here: the :class:`Broker` protocol (``publish(channel, data)``,
``subscribe(channel, callback)``, ``close()``), :class:`MemoryBroker` for a single worker
(same interface, delivery on the next turn of the event loop, as a network broker would),
:class:`RedisBroker` on ``redis.asyncio`` pub/sub, :func:`connect_broker`, which checks
that Redis answers before a run starts (a clear one-line error naming the URL otherwise),
and :func:`jittered_backoff`, the retry delay shared with the reconnecting clients.
What must not live here: starting ``redis-server`` (``cluster.py``), the connection
registry (``registry.py``), the sharded broker on a Redis Cluster (``broker_cluster.py``,
which builds on this module), anything about WebSocket connections.

Redis pub/sub is fire-and-forget: a message published while a subscriber is not yet
subscribed is lost. :meth:`RedisBroker.subscribe` therefore returns only once Redis has
confirmed the subscription.

When the connection to Redis drops (Redis restarted, killed, unreachable), the
:class:`RedisBroker` notices on its subscriber connection, reconnects with exponential
backoff and jitter, subscribes to every channel again and then runs its ``on_reconnect``
hooks (the cluster node uses one to write its registry entries again: a restarted Redis
without persistence has forgotten them). Nothing published in between vanishes without
trace: :meth:`RedisBroker.publish` returns ``False`` and counts ``publish_failed`` for
every message that did not reach Redis, including those refused at once because the
broker knows Redis is down. What Redis pub/sub cannot say is whether *another* worker was
subscribed when a message went out; ``publish_unheard`` counts messages that reached no
subscriber at all.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlparse

from wslab.errors import WslabError

Callback = Callable[[bytes], None]
ReconnectHook = Callable[[], Awaitable[None]]

BROKER_COUNTERS = ("published", "publish_failed", "publish_unheard", "delivered",
                   "disconnects", "reconnect_attempts", "reconnects", "resubscribed",
                   "hook_errors")


def jittered_backoff(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """The delay before retry number ``attempt`` (0 first): exponential, with equal jitter.

    The ceiling doubles with every attempt from ``base_s`` up to ``max_s``; the delay is
    drawn uniformly from its upper half, so retries still back off while many clients
    that lost their server at the same moment spread out instead of returning together.

    Args:
        attempt: How many retries came before this one.
        base_s: The first ceiling, in seconds.
        max_s: The largest ceiling, in seconds.
        rng: Source of the jitter (seed it for a reproducible run).
    """
    ceiling = min(max_s, base_s * (2.0 ** min(attempt, 30)))
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


class Broker(Protocol):
    """Publish bytes on named channels; every subscriber of a channel gets them."""

    async def publish(self, channel: str, data: bytes) -> bool:
        """Send ``data`` to every subscriber of ``channel`` (including this process).

        Returns:
            Whether the message reached the bus (``False``: counted as failed).
        """
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
        self.counts: dict[str, int] = dict.fromkeys(BROKER_COUNTERS, 0)

    @property
    def published(self) -> int:
        """Messages published."""
        return self.counts["published"]

    async def publish(self, channel: str, data: bytes) -> bool:
        """Schedule every subscriber's callback (never fails)."""
        self.counts["published"] += 1
        loop = asyncio.get_running_loop()
        subs = self._subs.get(channel, ())
        if not subs:
            self.counts["publish_unheard"] += 1
        for callback in subs:
            loop.call_soon(callback, data)
        return True

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


def _one_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text or type(exc).__name__


class RedisBroker:
    """Redis pub/sub: one connection publishes, one subscribes, dispatches and reconnects.

    Args:
        url: ``redis://HOST:PORT/DB``.
        backoff_base_s: First reconnect delay ceiling (see :func:`jittered_backoff`).
        backoff_max_s: Largest reconnect delay ceiling.
        seed: Seed of the reconnect jitter (None: unpredictable).
        publish_timeout_s: Longest wait for one PUBLISH before it counts as failed.
        confirm_timeout_s: Longest wait for Redis to confirm a (re)subscription.
    """

    def __init__(self, url: str, *, backoff_base_s: float = 0.05, backoff_max_s: float = 1.0,
                 seed: int | None = None, publish_timeout_s: float = 2.0,
                 confirm_timeout_s: float = 5.0) -> None:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        # One immediate retry replaces a pooled connection that went stale while Redis
        # restarted; beyond that a command fails at once and the caller counts it.
        self.redis: Any = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 1),
                                                  socket_connect_timeout=1.0)
        # The subscriber never retries on its own: redis-py would reconnect and resubscribe
        # silently, and the outage (and the registry it wiped) would go unnoticed.
        self._sub_redis: Any = aioredis.Redis.from_url(url, retry=Retry(NoBackoff(), 0),
                                                       socket_connect_timeout=1.0)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.publish_timeout_s = publish_timeout_s
        self.confirm_timeout_s = confirm_timeout_s
        self._rng = random.Random(seed)
        self._pubsub: Any = None
        self._subs: dict[str, list[Callback]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._confirmed: dict[str, asyncio.Event] = {}
        self._up = asyncio.Event()
        self._up.set()
        self._closing = False
        self.counts: dict[str, int] = dict.fromkeys(BROKER_COUNTERS, 0)
        self.outages: list[tuple[float, float | None]] = []
        self.last_error: str | None = None
        self.on_reconnect: list[ReconnectHook] = []

    @property
    def up(self) -> bool:
        """Whether the subscriber connection is up and every channel subscribed."""
        return self._up.is_set()

    @property
    def published(self) -> int:
        """Messages Redis accepted."""
        return self.counts["published"]

    @property
    def delivered(self) -> int:
        """Messages received from Redis and dispatched."""
        return self.counts["delivered"]

    async def check(self, timeout: float = 3.0) -> None:
        """Raise a one-line :class:`WslabError` naming the URL if Redis does not answer."""
        try:
            await asyncio.wait_for(self.redis.ping(), timeout)
        except Exception as exc:  # connection refused, DNS, auth, timeout
            await self.close()
            raise WslabError(f"cannot reach Redis at {_describe_url(self.url)}: "
                             f"{_one_line(exc)}") from None

    async def publish(self, channel: str, data: bytes) -> bool:
        """PUBLISH ``data`` on ``channel``.

        Returns:
            ``True`` if Redis took it; ``False`` (and ``publish_failed`` counted) if the
            broker knows Redis is down or the command failed or timed out.
        """
        if not self._up.is_set():
            self.counts["publish_failed"] += 1
            return False
        try:
            receivers = await asyncio.wait_for(self.redis.publish(channel, data),
                                               self.publish_timeout_s)
        except Exception as exc:  # connection refused or reset, timeout
            self.counts["publish_failed"] += 1
            self.last_error = _one_line(exc)
            return False
        self.counts["published"] += 1
        if not receivers:
            self.counts["publish_unheard"] += 1
        return True

    async def subscribe(self, channel: str, callback: Callback) -> None:
        """SUBSCRIBE (confirmed by Redis before returning) and dispatch to ``callback``."""
        first = channel not in self._subs
        self._subs.setdefault(channel, []).append(callback)
        if not first:
            return
        if not self._up.is_set():
            # The reconnect loop subscribes to every channel in ``_subs``, this one too.
            try:
                await asyncio.wait_for(self._up.wait(), self.confirm_timeout_s)
            except TimeoutError:
                raise WslabError(f"Redis at {_describe_url(self.url)} is down; cannot "
                                 f"subscribe to {channel}") from None
            return
        if self._pubsub is None:
            self._pubsub = self._sub_redis.pubsub()
        confirmed = self._confirmed[channel] = asyncio.Event()
        await self._pubsub.subscribe(channel)
        if self._reader is None:
            self._reader = asyncio.get_running_loop().create_task(self._read())
        # Wait for Redis to confirm, so nothing published after this call is missed.
        try:
            await asyncio.wait_for(confirmed.wait(), self.confirm_timeout_s)
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
        self.counts["delivered"] += 1
        for callback in self._subs.get(msg["channel"].decode(), ()):
            callback(msg["data"])

    async def _read(self) -> None:
        while True:
            try:
                assert self._pubsub is not None
                msg = await self._pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the connection dropped: Redis restarted or died
                if self._closing:
                    return
                await self._reconnect(exc)
                continue
            if msg is not None:
                self._dispatch(msg)

    async def _reconnect(self, exc: BaseException) -> None:
        """Back off, open a new subscriber connection, resubscribe, run the hooks."""
        self._up.clear()
        down_at = time.monotonic()
        self.counts["disconnects"] += 1
        self.last_error = _one_line(exc)
        self.outages.append((down_at, None))
        old, self._pubsub = self._pubsub, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()
        attempt = 0
        while True:
            await asyncio.sleep(jittered_backoff(attempt, self.backoff_base_s,
                                                 self.backoff_max_s, self._rng))
            attempt += 1
            self.counts["reconnect_attempts"] += 1
            pubsub = self._sub_redis.pubsub()
            try:
                await self._subscribe_all(pubsub)
            except Exception as retry_exc:  # still down: back off further
                self.last_error = _one_line(retry_exc)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                continue
            break
        self._pubsub = pubsub
        self.counts["reconnects"] += 1
        self.counts["resubscribed"] += len(self._subs)
        self.outages[-1] = (down_at, time.monotonic())
        self._up.set()
        for hook in list(self.on_reconnect):
            try:
                await hook()
            except Exception:  # a hook's failure must not stop the reader
                self.counts["hook_errors"] += 1

    async def _subscribe_all(self, pubsub: Any) -> None:
        """SUBSCRIBE every known channel on ``pubsub`` and read until Redis confirms each."""
        channels = list(self._subs)
        self._confirmed = {c: asyncio.Event() for c in channels}
        if not channels:
            await asyncio.wait_for(self.redis.ping(), self.confirm_timeout_s)
            return
        await asyncio.wait_for(pubsub.subscribe(*channels), self.confirm_timeout_s)
        deadline = time.monotonic() + self.confirm_timeout_s
        while not all(e.is_set() for e in self._confirmed.values()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("subscriptions not confirmed")
            msg = await pubsub.get_message(timeout=min(remaining, 0.5))
            if msg is not None:
                self._dispatch(msg)

    async def close(self) -> None:
        """Stop the reader and close both connections."""
        self._closing = True
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
            self._pubsub = None
        for client in (self._sub_redis, self.redis):
            with contextlib.suppress(Exception):
                await client.aclose()


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
