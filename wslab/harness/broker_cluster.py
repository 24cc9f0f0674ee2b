"""The broker and the registry on a Redis Cluster: sharded pub/sub (Redis 7).

What lives here: :class:`RedisClusterBroker` (the :class:`~wslab.harness.broker.Broker`
protocol over ``SPUBLISH``/``SSUBSCRIBE``), :func:`parse_seeds` (the seed nodes of a
``--redis`` value) and :func:`cluster_registry` (the connection registry with its keys in
one hash slot). What must not live here: starting the cluster's processes
(``redis_cluster.py``), the single-Redis broker (``broker.py``), the registry's logic
(``registry.py``).

Why sharded pub/sub: a classic ``PUBLISH`` on a cluster is copied over the cluster bus to
every node, so each node carries all the fan-out traffic however many nodes there are. An
``SPUBLISH`` goes only to the primary that owns the channel's hash slot (CRC16 of the name,
as for a key) and reaches the clients subscribed there with ``SSUBSCRIBE``; channels spread
over the shards, and so does the traffic.

How it is driven: redis-py (8.x) has ``ssubscribe`` in its asyncio cluster pub/sub, but
that client reconnects and resubscribes on its own, and a shard's restart (which wiped the
registry keys it held: no persistence) would go unnoticed. So, as :class:`RedisBroker`
does for one Redis, this broker holds one subscriber connection per primary that never
retries by itself, and publishes through redis-py's cluster client (which routes
``SPUBLISH`` by slot). Each connection also subscribes to a *watch* channel whose slot its
node owns, so a node going away is noticed even where no channel of ours lives (the node
holding the registry, say).

=====================================  ==================================================
event on a node's connection           what the broker does
=====================================  ==================================================
connection drops (node stopped,        marks the node down (publishes to its channels fail
killed, unreachable)                   at once, counted), backs off with jitter, refreshes
                                       the slot map, reconnects once the node says
                                       ``cluster_state:ok``, re-subscribes its channels
                                       (on their current owners), runs ``on_reconnect``
``sunsubscribe`` it did not ask for    the channel's slot moved (resharding, failover):
                                       refresh the slot map, subscribe on the new owner
=====================================  ==================================================

The guarantee is the one of :class:`~wslab.harness.broker.RedisBroker`, per shard: a
message published while its channel's shard is down is refused and counted
(``publish_failed``); once :meth:`subscribe` or a reconnect returns, the subscription is
confirmed and nothing published afterwards is missed; messages on other shards' channels
flow during the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from wslab.errors import WslabError
from wslab.harness.broker import (
    BROKER_COUNTERS,
    Callback,
    ReconnectHook,
    _one_line,
    jittered_backoff,
)

WATCH_PREFIX = "wslab-watch:"
"""Watch channels are ``wslab-watch:{N}``; N is the first whose slot the node owns."""


def parse_seeds(url: str) -> list[tuple[str, int]]:
    """Seed nodes from ``redis://H:P,redis://H2:P2`` (or ``H:P,H2:P2``).

    Raises:
        WslabError: Empty, or a piece without a host or with a bad port.
    """
    seeds: list[tuple[str, int]] = []
    for piece in (p.strip() for p in url.split(",")):
        if not piece:
            continue
        parsed = urlparse(piece if "://" in piece else f"redis://{piece}")
        try:
            port = parsed.port or 6379
        except ValueError:
            raise WslabError(f"bad Redis Cluster seed {piece!r}: the port") from None
        if parsed.scheme not in ("redis", "rediss") or not parsed.hostname:
            raise WslabError(f"bad Redis Cluster seed {piece!r}: want redis://HOST:PORT")
        seeds.append((parsed.hostname, port))
    if not seeds:
        raise WslabError("the redis-cluster broker needs seed nodes (redis://HOST:PORT,...)")
    return seeds


def cluster_registry(redis: Any, namespace: str) -> Any:
    """A :class:`~wslab.harness.registry.RedisRegistry` whose keys share one hash slot.

    The registry writes the label hash and a worker's set in one transaction and one Lua
    script; on a cluster those keys must live in one slot, so the namespace becomes a
    hash tag (``{NS}:conns``, ``{NS}:worker:ID``).
    """
    from wslab.harness.registry import RedisRegistry

    return RedisRegistry(redis, "{" + namespace + "}")


async def connect_cluster_broker(url: str | None) -> RedisClusterBroker:
    """A ready :class:`RedisClusterBroker` (slot map learnt, every primary connected).

    Raises:
        WslabError: No or bad seeds, or the cluster unreachable (one line).
    """
    if not url:
        raise WslabError("the redis-cluster broker needs seed nodes (redis://HOST:PORT,...)")
    broker = RedisClusterBroker(url)
    await broker.check()
    return broker


@dataclass(eq=False)
class _Link:
    """The subscriber connection to one primary and the channels subscribed there."""

    name: str  # host:port
    host: str
    port: int
    channels: set[str] = field(default_factory=set)
    watch: str = ""
    client: Any = None
    pubsub: Any = None
    reader: asyncio.Task[None] | None = None
    up: asyncio.Event = field(default_factory=asyncio.Event)
    confirmed: dict[str, asyncio.Event] = field(default_factory=dict)


class RedisClusterBroker:
    """Sharded pub/sub on a Redis Cluster (see the module's table for faults).

    Args:
        url: Seed nodes, ``redis://H:P[,redis://H:P...]``.
        backoff_base_s: First reconnect delay ceiling (see ``jittered_backoff``).
        backoff_max_s: Largest reconnect delay ceiling.
        seed: Seed of the reconnect jitter (None: unpredictable).
        publish_timeout_s: Longest wait for one SPUBLISH before it counts as failed.
        confirm_timeout_s: Longest wait for a node to confirm a (re)subscription.
    """

    def __init__(self, url: str, *, backoff_base_s: float = 0.05, backoff_max_s: float = 1.0,
                 seed: int | None = None, publish_timeout_s: float = 2.0,
                 confirm_timeout_s: float = 5.0) -> None:
        from redis.asyncio.cluster import ClusterNode, RedisCluster
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.seeds = parse_seeds(url)
        self.redis: Any = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in self.seeds],
            retry=Retry(NoBackoff(), 1), socket_connect_timeout=1.0, socket_timeout=5.0)
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.publish_timeout_s = publish_timeout_s
        self.confirm_timeout_s = confirm_timeout_s
        self._rng = random.Random(seed)
        self._subs: dict[str, list[Callback]] = {}
        self._links: dict[str, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.counts: dict[str, int] = dict.fromkeys((*BROKER_COUNTERS, "rerouted"), 0)
        self.outages: list[tuple[str, float, float | None]] = []
        self.last_error: str | None = None
        self.on_reconnect: list[ReconnectHook] = []

    @property
    def up(self) -> bool:
        """Whether every node's connection is up."""
        return all(link.up.is_set() for link in self._links.values())

    def owner(self, channel: str) -> str:
        """``host:port`` of the primary owning ``channel``'s slot (from the slot map)."""
        slot = self.redis.keyslot(channel)
        return str(self.redis.nodes_manager.get_node_from_slot(slot).name)

    async def check(self, timeout: float = 5.0) -> None:
        """Learn the slot map and connect to every primary, or raise one line naming
        the seeds."""
        try:
            await asyncio.wait_for(self._start(), timeout)
        except Exception as exc:  # refused, not a cluster, timeout
            await self.close()
            seeds = ",".join(f"{h}:{p}" for h, p in self.seeds)
            raise WslabError(f"cannot reach the Redis Cluster at {seeds}: "
                             f"{_one_line(exc)}") from None

    async def _start(self) -> None:
        await self.redis.initialize()
        for node in self.redis.get_primaries():
            await self._link(node.name)

    async def _link(self, name: str) -> _Link:
        """The connection to ``name``, opened (watch channel confirmed) if new."""
        link = self._links.get(name)
        if link is not None:
            return link
        host, _, port = name.rpartition(":")
        link = self._links[name] = _Link(name, host, int(port))
        try:
            await self._connect(link)
        except BaseException:  # not kept half-open: the next caller tries afresh
            del self._links[name]
            if link.client is not None:
                with contextlib.suppress(Exception):
                    await link.client.aclose()
            raise
        link.up.set()
        link.reader = asyncio.get_running_loop().create_task(self._read(link))
        return link

    def _watch_channel(self, name: str) -> str:
        for i in range(1 << 20):
            channel = f"{WATCH_PREFIX}{{{i}}}"
            if self.owner(channel) == name:
                return channel
        raise WslabError(f"node {name} owns no hash slot")

    async def _connect(self, link: _Link) -> None:
        """Open a fresh subscriber connection and SSUBSCRIBE (confirmed) the watch channel
        and ``link.channels``; the node must say ``cluster_state:ok`` first."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        if link.client is None:
            link.client = aioredis.Redis(host=link.host, port=link.port,
                                         retry=Retry(NoBackoff(), 0),
                                         socket_connect_timeout=1.0)
        info = await asyncio.wait_for(link.client.execute_command("CLUSTER", "INFO"),
                                      self.confirm_timeout_s)
        text = info.decode() if isinstance(info, bytes) else str(info)
        if "cluster_state:ok" not in text:
            raise ConnectionError(f"{link.name} is not in a healthy cluster yet")
        link.watch = self._watch_channel(link.name)
        pubsub = link.client.pubsub()
        channels = [link.watch, *sorted(link.channels)]
        link.confirmed = {c: asyncio.Event() for c in channels}
        try:
            for channel in channels:  # one per command: SSUBSCRIBE wants a single slot
                await asyncio.wait_for(pubsub.ssubscribe(channel), self.confirm_timeout_s)
            deadline = time.monotonic() + self.confirm_timeout_s
            while not all(e.is_set() for e in link.confirmed.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{link.name} did not confirm the subscriptions")
                msg = await pubsub.get_message(timeout=min(remaining, 0.5))
                if msg is not None:
                    self._dispatch(link, msg)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        link.pubsub = pubsub

    async def publish(self, channel: str, data: bytes) -> bool:
        """SPUBLISH ``data`` on ``channel`` (to the shard owning its slot).

        Returns:
            ``True`` if the shard took it; ``False`` (``publish_failed`` counted) if the
            broker knows that shard is down or the command failed or timed out.
        """
        try:
            link = self._links.get(self.owner(channel))
            if link is not None and not link.up.is_set():
                self.counts["publish_failed"] += 1
                return False
            receivers = await asyncio.wait_for(self.redis.spublish(channel, data),
                                               self.publish_timeout_s)
        except Exception as exc:  # refused, reset, CLUSTERDOWN, timeout
            self.counts["publish_failed"] += 1
            self.last_error = _one_line(exc)
            return False
        self.counts["published"] += 1
        if not receivers:
            self.counts["publish_unheard"] += 1
        return True

    async def subscribe(self, channel: str, callback: Callback) -> None:
        """SSUBSCRIBE on the owning node (confirmed before returning); dispatch to
        ``callback``."""
        first = channel not in self._subs
        self._subs.setdefault(channel, []).append(callback)
        if first:
            await self._subscribe_on_owner(channel)

    async def _subscribe_on_owner(self, channel: str) -> None:
        link = await self._link(self.owner(channel))
        link.channels.add(channel)
        if not link.up.is_set():  # the reconnect subscribes every channel of the link
            try:
                await asyncio.wait_for(link.up.wait(), self.confirm_timeout_s)
            except TimeoutError:
                raise WslabError(f"Redis Cluster node {link.name} is down; cannot "
                                 f"subscribe to {channel}") from None
            return
        confirmed = link.confirmed[channel] = asyncio.Event()
        await link.pubsub.ssubscribe(channel)
        try:
            await asyncio.wait_for(confirmed.wait(), self.confirm_timeout_s)
        except TimeoutError:
            raise WslabError(f"Redis Cluster node {link.name} did not confirm the "
                             f"subscription to {channel}") from None

    def _dispatch(self, link: _Link, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        channel = msg["channel"].decode() if isinstance(msg.get("channel"), bytes) else ""
        if kind == "ssubscribe":
            event = link.confirmed.get(channel)
            if event is not None:
                event.set()
        elif kind == "sunsubscribe":  # we never ask: the slot left this node
            self._spawn(self._moved(link, channel))
        elif kind == "smessage" and channel in self._subs:
            self.counts["delivered"] += 1
            for callback in self._subs[channel]:
                callback(msg["data"])

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _moved(self, link: _Link, channel: str) -> None:
        """A channel's slot moved away from ``link``'s node: follow it to its new owner."""
        link.channels.discard(channel)
        link.confirmed.pop(channel, None)
        attempt = 0
        while not self._closing:
            try:
                await self.redis.nodes_manager.initialize()
                if channel == link.watch:
                    link.watch = self._watch_channel(link.name)
                    link.confirmed[link.watch] = asyncio.Event()
                    await link.pubsub.ssubscribe(link.watch)
                elif channel in self._subs:
                    await self._subscribe_on_owner(channel)
                self.counts["rerouted"] += 1
                return
            except Exception as exc:  # topology still settling: back off
                self.last_error = _one_line(exc)
                await asyncio.sleep(jittered_backoff(attempt, self.backoff_base_s,
                                                     self.backoff_max_s, self._rng))
                attempt += 1

    async def _read(self, link: _Link) -> None:
        while True:
            try:
                msg = await link.pubsub.get_message(timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the node went away
                if self._closing:
                    return
                await self._reconnect(link, exc)
                continue
            if msg is not None:
                self._dispatch(link, msg)

    async def _reconnect(self, link: _Link, exc: BaseException) -> None:
        """Back off, refresh the slot map, reconnect, re-subscribe, run the hooks."""
        link.up.clear()
        down_at = time.monotonic()
        self.counts["disconnects"] += 1
        self.last_error = _one_line(exc)
        self.outages.append((link.name, down_at, None))
        index = len(self.outages) - 1
        old, link.pubsub = link.pubsub, None
        if old is not None:
            with contextlib.suppress(Exception):
                await old.aclose()
        attempt = 0
        while True:
            await asyncio.sleep(jittered_backoff(attempt, self.backoff_base_s,
                                                 self.backoff_max_s, self._rng))
            attempt += 1
            self.counts["reconnect_attempts"] += 1
            try:
                with contextlib.suppress(Exception):  # the map may not change at all
                    await self.redis.nodes_manager.initialize()
                moved = {c for c in link.channels if self.owner(c) != link.name}
                link.channels -= moved
                await self._connect(link)
            except Exception as retry_exc:  # still down: back off further
                self.last_error = _one_line(retry_exc)
                continue
            break
        self.counts["reconnects"] += 1
        self.counts["resubscribed"] += len(link.channels)
        self.outages[index] = (link.name, down_at, time.monotonic())
        link.up.set()
        for channel in moved:
            self._spawn(self._subscribe_on_owner(channel))
        for hook in list(self.on_reconnect):
            try:
                await hook()
            except Exception:  # a hook's failure must not stop the reader
                self.counts["hook_errors"] += 1

    async def close(self) -> None:
        """Stop the readers and close every connection."""
        self._closing = True
        tasks = [*self._tasks, *(lk.reader for lk in self._links.values() if lk.reader)]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for link in self._links.values():
            for closable in (link.pubsub, link.client):
                if closable is not None:
                    with contextlib.suppress(Exception):
                        await closable.aclose()
        self._links.clear()
        with contextlib.suppress(Exception):
            await self.redis.aclose()
