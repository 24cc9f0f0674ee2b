"""The link shaper: byte integrity, delay, bandwidth, loss rules, closing, backpressure.

Timing tests measure on one event loop (sender and receiver share the clock) and compare with
:class:`wslab.link.LinkModel`, the simulator's model that the shaper must reproduce. A busy
machine can only make things late, never early: lower bounds are tight, and upper bounds
add what :class:`LoopLag` saw the event loop oversleep during the very test (a peer
measured side by side), so they hold on a loaded 2-core machine. The precise figures
(median delay, throughput against the kernel's own TCP counters) are
``benchmarks/bench_shaper.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import numpy as np
import pytest

from wslab.errors import ConfigError
from wslab.harness.shaper import (
    BACKLOG_HIGH,
    READ_SIZE,
    LinkShaper,
    _Connection,
)
from wslab.harness.shaper_proc import ShaperProcess
from wslab.link import LinkModel, LinkProfile
from wslab.wire import TcpModel

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class LoopLag:
    """How late the event loop wakes up while a test runs: a 2 ms ticker beside the test.

    Whatever delays the shaper's timers (other processes on the cores, the collector)
    delays this ticker too, so ``worst_s`` is the lateness a timing on this loop may carry.
    """

    def __init__(self) -> None:
        self.worst_s = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.002
            await asyncio.sleep(0.002)
            self.worst_s = max(self.worst_s, loop.time() - due)

    async def __aenter__(self) -> LoopLag:
        self._task = asyncio.get_running_loop().create_task(self._tick())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _run(coro: Awaitable[None]) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


class Arrivals:
    """A server that records when each byte count arrived (loop time)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, int]] = []
        self.total = 0
        self.data = bytearray()
        self.eof = asyncio.Event()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(ConnectionResetError):
            while chunk := await reader.read(1 << 20):
                self.total += len(chunk)
                self.data += chunk
                self.marks.append((loop.time(), self.total))
            self.eof.set()
        writer.close()

    def time_of(self, nbytes: int) -> float:
        """When the first ``nbytes`` bytes had all arrived."""
        return next(t for t, total in self.marks if total >= nbytes)


async def _server(handler: Handler) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_bytes_pass_unchanged_and_in_order_both_ways_with_jitter_and_loss() -> None:
    profile = LinkProfile("rough", 20_000, 10_000, 20.0, 10.0, 0.1)
    rng = random.Random(7)
    up = rng.randbytes(300_000)
    down = rng.randbytes(200_000)

    async def server_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def send() -> None:
            for i in range(0, len(down), 7_001):
                writer.write(down[i : i + 7_001])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        got_up.extend(await reader.read(-1))
        await sender
        writer.close()
        server_done.set()

    got_up = bytearray()
    server_done = asyncio.Event()

    async def main() -> None:
        server, port = await _server(server_side)
        async with LinkShaper(profile, "127.0.0.1", port, seed=3) as shaper:
            reader, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            pos = 0
            while pos < len(up):
                step = rng.randint(1, 20_000)
                writer.write(up[pos : pos + step])
                pos += step
                if rng.random() < 0.3:
                    await asyncio.sleep(0.002)
            writer.write_eof()
            got_down = await asyncio.wait_for(reader.read(-1), 20)
            await asyncio.wait_for(server_done.wait(), 20)
            writer.close()
            assert got_down == down
            stats = shaper.stats
            assert stats.c2s.losses > 0 and stats.s2c.losses > 0
            assert stats.c2s.fast_retransmits + stats.c2s.timeouts == stats.c2s.losses
            assert (stats.c2s.bytes, stats.s2c.bytes) == (len(up), len(down))
        server.close()
        await server.wait_closed()

    _run(main())
    assert bytes(got_up) == up


def test_one_way_delay_is_half_the_rtt() -> None:
    profile = LinkProfile("delay", 0, 0, 60.0)

    async def main() -> None:
        sink = Arrivals()
        server, port = await _server(sink.handle)
        loop = asyncio.get_running_loop()
        async with LoopLag() as lag, LinkShaper(profile, "127.0.0.1", port) as shaper:
            _, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            delays = []
            for i in range(1, 11):
                sent = loop.time()
                writer.write(b"m" * 10)
                while sink.total < 10 * i:
                    await asyncio.sleep(0.0005)
                delays.append((sink.time_of(10 * i) - sent) * 1000)
                await asyncio.sleep(0.005)
            writer.close()
        server.close()
        await server.wait_closed()
        assert min(delays) >= 30.0 - 0.6  # never early (the shaper aims 0.5 ms early)
        # Late only by what the loop overslept (twice: the shaper's timer, the reader).
        slack_ms = 2.0 + 2 * lag.worst_s * 1000
        assert statistics.median(delays) < 30.0 + slack_ms, (delays, slack_ms)

    _run(main())


@pytest.mark.parametrize("direction", ["c2s", "s2c"])
def test_bandwidth_of_each_direction(direction: str) -> None:
    """200 KB over 1 Mbit/s takes the serialisation time of its wire bytes: never less,
    and more only by 10 % plus what the loop overslept."""
    slow = 1_000.0
    profile = LinkProfile(
        "narrow",
        down_kbps=slow if direction == "s2c" else 0,
        up_kbps=slow if direction == "c2s" else 0,
        rtt_ms=20.0,
    )
    size = 200_000
    payload = os.urandom(size)
    tcp = TcpModel(mss=profile.mss)
    expected = tcp.tcp_bytes(size) * 8 / (slow * 1000) + 0.010

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sink = Arrivals()
        started = asyncio.Event()
        t0 = 0.0

        async def pusher(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal t0
            await started.wait()
            t0 = loop.time()
            writer.write(payload)
            await writer.drain()
            writer.close()

        server, port = await _server(sink.handle if direction == "c2s" else pusher)
        async with LoopLag() as lag, LinkShaper(profile, "127.0.0.1", port) as shaper:
            reader, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            if direction == "c2s":
                t0 = loop.time()
                writer.write(payload)
                await writer.drain()
                await asyncio.wait_for(_until(sink, size), 10)
                elapsed = sink.time_of(size) - t0
            else:
                started.set()
                got = await asyncio.wait_for(reader.readexactly(size), 10)
                elapsed = loop.time() - t0
                assert got == payload
            writer.close()
            stats = getattr(shaper.stats, direction)
            assert stats.bytes == size
            assert stats.tcp_bytes >= tcp.tcp_bytes(size)
        server.close()
        await server.wait_closed()
        # Never faster than the link (headers cost 3.5 % here); late by at most what the
        # loop overslept, since each delivery is due at an absolute time (no drift).
        assert elapsed >= 0.99 * expected, (elapsed, expected)
        assert elapsed < 1.1 * expected + 2 * lag.worst_s, (elapsed, expected, lag.worst_s)

    _run(main())


async def _until(sink: Arrivals, nbytes: int) -> None:
    while sink.total < nbytes:
        await asyncio.sleep(0.001)


def test_arrivals_match_the_simulator_link_model() -> None:
    """A paced stream of writes that queue on a 2 Mbit/s link arrives when LinkModel says."""
    profile = LinkProfile("model", 2_000, 2_000, 30.0, mss=1448)
    sizes = [300, 2_000, 50, 4_000, 1_200, 1_448, 1_449, 800, 6_000, 100] * 3

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sink = Arrivals()
        server, port = await _server(sink.handle)
        async with LoopLag() as lag, LinkShaper(profile, "127.0.0.1", port) as shaper:
            _, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            await asyncio.sleep(0.01)
            ready = []
            for n in sizes:
                ready.append(loop.time())
                writer.write(b"z" * n)
                await asyncio.sleep(0.006)
            await asyncio.wait_for(_until(sink, sum(sizes)), 10)
            writer.close()
            reads = shaper.stats.c2s.chunks
        server.close()
        await server.wait_closed()
        assert reads == len(sizes)  # every write was its own read, as in the model
        tcp = profile.tcp()
        lens = np.array(sizes, dtype=np.int64)
        segs = tcp.segments_array(lens)
        tx = LinkModel(profile, "c2s").transmit(
            np.array(ready), lens + segs * tcp.header_bytes, segs
        )
        ends = np.cumsum(lens)
        measured = np.array([sink.time_of(int(e)) for e in ends])
        error_ms = (measured - tx.arrival) * 1000
        assert tx.queue_wait.max() > 0.005  # the link really queued
        # Never early; late by at most what the loop overslept (the shaper's timer, then
        # the reader), however busy the machine was.
        slack_ms = 1.5 + 2 * lag.worst_s * 1000
        assert error_ms.min() > -1.0, error_ms
        assert np.median(error_ms) < slack_ms, (error_ms, slack_ms)
        assert error_ms.max() < 2 * slack_ms, (error_ms, slack_ms)

    _run(main())


def test_losses_on_a_quiet_stream_wait_one_timeout() -> None:
    """Tail losses (nothing follows within an RTT) cost max(200 ms, rtt + 4 jitter)."""
    profile = LinkProfile("lossy", 0, 0, 20.0, 0.0, 0.3)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sink = Arrivals()
        server, port = await _server(sink.handle)
        async with LoopLag() as lag, LinkShaper(profile, "127.0.0.1", port, seed=1) as shaper:
            _, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            delays = []
            for i in range(1, 13):
                sent = loop.time()
                writer.write(b"q" * 20)
                await asyncio.wait_for(_until(sink, 20 * i), 5)
                delays.append(sink.time_of(20 * i) - sent)
            writer.close()
            stats = shaper.stats.c2s
        server.close()
        await server.wait_closed()
        assert stats.losses > 0 and stats.fast_retransmits == 0
        assert stats.timeouts == stats.losses
        slow = [d for d in delays if d > 0.11]  # halfway between 10 ms and 210 ms
        assert len(slow) == stats.losses  # waited for each delivery, so no head-of-line mix
        late = 0.003 + 2 * lag.worst_s  # what a busy loop may add, measured beside
        for d in slow:
            assert 0.209 <= d < 0.210 + late, (delays, late)
        for d in delays:
            assert d in slow or 0.009 <= d < 0.010 + late, (delays, late)

    _run(main())


def test_losses_inside_a_busy_stream_are_fast_retransmits() -> None:
    profile = LinkProfile("busy", 0, 0, 40.0, 0.0, 0.05)

    async def main() -> None:
        sink = Arrivals()
        server, port = await _server(sink.handle)
        async with LinkShaper(profile, "127.0.0.1", port, seed=2) as shaper:
            _, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            for _ in range(150):
                writer.write(b"b" * 100)
                await asyncio.sleep(0.001)
            await asyncio.wait_for(_until(sink, 15_000), 5)
            writer.close()
            stats = shaper.stats.c2s
        server.close()
        await server.wait_closed()
        assert stats.fast_retransmits >= 3
        assert stats.fast_retransmits > stats.timeouts

    _run(main())


def test_half_close_propagates_after_the_delayed_bytes() -> None:
    profile = LinkProfile("half", 0, 0, 40.0)

    async def server_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        data = await reader.read(-1)  # until the client's FIN
        writer.write(b"got " + data)  # still allowed: only the client half is closed
        await writer.drain()
        writer.close()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server, port = await _server(server_side)
        async with LoopLag() as lag, LinkShaper(profile, "127.0.0.1", port) as shaper:
            reader, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            t0 = loop.time()
            writer.write(b"hello")
            writer.write_eof()
            reply = await asyncio.wait_for(reader.read(-1), 5)
            elapsed = loop.time() - t0
            assert reply == b"got hello"
            # One RTT there and back (the FIN after the bytes), late only by the loop's lag.
            assert 0.039 < elapsed < 0.06 + 4 * lag.worst_s, (elapsed, lag.worst_s)
            writer.close()
            for _ in range(100):
                if shaper.stats.active == 0:
                    break
                await asyncio.sleep(0.01)
            assert shaper.stats.active == 0 and not shaper.live
            assert shaper.stats.connections == 1
        server.close()
        await server.wait_closed()

    _run(main())


def test_a_reset_on_one_side_closes_the_other() -> None:
    profile = LinkProfile("reset", 0, 0, 10.0)

    async def server_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # with a zero linger: an RST, not a FIN

    async def main() -> None:
        server, port = await _server(server_side)
        async with LinkShaper(profile, "127.0.0.1", port) as shaper:
            reader, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            writer.write(b"x")
            try:
                rest = await asyncio.wait_for(reader.read(-1), 2)
            except ConnectionResetError:
                rest = b""
            assert rest == b""
            assert not shaper.live  # gone before the client did anything
            writer.close()
        server.close()
        await server.wait_closed()

    _run(main())


def test_unreachable_target_closes_the_client() -> None:
    async def main() -> None:
        server, port = await _server(Arrivals().handle)
        server.close()
        await server.wait_closed()  # nothing listens on `port` any more
        async with LinkShaper(LinkProfile("x", 0, 0, 5.0), "127.0.0.1", port) as shaper:
            reader, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            with contextlib.suppress(ConnectionResetError):  # EOF or reset, both fine
                assert await asyncio.wait_for(reader.read(-1), 2) == b""
            assert not shaper.live
            writer.close()

    _run(main())


def test_stop_cancels_everything_and_leaves_no_tasks() -> None:
    profile = LinkProfile("stuck", 100, 100, 200.0, 5.0, 0.2)

    async def main() -> None:
        sink = Arrivals()
        server, port = await _server(sink.handle)
        shaper = LinkShaper(profile, "127.0.0.1", port)
        await shaper.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
        writer.write(os.urandom(100_000))  # eight seconds of queue on 100 kbit/s
        await asyncio.sleep(0.2)
        conns: list[_Connection] = list(shaper.live)
        assert conns and conns[0].up.queue
        await shaper.stop()
        assert not shaper.live
        assert all(p.done and not p.queue and p.timer is None for p in (conns[0].up, conns[0].down))
        assert await asyncio.wait_for(reader.read(-1), 2) == b""
        writer.close()
        server.close()
        await server.wait_closed()
        assert asyncio.all_tasks() == {asyncio.current_task()}
        loop = asyncio.get_running_loop()
        pending = [h for h in getattr(loop, "_scheduled", []) if not h.cancelled()]
        assert not pending

    _run(main())


def test_backpressure_bounds_the_queue() -> None:
    profile = LinkProfile("trickle", 0, 500, 10.0)

    async def main() -> None:
        sink = Arrivals()
        server, port = await _server(sink.handle)
        async with LinkShaper(profile, "127.0.0.1", port) as shaper:
            _, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            writer.write(b"\0" * (12 * 1024 * 1024))
            await asyncio.sleep(0.5)
            (conn,) = shaper.live
            assert conn.up.paused
            assert conn.up.queued <= BACKLOG_HIGH + READ_SIZE
            assert writer.transport.get_write_buffer_size() > 0  # held back in the client
            writer.transport.abort()
        server.close()
        await server.wait_closed()

    _run(main())


def test_refuses_non_loopback_addresses() -> None:
    p = LinkProfile("x", 0, 0, 1.0)
    with pytest.raises(ConfigError, match="not loopback"):
        LinkShaper(p, "192.0.2.1", 80)
    with pytest.raises(ConfigError, match="not loopback"):
        LinkShaper(p, "127.0.0.1", 80, listen_host="0.0.0.0")
    LinkShaper(p, "192.0.2.1", 80, allow_remote=True)
    LinkShaper(p, "localhost", 80)
    LinkShaper(p, "::1", 80)


def test_subprocess_prints_its_port_shapes_and_exits_on_sigterm() -> None:
    profile = replace(LinkProfile("proc", 0, 0, 40.0), name="custom-not-a-preset")

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionResetError):
            while data := await reader.read(65536):
                writer.write(data)
        writer.close()

    async def main() -> None:
        server, port = await _server(echo)
        shaper = ShaperProcess(profile, "127.0.0.1", port, seed=5)
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
            start = time.perf_counter()
            writer.write(b"ping")
            assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
            # Shaped in the other process: never under the RTT; its loop's lateness cannot
            # be watched from here, so the upper bound is generous (5x the RTT).
            assert 0.039 < time.perf_counter() - start < 5 * 0.040
            writer.close()
        finally:
            stats = shaper.stop()
        assert shaper.proc.returncode == 0
        assert stats is not None and stats["c2s"]["bytes"] == 4 and stats["connections"] == 1
        server.close()
        await server.wait_closed()

    _run(main())


def test_command_line_rejects_a_bad_profile() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "wslab.harness.shaper_proc", "--profile", "nope", "--target", ":1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert "unknown link profile" in proc.stderr
