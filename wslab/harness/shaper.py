"""A user-space TCP proxy on loopback that shapes traffic like :class:`wslab.link.LinkModel`.

What lives here: :class:`LinkShaper` (an asyncio proxy: client -> shaper -> target) and
the sockets of each proxied connection, two :class:`~wslab.harness.shaper_pipe.Pipe` between
them. Its command line and :class:`~wslab.harness.shaper_proc.ShaperProcess`, which runs it
in a process of its own, live in ``shaper_proc.py``. What must not: the link model of one
direction (``shaper_pipe.py``, which states each rule it applies: exactly the
simulator's, so that measured and simulated latencies can be compared), WebSocket
knowledge (the shaper moves opaque bytes), and any second link model.

Every read is at most ``READ_SIZE`` bytes (one *write* of the model); reading pauses while
more than ``BACKLOG_HIGH`` bytes wait in a direction (re-exported here).
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
from dataclasses import asdict, dataclass, field
from typing import Any

from wslab.errors import ConfigError
from wslab.harness.shaper_pipe import BACKLOG_HIGH as BACKLOG_HIGH  # re-exported
from wslab.harness.shaper_pipe import DirectionStats as DirectionStats
from wslab.harness.shaper_pipe import Pipe
from wslab.link import LinkProfile

READ_SIZE = 64 * 1024


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


def is_loopback(host: str) -> bool:
    """Whether ``host`` names a loopback address (``localhost`` counts)."""
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Side(asyncio.BufferedProtocol):
    """The asyncio protocol of one socket of a proxied connection; reads into 64 KiB."""

    def __init__(self, conn: _Connection, reads: Pipe, writes: Pipe) -> None:
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
        self.up = Pipe(shaper.profile, "c2s", shaper.stats.c2s, self.loop,
                       random.Random(f"{seed}:c2s"), self.check_done)
        self.down = Pipe(shaper.profile, "s2c", shaper.stats.s2c, self.loop,
                         random.Random(f"{seed}:s2c"), self.check_done)
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
