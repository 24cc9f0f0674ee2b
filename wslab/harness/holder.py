"""The holding client of ``wslab scale``: many idle connections that only listen.

What lives here: :class:`HoldClient`, which opens thousands of
:class:`~wslab.harness.held.HeldConnection` (``held.py``: one connection on websockets'
sans-I/O protocol, with its heartbeat), timestamps every message on arrival, counts what
happened to each (:class:`HoldStats`) and opens dropped connections again with jittered
backoff. What must not live here: one connection's protocol and heartbeat (``held.py``),
sending application messages (that is :class:`~wslab.harness.client.LoadClient`) and
process plumbing (``procs.py``). ``HeldConnection`` and ``open_held`` are re-exported here.

Heartbeat: a connection that hears nothing from the server for interval + timeout is
closed (1011, counted in ``HoldStats.keepalive_timeouts``); the rules are ``held.py``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field

import orjson

from wslab.config import TuningConfig
from wslab.errors import WslabError
from wslab.harness.broker import jittered_backoff
from wslab.harness.client import check_target
from wslab.harness.held import HeldConnection as HeldConnection  # re-exported
from wslab.harness.held import MessageCallback as MessageCallback
from wslab.harness.held import open_held as open_held


@dataclass
class HoldStats:
    """What a holding client saw (see :class:`HoldClient`)."""

    opened: int = 0
    failed: int = 0
    first_error: str | None = None
    started: float = 0.0
    done: list[float] = field(default_factory=list)
    closed_early: int = 0
    close_codes: dict[str, int] = field(default_factory=dict)
    keepalive_timeouts: int = 0
    receipts: list[tuple[int, str, int, float, float]] = field(default_factory=list)
    reconnects: int = 0
    reconnect_attempts: int = 0
    reconnect_failed: int = 0
    reconnect_delays: list[float] = field(default_factory=list)
    outages: list[tuple[int, float, float | None]] = field(default_factory=list)

    def reconnect_s(self) -> list[float]:
        """Time from each drop to the connection being open again (closed outages only)."""
        return [back - down for _n, down, back in self.outages if back is not None]


class HoldClient:
    """Many idle connections that only listen: the client side of ``wslab scale``.

    Messages are JSON objects with ``k`` (``b`` broadcast, ``d`` direct), ``seq`` and ``t``
    (the sender's ``time.monotonic()`` when it handed the message over); each receipt is
    kept as (connection number, kind, seq, t sent, t received). Anything else is counted
    but not kept. The client answers pings; a silent server is closed (``held.py``).
    Each connection is a :class:`HeldConnection`: websockets' protocol without its asyncio
    layer.

    With ``reconnect=True`` a connection that closes before :meth:`close` (its worker
    died, a proxy dropped it) is opened again to the same URL under the same label, after
    an exponential backoff with jitter (:func:`~wslab.harness.broker.jittered_backoff`),
    retried until it succeeds or :meth:`close` is called. Every drop is kept in
    ``stats.outages`` as (connection number, dropped at, open again at), so a run can
    say which messages went out while a connection was away; ``closed_early`` and
    ``close_codes`` still count every drop.

    Args:
        url: Target ``ws://`` URL (loopback unless ``allow_remote``).
        config: Compression and limits for the client side.
        connections: How many to open.
        rate: Connections started per second (0: as fast as ``concurrency`` allows).
        concurrency: Handshakes in flight at most.
        source_addresses: 127.0.0.x addresses to spread connections over.
        prefix: Labels are ``PREFIX-N`` (sent in the ``X-Wslab-Client`` header).
        allow_remote: Permit a non-loopback target.
        reconnect: Open a connection again when it closes before :meth:`close`.
        backoff_base_s: First reconnect delay ceiling.
        backoff_max_s: Largest reconnect delay ceiling.
        seed: Seed of the reconnect jitter (None: unpredictable).
    """

    def __init__(self, url: str, config: TuningConfig, *, connections: int,
                 rate: float = 0.0, concurrency: int = 200,
                 source_addresses: list[str] | None = None, prefix: str = "h",
                 allow_remote: bool = False, reconnect: bool = False,
                 backoff_base_s: float = 0.1, backoff_max_s: float = 5.0,
                 seed: int | None = None) -> None:
        check_target(url, allow_remote)
        if backoff_base_s <= 0 or backoff_max_s < backoff_base_s:
            raise WslabError("reconnect backoff needs 0 < backoff_base_s <= backoff_max_s")
        self.reconnect = reconnect
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._rng = random.Random(seed)
        self._stop = asyncio.Event()
        self._streak: dict[int, int] = {}
        self.url = url
        self.config = config
        self.connections = connections
        self.rate = rate
        self.concurrency = max(1, concurrency)
        self.source_addresses = source_addresses or []
        self.prefix = prefix
        self.stats = HoldStats()
        self.open: dict[int, HeldConnection] = {}
        self.other_messages = 0
        self._received: dict[str, int] = {}
        self._readers: list[asyncio.Task[None]] = []
        self._closing = False

    async def ramp(self) -> HoldStats:
        """Open every connection (failures counted, not raised); return the stats."""
        self.stats.started = time.monotonic()
        gate = asyncio.Semaphore(self.concurrency)
        tasks = []
        for n in range(self.connections):
            await gate.acquire()
            tasks.append(asyncio.create_task(self._open(n, gate)))
            if self.rate > 0:
                await asyncio.sleep(1.0 / self.rate)
        await asyncio.gather(*tasks)
        return self.stats

    async def _connect(self, n: int, open_timeout: float = 60) -> HeldConnection:
        local = None
        if self.source_addresses:
            local = (self.source_addresses[n % len(self.source_addresses)], 0)
        receipts = self.stats.receipts
        received = self._received

        def on_message(payload: bytes, arrived: float) -> None:
            try:
                msg = orjson.loads(payload)
                kind = msg["k"]
                receipts.append((n, kind, int(msg["seq"]), float(msg["t"]), arrived))
            except (ValueError, KeyError, TypeError):
                self.other_messages += 1
                return
            received[kind] = received.get(kind, 0) + 1

        return await open_held(self.url, self.config, f"{self.prefix}-{n}", on_message,
                               local_addr=local, open_timeout=open_timeout)

    async def _open(self, n: int, gate: asyncio.Semaphore) -> None:
        try:
            ws = await self._connect(n)
        except Exception as exc:  # refused, reset, timed out: counted per connection
            self.stats.failed += 1
            if self.stats.first_error is None:
                self.stats.first_error = f"{type(exc).__name__}: {exc}"
            return
        finally:
            gate.release()
        self.stats.opened += 1
        self.stats.done.append(time.monotonic())
        self.open[n] = ws
        self._readers.append(asyncio.create_task(self._read(n, ws)))

    async def _read(self, n: int, ws: HeldConnection | None) -> None:
        while ws is not None:
            opened = time.monotonic()
            await self._listen(n, ws)
            if self._closing or not self.reconnect:
                return
            if time.monotonic() - opened >= self.backoff_max_s:
                self._streak.pop(n, None)  # it lived: the next drop starts from the base
            ws = await self._reopen(n)

    async def _listen(self, n: int, ws: HeldConnection) -> None:
        await ws.closed
        if self.open.get(n) is ws:
            del self.open[n]
        code = str(ws.close_code)
        self.stats.close_codes[code] = self.stats.close_codes.get(code, 0) + 1
        self.stats.keepalive_timeouts += ws.keepalive_failed
        if not self._closing:
            self.stats.closed_early += 1

    async def _reopen(self, n: int) -> HeldConnection | None:
        """Open connection ``n`` again after backing off; None if :meth:`close` came first."""
        down = time.monotonic()
        self.stats.outages.append((n, down, None))
        slot = len(self.stats.outages) - 1
        # A connection refused again right after reopening (e.g. 1013) keeps backing off.
        attempt = self._streak.get(n, 0)
        while not self._closing:
            delay = jittered_backoff(attempt, self.backoff_base_s, self.backoff_max_s,
                                     self._rng)
            self.stats.reconnect_delays.append(delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._closing:
                break
            attempt += 1
            self.stats.reconnect_attempts += 1
            try:
                ws = await self._connect(n, open_timeout=10)
            except Exception:  # the server is still away: back off further
                self.stats.reconnect_failed += 1
                continue
            if self._closing:
                await ws.close()
                break
            self.open[n] = ws
            self._streak[n] = attempt
            self.stats.reconnects += 1
            self.stats.outages[slot] = (n, down, time.monotonic())
            return ws
        return None

    def received(self, kind: str) -> int:
        """Messages of a kind received so far."""
        return self._received.get(kind, 0)

    async def close(self) -> None:
        """Close every open connection and wait for the readers."""
        self._closing = True
        self._stop.set()
        conns = list(self.open.values())
        await asyncio.gather(*(ws.close() for ws in conns), return_exceptions=True)
        await asyncio.gather(*self._readers, return_exceptions=True)
