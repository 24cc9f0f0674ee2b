"""Room forwarding under batching: messages from several room-mates share frames."""

from __future__ import annotations

import asyncio
import json

import pandas as pd
import pytest

from wslab.config import TuningConfig
from wslab.harness.client import LoadClient
from wslab.harness.recorder import join_stream
from wslab.harness.server import LiveServer
from wslab.traces.model import Message, Trace

PRIOS = ("critical", "normal", "background")


def member_trace(member: int, n: int = 60) -> Trace:
    return Trace([Message(i * 0.01, "c2s", "chat", PRIOS[i % 3],
                          json.dumps({"from": member, "i": i}).encode(), True)
                  for i in range(n)])


@pytest.mark.timeout(60)
def test_room_forwarding_keeps_order_within_each_class() -> None:
    config = TuningConfig().updated({"batching.strategy": "priority",
                                     "batching.envelope": "json-array"})

    async def main() -> dict[str, int]:
        async with LiveServer(config, scenario="room", rooms=1) as server:
            clients = [LoadClient(f"ws://127.0.0.1:{server.port}/", config,
                                  trace=member_trace(n), prefix=f"m{n}", drain_timeout=1.0)
                       for n in range(3)]
            await asyncio.gather(*(c.run() for c in clients))
            received = pd.concat([c.recorder.received_frame() for c in clients],
                                 ignore_index=True)
            _, counts = join_stream(server.recorder.sent_frame(), received)
            return counts

    counts = asyncio.run(main())
    assert counts["lost"] == 0 and counts["duplicated"] == 0
    assert counts["reordered"] == 0
