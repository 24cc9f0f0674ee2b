"""The link shaper against the simulator's link model, and its cost on an unshaped link.

Rows:

- **websocket latency**: a websockets client sends paced JSON-sized messages through a
  :class:`LinkShaper` (10 Mbit/s, 40 ms RTT) to a websockets server in the same process
  (same clock); the p50 one-way latency is compared with :class:`LinkModel` fed the same
  send times and RFC 6455 frame sizes. Target: within 25 % (the acceptance figure).
- **bulk transfer**: 1 MB over 5 Mbit/s against the serialisation time of its wire bytes
  plus half the RTT. Target: within 5 %.
- **proxy throughput**: MB/s through an unlimited shaper against a direct loopback
  connection, to show what the proxy itself costs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from wslab.harness.shaper import LinkShaper
from wslab.link import LinkModel, LinkProfile
from wslab.wire import ws_frame_bytes

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import main, row


async def _ws_latency(count: int) -> tuple[float, float]:
    profile = LinkProfile("bench", 10_000, 10_000, 40.0)
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []
    done = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        async for _ in ws:
            arrivals.append(loop.time())
            if len(arrivals) == count:
                done.set()

    rng = np.random.default_rng(1)
    sizes = rng.integers(100, 3000, count)
    async with serve(handler, "127.0.0.1", 0, compression=None) as server:
        port = server.sockets[0].getsockname()[1] if server.sockets else 0
        async with (
            LinkShaper(profile, "127.0.0.1", port) as shaper,
            connect(f"ws://127.0.0.1:{shaper.port}", compression=None) as ws,
        ):
            sent = []
            for n in sizes:
                sent.append(loop.time())
                await ws.send("x" * int(n))
                await asyncio.sleep(float(rng.exponential(0.01)))
            await asyncio.wait_for(done.wait(), 30)
    frames = np.array([ws_frame_bytes(int(n), masked=True) for n in sizes], dtype=np.int64)
    tcp = profile.tcp()
    segs = tcp.segments_array(frames)
    model = LinkModel(profile, "c2s").transmit(np.array(sent), frames + segs * 52, segs)
    measured = (np.array(arrivals) - np.array(sent)) * 1000
    simulated = (model.arrival - model.ready) * 1000
    return float(np.median(measured)), float(np.median(simulated))


async def _bulk(size: int, kbps: float) -> tuple[float, float]:
    profile = LinkProfile("bulk", 0, kbps, 20.0)
    payload = os.urandom(size)
    loop = asyncio.get_running_loop()
    got = asyncio.Event()
    t_end = 0.0

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal t_end
        await reader.readexactly(size)
        t_end = loop.time()
        got.set()
        writer.close()

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    shaper = LinkShaper(profile, "127.0.0.1", port)
    target = await shaper.start()
    _, writer = await asyncio.open_connection("127.0.0.1", target)
    t0 = loop.time()
    writer.write(payload)
    await asyncio.wait_for(got.wait(), 60)
    writer.close()
    await shaper.stop()
    server.close()
    await server.wait_closed()
    tcp = profile.tcp()
    expected = tcp.tcp_bytes(size) * 8 / (kbps * 1000) + 0.010
    return t_end - t0, expected


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


def run(quick: bool) -> list[dict[str, Any]]:
    """Measure and return the rows."""
    measured, simulated = asyncio.run(_ws_latency(100 if quick else 400))
    err = abs(measured - simulated) / simulated
    rows = [
        row("shaper", "websocket p50 latency, 10 Mbit/s 40 ms", measured, "ms",
            peer="LinkModel (simulator)", peer_value=simulated,
            target="within 25 %", ok=err <= 0.25),
    ]
    elapsed, expected = asyncio.run(_bulk(1_000_000, 5_000))
    rows.append(row("shaper", "1 MB over 5 Mbit/s", elapsed, "s",
                    peer="wire bytes / bandwidth + rtt/2", peer_value=expected,
                    target="within 5 %", ok=abs(elapsed - expected) / expected <= 0.05))
    size = 20_000_000 if quick else 100_000_000
    shaped = asyncio.run(_throughput(size, True))
    direct = asyncio.run(_throughput(size, False))
    rows.append(row("shaper", "unshaped proxy throughput", shaped, "MB/s",
                    peer="direct loopback", peer_value=direct))
    return rows


if __name__ == "__main__":
    main(run)
