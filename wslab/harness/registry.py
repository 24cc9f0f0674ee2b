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

Faults: when the broker comes back after losing Redis (its ``on_reconnect`` hooks), the
node writes its registry entries again from the connections it holds (a restarted Redis
without persistence has none, one with persistence may keep entries of connections that
closed meanwhile). A broadcast or direct message that the broker could not publish is
counted (``broadcasts_failed``, ``directs_failed``); the broker's own counters appear in
:attr:`ClusterNode.counts` as ``broker_*``, so a worker's ``stats`` carries them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from typing import Any, Protocol

from wslab.errors import ConfigError
from wslab.harness.broker import Broker, jittered_backoff
from wslab.harness.fanout import broadcast_prepared
from wslab.harness.server import LiveServer
from wslab.harness.session import Session
from wslab.priority import NORMAL

# KEYS: the hash, the worker's set; ARGV: the worker, then labels. Atomic in Redis.
_UNREGISTER = """
local gone = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], ARGV[i])
    gone = gone + 1
  end
  redis.call('SREM', KEYS[2], ARGV[i])
end
return gone
"""


class Registry(Protocol):
    """Connection label -> worker id."""

    async def register(self, conns: list[str], worker: str) -> None:
        """Record that ``worker`` holds ``conns``."""
        ...

    async def unregister(self, conns: list[str], worker: str) -> None:
        """Forget those of ``conns`` that ``worker`` still holds."""
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

    async def register(self, conns: list[str], worker: str) -> None:
        """Record the holder."""
        for conn in conns:
            self.where[conn] = worker

    async def unregister(self, conns: list[str], worker: str) -> None:
        """Forget the entries still ``worker``'s."""
        for conn in conns:
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

    async def register(self, conns: list[str], worker: str) -> None:
        """HSET + SADD for a batch, in one round trip."""
        if not conns:
            return
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.conns_key, mapping=dict.fromkeys(conns, worker))
            pipe.sadd(self._worker_key(worker), *conns)
            await pipe.execute()

    async def unregister(self, conns: list[str], worker: str) -> None:
        """Delete the entries ``worker`` still holds (atomic, a Lua script)."""
        if conns:
            await self._unregister(keys=[self.conns_key, self._worker_key(worker)],
                                   args=[worker, *conns])

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
        for start in range(0, len(members), 1000):
            await self.unregister(members[start:start + 1000], worker)
        await self.redis.delete(self._worker_key(worker))
        return len(members)


RESYNC_RETRIES = 8
"""Failed resyncs in a row before a worker waits for the broker's next reconnect."""


class ClusterNode:
    """One worker's membership of the cluster.

    Args:
        server: This worker's server (started or not).
        broker: The fan-out bus shared by all workers.
        registry: The shared connection registry.
        worker: This worker's id.
        namespace: Channel prefix, the same for every worker of a run.
        prepared: Write each broadcast as one prepared frame to every connection that can
            take it (``fanout.py``); the others, and every broadcast when False, go through
            their sessions. Only for a server that keeps counts, not rows per message.
    """

    def __init__(self, server: LiveServer, broker: Broker, registry: Registry, worker: str,
                 namespace: str = "wslab", *, prepared: bool = False) -> None:
        if prepared and server.recorder.keeps_frames:
            raise ConfigError("prepared broadcasts skip the per-message log: give the server "
                              "record=False")
        self.server = server
        self.broker = broker
        self.registry = registry
        self.worker = worker
        self.broadcast_channel = f"{namespace}:broadcast"
        self.namespace = namespace
        self._adds: list[str] = []
        self._drops: list[str] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._counts = {"broadcasts_in": 0, "broadcasts_failed": 0, "directs_in": 0,
                        "directs_local": 0, "directs_remote": 0, "directs_unknown": 0,
                        "directs_failed": 0, "register_errors": 0, "resyncs": 0,
                        "reregistered": 0, "resync_errors": 0}
        self._resync = False
        self._resync_failures = 0  # in a row; retried with backoff up to RESYNC_RETRIES
        self._rng = random.Random()
        self._index = 0
        self.prepared = prepared
        # Per broadcast received: the time to hand it to every connection, on the clock and
        # in this process's CPU (the difference is time the other processes had the core).
        self.fanout_s: list[float] = []
        self.fanout_cpu_s: list[float] = []
        self.fanout_prepared = 0  # connections reached by a prepared frame
        self.fanout_pushed = 0  # connections reached through their session
        server.on_open.append(self._opened)
        server.on_close.append(self._closed)
        hooks = getattr(broker, "on_reconnect", None)
        if isinstance(hooks, list):
            hooks.append(self.resync)

    @property
    def counts(self) -> dict[str, int]:
        """This node's counters, with the broker's as ``broker_*`` (current values)."""
        theirs = getattr(self.broker, "counts", None)
        if isinstance(theirs, dict):
            self._counts.update({f"broker_{k}": int(v) for k, v in theirs.items()})
        return self._counts

    async def resync(self) -> None:
        """Rewrite this worker's registry entries from the connections it holds now.

        Queued to the registry writer, so it cannot interleave with a batch of opens and
        closes; returns once written.
        """
        self._resync = True
        self._idle.clear()
        self._wake.set()
        await self.settle()

    def direct_channel(self, worker: str) -> str:
        """The channel a worker listens on for messages to its own connections."""
        return f"{self.namespace}:direct:{worker}"

    async def start(self) -> None:
        """Subscribe to the broadcast channel and this worker's direct channel."""
        await self.broker.subscribe(self.broadcast_channel, self._on_broadcast)
        await self.broker.subscribe(self.direct_channel(self.worker), self._on_direct)
        self._writer = asyncio.get_running_loop().create_task(self._write())

    async def stop(self) -> None:
        """Write pending registry updates, then drop what this worker still holds."""
        await self.settle()
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        with contextlib.suppress(Exception):
            await self.registry.purge_worker(self.worker)

    async def settle(self) -> None:
        """Wait until every registry update queued so far is written."""
        while self._adds or self._drops or self._resync or not self._idle.is_set():
            await self._idle.wait()
            await asyncio.sleep(0)

    async def _write(self) -> None:
        """One writer batches opens and closes: a ramp of 10,000 is a few round trips."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            adds, self._adds = self._adds, []
            drops, self._drops = self._drops, []
            resync, self._resync = self._resync, False
            try:
                if resync:
                    held = list(self.server.sessions)
                    await self.registry.purge_worker(self.worker)
                    await self.registry.register(held, self.worker)
                    self._counts["resyncs"] += 1
                    self._counts["reregistered"] += len(held)
                    adds = [c for c in adds if c not in self.server.sessions]
                await self.registry.register(adds, self.worker)
                await self.registry.unregister(drops, self.worker)
            except Exception:
                self._counts["register_errors"] += len(adds) + len(drops)
                if resync:
                    self._counts["resync_errors"] += 1
                    self._retry_resync()
            else:
                if resync:
                    self._resync_failures = 0
            if not self._adds and not self._drops and not self._resync \
                    and not self._resync_failures:
                self._idle.set()

    def _retry_resync(self) -> None:
        """Try a failed resync again after a backoff (Redis just came back: the first
        command may meet a stale pooled connection). :meth:`settle` waits meanwhile; after
        ``RESYNC_RETRIES`` failures in a row it gives up until the broker's next reconnect."""
        self._resync_failures += 1
        if self._resync_failures > RESYNC_RETRIES:
            self._resync_failures = 0
            return

        def again() -> None:
            self._resync = True
            self._wake.set()

        delay = jittered_backoff(self._resync_failures - 1, 0.05, 1.0, self._rng)
        asyncio.get_running_loop().call_later(delay, again)

    def _queue(self, batch: list[str], conn: str) -> None:
        batch.append(conn)
        self._idle.clear()
        self._wake.set()

    def _opened(self, conn: str, session: Session) -> None:
        self._queue(self._adds, conn)

    def _closed(self, conn: str) -> None:
        self._queue(self._drops, conn)

    async def broadcast(self, payload: bytes, is_text: bool = True) -> bool:
        """Publish to every worker (this one included); ``False`` if the broker could not."""
        ok = await self.broker.publish(self.broadcast_channel,
                                       (b"T" if is_text else b"B") + payload)
        if ok is False:
            self._counts["broadcasts_failed"] += 1
            return False
        return True

    async def send_direct(self, conn: str, payload: bytes, is_text: bool = True) -> str:
        """Deliver to one connection wherever it is.

        Returns:
            ``local``, ``remote``, ``unknown`` (not registered) or ``failed`` (the registry
            or the broker could not be reached; counted, not raised).
        """
        if conn in self.server.sessions:
            self._deliver([conn], payload, is_text)
            self._counts["directs_local"] += 1
            return "local"
        try:
            worker = await self.registry.lookup(conn)
        except Exception:  # Redis down: the message is counted as failed, not lost silently
            self._counts["directs_failed"] += 1
            return "failed"
        if worker is None:
            self._counts["directs_unknown"] += 1
            return "unknown"
        flag = b"T" if is_text else b"B"
        ok = await self.broker.publish(self.direct_channel(worker),
                                       flag + conn.encode() + b"\n" + payload)
        if ok is False:
            self._counts["directs_failed"] += 1
            return "failed"
        self._counts["directs_remote"] += 1
        return "remote"

    def _deliver(self, conns: list[str] | None, payload: bytes, is_text: bool) -> int:
        self._index += 1
        kind = "broadcast" if conns is None else "direct"
        return self.server.push_to(conns, self._index, time.monotonic(), NORMAL, kind,
                                   payload, is_text)

    def _on_broadcast(self, data: bytes) -> None:
        self._counts["broadcasts_in"] += 1
        began, cpu = time.perf_counter(), time.thread_time()
        payload, is_text = data[1:], data[:1] == b"T"
        if self.prepared:
            self._fan_out(payload, is_text)
        else:
            self.fanout_pushed += self._deliver(None, payload, is_text)
        self.fanout_s.append(time.perf_counter() - began)
        self.fanout_cpu_s.append(time.thread_time() - cpu)

    def _fan_out(self, payload: bytes, is_text: bool) -> None:
        """One prepared frame to every connection that takes it, a push to the others."""
        self._index += 1
        done = broadcast_prepared(self.server, self._index, payload, is_text)
        self.fanout_prepared += done.written
        self.fanout_pushed += len(done.rest)

    def _on_direct(self, data: bytes) -> None:
        self._counts["directs_in"] += 1
        conn, _, payload = data[1:].partition(b"\n")
        self._deliver([conn.decode()], payload, data[:1] == b"T")
