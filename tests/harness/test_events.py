"""Event bus routing and batched processing of inbound messages, alone and in the server."""

from __future__ import annotations

import asyncio
import json

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.events import EventBus, ProcessingQueue
from wslab.harness.livemetrics import AlertRules, LiveMetrics
from wslab.harness.server import LiveServer
from wslab.traces.model import Message, Trace


def test_bus_routes_by_type_and_wildcard() -> None:
    bus = EventBus()
    seen: list[tuple[str, str]] = []
    bus.subscribe("chat", lambda t, p, _: seen.append(("chat", t)))
    bus.subscribe("*", lambda t, p, _: seen.append(("all", t)))
    assert bus.publish("chat", b"x", 0.0) == 2
    assert bus.publish("tick", b"y", 0.0) == 1
    assert seen == [("chat", "chat"), ("all", "chat"), ("all", "tick")]


async def _process(max_batch: int, n: int = 200) -> dict[str, object]:
    q = ProcessingQueue(per_batch_ms=2.0, per_item_ms=0.01, max_batch=max_batch)
    q.start()
    for i in range(n):
        q.put(f"t{i % 2}", b"x", asyncio.get_running_loop().time())
    await q.stop()
    return q.stats()


def test_batched_processing_beats_one_by_one() -> None:
    batched = asyncio.run(_process(100))
    single = asyncio.run(_process(1, n=40))
    assert batched["items"] == 200 and single["items"] == 40
    assert batched["batches"] <= 4  # two types, up to 100 per batch
    assert single["batches"] == 40
    assert batched["items_per_s"] > 5 * single["items_per_s"]  # type: ignore[operator]


def test_server_feeds_inbound_messages_to_the_queue() -> None:
    msgs = [Message(i * 0.001, "c2s", "order" if i % 2 else "quote", "normal",
                    json.dumps({"i": i}).encode(), True) for i in range(50)]
    trace = Trace(msgs)

    async def main() -> dict[str, object]:
        q = ProcessingQueue(per_batch_ms=1.0, per_item_ms=0.0, max_batch=50)
        async with LiveServer(TuningConfig(), scenario="echo", trace=trace,
                              processing=q) as server:
            await LoadClient(f"ws://127.0.0.1:{server.port}/", TuningConfig(), trace=trace,
                             drain_timeout=1.0).run()
            await asyncio.sleep(0.05)
        assert server.bus.published == 50
        return q.stats()

    stats = asyncio.run(main())
    assert stats["items"] == 50


def test_alert_rules_fire_once_and_clear() -> None:
    m = LiveMetrics(rules=AlertRules(max_rss_mib=0.001, max_compression_ratio=0.5,
                                     max_failure_rate=0.1))
    m.counts["compressed_bytes_in"] = 200_000
    m.counts["compressed_bytes_out"] = 180_000
    m.counts["connections_total"] = 18
    m.counts["connections_failed"] = 4
    m.sample()
    m.sample()
    assert sorted(a.rule for a in m.alerts) == ["connection_failures", "memory",
                                                "poor_compression"]
    m.counts["compressed_bytes_out"] = 10_000
    m.sample()
    m.counts["compressed_bytes_out"] = 190_000
    m.sample()
    assert [a.rule for a in m.alerts].count("poor_compression") == 2
    assert len(m.frame()) == 4
