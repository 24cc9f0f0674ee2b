"""A user-space TCP proxy on loopback that shapes traffic like :class:`wslab.link.LinkModel`.

What lives here: :class:`LinkShaper` (an asyncio proxy: client -> shaper -> target). Its
command line and :class:`~wslab.harness.shaper_proc.ShaperProcess`, which runs it in a
process of its own, live in ``shaper_proc.py``. What must not: WebSocket knowledge (the
shaper moves opaque bytes), and any second link model. Each direction applies exactly the
simulator's rules so that measured and simulated latencies can be compared:

- every read (at most ``READ_SIZE`` bytes) is one *write* of the model: it costs
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
import ipaddress
import random
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from wslab.errors import ConfigError
from wslab.link import MIN_RTO_S, LinkProfile
from wslab.wire import TCP_IP_HEADER_BYTES

READ_SIZE = 64 * 1024
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
class ShaperStats:
    """What a :class:`LinkShaper` has carried so far."""

    c2s: DirectionStats = field(default_factory=DirectionStats)
    s2c: DirectionStats = field(default_factory=DirectionStats)
    connections: int = 0
    active: int = 0

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


@dataclass(slots=True)
class _Chunk:
    data: bytes | None  # None marks the end of the stream
    start: float  # when its serialisation on the link starts ...
    end: float  # ... and ends
    cum_segments: int  # segments sent on this direction up to and including this chunk
    delay: float  # propagation plus jitter
    extra: float | None  # loss penalty; None while the fast/timeout decision is pending
    sent: int = 0  # bytes already written to the peer
    decision: asyncio.TimerHandle | None = None


def is_loopback(host: str) -> bool:
    """Whether ``host`` names a loopback address (``localhost`` counts)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Pipe:
    """One direction of one connection: the model's queue plus one delivery timer.

    A chunk is written to the peer segment by segment, each as its serialisation ends (plus
    the chunk's delay), so bursts coalesced into one read are not held back as a block.
    """

    def __init__(self, conn: _Connection, direction: str, rng: random.Random) -> None:
        p = conn.shaper.profile
        self.conn, self.loop, self.rng = conn, conn.loop, rng
        self.stats: DirectionStats = getattr(conn.shaper.stats, direction)
        kbps = p.kbps(direction)
        self.byte_time = 8.0 / (kbps * 1000.0) if kbps > 0 else 0.0
        self.mss, self.loss, self.rtt = p.mss, p.loss, p.rtt_ms / 1000.0
        self.owd, self.jitter = p.rtt_ms / 2000.0, p.jitter_ms / 1000.0
        self.rto = max(MIN_RTO_S, (p.rtt_ms + 4 * p.jitter_ms) / 1000.0)
        self.source: asyncio.Transport | None = None
        self.dest: asyncio.Transport | None = None
        self.queue: deque[_Chunk] = deque()
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
        chunk = _Chunk(data, start, end, self.cum_segments, self.owd, 0.0)
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

    def _decide(self, chunk: _Chunk) -> None:
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

    def _next_due(self, chunk: _Chunk) -> float | None:
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
        self.conn.check_done()


class _Side(asyncio.BufferedProtocol):
    """The asyncio protocol of one socket of a proxied connection; reads into 64 KiB."""

    def __init__(self, conn: _Connection, reads: _Pipe, writes: _Pipe) -> None:
        self.conn, self.reads, self.writes = conn, reads, writes
        self.buffer = bytearray(READ_SIZE)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.reads.source = self.writes.dest = transport
        self.conn.side_made(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self.buffer)

    def buffer_updated(self, nbytes: int) -> None:
        self.reads.push(bytes(memoryview(self.buffer)[:nbytes]))

    def eof_received(self) -> bool:
        self.reads.push(None)
        return True  # keep the socket half-open: the other direction may still deliver

    def pause_writing(self) -> None:
        self.writes._flow()

    def resume_writing(self) -> None:
        self.writes._flow()

    def connection_lost(self, exc: Exception | None) -> None:
        self.writes.finish()  # nothing more can reach this socket
        if not self.reads.eof_queued and not self.reads.done:
            if exc is None:
                self.reads.push(None)
            else:  # an error on one side closes the other at once
                self.conn.close(abort=True)
        self.conn.check_done()


class _Connection:
    """A client socket, its upstream socket and the two pipes between them."""

    def __init__(self, shaper: LinkShaper, index: int) -> None:
        self.shaper, self.loop = shaper, asyncio.get_running_loop()
        seed = shaper.seed * 1_000_003 + index
        self.up = _Pipe(self, "c2s", random.Random(f"{seed}:c2s"))
        self.down = _Pipe(self, "s2c", random.Random(f"{seed}:s2c"))
        self.client = _Side(self, self.up, self.down)
        self.server = _Side(self, self.down, self.up)
        self.connect_task: asyncio.Task[Any] | None = None
        self.closed = False

    def side_made(self, side: _Side) -> None:
        if side is self.client:
            self.shaper.stats.connections += 1
            self.shaper.stats.active += 1
            self.shaper.live.add(self)
            assert side.transport is not None
            side.transport.pause_reading()  # until the upstream socket exists
            self.connect_task = self.loop.create_task(self._connect())
        else:
            assert self.client.transport is not None
            self.up._arm()
            if not self.client.transport.is_closing():
                self.client.transport.resume_reading()

    async def _connect(self) -> None:
        try:
            await self.loop.create_connection(
                lambda: self.server, self.shaper.target_host, self.shaper.target_port
            )
        except OSError:
            self.close(abort=True)

    def check_done(self) -> None:
        """Close both sockets once both directions are finished."""
        if self.up.done and self.down.done:
            self.close(abort=False)

    def close(self, *, abort: bool) -> None:
        """Finish both pipes and close (or abort) both sockets, once."""
        if self.closed:
            return
        self.closed = True
        self.shaper.stats.active -= 1
        self.shaper.live.discard(self)
        if self.connect_task is not None and not self.connect_task.done():
            self.connect_task.cancel()
        for pipe in (self.up, self.down):
            if not pipe.done:
                pipe.finish()
        for side in (self.client, self.server):
            if side.transport is not None and not side.transport.is_closing():
                side.transport.abort() if abort else side.transport.close()


class LinkShaper:
    """A loopback TCP proxy that shapes both directions with a :class:`LinkProfile`.

    Args:
        profile: The link to emulate (client->server uses ``up_kbps``).
        target_host: Where to forward connections (must be loopback unless ``allow_remote``).
        target_port: Target port.
        listen_host: Address to listen on (loopback unless ``allow_remote``).
        listen_port: Port to listen on; 0 picks a free one.
        seed: Seed for jitter and loss draws (each connection derives its own stream).
        allow_remote: Permit non-loopback addresses.

    Raises:
        ConfigError: a non-loopback address without ``allow_remote``.
    """

    def __init__(
        self,
        profile: LinkProfile,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
        seed: int = 0,
        allow_remote: bool = False,
    ) -> None:
        for what, host in (("target", target_host), ("listen", listen_host)):
            if not allow_remote and not is_loopback(host):
                raise ConfigError(f"shaper {what} host {host!r} is not loopback")
        self.profile, self.seed = profile, seed
        self.target_host, self.target_port = target_host, target_port
        self.listen_host, self.listen_port = listen_host, listen_port
        self.stats = ShaperStats()
        self.live: set[_Connection] = set()
        self._server: asyncio.Server | None = None
        self._count = 0

    @property
    def port(self) -> int:
        """The port the shaper listens on (after :meth:`start`)."""
        if self._server is None:
            raise RuntimeError("shaper not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _accept(self) -> _Side:
        self._count += 1
        return _Connection(self, self._count).client

    async def start(self) -> int:
        """Listen; returns the port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._accept, self.listen_host, self.listen_port
        )
        return self.port

    async def stop(self) -> None:
        """Stop listening and abort every proxied connection; leaves no task or timer."""
        if self._server is not None:
            self._server.close()
        tasks = [c.connect_task for c in self.live if c.connect_task is not None]
        for conn in list(self.live):
            conn.close(abort=True)
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
        for _ in range(3):  # let the transports deliver connection_lost
            await asyncio.sleep(0)

    async def __aenter__(self) -> LinkShaper:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
