"""Which worker holds which connection, and the node that joins a worker to the cluster.

What lives here: the connection registry (:class:`MemoryRegistry` for one worker,
:class:`RedisRegistry` kept in a Redis hash plus one set per worker, so a dead worker's
entries can be purged) and :class:`ClusterNode`, which ties one
:class:`~wslab.harness.server.LiveServer` to a broker and a registry: it registers every
connection the server opens and removes it when it closes, fans broadcasts out through the
broker (every worker, the sender included, delivers to its own connections when the
message comes back), and routes a direct message to the worker holding its target.
What must not live here: starting processes or Redis (``cluster.py``), the broker
transports (``broker.py``).

Bus messages are bytes: one flag byte (``T`` text, ``B`` binary), then for direct
messages the target's label and a newline, then the application payload.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any, Protocol

from wslab.harness.broker import Broker
from wslab.harness.server import LiveServer
from wslab.harness.session import Session

_UNREGISTER = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
redis.call('SREM', KEYS[2], ARGV[1])
return 1
"""


class Registry(Protocol):
    """Connection label -> worker id."""

    async def register(self, conn: str, worker: str) -> None:
        """Record that ``worker`` holds ``conn``."""
        ...

    async def unregister(self, conn: str, worker: str) -> None:
        """Forget ``conn`` if ``worker`` still holds it."""
        ...

    async def lookup(self, conn: str) -> str | None:
        """The worker holding ``conn``, if any."""
        ...

    async def count(self) -> int:
        """How many connections are registered."""
        ...

    async def sample(self, count: int, exclude_worker: str | None = None) -> list[str]:
        """Up to ``count`` registered labels, skipping those of ``exclude_worker``."""
        ...

    async def purge_worker(self, worker: str) -> int:
        """Remove every entry of a (dead) worker; how many went."""
        ...


class MemoryRegistry:
    """The single-process registry."""

    def __init__(self) -> None:
        self.where: dict[str, str] = {}

    async def register(self, conn: str, worker: str) -> None:
        """Record the holder."""
        self.where[conn] = worker

    async def unregister(self, conn: str, worker: str) -> None:
        """Forget the entry if still ``worker``'s."""
        if self.where.get(conn) == worker:
            del self.where[conn]

    async def lookup(self, conn: str) -> str | None:
        """The holder."""
        return self.where.get(conn)

    async def count(self) -> int:
        """Entries."""
        return len(self.where)

    async def sample(self, count: int, exclude_worker: str | None = None) -> list[str]:
        """First ``count`` labels not held by ``exclude_worker``."""
        return [c for c, w in self.where.items() if w != exclude_worker][:count]

    async def purge_worker(self, worker: str) -> int:
        """Drop a worker's entries."""
        gone = [c for c, w in self.where.items() if w == worker]
        for c in gone:
            del self.where[c]
        return len(gone)


class RedisRegistry:
    """The registry in Redis: hash ``NS:conns`` (label -> worker), sets ``NS:worker:ID``.

    Args:
        redis: A ``redis.asyncio.Redis`` client.
        namespace: Key prefix (one per run, so runs sharing a Redis do not mix).
    """

    def __init__(self, redis: Any, namespace: str) -> None:
        self.redis = redis
        self.conns_key = f"{namespace}:conns"
        self.namespace = namespace
        self._unregister = redis.register_script(_UNREGISTER)

    def _worker_key(self, worker: str) -> str:
        return f"{self.namespace}:worker:{worker}"

    async def register(self, conn: str, worker: str) -> None:
        """HSET + SADD in one round trip."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.conns_key, conn, worker)
            pipe.sadd(self._worker_key(worker), conn)
            await pipe.execute()

    async def unregister(self, conn: str, worker: str) -> None:
        """Delete the entry only if ``worker`` still holds it (atomic, a Lua script)."""
        await self._unregister(keys=[self.conns_key, self._worker_key(worker)],
                               args=[conn, worker])

    async def lookup(self, conn: str) -> str | None:
        """HGET."""
        value = await self.redis.hget(self.conns_key, conn)
        return value.decode() if value is not None else None

    async def count(self) -> int:
        """HLEN."""
        return int(await self.redis.hlen(self.conns_key))

    async def sample(self, count: int, exclude_worker: str | None = None) -> list[str]:
        """HSCAN until ``count`` labels held by other workers are found."""
        found: list[str] = []
        async for conn, worker in self.redis.hscan_iter(self.conns_key, count=500):
            if exclude_worker is None or worker.decode() != exclude_worker:
                found.append(conn.decode())
                if len(found) >= count:
                    break
        return found

    async def purge_worker(self, worker: str) -> int:
        """Remove a worker's entries (those it still holds) and its set."""
        members = [m.decode() for m in await self.redis.smembers(self._worker_key(worker))]
        for conn in members:
            await self.unregister(conn, worker)
        await self.redis.delete(self._worker_key(worker))
        return len(members)


class ClusterNode:
    """One worker's membership of the cluster.

    Args:
        server: This worker's server (started or not).
        broker: The fan-out bus shared by all workers.
        registry: The shared connection registry.
        worker: This worker's id.
        namespace: Channel prefix, the same for every worker of a run.
    """

    def __init__(self, server: LiveServer, broker: Broker, registry: Registry, worker: str,
                 namespace: str = "wslab") -> None:
        self.server = server
        self.broker = broker
        self.registry = registry
        self.worker = worker
        self.broadcast_channel = f"{namespace}:broadcast"
        self.namespace = namespace
        self._pending: set[asyncio.Task[Any]] = set()
        self.counts = {"broadcasts_in": 0, "directs_in": 0, "directs_local": 0,
                       "directs_remote": 0, "directs_unknown": 0, "register_errors": 0}
        self._index = 0
        server.on_open.append(self._opened)
        server.on_close.append(self._closed)

    def direct_channel(self, worker: str) -> str:
        """The channel a worker listens on for messages to its own connections."""
        return f"{self.namespace}:direct:{worker}"

    async def start(self) -> None:
        """Subscribe to the broadcast channel and this worker's direct channel."""
        await self.broker.subscribe(self.broadcast_channel, self._on_broadcast)
        await self.broker.subscribe(self.direct_channel(self.worker), self._on_direct)

    async def stop(self) -> None:
        """Wait for registry updates in flight, then drop what this worker still holds."""
        await self.settle()
        with contextlib.suppress(Exception):
            await self.registry.purge_worker(self.worker)

    async def settle(self) -> None:
        """Wait until every registry update started so far has finished."""
        while self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._pending.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.counts["register_errors"] += 1

    def _opened(self, conn: str, session: Session) -> None:
        self._background(self.registry.register(conn, self.worker))

    def _closed(self, conn: str) -> None:
        self._background(self.registry.unregister(conn, self.worker))

    async def broadcast(self, payload: bytes, is_text: bool = True) -> None:
        """Publish to every worker (this one included)."""
        await self.broker.publish(self.broadcast_channel, (b"T" if is_text else b"B") + payload)

    async def send_direct(self, conn: str, payload: bytes, is_text: bool = True) -> str:
        """Deliver to one connection wherever it is: ``local``, ``remote`` or ``unknown``."""
        if conn in self.server.sessions:
            self._deliver([conn], payload, is_text)
            self.counts["directs_local"] += 1
            return "local"
        worker = await self.registry.lookup(conn)
        if worker is None:
            self.counts["directs_unknown"] += 1
            return "unknown"
        flag = b"T" if is_text else b"B"
        await self.broker.publish(self.direct_channel(worker),
                                  flag + conn.encode() + b"\n" + payload)
        self.counts["directs_remote"] += 1
        return "remote"

    def _deliver(self, conns: list[str] | None, payload: bytes, is_text: bool) -> int:
        self._index += 1
        kind = "broadcast" if conns is None else "direct"
        return self.server.push_to(conns, self._index, time.monotonic(), "normal", kind,
                                   payload, is_text)

    def _on_broadcast(self, data: bytes) -> None:
        self.counts["broadcasts_in"] += 1
        self._deliver(None, data[1:], data[:1] == b"T")

    def _on_direct(self, data: bytes) -> None:
        self.counts["directs_in"] += 1
        conn, _, payload = data[1:].partition(b"\n")
        self._deliver([conn.decode()], payload, data[:1] == b"T")
