"""A client that stops reading: bounded memory, background shed, closed with 1008."""

from __future__ import annotations

import asyncio
import json
import time

from websockets.asyncio.client import connect

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.recorder import join_stream
from wslab.harness.server import LiveServer
from wslab.traces.model import Message, Trace

PRIOS = ("critical", "normal", "background")


def burst(n: int = 3000, size: int = 4000) -> Trace:
    return Trace([Message(i * 0.0005, "s2c", "blob", PRIOS[i % 3],
                          json.dumps({"i": i, "pad": "x" * size}).encode(), True)
                  for i in range(n)])


def test_slow_consumer_is_shed_then_closed_and_others_are_not_held_hostage() -> None:
    config = TuningConfig().updated({"compression.algorithm": "none",
                                     "scaling.write_limit": 65536,
                                     "scaling.slow_consumer_timeout_s": 0.5})
    trace = burst()

    async def main() -> dict[str, object]:
        async with LiveServer(config, scenario="broadcast", trace=trace,
                              expect_clients=2) as server:
            url = f"ws://127.0.0.1:{server.port}/"
            # The stalled client: reads nothing, and websockets stops reading the socket
            # once one message waits in its queue.
            stalled = await connect(url, max_queue=1, compression=None,
                                    additional_headers={"X-Wslab-Client": "stalled"})
            fast = LoadClient(url, config, trace=trace, send=False, expect_s2c=len(trace),
                              drain_timeout=3.0, prefix="fast")
            started = time.monotonic()
            result = await fast.run()
            took = time.monotonic() - started
            await asyncio.sleep(3.0)  # the close handshake's grace
            code = [s.closed_slow for s in server.sessions.values()]
            await stalled.close()
            rss_peak = server.metrics.frame()["rss_kib"].max()
            return {"code": code, "took": took, "fast": result, "server": server,
                    "client": fast, "rss_peak": rss_peak}

    out = asyncio.run(main())
    server, client = out["server"], out["client"]
    assert out["code"] == []  # the stalled session is gone from the server
    sent = server.recorder.sent_frame()  # type: ignore[attr-defined]
    fast_sent = sent[sent["conn"] == "fast-0"]
    _rows, counts = join_stream(fast_sent, client.recorder.received_frame())  # type: ignore[attr-defined]
    assert counts == {"lost": 0, "duplicated": 0, "reordered": 0}
    assert len(fast_sent) == len(burst())  # the fast client got every message
    stalled_sent = sent[sent["conn"] == "stalled"]
    assert len(stalled_sent) < len(burst())
    dropped = server.metrics.counts["messages_dropped"]  # type: ignore[attr-defined]
    assert dropped > 0
    assert server.metrics.counts["closes_1008"] == 1  # type: ignore[attr-defined]
    # The fast client's latency is not held hostage by the stalled one: the whole burst
    # (1.5 s of trace) arrives within a few seconds.
    assert out["took"] < 10
