"""The link shaper against what the kernel reports, and its cost on an unshaped link.

``tests/harness/test_shaper.py`` holds the shaper to :class:`~wslab.link.LinkModel`, the
model it implements; comparing the two again here would only check the shaper against
its own specification. This benchmark asks the kernel instead: while bulk data crosses a
:class:`LinkShaper` (in this process, 8 Mbit/s down, 2 Mbit/s up, 40 ms RTT, so a swapped
direction shows), a sampler reads ``TCP_INFO`` (``wslab.harness.meter.tcp_info``) every
few milliseconds on the hop that carries the shaped bytes (the shaper's socket towards
the receiver) and on the receiver's own socket, and the figures are set against the
profile:

- **goodput**: the slope of the receiver's ``bytes_received`` over time, fitted on the
  steady part of the transfer (10 % to 90 % of the bytes), against the profile's
  bandwidth times the payload share of each segment (MSS over MSS plus 52 header bytes).
  Target: within 5 %.
- **bytes acked**: the same slope of ``bytes_acked`` on the shaper's sending socket
  (what the receiving kernel acknowledged). Target: within 5 %.
- **delivery rate**: the kernel's own estimate (``tcpi_delivery_rate``) on that socket,
  median over the steady part. Context: the shaper writes each segment when it is due,
  so the flow is application-limited and the kernel times every segment's own trip over
  loopback: it reports loopback's rate, not the emulated link's.
- **round trip**: small echoes through the shaper and, in alternating rounds, through an
  unshaped one (the proxy's own cost, measured side by side); the difference of the
  medians against the profile's RTT plus the serialisation of the echo's bytes each way
  (target within 5 %). Beside it the RTT the kernel measured on the client's socket
  (``tcpi_rtt``): context, showing that the shaper delays bytes above TCP, so TCP on
  either hop sees loopback and never the emulated link (its congestion control does not
  react to the emulated RTT as it would on a real one).
- **proxy throughput**: MB/s through an unlimited shaper against a direct loopback
  connection, to show what the proxy itself costs.
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from wslab.harness.meter import TcpInfo, tcp_info
from wslab.harness.shaper import LinkShaper
from wslab.link import LinkProfile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import main, row

PROFILE = LinkProfile("bench 8/2 Mbit/s 40 ms", down_kbps=8_000, up_kbps=2_000, rtt_ms=40.0)
OPEN = LinkProfile("open", 0, 0, 0.0)
ECHO_BYTES = 64
SAMPLE_S = 0.005
TOLERANCE = 0.05


def _sock(transport: asyncio.BaseTransport | None) -> socket.socket:
    assert transport is not None
    sock = transport.get_extra_info("socket")
    assert sock is not None
    return sock  # type: ignore[no-any-return]


def _slope(t: np.ndarray, counted: np.ndarray, total: int) -> float:
    """Bytes per second over the steady part (10 % to 90 % of ``total``)."""
    keep = (counted >= 0.1 * total) & (counted <= 0.9 * total)
    if keep.sum() < 3:
        return float("nan")
    return float(np.polyfit(t[keep], counted[keep], 1)[0])


async def _bulk(direction: str, size: int) -> dict[str, float]:
    """Send ``size`` bytes one way through the shaper; the kernel's view of the transfer."""
    loop = asyncio.get_running_loop()
    payload = os.urandom(size)
    accepted: asyncio.Future[asyncio.StreamWriter] = loop.create_future()
    done = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set_result(writer)
        if direction == "c2s":
            await reader.readexactly(size)
            done.set()
        else:
            writer.write(payload)
            await writer.drain()
        await reader.read()  # until the client closes
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with LinkShaper(PROFILE, "127.0.0.1", port) as shaper:
        reader, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
        server_writer = await asyncio.wait_for(accepted, 10)
        (conn,) = shaper.live
        if direction == "c2s":  # shaper -> server carries the shaped bytes
            sender, receiver = _sock(conn.server.transport), _sock(server_writer.transport)
        else:  # shaper -> client
            sender, receiver = _sock(conn.client.transport), _sock(writer.transport)
        samples: list[tuple[float, TcpInfo, TcpInfo]] = []

        async def sample() -> None:
            while True:
                s, r = tcp_info(sender), tcp_info(receiver)
                if s is not None and r is not None:
                    samples.append((loop.time(), s, r))
                await asyncio.sleep(SAMPLE_S)

        sampler = loop.create_task(sample())
        if direction == "c2s":
            writer.write(payload)
            await asyncio.wait_for(done.wait(), 60)
        else:
            await asyncio.wait_for(reader.readexactly(size), 60)
        await asyncio.sleep(0.1)  # the last ACKs
        sampler.cancel()
        writer.close()
    server.close()
    await server.wait_closed()
    t = np.array([x[0] for x in samples])
    received = np.array([x[2].bytes_received or 0 for x in samples], dtype=float)
    acked = np.array([x[1].bytes_acked or 0 for x in samples], dtype=float)
    acked -= acked[0]  # the SYN and anything before the transfer
    received -= received[0]
    steady = (received >= 0.1 * size) & (received <= 0.9 * size)
    rates = [x[1].delivery_rate for x, keep in zip(samples, steady, strict=True)
             if keep and x[1].delivery_rate]
    return {"goodput": _slope(t, received, size), "acked": _slope(t, acked, size),
            "delivery_rate": float(np.median(rates)) if rates else float("nan"),
            "samples": float(int(steady.sum()))}


async def _round_trips(profile: LinkProfile, count: int
                       ) -> tuple[list[float], TcpInfo | None, TcpInfo | None]:
    """``count`` echo round trips of :data:`ECHO_BYTES` through a shaper (ms), and the
    kernel's counters on the client's hop and on the shaper's hop to the server."""
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with LinkShaper(profile, "127.0.0.1", port) as shaper:
        reader, writer = await asyncio.open_connection("127.0.0.1", shaper.port)
        took = []
        for _ in range(count):
            start = time.perf_counter()
            writer.write(b"p" * ECHO_BYTES)
            await reader.readexactly(ECHO_BYTES)
            took.append((time.perf_counter() - start) * 1000)
            await asyncio.sleep(0.005)
        (conn,) = shaper.live
        client_hop = tcp_info(_sock(writer.transport))
        server_hop = tcp_info(_sock(conn.server.transport))
        writer.close()
    server.close()
    await server.wait_closed()
    return took, client_hop, server_hop


def _rtt_ms(info: TcpInfo | None) -> float:
    return info.rtt_us / 1000 if info is not None and info.rtt_us else float("nan")


async def _throughput(size: int, shaped: bool) -> float:
    payload = os.urandom(size)
    got = asyncio.Event()

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(size)
        got.set()
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    shaper = LinkShaper(LinkProfile("open", 0, 0, 0.0), "127.0.0.1", port)
    target = await shaper.start() if shaped else port
    _, writer = await asyncio.open_connection("127.0.0.1", target)
    start = time.perf_counter()
    writer.write(payload)
    await got.wait()
    elapsed = time.perf_counter() - start
    writer.close()
    await shaper.stop()
    server.close()
    await server.wait_closed()
    return size / elapsed / 1e6


def _within(value: float, peer: float) -> bool:
    return bool(np.isfinite(value)) and abs(value / peer - 1) <= TOLERANCE


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure and return the rows."""
    rows: list[dict[str, Any]] = []
    tcp = PROFILE.tcp()
    share = tcp.mss / (tcp.mss + tcp.header_bytes)
    seconds = 1.5 if quick else 5.0
    for direction in ("s2c", "c2s"):
        kbps = PROFILE.kbps(direction)
        expected = kbps * 1000 / 8 * share  # payload bytes per second
        size = int(expected * seconds)
        got = asyncio.run(_bulk(direction, size))
        label = f"{direction} at {kbps / 1000:g} Mbit/s"
        section = "kernel TCP_INFO through the shaper"
        note = f"{int(got['samples'])} TCP_INFO samples, {size / 1e6:.2f} MB"
        rows += [
            row("shaper", f"{label}: goodput (receiver bytes_received slope)",
                got["goodput"] * 8 / 1e6, "Mbit/s", peer="profile bandwidth x payload share",
                peer_value=expected * 8 / 1e6, target=f"within {TOLERANCE:.0%}",
                ok=_within(got["goodput"], expected), section=section, note=note),
            row("shaper", f"{label}: bytes acked slope (shaper's sending socket)",
                got["acked"] * 8 / 1e6, "Mbit/s", peer="profile bandwidth x payload share",
                peer_value=expected * 8 / 1e6, target=f"within {TOLERANCE:.0%}",
                ok=_within(got["acked"], expected), section=section, note=note),
            row("shaper", f"{label}: kernel delivery rate (median)",
                got["delivery_rate"] * 8 / 1e6, "Mbit/s",
                peer="profile bandwidth x payload share", peer_value=expected * 8 / 1e6,
                section=section,
                note="app-limited: each segment timed over loopback, not the link"),
        ]
    shaped_rt: list[float] = []
    open_rt: list[float] = []
    hops: tuple[TcpInfo | None, TcpInfo | None] = (None, None)
    for _ in range(3 if quick else 5):  # alternating rounds, shaped and unshaped
        took, *pair = asyncio.run(_round_trips(PROFILE, 10))
        shaped_rt.append(statistics.median(took))
        hops = (pair[0], pair[1])
        open_rt.append(statistics.median(asyncio.run(_round_trips(OPEN, 10))[0]))
    added = statistics.median(shaped_rt) - statistics.median(open_rt)
    wire = tcp.tcp_bytes(ECHO_BYTES) * 8
    expected_rt = PROFILE.rtt_ms + sum(wire / PROFILE.kbps(d) for d in ("c2s", "s2c"))
    rows += [
        row("shaper", "round trip the shaper adds (echo, median)", added, "ms",
            peer="profile RTT + serialisation", peer_value=expected_rt,
            target=f"within {TOLERANCE:.0%}", ok=_within(added, expected_rt),
            section="round trip",
            note=f"{statistics.median(shaped_rt):.2f} ms shaped, "
                 f"{statistics.median(open_rt):.2f} ms through an unshaped shaper"),
        row("shaper", "kernel RTT, client -> shaper socket (tcpi_rtt)", _rtt_ms(hops[0]),
            "ms", peer="profile RTT", peer_value=PROFILE.rtt_ms, section="round trip",
            note=f"shaper -> server socket: {_rtt_ms(hops[1]):.3f} ms; the delay is added "
                 "above TCP, which sees loopback on both hops"),
    ]
    size = 20_000_000 if quick else 100_000_000
    shaped = asyncio.run(_throughput(size, True))
    direct = asyncio.run(_throughput(size, False))
    rows.append(row("shaper", "unshaped proxy throughput", shaped, "MB/s",
                    peer="direct loopback", peer_value=direct, section="proxy cost"))
    return rows


if __name__ == "__main__":
    main(run)
