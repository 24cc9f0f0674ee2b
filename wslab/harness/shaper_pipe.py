"""One direction of a shaped connection: the link model's queue on the event loop.

What lives here: :class:`Pipe` (one direction of one proxied connection: the serialising
queue, propagation and jitter, loss decided as fast retransmit or timeout, in-order
delivery by one timer, and the backpressure on its source), its :class:`Chunk` and the
:class:`DirectionStats` it counts into. What must not live here: sockets and connections
(``shaper.py``), WebSocket knowledge (the shaper moves opaque bytes), and any second link
model. Each direction applies exactly the simulator's rules so that measured and simulated
latencies can be compared:

- every read (at most ``shaper.READ_SIZE`` bytes) is one *write* of the model: it costs
  ``n + ceil(n / mss) * 52`` wire bytes and occupies a serialising queue for
  ``wire_bytes * 8 / bandwidth`` (client->server uses ``up_kbps``, server->client
  ``down_kbps``; 0 = unlimited);
- it then travels ``rtt / 2`` plus jitter uniform in ``[0, jitter]`` (seeded generator);
- loss delays, never drops: a read is hit with probability ``1 - (1 - loss) ** segments``;
  one RTT after its serialisation ends the shaper counts the segments of later reads that
  left by then: three or more -> fast retransmit (+1 RTT), else a timeout (+RTO);
- delivery is in order: a read is written to the peer only after everything ahead of it
  (head-of-line blocking). Bytes are never reordered, altered or dropped.

Timing uses one ``loop.call_at`` timer per direction on a FIFO of ``(deliver_at, bytes)``,
so delays do not pile up per-chunk sleep error. Reading pauses while more than
``BACKLOG_HIGH`` bytes wait in a direction (queued plus unsent in the peer's transport).
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from wslab.link import MIN_RTO_S, LinkProfile
from wslab.wire import TCP_IP_HEADER_BYTES

BACKLOG_HIGH = 4 * 1024 * 1024
BACKLOG_LOW = 1024 * 1024
_EARLY = 0.0005  # epoll rounds timeouts up to 1 ms: aim half of that early


@dataclass(slots=True)
class DirectionStats:
    """Counters for one direction (``c2s`` or ``s2c``), summed over connections."""

    bytes: int = 0
    chunks: int = 0
    tcp_bytes: int = 0
    segments: int = 0
    losses: int = 0
    fast_retransmits: int = 0
    timeouts: int = 0


@dataclass(slots=True)
class Chunk:
    """One read of a direction on the model's clock, until it is written to the peer."""

    data: bytes | None  # None marks the end of the stream
    start: float  # when its serialisation on the link starts ...
    end: float  # ... and ends
    cum_segments: int  # segments sent on this direction up to and including this chunk
    delay: float  # propagation plus jitter
    extra: float | None  # loss penalty; None while the fast/timeout decision is pending
    sent: int = 0  # bytes already written to the peer
    decision: asyncio.TimerHandle | None = None


class Pipe:
    """One direction of one connection: the model's queue plus one delivery timer.

    A chunk is written to the peer segment by segment, each as its serialisation ends (plus
    the chunk's delay), so bursts coalesced into one read are not held back as a block.
    The connection sets :attr:`source` and :attr:`dest` as its sockets come up.

    Args:
        profile: The link (``direction`` picks its bandwidth: ``up_kbps`` for ``c2s``).
        direction: ``c2s`` or ``s2c``.
        stats: The counters to add to (shared by every connection's pipe of a direction).
        loop: The event loop whose clock and timers it runs on.
        rng: This direction's jitter and loss draws.
        on_done: Called each time :meth:`finish` ends the direction.
    """

    def __init__(self, profile: LinkProfile, direction: str, stats: DirectionStats,
                 loop: asyncio.AbstractEventLoop, rng: random.Random,
                 on_done: Callable[[], None]) -> None:
        p = profile
        self.loop, self.rng, self.on_done = loop, rng, on_done
        self.stats = stats
        kbps = p.kbps(direction)
        self.byte_time = 8.0 / (kbps * 1000.0) if kbps > 0 else 0.0
        self.mss, self.loss, self.rtt = p.mss, p.loss, p.rtt_ms / 1000.0
        self.owd, self.jitter = p.rtt_ms / 2000.0, p.jitter_ms / 1000.0
        self.rto = max(MIN_RTO_S, (p.rtt_ms + 4 * p.jitter_ms) / 1000.0)
        self.source: asyncio.Transport | None = None
        self.dest: asyncio.Transport | None = None
        self.queue: deque[Chunk] = deque()
        self.queued = self.cum_segments = 0
        self.link_free = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.timer_when: float | None = None
        self.eof_queued = self.done = self.paused = False

    def push(self, data: bytes | None) -> None:
        """Queue one read (or the end of stream, ``None``) on the model's clock."""
        if self.done or self.eof_queued:
            return
        n = len(data) if data is not None else 0
        segs = -(-n // self.mss)
        start = max(self.loop.time(), self.link_free)
        self.link_free = end = start + (n + segs * TCP_IP_HEADER_BYTES) * self.byte_time
        self.cum_segments += segs
        chunk = Chunk(data, start, end, self.cum_segments, self.owd, 0.0)
        if data is None:
            self.eof_queued = True
        else:
            if self.jitter > 0:
                chunk.delay += self.rng.uniform(0.0, self.jitter)
            s = self.stats
            s.bytes, s.chunks, s.segments = s.bytes + n, s.chunks + 1, s.segments + segs
            s.tcp_bytes += n + segs * TCP_IP_HEADER_BYTES
            if self.loss > 0 and self.rng.random() < 1.0 - (1.0 - self.loss) ** segs:
                s.losses += 1
                chunk.extra = None
                chunk.decision = self.loop.call_at(end + self.rtt, self._decide, chunk)
        self.queue.append(chunk)
        self.queued += n
        self._flow()
        self._arm()

    def _decide(self, chunk: Chunk) -> None:
        """Resolve a loss one RTT after the chunk left: fast retransmit or timeout."""
        chunk.decision = None
        limit = chunk.end + self.rtt + 1e-9
        sent_by = max((c.cum_segments for c in self.queue if c.end <= limit), default=0)
        if sent_by - chunk.cum_segments >= 3:
            self.stats.fast_retransmits += 1
            chunk.extra = self.rtt
        else:
            self.stats.timeouts += 1
            chunk.extra = self.rto
        self._arm()

    def _next_due(self, chunk: Chunk) -> float | None:
        """When the chunk's next unsent segment reaches the peer (None: loss undecided)."""
        if chunk.extra is None:
            return None
        base = chunk.delay + chunk.extra
        if chunk.data is None:
            return chunk.end + base
        stop = min(chunk.sent + self.mss, len(chunk.data))
        wire = stop + -(-stop // self.mss) * TCP_IP_HEADER_BYTES
        return chunk.start + wire * self.byte_time + base

    def _arm(self) -> None:
        """Keep exactly one timer, set (a little early) for the head of the queue."""
        when = self._next_due(self.queue[0]) if self.queue and not self.done else None
        if when == self.timer_when:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.timer, self.timer_when = None, when
        if when is not None:
            self.timer = self.loop.call_at(when - _EARLY, self._flush)

    def _flush(self) -> None:
        """Write every segment that is due, in order; forward the end of stream."""
        self.timer = self.timer_when = None
        if self.dest is None or self.done:
            return
        now = self.loop.time() + _EARLY
        out: list[bytes] = []
        eof = False
        while self.queue and (due := self._next_due(head := self.queue[0])) is not None:
            if due > now:
                break
            if head.data is None:
                eof = True
                break
            first = head.sent
            while head.sent < len(head.data) and (due := self._next_due(head)) is not None:
                if due > now:
                    break
                head.sent = min(head.sent + self.mss, len(head.data))
            out.append(head.data[first : head.sent])
            self.queued -= head.sent - first
            if head.sent < len(head.data):
                break
            self.queue.popleft()
        if out and not self.dest.is_closing():
            self.dest.write(out[0] if len(out) == 1 else b"".join(out))
        if eof:
            if self.dest.can_write_eof() and not self.dest.is_closing():
                self.dest.write_eof()
            self.finish()
            return
        self._flow()
        self._arm()

    def _flow(self) -> None:
        """Pause or resume reading from the source according to the backlog."""
        if self.source is None or self.source.is_closing():
            return
        backlog = self.queued + (self.dest.get_write_buffer_size() if self.dest else 0)
        if not self.paused and backlog > BACKLOG_HIGH:
            self.paused = True
            self.source.pause_reading()
        elif self.paused and backlog < BACKLOG_LOW and self.dest is not None:
            self.paused = False
            self.source.resume_reading()

    def finish(self) -> None:
        """Stop this direction for good: cancel timers, drop what can no longer be delivered."""
        self.done = True
        for handle in (self.timer, *(c.decision for c in self.queue)):
            if handle is not None:
                handle.cancel()
        self.timer = self.timer_when = None
        self.queue.clear()
        self.queued = 0
        self.on_done()
