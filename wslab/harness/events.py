"""The server's inbound side: an event bus by message type and a batched processing queue.

What lives here: :class:`EventBus` (handlers subscribe to a message type, or to every type
with ``"*"``); :class:`Aggregator`, the work a service does with what its clients send:
parse each message as JSON, fold its numeric fields (top level, and one level into nested
objects as ``outer.inner``) into a count, sum, minimum and maximum per message type and
field, then *commit*: publish a consistent snapshot of that type's totals, as a service
writes once per transaction; and :class:`ProcessingQueue`, where inbound messages wait per
type until a drain task hands them to the handler in batches of one type (the type whose
oldest message waited longest goes first, so none starves), up to ``max_batch`` at a time.
A batch costs one handler call, one commit and one trip round the event loop however many
messages it holds: that per-call overhead is what batching amortises, and
``max_batch=1`` is the per-message baseline that pays it for every message. All of it is
real work on this CPU; nothing sleeps to stand for a cost.

What must not live here: sockets or the server (``server.py`` subscribes a queue to its
bus), and metrics export (``livemetrics.py`` reports what :meth:`ProcessingQueue.stats`
counts).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import orjson

log = logging.getLogger("wslab.server")

Handler = Callable[[str, bytes, float], None]


class EventBus:
    """Routes inbound messages to the handlers subscribed to their type."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = defaultdict(list)
        self.published = 0

    def subscribe(self, type: str, handler: Handler) -> None:
        """Call ``handler(type, payload, t)`` for every message of ``type`` (``*``: all)."""
        self._handlers[type].append(handler)

    def publish(self, type: str, payload: bytes, t: float) -> int:
        """Hand a message to its subscribers; return how many there were."""
        self.published += 1
        if not self._handlers:
            return 0
        count = 0
        for key in (type, "*"):
            for handler in self._handlers.get(key, ()):
                handler(type, payload, t)
                count += 1
        return count


class BatchHandler(Protocol):
    """What a :class:`ProcessingQueue` hands its batches to."""

    def handle(self, type: str, payloads: Sequence[bytes]) -> None:
        """Process messages of one type, oldest first."""


FieldTotals = tuple[int, float, float, float]
"""One field's (count, sum, minimum, maximum)."""


class Aggregator:
    """Counts, sums, minima and maxima per message type and numeric JSON field.

    Attributes:
        messages: Messages handled, per type.
        unparsed: Messages that were not JSON (binary blobs, malformed text).
        calls: Handler calls (batches); each ends with one commit.
        committed: The last committed snapshot per type: field -> (count, sum, min, max).
    """

    def __init__(self) -> None:
        self.messages: dict[str, int] = {}
        self.unparsed = 0
        self.calls = 0
        self.committed: dict[str, dict[str, FieldTotals]] = {}
        self._fields: dict[str, dict[str, list[float]]] = {}

    def handle(self, type: str, payloads: Sequence[bytes]) -> None:
        """Parse and fold one batch of a type's messages, then commit that type's totals."""
        fields = self._fields.get(type)
        if fields is None:
            fields = self._fields[type] = {}
        loads = orjson.loads
        for payload in payloads:
            try:
                doc = loads(payload)
            except orjson.JSONDecodeError:
                self.unparsed += 1
                continue
            if isinstance(doc, dict):
                _fold(fields, doc, "")
        self.messages[type] = self.messages.get(type, 0) + len(payloads)
        self.calls += 1
        self.committed[type] = {name: (int(s[0]), s[1], s[2], s[3])
                                for name, s in fields.items()}

    def totals(self) -> dict[str, Any]:
        """Messages per type, unparsed messages and the committed field totals."""
        return {"messages": dict(self.messages), "unparsed": self.unparsed,
                "fields": {t: dict(f) for t, f in self.committed.items()}}


def _fold(fields: dict[str, list[float]], doc: dict[str, Any], prefix: str) -> None:
    for key, value in doc.items():
        kind = type(value)
        if kind is int or kind is float:
            name = prefix + key
            s = fields.get(name)
            if s is None:
                fields[name] = [1, value, value, value]
                continue
            s[0] += 1
            s[1] += value
            if value < s[2]:
                s[2] = value
            elif value > s[3]:
                s[3] = value
        elif kind is dict and not prefix:
            _fold(fields, value, key + ".")


class ProcessingQueue:
    """Inbound messages handled in batches of one type by a real handler.

    Args:
        handler: Does the work (default: a fresh :class:`Aggregator`).
        max_batch: Messages per handler call at most (1: one by one, the baseline).
        linger_ms: How long the oldest waiting message may wait for its batch to fill
            (0: hand over whatever is waiting at once; batches then form only while the
            handler is busy).
        keep_latencies: How many recent latencies to keep for the percentiles (memory
            stays bounded on a server that runs for days).
    """

    def __init__(self, handler: BatchHandler | None = None, *, max_batch: int = 100,
                 linger_ms: float = 0.0, keep_latencies: int = 10_000) -> None:
        if max_batch < 1 or linger_ms < 0:
            raise ValueError("a processing queue needs max_batch >= 1 and linger_ms >= 0")
        self.handler: BatchHandler = handler if handler is not None else Aggregator()
        self.max_batch = max_batch
        self.linger_s = linger_ms / 1e3
        self.items = 0
        self.batches = 0
        self.errors = 0
        self.largest_batch = 0
        self.handler_ns = 0
        self.latency_max_ms = 0.0
        self.latencies: deque[float] = deque(maxlen=keep_latencies)
        self.first_queued: float | None = None
        self.last_done: float | None = None
        self._queues: dict[str, deque[tuple[bytes, float]]] = {}
        self._waiting = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    def put(self, type: str, payload: bytes, t: float) -> None:
        """Queue one message received at ``t`` (``time.monotonic()``; a bus handler)."""
        queue = self._queues.get(type)
        if queue is None:
            queue = self._queues[type] = deque()
        queue.append((payload, t))
        self._waiting += 1
        if self.first_queued is None:
            self.first_queued = t
        if self._wake is not None:
            self._wake.set()

    @property
    def waiting(self) -> int:
        """Messages queued and not yet handled."""
        return self._waiting

    def start(self) -> None:
        """Start draining in the background (on the running loop)."""
        self._wake = asyncio.Event()
        if self._waiting:
            self._wake.set()
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def stop(self) -> None:
        """Handle what is queued, then stop."""
        if self._task is not None:
            while self._waiting and not self._task.done():
                await asyncio.sleep(0.001)
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _drain(self) -> None:
        assert self._wake is not None
        wake = self._wake
        while True:
            if not self._waiting:
                wake.clear()
                await wake.wait()
            if self.linger_s and self._waiting < self.max_batch:
                oldest = min(q[0][1] for q in self._queues.values() if q)
                delay = oldest + self.linger_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            try:
                self.handle_next()
            except Exception:  # a handler's bug loses its batch, not the queue
                self.errors += 1
                if self.errors == 1:
                    log.exception("processing handler failed (counted in errors from now)")
            await asyncio.sleep(0)  # one trip round the loop per batch: the server goes on

    def handle_next(self) -> int:
        """Hand the next batch to the handler now; how many messages it held."""
        if not self._waiting:
            return 0
        # The type whose oldest message waited longest goes first, so no type starves.
        type, queue = min(((k, q) for k, q in self._queues.items() if q),
                          key=lambda kq: kq[1][0][1])
        n = min(self.max_batch, len(queue))
        batch = [queue.popleft() for _ in range(n)]
        self._waiting -= n
        started = time.perf_counter_ns()
        self.handler.handle(type, [payload for payload, _ in batch])
        self.handler_ns += time.perf_counter_ns() - started
        done = time.monotonic()
        self.items += n
        self.batches += 1
        self.largest_batch = max(self.largest_batch, n)
        self.last_done = done
        waited = [(done - t) * 1e3 for _, t in batch]
        self.latencies.extend(waited)
        self.latency_max_ms = max(self.latency_max_ms, waited[0])
        return n

    def stats(self) -> dict[str, Any]:
        """Messages, batches, handler time, throughput and latency (queue + handling)."""
        out: dict[str, Any] = {"items": self.items, "batches": self.batches,
                               "waiting": self._waiting, "max_batch": self.max_batch,
                               "errors": self.errors}
        if not self.items:
            return out
        lat = sorted(self.latencies)
        span = (self.last_done or 0.0) - (self.first_queued or 0.0)
        out.update({
            "mean_batch": self.items / self.batches, "largest_batch": self.largest_batch,
            "handler_s": self.handler_ns / 1e9,
            "handler_us_per_item": self.handler_ns / 1e3 / self.items,
            "items_per_s": self.items / span if span > 0 else None,
            "latency_p50_ms": lat[len(lat) // 2],
            "latency_p99_ms": lat[min(len(lat) - 1, math.ceil(0.99 * len(lat)) - 1)],
            "latency_max_ms": self.latency_max_ms})
        return out
