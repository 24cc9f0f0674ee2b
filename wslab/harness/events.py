"""The server's inbound side: an event bus by message type and a batching work queue.

What lives here: :class:`EventBus` (handlers subscribe to a message type, or to every type
with ``"*"``) and :class:`ProcessingQueue`, which stands for the work a real service does
with what clients send (say, a database write): items wait in a queue and are drained in
batches grouped by type, each batch costing ``per_batch_ms + per_item_ms * items`` of
modelled time. With ``max_batch=1`` it is the one-by-one baseline, so the lab can show what
batched processing buys. The cost is awaited (``asyncio.sleep``), not burnt, so the
figures are about queueing, not this machine's CPU.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class ProcessingQueue:
    """Work drained in batches grouped by type, with a modelled cost per batch and item.

    Attributes:
        per_batch_ms: Fixed cost of one batch (a round trip to the database, say).
        per_item_ms: Cost of each item in it.
        max_batch: Items per batch at most (1: process one by one).
    """

    per_batch_ms: float = 2.0
    per_item_ms: float = 0.05
    max_batch: int = 100
    done: list[dict[str, Any]] = field(default_factory=list)
    _queues: dict[str, deque[tuple[bytes, float]]] = field(
        default_factory=lambda: defaultdict(deque))
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _in_flight: int = 0

    def put(self, type: str, payload: bytes, t: float) -> None:
        """Queue one item (matches the :data:`Handler` signature)."""
        self._queues[type].append((payload, t))
        self._wake.set()

    @property
    def waiting(self) -> int:
        """Items queued and not yet processed."""
        return sum(len(q) for q in self._queues.values())

    def start(self) -> None:
        """Start draining in the background."""
        self._task = asyncio.get_running_loop().create_task(self._drain())

    async def stop(self) -> None:
        """Finish what is queued, then stop."""
        while self.waiting or self._in_flight:
            await asyncio.sleep(0.001)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _drain(self) -> None:
        while True:
            if not self.waiting:
                self._wake.clear()
                await self._wake.wait()
            # The longest-waiting type goes first, so no type starves.
            type, queue = min(((k, q) for k, q in self._queues.items() if q),
                              key=lambda kq: kq[1][0][1])
            batch = [queue.popleft() for _ in range(min(self.max_batch, len(queue)))]
            self._in_flight = len(batch)
            started = time.monotonic()
            await asyncio.sleep((self.per_batch_ms + self.per_item_ms * len(batch)) / 1e3)
            finished = time.monotonic()
            self._in_flight = 0
            for _, t in batch:
                self.done.append({"type": type, "batch": len(batch), "t_queued": t,
                                  "t_started": started, "t_done": finished})

    def stats(self) -> dict[str, Any]:
        """Items, batches, throughput and latency (queueing + processing) so far."""
        if not self.done:
            return {"items": 0, "batches": 0}
        lat = sorted((d["t_done"] - d["t_queued"]) * 1e3 for d in self.done)
        span = max(d["t_done"] for d in self.done) - min(d["t_queued"] for d in self.done)
        batches = len({(d["t_started"], d["type"]) for d in self.done})
        return {"items": len(self.done), "batches": batches,
                "items_per_s": len(self.done) / span if span > 0 else None,
                "latency_p50_ms": lat[len(lat) // 2], "latency_max_ms": lat[-1]}
