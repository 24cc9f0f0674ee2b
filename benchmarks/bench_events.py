"""Batched inbound processing against one message at a time, on the same handler.

What the server does with what clients send (``wslab serve --processing``): messages wait
in ``wslab.harness.events.ProcessingQueue`` per type and the ``Aggregator`` parses each one
as JSON, folds its numeric fields into per-type counts, sums, minima and maxima, and commits
a snapshot of that type's totals once per call. Batched (``max_batch`` 100) it is called
once per batch of one type; the peer is the very same queue and handler with
``max_batch=1``, which pays the per-call overhead (the call, the commit, one trip round the
event loop) for every message. The messages are the client-to-server side of the bundled
``chat``, ``game`` and ``telemetry`` traces (real JSON of several types), interleaved.

- **queue**: every message queued at once, then drained; time to drain (median of
  alternating runs, ``common.alternating``), and the handler's own time per message.
- **live**: a real server (``LiveServer``, room scenario with one member, so nothing is
  sent back) fed by a real ``LoadClient`` flooding one connection, in one process; time
  from the first send until the last message was handled. Client, socket and receive costs
  are the same for both, so the ratio is smaller than the queue's.
- **agreement**: both ways end with the same committed totals (must hold).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import alternating, main, row

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.events import Aggregator, ProcessingQueue
from wslab.harness.server import LiveServer
from wslab.traces.io import read_trace
from wslab.traces.model import Message, Trace

DATA = Path(__file__).resolve().parents[1] / "data"
TRACES = ("chat", "game", "telemetry")
BATCH = 100


def workload(n: int) -> list[Message]:
    """``n`` client-to-server JSON messages, the traces' types interleaved round robin."""
    pools = [[m for m in read_trace(DATA / f"{name}.jsonl.zst").messages
              if m.dir == "c2s" and m.is_text] for name in TRACES]
    out: list[Message] = []
    while len(out) < n:
        for pool in pools:
            out.append(pool[len(out) // len(pools) % len(pool)])
    return [dataclasses.replace(m, t=i * 1e-6, conn=None) for i, m in enumerate(out[:n])]


def _drain(messages: list[Message], max_batch: int) -> ProcessingQueue:
    async def go() -> ProcessingQueue:
        queue = ProcessingQueue(Aggregator(), max_batch=max_batch)
        queue.start()
        now = time.monotonic()
        for m in messages:
            queue.put(m.type, m.payload, now)
        await queue.stop()
        return queue

    return asyncio.run(go())


def _live(messages: list[Message], max_batch: int) -> float:
    """Seconds from the first send until the server handled the last message."""
    trace = Trace(messages)
    config = TuningConfig().updated({"compression.algorithm": "none"})

    async def go() -> float:
        queue = ProcessingQueue(Aggregator(), max_batch=max_batch)
        async with LiveServer(config, scenario="room", trace=trace, processing=queue,
                              record=False) as server:
            client = LoadClient(f"ws://127.0.0.1:{server.port}/", config, trace=trace,
                                speed=1e6, expect_s2c=0, drain_timeout=0.1)
            started = time.perf_counter()
            await client.run()
            while queue.items < len(messages):
                await asyncio.sleep(0.0005)
            return time.perf_counter() - started

    return asyncio.run(go())


def run(quick: bool) -> list[dict[str, Any]]:
    n, n_live, repeats = (20_000, 5_000, 3) if quick else (100_000, 20_000, 5)
    messages = workload(n)
    rows: list[dict[str, Any]] = []
    section = f"queue: {n:,} messages of {len({m.type for m in messages})} types, queued at once"
    batched_s, single_s = alternating([lambda: _drain(messages, BATCH),
                                       lambda: _drain(messages, 1)], repeats)
    rows.append(row("events", f"queue drained, batched ({BATCH}): messages/s", n / batched_s,
                    "msg/s", peer="one message per call", peer_value=n / single_s,
                    target="> 1x the peer", ok=single_s > batched_s, section=section,
                    note=f"median of {max(3, repeats)} alternating runs"))
    batched, single = _drain(messages, BATCH), _drain(messages, 1)
    b, s = batched.stats(), single.stats()
    rows.append(row("events", "handler time per message (parse, fold, commit)",
                    b["handler_us_per_item"], "us", peer="one message per call",
                    peer_value=s["handler_us_per_item"], section=section,
                    note=f"{b['batches']:,} calls vs {s['batches']:,}"))
    assert isinstance(batched.handler, Aggregator) and isinstance(single.handler, Aggregator)
    same = batched.handler.totals() == single.handler.totals()
    rows.append(row("events", "committed totals equal to the per-message run", float(same),
                    "bool", target="1", ok=same, section="agreement",
                    note=f"{len(batched.handler.committed)} types, "
                         f"{sum(len(f) for f in batched.handler.committed.values())} fields"))
    live = messages[:n_live]
    live_b, live_s = alternating([lambda: _live(live, BATCH), lambda: _live(live, 1)],
                                 repeats)
    rows.append(row("events", f"live server, batched ({BATCH}): messages/s handled",
                    n_live / live_b, "msg/s", peer="one message per call",
                    peer_value=n_live / live_s, section=f"live: {n_live:,} messages, one "
                    "connection, client and server in one process",
                    note=f"median of {max(3, repeats)} alternating runs"))
    return rows


if __name__ == "__main__":
    main(run)
