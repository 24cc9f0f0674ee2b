"""Event bus routing, the aggregating handler, the batched queue, alone and in the server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.events import Aggregator, EventBus, ProcessingQueue
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


def _docs(n: int) -> list[bytes]:
    return [json.dumps({"i": i, "price": i * 0.5, "ok": True, "name": f"n{i}",
                        "pos": {"x": -i, "y": 2 * i}}).encode() for i in range(n)]


def test_aggregator_parses_and_sums_numeric_fields_per_type() -> None:
    agg = Aggregator()
    agg.handle("quote", _docs(10))
    agg.handle("quote", [b"not json", b"\x00\x01binary", b"[1, 2]"])
    agg.handle("order", [b'{"qty": 3}', b'{"qty": 4.5}'])
    fields = agg.committed["quote"]
    assert fields["i"] == (10, sum(range(10)), 0, 9)
    assert fields["price"] == (10, sum(i * 0.5 for i in range(10)), 0.0, 4.5)
    assert fields["pos.x"] == (10, -sum(range(10)), -9, 0)
    assert fields["pos.y"] == (10, 2 * sum(range(10)), 0, 18)
    assert "ok" not in fields and "name" not in fields  # booleans and text are not summed
    assert agg.committed["order"] == {"qty": (2, 7.5, 3, 4.5)}
    assert agg.messages == {"quote": 13, "order": 2}
    assert agg.unparsed == 2  # the array is JSON (counted, nothing to sum)
    assert agg.calls == 3


async def _drain(queue: ProcessingQueue, items: list[tuple[str, bytes]]) -> None:
    queue.start()
    now = asyncio.get_running_loop().time()
    for type, payload in items:
        queue.put(type, payload, now)
    await queue.stop()


class Recording:
    """A handler that keeps each batch's type and size, and the payloads in order."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, int]] = []
        self.payloads: dict[str, list[bytes]] = {}

    def handle(self, type: str, payloads: Sequence[bytes]) -> None:
        self.batches.append((type, len(payloads)))
        self.payloads.setdefault(type, []).extend(payloads)


def _mixed(n: int) -> list[tuple[str, bytes]]:
    return [(f"t{i % 3}", f'{{"i": {i}}}'.encode()) for i in range(n)]


def test_queue_hands_over_batches_of_one_type_in_arrival_order() -> None:
    items = _mixed(250)
    handler = Recording()
    queue = ProcessingQueue(handler, max_batch=40)
    asyncio.run(_drain(queue, items))
    assert sum(n for _, n in handler.batches) == 250 == queue.items
    assert max(n for _, n in handler.batches) == 40 == queue.largest_batch
    # Every message put before the drain ran: each type comes in full batches of 40
    # and one remainder, so the handler was called far fewer times than once per message.
    per_type = {t: [p for k, p in items if k == t] for t in ("t0", "t1", "t2")}
    assert handler.payloads == per_type  # grouped by type, each type in arrival order
    assert len(handler.batches) == sum(-(-len(v) // 40) for v in per_type.values())
    assert queue.batches == len(handler.batches) and queue.waiting == 0


def test_per_message_baseline_calls_once_per_message_and_agrees_with_batched() -> None:
    items = [(t, d) for t, d in zip(("a", "b") * 50, _docs(100), strict=True)]
    batched, single = Aggregator(), Aggregator()
    asyncio.run(_drain(ProcessingQueue(batched, max_batch=100), items))
    asyncio.run(_drain(ProcessingQueue(single, max_batch=1), items))
    assert single.calls == 100 and batched.calls == 2  # one commit per call
    assert batched.committed == single.committed and batched.messages == single.messages


def test_linger_lets_a_batch_fill() -> None:
    async def main(linger_ms: float) -> list[tuple[str, int]]:
        handler = Recording()
        queue = ProcessingQueue(handler, max_batch=100, linger_ms=linger_ms)
        queue.start()
        loop = asyncio.get_running_loop()
        queue.put("a", b"{}", loop.time())
        await asyncio.sleep(0.02)  # the drain has woken for the first message
        for _ in range(9):
            queue.put("a", b"{}", loop.time())
        await queue.stop()
        return handler.batches

    assert asyncio.run(main(linger_ms=500.0)) == [("a", 10)]
    assert asyncio.run(main(linger_ms=0.0))[0] == ("a", 1)


class Failing(Recording):
    def handle(self, type: str, payloads: Sequence[bytes]) -> None:
        if type == "bad":
            raise ValueError("a bug in the handler")
        super().handle(type, payloads)


def test_a_failing_batch_is_counted_and_the_queue_goes_on() -> None:
    handler = Failing()
    queue = ProcessingQueue(handler, max_batch=10)
    asyncio.run(_drain(queue, [("bad", b"{}")] * 3 + [("good", b"{}")] * 5))
    assert queue.errors == 1 and queue.waiting == 0
    assert handler.batches == [("good", 5)]


def test_latency_memory_is_bounded_and_stats_add_up() -> None:
    queue = ProcessingQueue(max_batch=7, keep_latencies=50)
    asyncio.run(_drain(queue, _mixed(300)))
    st = queue.stats()
    assert len(queue.latencies) == 50
    assert st["items"] == 300 and st["batches"] == queue.batches
    assert st["mean_batch"] == 300 / queue.batches and st["largest_batch"] == 7
    assert st["latency_p50_ms"] <= st["latency_p99_ms"] <= st["latency_max_ms"]
    assert st["handler_s"] > 0 and st["handler_us_per_item"] > 0


def test_server_hands_inbound_messages_to_the_queue_by_type() -> None:
    msgs = [Message(i * 0.001, "c2s", "order" if i % 2 else "quote", "normal",
                    json.dumps({"i": i, "qty": i % 7}).encode(), True) for i in range(60)]
    trace = Trace(msgs)

    async def main() -> tuple[ProcessingQueue, int]:
        q = ProcessingQueue(max_batch=50)
        async with LiveServer(TuningConfig(), scenario="echo", trace=trace,
                              processing=q) as server:
            await LoadClient(f"ws://127.0.0.1:{server.port}/", TuningConfig(), trace=trace,
                             drain_timeout=1.0).run()
        return q, server.bus.published

    q, published = asyncio.run(main())
    assert published == 60 and q.items == 60
    assert isinstance(q.handler, Aggregator)
    for kind, rest in (("quote", 0), ("order", 1)):
        mine = [i for i in range(60) if i % 2 == rest]
        assert q.handler.committed[kind]["i"] == (30, sum(mine), min(mine), max(mine))
        assert q.handler.committed[kind]["qty"][1] == sum(i % 7 for i in mine)


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
